"""Topic and service names of the ssl_robot graph, and the JSON schemas of its event messages.

Pure (no rclpy): the sim node, `ssl-robot collect`, the bag readers and the README all take names from
here, so a topic is renamed in one place. Event messages travel as std_msgs/String holding JSON because
a single ament_python package cannot generate .msg types; every event carries the stamps it refers to.
"""

from __future__ import annotations

import json
from typing import Any

# Events are decoded by ssl_robot.events, the one decoder of event messages from outside (bounded, finite, checked).
from ssl_robot.events import decode_event  # noqa: F401  (re-exported for the bag readers and tests)
from ssl_robot.events import stamp_ns as _stamp_ns

CLOCK = '/clock'
JOINT_STATES = '/joint_states'
GRIPPER_STATE = '/gripper/state'
OBJECT_POSES = '/sim/object_poses'
GROUND_TRUTH = '/sim/ground_truth'
GRASP_EVENTS = '/sim/grasp_events'
EPISODES = '/sim/episode'
DIAGNOSTICS = '/diagnostics'
EMBEDDINGS = '/embeddings'
DEMO_EMBEDDINGS = '/embeddings/demo'

# The names above are as they appear in the root namespace, and in bags. Nodes create their topics and services
# through in_namespace(), relative, so that a robot pushed into a namespace (launch argument `namespace`) keeps its
# graph to itself; these stay ROS-wide by convention (one clock, one diagnostics bus, one tf tree).
ROS_WIDE = frozenset({CLOCK, DIAGNOSTICS, '/tf', '/tf_static'})


def in_namespace(name: str) -> str:
    """The name a node uses for `name` (from this module) so that its namespace applies: relative, unless ROS-wide."""
    return name if name in ROS_WIDE else name.lstrip('/')

# Outputs of the learning nodes, and the goals they imagine.
GRASP2VEC_OBJECT_EMBEDDING = '/grasp2vec/object_embedding'
GRASP2VEC_SCENE_EMBEDDING = '/grasp2vec/scene_embedding'
GRASP2VEC_HEATMAP = '/grasp2vec/heatmap'
GOAL_LATENT = '/goal/latent'
SCENE_LATENT = '/latent/scene'
GOAL_IMAGE = '/goal/image'
GOAL_OBJECT_IMAGE = '/goal/object_image'
GOAL_OBJECT_EMBEDDING = '/goal/object_embedding'
GOAL_SAMPLE_SERVICE = '/goal/sample'
GOAL_FROM_SCENE_SERVICE = '/goal/from_scene'
GOAL_OBJECT_FROM_GRASP_SERVICE = '/goal/object_from_grasp'
# grasp2vec_node: grasp the goal object (the learned instance-grasping policy), answered on /sim/grasp_at.
GRASP_REQUEST_SERVICE = '/grasp/request'
# policy_node: its status (JSON) and the service that enables (true) or disables (false) its commands.
POLICY_STATUS = '/policy/status'
POLICY_ENABLE_SERVICE = '/policy/enable'
# goal_sequence_node: one event per goal of the main job, when the policy is done with it.
GOAL_SEQUENCE_EVENTS = '/goal_sequence/events'


def reward_topic(kind: str) -> str:
    return f'/reward/{kind}'


# Commands accepted by the sim node.
EE_TARGET = '/arm/ee_target'
GRASP_AT = '/sim/grasp_at'
RESET_WITH_SEED = '/sim/reset_with_seed'
GRIPPER_SET_CLOSED_SERVICE = '/gripper/set_closed'
RESET_SERVICE = '/sim/reset'
GRASP_SERVICE = '/sim/grasp'
STEP_SERVICE = '/sim/step'

OBJECT_CAMERA = 'object_camera'
WORLD_FRAME = 'world'


def camera_image(camera: str) -> str:
    return f'/cameras/{camera}/image_raw' if camera != OBJECT_CAMERA else f'/{OBJECT_CAMERA}/image_raw'


def camera_info(camera: str) -> str:
    return f'/cameras/{camera}/camera_info' if camera != OBJECT_CAMERA else f'/{OBJECT_CAMERA}/camera_info'


def camera_segmentation(camera: str) -> str:
    return f'/cameras/{camera}/segmentation'


def camera_frame_id(camera: str) -> str:
    return f'{camera}_optical_frame'


def stamp_dict(stamp_ns: int) -> dict[str, int]:
    return {'sec': stamp_ns // 1_000_000_000, 'nanosec': stamp_ns % 1_000_000_000}


def stamp_from_dict(stamp: dict[str, int]) -> int:
    """Nanoseconds of a {sec, nanosec} stamp; EventError (a ValueError) for one builtin_interfaces/Time cannot hold."""
    return _stamp_ns(stamp, 'stamp')


def encode_event(kind: str, stamp_ns: int, **fields: Any) -> str:
    """JSON text of an event: its kind, the stamp of the tick that produced it, and its fields."""
    return json.dumps({'kind': kind, 'stamp': stamp_dict(stamp_ns), **fields}, sort_keys=True)


def encode_sim_step(start_ns: int, end_ns: int, ticks: int) -> str:
    """/sim/step's answer (Trigger message): the period ran `ticks` ticks from `start` to `stamp`, the stamp of its
    last tick, whose frame and state are published before the answer."""
    return encode_event('sim_step', end_ns, start=stamp_dict(start_ns), ticks=ticks)


def encode_grasp_event(event: Any) -> str:
    """/sim/grasp_events: links the scene before the grasp (s_pre), the object shown to the object camera
    (o, null when the grasp failed) and the scene after (s_post), by the stamps of those camera frames."""
    return encode_event(
        'grasp', event.s_post_ns,
        attempt=event.attempt, success=bool(event.success), reason=event.reason,
        object={'index': event.object_index, 'name': event.object_name},
        target_xy=[float(v) for v in event.target_xy],
        s_pre=stamp_dict(event.s_pre_ns),
        o=None if event.o_ns is None else stamp_dict(event.o_ns),
        s_post=stamp_dict(event.s_post_ns),
    )


def encode_episode_event(event: Any) -> str:
    """/sim/episode (latched): a new episode began at `stamp` after a reset with `seed`; from the sim, also the camera
    rig and each scene camera's pose in this episode ({name: {eye, target, up, fov_deg}}, ssl_robot.sim.cameras)."""
    cameras = getattr(event, 'cameras', None)
    return encode_event('episode', event.stamp_ns, episode=event.episode, seed=event.seed,
                        mode=event.mode, behaviour=event.behaviour,
                        **({'rig': event.rig, 'cameras': cameras} if cameras else {}))


def encode_ground_truth(tick: Any) -> str:
    """/sim/ground_truth: the evaluation ground truth of one tick (gripper and where its TCP is, objects, contacts)."""
    gripper = tick.gripper
    return encode_event(
        'ground_truth', tick.stamp_ns,
        gripper={'opening_m': float(gripper.opening_m), 'closed': bool(gripper.closed_cmd),
                 'held_object': gripper.held_object, 'tcp_position': [float(v) for v in gripper.tcp_position_m]},
        objects=[{'index': o.index, 'name': o.name, 'position': [float(v) for v in o.position],
                  'orientation_xyzw': [float(v) for v in o.orientation_xyzw], 'lifted': bool(o.lifted),
                  'in_tray': bool(o.in_tray), 'touching_gripper': bool(o.touching_gripper)}
                 for o in tick.objects],
        contacts=[list(pair) for pair in tick.contacts],
    )
