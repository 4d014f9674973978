"""policy_node: a trained goal-conditioned policy (ssl_robot/rl) driving the arm toward the goal in force.

Inputs: the scene's VAE latent on /latent/scene (goal_node, every frame of its camera) and the goal on /goal/latent
(latched). The policy must have been trained on latents of that very model (the reach policy: the task camera's
β-VAE, rl_reach_vae), so a latent whose model id (frame_id) is not the policy's VAE is refused. At the control rate
(node clock: sim time with use_sim_time) it answers the newest scene latent with an end-effector target on
/arm/ee_target (geometry_msgs/PoseStamped, frame 'world', the hand pointing down as in training), stamped with that
latent's stamp; ssl_robot.rl.policy_runner says how the action becomes a safe target (workspace box, speed limit)
and when there is none (disabled, no goal, stale / NaN / other-model inputs).

Status on /policy/status (std_msgs/String JSON event 'policy', at the control rate and on every goal): goal_id
(counted from 1 per goal received), the goal's stamp, steps taken toward it, the latest reward (-|z - z_g|, the
reward node's function), done (steps_per_goal steps taken: the policy's training episode length), enabled.
/policy/enable (std_srvs/SetBool) switches commands on and off; the `enabled` parameter is the state at start
(false in config/policy.yaml: a real robot moves only when told to; the sim demo enables it).

Refused inputs are counted on /diagnostics (status 'ssl_robot/policy', count_<kind>, on the wall clock) and warned
about, rate-limited; the node keeps running. The policy file is reloaded when it changes; a broken one (not
safetensors, pickled, not fitting its config) is reported as a 'checkpoint' problem and the old policy kept.
"""

from __future__ import annotations

import json
import math

from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PoseStamped
from rclpy.node import Node
from sensor_msgs.msg import Image
from std_msgs.msg import String
from std_srvs.srv import SetBool

from ssl_robot import topics
from ssl_robot.inference.model_holder import set_torch_threads
from ssl_robot.models.checkpoint import CheckpointError
from ssl_robot.health.problem_log import ProblemLog
from ssl_robot.ros.convert import MessageError, image_to_array, ns_to_stamp, stamp_to_ns
from ssl_robot.ros.diagnostics import diagnostic_array, wall_timer
from ssl_robot.ros.node_main import spin_node
from ssl_robot.params.policy import PolicyParams
from ssl_robot.ros.parameters import declare_params
from ssl_robot.ros.qos import LATCHED_QOS, RELIABLE_QOS, SENSOR_QOS
from ssl_robot.rl.policy_runner import Command, PolicyFile, PolicyRunner, SafetyLimits, Skip
from ssl_robot.sim.config import rpy_to_quaternion

DIAGNOSTIC_NAME = 'ssl_robot/policy'
DIAGNOSTICS_PERIOD_S = 1.0


