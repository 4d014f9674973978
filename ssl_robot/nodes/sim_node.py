"""sim_node: the PyBullet tray-and-arm robot as a ROS 2 node.

Publishes every camera of a tick with one identical header stamp, /clock, joint and gripper state and
the evaluation ground truth (see ssl_robot.ros.sim_messages); accepts end-effector targets, gripper
commands, resets and scripted grasps. It ticks on a timer (stepping free) or one period of ticks_per_step ticks per
/sim/step request (stepping on_request, for an env in lockstep with it). A bad command or a rejected parameter change
is logged, reported on /diagnostics and ignored: the simulation keeps running.
"""

from __future__ import annotations

import dataclasses
import time

from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PointStamped, PoseStamped
from rcl_interfaces.msg import SetParametersResult
from rclpy.node import Node
from std_msgs.msg import Int64
from std_srvs.srv import SetBool, Trigger

from ssl_robot import topics
from ssl_robot.health.problem_log import ProblemLog
from ssl_robot.ros.convert import ns_to_stamp
from ssl_robot.ros.diagnostics import diagnostic_array
from ssl_robot.ros.node_main import spin_node
from ssl_robot.params.sim import RUNNER_PARAMETERS, SimParams
from ssl_robot.ros.parameters import declare_params
from ssl_robot.ros.qos import RELIABLE_QOS
from ssl_robot.ros.sim_messages import sim_topic_specs, tick_messages
from ssl_robot.sim.config import load_sim_config
from ssl_robot.sim.runner import SimRunner

WARN_PERIOD_S = 1.0
SIM_PARAMETERS = frozenset(field.name for field in dataclasses.fields(SimParams))


def _sim_params_of(parameters) -> dict:
    """The SimParams fields among changed parameters (use_sim_time, say, is not one)."""
    return {p.name: p.value for p in parameters if p.name in SIM_PARAMETERS}


def camera_names(runner: SimRunner) -> list[str]:
    return [camera.name for camera in runner.config.cameras]


