"""The messages of one simulation tick: what the sim node publishes and what `ssl-robot collect` records.

Both paths go through tick_messages(), so a bag written offline holds exactly what the live graph sends.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np
from geometry_msgs.msg import PoseArray
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import CameraInfo, Image, JointState
from std_msgs.msg import String

from ssl_robot import topics
from ssl_robot.ros.convert import array_to_image, camera_info, joint_state, ns_to_stamp, pose_array
from ssl_robot.ros.qos import LATCHED_QOS, RELIABLE_QOS, SENSOR_QOS
from ssl_robot.sim.runner import GraspEvent

SEGMENTATION_ENCODING = '16UC1'
"""Segmentation pixels hold object index + 1, and 0 where no tray object is seen."""


@dataclass(frozen=True)
class TopicSpec:
    type: type
    qos: Any
    meaning: str


def ros_type_name(message_class: type) -> str:
    """'sensor_msgs/msg/Image' for sensor_msgs.msg.Image."""
    return f"{message_class.__module__.split('.')[0]}/msg/{message_class.__name__}"


def sim_topic_specs(camera_names: list[str], segmentation: bool = True) -> dict[str, TopicSpec]:
    """Every topic the sim publishes, with its type and QoS (the README's topic table lists the same)."""
    specs = {topics.CLOCK: TopicSpec(Clock, RELIABLE_QOS, 'sim time, one message per tick')}
    for name in [*camera_names, topics.OBJECT_CAMERA]:
        specs[topics.camera_image(name)] = TopicSpec(Image, SENSOR_QOS, f'{name} rgb8 image')
        specs[topics.camera_info(name)] = TopicSpec(CameraInfo, SENSOR_QOS, f'{name} intrinsics')
    if segmentation:
        for name in camera_names:
            specs[topics.camera_segmentation(name)] = TopicSpec(
                Image, SENSOR_QOS, f'{name} object masks ({SEGMENTATION_ENCODING}, object index + 1)')
    specs.update({
        topics.JOINT_STATES: TopicSpec(JointState, SENSOR_QOS, 'arm and finger joints'),
        topics.GRIPPER_STATE: TopicSpec(JointState, SENSOR_QOS, 'gripper opening (m), its rate (m/s), grip force (N)'),
        topics.OBJECT_POSES: TopicSpec(PoseArray, SENSOR_QOS, 'tray object poses, in object index order'),
        topics.GROUND_TRUTH: TopicSpec(String, RELIABLE_QOS, 'JSON ground truth of the tick'),
        topics.GRASP_EVENTS: TopicSpec(String, RELIABLE_QOS, 'JSON grasp event linking s_pre, o, s_post'),
        topics.EPISODES: TopicSpec(String, LATCHED_QOS, 'JSON episode start (seed, mode, behaviour)'),
    })
    return specs


def _image_messages(camera: str, frame: Any, stamp) -> Iterator[tuple[str, Any]]:
    frame_id = topics.camera_frame_id(camera)
    height, width = frame.rgb.shape[:2]
    yield topics.camera_image(camera), array_to_image(frame.rgb, 'rgb8', stamp, frame_id)
    yield topics.camera_info(camera), camera_info(frame.K, width, height, stamp, frame_id)


def tick_messages(tick: Any, segmentation: bool = True) -> Iterator[tuple[str, Any]]:
    """(topic, message) pairs for one SimRunner tick; every message carries the tick's stamp."""
    stamp = ns_to_stamp(tick.stamp_ns)
    yield topics.CLOCK, Clock(clock=stamp)
    for camera, frame in tick.scene.items():
        yield from _image_messages(camera, frame, stamp)
        if segmentation and frame.segmentation is not None:
            labels = (frame.segmentation + 1).astype(np.uint16)
            yield (topics.camera_segmentation(camera),
                   array_to_image(labels, SEGMENTATION_ENCODING, stamp, topics.camera_frame_id(camera)))
    if tick.object_camera is not None:
        # Published under one fixed name whatever the scene file calls it, so consumers need no config.
        yield from _image_messages(topics.OBJECT_CAMERA, tick.object_camera, stamp)
    joints = tick.joints
    yield topics.JOINT_STATES, joint_state(joints.names, joints.positions, joints.velocities, joints.efforts, stamp)
    # Velocity and effort are always filled: Fast CDR pads an empty float64 sequence where rosbags does
    # not, so bags holding such a message would not decode off-ROS.
    gripper = tick.gripper
    yield topics.GRIPPER_STATE, joint_state(['gripper_opening'], [gripper.opening_m], [gripper.opening_rate_mps],
                                            [gripper.grip_force_n], stamp)
    yield topics.OBJECT_POSES, pose_array([o.position for o in tick.objects],
                                          [o.orientation_xyzw for o in tick.objects], stamp, topics.WORLD_FRAME)
    yield topics.GROUND_TRUTH, String(data=topics.encode_ground_truth(tick))
    for event in tick.events:
        if isinstance(event, GraspEvent):
            yield topics.GRASP_EVENTS, String(data=topics.encode_grasp_event(event))
        else:
            yield topics.EPISODES, String(data=topics.encode_episode_event(event))