class PolicyNode(Node):

    def __init__(self) -> None:
        super().__init__('policy')
        self.params = params = declare_params(self, PolicyParams, read_only=True)
        set_torch_threads(params.torch_threads)

        self._orientation = rpy_to_quaternion(tuple(math.radians(v) for v in params.ee_rpy_deg))
        limits = SafetyLimits(workspace_min=params.workspace_min, workspace_max=params.workspace_max,
                              max_speed_mps=params.max_speed_mps, control_hz=params.control_hz,
                              max_observation_age_s=params.max_observation_age_s,
                              start_position=params.start_position)
        self._file = PolicyFile(params.checkpoint)
        env = self._file.policy.config.env
        self._runner = PolicyRunner(self._file.policy.act, limits, self._file.model_id,
                                    latent_dim=self._file.policy.network.observation_space['observation'].shape[0],
                                    action_step_m=env.action_step_m, steps_per_goal=params.steps_per_goal,
                                    enabled=params.enabled)
        self._problems = ProblemLog(self.get_logger().warning)
        self._commands = 0

        self._ee_target = self.create_publisher(PoseStamped, topics.in_namespace(topics.EE_TARGET), RELIABLE_QOS)
        self._status = self.create_publisher(String, topics.in_namespace(topics.POLICY_STATUS), RELIABLE_QOS)
        self._diagnostics = self.create_publisher(DiagnosticArray, topics.DIAGNOSTICS, RELIABLE_QOS)
        self.create_subscription(Image, topics.in_namespace(topics.SCENE_LATENT), self._on_scene_latent, SENSOR_QOS)
        self.create_subscription(Image, topics.in_namespace(topics.GOAL_LATENT), self._on_goal, LATCHED_QOS)
        self.create_service(SetBool, topics.in_namespace(topics.POLICY_ENABLE_SERVICE), self._on_enable)
        self.create_timer(1.0 / limits.control_hz, self._on_control_tick)
        wall_timer(self, params.reload_check_period_s, self._reload)
        wall_timer(self, DIAGNOSTICS_PERIOD_S, self._publish_diagnostics)
        self.get_logger().info(
            f'{self._file.path.name} ({env.task}, {env.mode}, {self._file.policy.env_steps} env steps) on latents of '
            f'{self._file.model_id}; {"enabled" if self._runner.enabled else "disabled"}')

    def _latent(self, message: Image, what: str) -> tuple | None:
        """(values, model id, stamp) of a 1 x D 32FC1 latent; None (counted) if it cannot be read. NaN passes, for the
        runner to refuse by name."""
        try:
            stamp_ns = stamp_to_ns(message.header.stamp)
            values = image_to_array(message) if message.encoding == '32FC1' else None
        except MessageError as error:
            self._problems.report(f'bad_{what}', f'{error}; dropped')
            return None
        if values is None or values.shape[0] != 1:
            self._problems.report(f'bad_{what}', f'{what} latent must be one 32FC1 row, got {message.encoding} '
                                                 f'{message.height} x {message.width}; dropped')
            return None
        return values[0], message.header.frame_id, stamp_ns

    def _count(self, skip: Skip | None) -> None:
        if skip is not None and skip.problem:
            self._problems.report(skip.kind, skip.reason)

    def _on_scene_latent(self, message: Image) -> None:
        latent = self._latent(message, 'observation')
        if latent is not None:
            self._count(self._runner.observe(*latent))

    def _on_goal(self, message: Image) -> None:
        latent = self._latent(message, 'goal')
        if latent is not None:
            self._count(self._runner.set_goal(*latent))
            self._publish_status()

    def _on_enable(self, request: SetBool.Request, response: SetBool.Response) -> SetBool.Response:
        self._runner.set_enabled(request.data)
        response.success = True
        response.message = f'policy {"enabled" if request.data else "disabled"}'
        self.get_logger().info(response.message)
        self._publish_status()
        return response

    def _on_control_tick(self) -> None:
        now_ns = self.get_clock().now().nanoseconds
        if now_ns == 0:  # no /clock yet under use_sim_time
            return
        decision = self._runner.control(now_ns)
        if isinstance(decision, Command):
            self._send(decision)
        else:
            self._count(decision)
        self._publish_status()

    def _send(self, command: Command) -> None:
        message = PoseStamped()
        message.header.stamp = ns_to_stamp(command.stamp_ns)
        message.header.frame_id = topics.WORLD_FRAME
        message.pose.position.x, message.pose.position.y, message.pose.position.z = command.position
        q = message.pose.orientation
        q.x, q.y, q.z, q.w = self._orientation
        self._ee_target.publish(message)
        self._commands += 1

    def _publish_status(self) -> None:
        now_ns = self.get_clock().now().nanoseconds
        self._status.publish(String(data=topics.encode_event('policy', now_ns, **self._runner.status())))

    def _reload(self) -> None:
        try:
            if self._file.reload_if_changed():
                policy = self._file.policy
                self._runner.act = policy.act
                self._runner.expected_model_id = self._file.model_id
                self._runner.latent_dim = policy.network.observation_space['observation'].shape[0]
                self._runner.action_step_m = policy.config.env.action_step_m
                self.get_logger().info(f'policy reloaded: {self._file.path.name}, {policy.env_steps} env steps')
        except (CheckpointError, FileNotFoundError, ValueError) as error:
            self._problems.report('checkpoint', f'{error}; still using the policy loaded before')

    def _publish_diagnostics(self) -> None:
        values = {'model_id': self._file.model_id, 'policy': str(self._file.path), 'commands': str(self._commands),
                  'status': json.dumps(self._runner.status()), **self._problems.count_values()}
        self._diagnostics.publish(diagnostic_array(DIAGNOSTIC_NAME, 'cpu', self._problems.take_recent(), values,
                                                   ns_to_stamp(self.get_clock().now().nanoseconds)))


def main(args=None) -> int:
    return spin_node(PolicyNode, 'policy_node', args)


if __name__ == '__main__':
    raise SystemExit(main())
