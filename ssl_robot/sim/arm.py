"""The KUKA iiwa with its two-finger gripper: IK control of the tool centre point (TCP) and the gripper.

TCP goals are approached along a straight line at a bounded speed (the orientation is slerped alongside),
one IK solve per tick, so scripted and external commands both produce smooth motion the cameras can follow.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pybullet
import pybullet_data

from ssl_robot.sim.config import Pose, SimConfig

# Link indices of kuka_with_gripper2.sdf (as loaded by pybullet).
FLANGE_LINK = 6                     # lbr_iiwa_link_7; the TCP is tcp_offset_m away from it
GRIPPER_BASE_LINK = 7
LEFT_FINGER_LINKS = frozenset({8, 9, 10})
RIGHT_FINGER_LINKS = frozenset({11, 12, 13})
GRIPPER_LINKS = frozenset({GRIPPER_BASE_LINK}) | LEFT_FINGER_LINKS | RIGHT_FINGER_LINKS
FINGERTIP_LINKS = (10, 13)
ARM_JOINTS = tuple(range(7))
WRIST_ROTATION_JOINT = 7
LEFT_FINGER_JOINT, RIGHT_FINGER_JOINT = 8, 11
FINGERTIP_JOINTS = (10, 13)

# iiwa kinematics: shoulder (J1) height above the base and wrist centre (J5) to flange distance. With a
# 0.42 m upper arm, a 0.40 m forearm and the elbow limited to 120 degrees, the wrist centre lies between
# 0.41 and 0.82 m from the shoulder; the IK below tracks TCP goals to within 1 cm between these (measured).
SHOULDER_HEIGHT_M = 0.36
WRIST_TO_FLANGE_M = 0.081
MIN_REACH_M, MAX_REACH_M = 0.43, 0.76

# Null-space IK: joint limits slightly inside the real ones and a rest posture with the elbow up, which keeps
# solutions continuous while the TCP moves. Ranges must be non-zero for every movable joint (pybullet divides
# by them), the gripper joints included.
_ARM_LIMITS = (2.90, 2.05, 2.90, 2.05, 2.90, 2.05, 3.00)
_GRIPPER_JOINT_COUNT = 5
IK_LOWER = [-a for a in _ARM_LIMITS] + [-1.0] * _GRIPPER_JOINT_COUNT
IK_UPPER = list(_ARM_LIMITS) + [1.0] * _GRIPPER_JOINT_COUNT
IK_RANGES = [2 * a for a in _ARM_LIMITS] + [2.0] * _GRIPPER_JOINT_COUNT
IK_REST = [0.0, 0.6, 0.0, -1.5, 0.0, 1.0, 0.0] + [0.0] * _GRIPPER_JOINT_COUNT
IK_ITERATIONS = 20

MAX_TCP_ANGULAR_SPEED_RADPS = 2.0
ARRIVED_POSITION_TOLERANCE_M = 0.01
ARRIVED_ANGLE_TOLERANCE_RAD = 0.05


@dataclass
class JointStates:
    names: list[str]
    positions: np.ndarray
    velocities: np.ndarray
    efforts: np.ndarray


def _rotation(quaternion_xyzw: tuple[float, ...]) -> np.ndarray:
    return np.array(pybullet.getMatrixFromQuaternion(quaternion_xyzw)).reshape(3, 3)


def _slerp_towards(start: np.ndarray, goal: np.ndarray, max_angle: float) -> np.ndarray:
    """Rotate quaternion `start` towards `goal` by at most max_angle radians."""
    dot = float(np.dot(start, goal))
    if dot < 0.0:
        goal, dot = -goal, -dot
    angle = 2.0 * math.acos(min(1.0, dot))
    if angle <= max_angle:
        return goal
    fraction = max_angle / angle
    half = angle / 2.0
    blended = (math.sin((1 - fraction) * half) * start + math.sin(fraction * half) * goal) / math.sin(half)
    return blended / np.linalg.norm(blended)


def quaternion_angle(a: np.ndarray, b: np.ndarray) -> float:
    return 2.0 * math.acos(min(1.0, abs(float(np.dot(a, b)))))


class Arm:
    """The arm in one physics client. Commands take effect over the following physics steps."""

    def __init__(self, client: int, config: SimConfig) -> None:
        self._client = client
        self._config = config
        sdf = Path(pybullet_data.getDataPath()) / config.arm_sdf
        (self.body,) = pybullet.loadSDF(str(sdf), physicsClientId=client)
        # pybullet places a body by its inertial frame; arm_base_position is the link 0 frame.
        inertial_offset = pybullet.getDynamicsInfo(self.body, -1, physicsClientId=client)[3]
        pybullet.resetBasePositionAndOrientation(
            self.body, np.add(config.arm_base_position, inertial_offset).tolist(), (0, 0, 0, 1),
            physicsClientId=client)
        infos = [pybullet.getJointInfo(self.body, j, physicsClientId=client)
                 for j in range(pybullet.getNumJoints(self.body, physicsClientId=client))]
        self.joint_indices = [info[0] for info in infos if info[2] != pybullet.JOINT_FIXED]
        self.joint_names = [infos[j][1].decode() for j in self.joint_indices]
        self._tcp_offset = np.array(config.tcp_offset_m)
        self._dt = 1.0 / config.tick_rate_hz
        for name in ('home', 'presentation', 'dropoff'):
            pose: Pose = getattr(config, name)
            problem = self.reach_problem(pose.position, pose.orientation_xyzw())
            if problem:
                raise ValueError(f'scene {name} pose {pose}: {problem}')
        self.closed_cmd = False
        self.goal_position = np.zeros(3)
        self.goal_orientation = np.array([0.0, 0.0, 0.0, 1.0])
        self._waypoint_position = np.zeros(3)
        self._waypoint_orientation = self.goal_orientation
        self._solved_waypoint: tuple[np.ndarray, np.ndarray] | None = None

    # ------------------------------------------------------------------------------------------ kinematics

    def reach_problem(self, position: tuple[float, ...], orientation_xyzw: tuple[float, ...]) -> str | None:
        """Why the arm cannot place its TCP at this pose, or None when it can (wrist-distance test)."""
        wrist = self._flange_position(np.asarray(position, float), orientation_xyzw) - \
            _rotation(orientation_xyzw)[:, 2] * WRIST_TO_FLANGE_M
        shoulder = np.add(self._config.arm_base_position, (0.0, 0.0, SHOULDER_HEIGHT_M))
        distance = float(np.linalg.norm(wrist - shoulder))
        if distance > MAX_REACH_M:
            return f'out of reach: the wrist would be {distance:.3f} m from the shoulder (max {MAX_REACH_M})'
        if distance < MIN_REACH_M:
            return f'too close to the arm: the wrist would be {distance:.3f} m from the shoulder (min {MIN_REACH_M})'
        return None

    def _flange_position(self, tcp_position: np.ndarray, orientation_xyzw: tuple[float, ...]) -> np.ndarray:
        return tcp_position - _rotation(orientation_xyzw) @ self._tcp_offset

    def _solve_ik(self, tcp_position: np.ndarray, orientation_xyzw: np.ndarray) -> list[float]:
        flange = self._flange_position(tcp_position, tuple(orientation_xyzw))
        return list(pybullet.calculateInverseKinematics(
            self.body, FLANGE_LINK, flange.tolist(), orientation_xyzw.tolist(),
            lowerLimits=IK_LOWER, upperLimits=IK_UPPER, jointRanges=IK_RANGES, restPoses=IK_REST,
            maxNumIterations=IK_ITERATIONS, residualThreshold=1e-4, physicsClientId=self._client))

    # ------------------------------------------------------------------------------------------- commands

    def teleport(self, pose: Pose) -> None:
        """Put the arm at `pose` instantly (open gripper, goal = pose); used on reset."""
        orientation = np.array(pose.orientation_xyzw())
        for joint, angle in zip(self.joint_indices, IK_REST):
            pybullet.resetJointState(self.body, joint, angle, physicsClientId=self._client)
        # Solve from the rest posture a few times, since each solve is seeded by the current joint state.
        for _ in range(5):
            solution = self._solve_ik(np.array(pose.position), orientation)
            for joint, angle in zip(self.joint_indices, solution):
                pybullet.resetJointState(self.body, joint, angle, physicsClientId=self._client)
        open_angle = self._config.gripper_open_rad
        for joint, angle in ((LEFT_FINGER_JOINT, -open_angle), (RIGHT_FINGER_JOINT, open_angle),
                             (FINGERTIP_JOINTS[0], 0.0), (FINGERTIP_JOINTS[1], 0.0)):
            pybullet.resetJointState(self.body, joint, angle, physicsClientId=self._client)
        self.goal_position = np.array(pose.position, float)
        self.goal_orientation = orientation
        self._waypoint_position = self.goal_position.copy()
        self._waypoint_orientation = orientation
        self._solved_waypoint = None
        self._command_gripper(closed=False)
        self._apply_waypoint()

    def set_goal(self, position: tuple[float, ...] | np.ndarray, orientation_xyzw: tuple[float, ...] | np.ndarray
                 ) -> None:
        self.goal_position = np.array(position, float)
        self.goal_orientation = np.array(orientation_xyzw, float)

    def set_gripper(self, closed: bool) -> None:
        if closed != self.closed_cmd:
            self._command_gripper(closed)

    def _command_gripper(self, closed: bool) -> None:
        self.closed_cmd = closed
        angle = 0.0 if closed else self._config.gripper_open_rad
        force = self._config.gripper_force_n
        pybullet.setJointMotorControlArray(
            self.body, [WRIST_ROTATION_JOINT, LEFT_FINGER_JOINT, RIGHT_FINGER_JOINT, *FINGERTIP_JOINTS],
            pybullet.POSITION_CONTROL, targetPositions=[0.0, -angle, angle, 0.0, 0.0],
            forces=[self._config.arm_max_force_n, force, force, force, force], physicsClientId=self._client)

    def advance(self) -> None:
        """Move this tick's waypoint towards the goal (speed-limited) and send joint targets for it."""
        to_goal = self.goal_position - self._waypoint_position
        distance = float(np.linalg.norm(to_goal))
        step = self._config.max_tcp_speed_mps * self._dt
        self._waypoint_position = self.goal_position.copy() if distance <= step else \
            self._waypoint_position + to_goal * (step / distance)
        self._waypoint_orientation = _slerp_towards(self._waypoint_orientation, self.goal_orientation,
                                                    MAX_TCP_ANGULAR_SPEED_RADPS * self._dt)
        self._apply_waypoint()

    def _apply_waypoint(self) -> None:
        if self._solved_waypoint is not None and \
                np.array_equal(self._solved_waypoint[0], self._waypoint_position) and \
                np.array_equal(self._solved_waypoint[1], self._waypoint_orientation):
            return   # the motors already hold this target
        solution = self._solve_ik(self._waypoint_position, self._waypoint_orientation)
        pybullet.setJointMotorControlArray(
            self.body, list(ARM_JOINTS), pybullet.POSITION_CONTROL, targetPositions=solution[:len(ARM_JOINTS)],
            forces=[self._config.arm_max_force_n] * len(ARM_JOINTS), positionGains=[0.3] * len(ARM_JOINTS),
            physicsClientId=self._client)
        self._solved_waypoint = (self._waypoint_position, self._waypoint_orientation)

    # ---------------------------------------------------------------------------------------------- state

    def tcp_pose(self) -> tuple[np.ndarray, np.ndarray]:
        state = pybullet.getLinkState(self.body, FLANGE_LINK, computeForwardKinematics=True,
                                      physicsClientId=self._client)
        orientation = np.array(state[5])
        return np.array(state[4]) + _rotation(state[5]) @ self._tcp_offset, orientation

    def tcp_speed(self) -> float:
        state = pybullet.getLinkState(self.body, FLANGE_LINK, computeLinkVelocity=True,
                                      physicsClientId=self._client)
        return float(np.linalg.norm(state[6]))

    def at_goal(self) -> bool:
        position, orientation = self.tcp_pose()
        return (np.array_equal(self._waypoint_position, self.goal_position)
                and float(np.linalg.norm(position - self.goal_position)) < ARRIVED_POSITION_TOLERANCE_M
                and quaternion_angle(orientation, self.goal_orientation) < ARRIVED_ANGLE_TOLERANCE_RAD)

    def opening(self) -> tuple[float, float]:
        """Distance between the two fingertip link origins (grows as the gripper opens), and its rate (m/s)."""
        tips = pybullet.getLinkStates(self.body, list(FINGERTIP_LINKS), computeLinkVelocity=True,
                                      physicsClientId=self._client)
        apart = np.subtract(tips[0][4], tips[1][4])
        distance = float(np.linalg.norm(apart))
        rate = float(np.dot(apart, np.subtract(tips[0][6], tips[1][6])) / distance) if distance > 0 else 0.0
        return distance, rate

    def opening_m(self) -> float:
        return self.opening()[0]

    def joint_states(self) -> JointStates:
        states = pybullet.getJointStates(self.body, self.joint_indices, physicsClientId=self._client)
        return JointStates(names=list(self.joint_names),
                           positions=np.array([s[0] for s in states]),
                           velocities=np.array([s[1] for s in states]),
                           efforts=np.array([s[3] for s in states]))