class SimNode(Node):

    def __init__(self) -> None:
        super().__init__('sim')
        self.params = declare_params(self, SimParams, read_only=False)

        self._runner = self._build_runner(self.params)
        self._camera_names = camera_names(self._runner)
        self._topic_publishers = {
            topic: self.create_publisher(spec.type, topics.in_namespace(topic), spec.qos)
            for topic, spec in sim_topic_specs(self._camera_names, segmentation=True).items()
        }
        self._diagnostics = self.create_publisher(DiagnosticArray, topics.DIAGNOSTICS, RELIABLE_QOS)
        # Kinds are 'rejected_<command>': a flood of one bad command hides no other kind of rejection.
        self._problems = ProblemLog(self.get_logger().warning, WARN_PERIOD_S)

        self.create_subscription(PoseStamped, topics.in_namespace(topics.EE_TARGET), self._on_ee_target, RELIABLE_QOS)
        self.create_subscription(PointStamped, topics.in_namespace(topics.GRASP_AT), self._on_grasp_at, RELIABLE_QOS)
        self.create_subscription(Int64, topics.in_namespace(topics.RESET_WITH_SEED), self._on_reset_with_seed,
                                 RELIABLE_QOS)
        self.create_service(SetBool, topics.in_namespace(topics.GRIPPER_SET_CLOSED_SERVICE), self._on_set_gripper)
        self.create_service(Trigger, topics.in_namespace(topics.RESET_SERVICE), self._on_reset)
        self.create_service(Trigger, topics.in_namespace(topics.GRASP_SERVICE), self._on_grasp)
        self.create_service(Trigger, topics.in_namespace(topics.STEP_SERVICE), self._on_step)
        self.add_on_set_parameters_callback(self._on_parameters)
        self.add_post_set_parameters_callback(self._after_parameters)

        self._ticks_since_report = 0
        self._ticks_done = 0
        self._report_wall = time.monotonic()
        self._tick_timer = self._start_ticking()
        self.create_timer(1.0, self._publish_diagnostics)
        self.get_logger().info(
            f'sim up: {len(self._camera_names)} scene cameras {self._camera_names}, mode '
            f'{self._runner.mode}, tick {self._runner.tick_period_ns / 1e6:.1f} ms sim time')

    @staticmethod
    def _build_runner(params: SimParams) -> SimRunner:
        config = load_sim_config(
            scene=params.scene_file or None, rig=params.camera_rig, object_set=params.object_set,
            num_objects=params.num_objects, image_size=(params.image_width, params.image_height))
        return SimRunner(config, mode=params.mode, seed=params.seed, attempts_per_episode=params.attempts_per_episode)

    def _tick_period_s(self) -> float:
        factor = self.params.real_time_factor
        return self._runner.tick_period_ns / 1e9 / factor if factor > 0 else 0.0

    def _start_ticking(self):
        """The tick timer when the sim runs free; None when it ticks on request."""
        return self.create_timer(self._tick_period_s(), self._on_tick) if self.params.stepping == 'free' else None

    def _on_tick(self) -> None:
        # Rendering is most of a tick's work (two 48 px images take about 12 of 16 ms), so a graph that needs fewer
        # frames than ticks runs that much faster with real_time_factor 0.
        self._ticks_done += 1
        self._publish(self._runner.tick(render=self._ticks_done % self.params.render_every == 0))

    def _publish(self, tick) -> None:
        for topic, message in tick_messages(tick, segmentation=self.params.publish_segmentation):
            self._topic_publishers[topic].publish(message)
        self._ticks_since_report += 1

    # Commands. Each handler turns a bad request into a warning and a diagnostics entry.
    def _on_step(self, _request: Trigger.Request, response: Trigger.Response):
        # rclpy's executor takes the ready subscriptions before the services: a target that arrived with the request
        # (sent before it) applies to this period.
        if self.params.stepping != 'on_request':
            response.success, response.message = False, self._reject('step', RuntimeError(
                'the sim runs free: set its parameter stepping to on_request to step it'))
            return response
        period = self._runner.advance(self.params.ticks_per_step)
        for tick in period:
            self._publish(tick)
        self._ticks_done += len(period)
        response.success, response.message = True, topics.encode_sim_step(
            period[0].stamp_ns - self._runner.tick_period_ns, period[-1].stamp_ns, len(period))
        return response

    # Commands. Each handler turns a bad request into a warning and a diagnostics entry.

    def _reject(self, command: str, error: Exception) -> str:
        self._problems.report(f'rejected_{command}', str(error))
        return str(error)

    def _on_ee_target(self, message: PoseStamped) -> None:
        p, q = message.pose.position, message.pose.orientation
        if message.header.frame_id not in ('', topics.WORLD_FRAME):
            self._reject('ee_target', ValueError(
                f"frame_id must be '{topics.WORLD_FRAME}' (no tf here), got '{message.header.frame_id}'"))
            return
        try:
            self._runner.command_ee_target((p.x, p.y, p.z), (q.x, q.y, q.z, q.w))
        except (ValueError, RuntimeError) as error:
            self._reject('ee_target', error)

    def _on_grasp_at(self, message: PointStamped) -> None:
        try:
            self._runner.request_grasp((message.point.x, message.point.y))
        except (ValueError, RuntimeError) as error:
            self._reject('grasp_at', error)

    def _on_reset_with_seed(self, message: Int64) -> None:
        try:
            if message.data < 0:
                raise ValueError(f'seed must be >= 0, got {message.data}')
            self._runner.request_reset(message.data)
        except (ValueError, RuntimeError) as error:
            self._reject('reset_with_seed', error)

    def _serve(self, command: str, response, action) -> object:
        try:
            action()
            response.success, response.message = True, 'accepted'
        except (ValueError, RuntimeError) as error:
            response.success, response.message = False, self._reject(command, error)
        return response

    def _on_set_gripper(self, request: SetBool.Request, response: SetBool.Response):
        return self._serve('set_gripper', response, lambda: self._runner.command_gripper(request.data))

    def _on_reset(self, _request: Trigger.Request, response: Trigger.Response):
        return self._serve('reset', response, lambda: self._runner.request_reset(None))

    def _on_grasp(self, _request: Trigger.Request, response: Trigger.Response):
        return self._serve('grasp', response, lambda: self._runner.request_grasp(None))

    def _on_parameters(self, parameters) -> SetParametersResult:
        changes = _sim_params_of(parameters)
        try:
            params = dataclasses.replace(self.params, **changes)
        except (ValueError, TypeError) as error:
            return SetParametersResult(successful=False, reason=str(error))
        if not any(name in changes for name in RUNNER_PARAMETERS):
            return SetParametersResult(successful=True)
        # Build the new world before accepting, so a bad value is refused with its reason and the
        # running world stays as it is.
        try:
            runner = self._build_runner(params)
        except (ValueError, FileNotFoundError, RuntimeError) as error:
            self._reject('parameters', error)
            return SetParametersResult(successful=False, reason=str(error))
        if camera_names(runner) != self._camera_names:
            runner.close()
            return SetParametersResult(
                successful=False, reason='changing the set of cameras needs a restart: topics are fixed at start')
        self._runner.close()
        self._runner = runner
        return SetParametersResult(successful=True)

    def _after_parameters(self, parameters) -> None:
        # Runs once every callback accepted the change: only then is it the node's.
        self.params = dataclasses.replace(self.params, **_sim_params_of(parameters))
        if any(p.name in ('real_time_factor', 'stepping') for p in parameters):
            if self._tick_timer is not None:
                self.destroy_timer(self._tick_timer)
            self._tick_timer = self._start_ticking()

    def _publish_diagnostics(self) -> None:
        now = time.monotonic()
        ticks_per_s = self._ticks_since_report / max(now - self._report_wall, 1e-9)
        self._ticks_since_report, self._report_wall = 0, now
        values = {'ticks_per_s': f'{ticks_per_s:.1f}',
                  'real_time_factor': f'{ticks_per_s * self._runner.tick_period_ns / 1e9:.2f}',
                  'mode': self._runner.mode, 'episodes_completed': str(self._runner.episodes_completed)}
        values.update(self._problems.count_values())
        self._diagnostics.publish(diagnostic_array('ssl_robot/sim', 'pybullet', self._problems.take_recent(), values,
                                                   ns_to_stamp(self.get_clock().now().nanoseconds)))

    def destroy_node(self) -> None:
        self._runner.close()
        super().destroy_node()


def main(args=None) -> int:
    return spin_node(SimNode, 'sim_node', args)


if __name__ == '__main__':
    raise SystemExit(main())
