"""Integration: the sim node runs as its own process; this test process checks what it publishes.

Runs only inside a loopback-only network namespace (conftest), each test with its own domain id.
"""

from __future__ import annotations

import time

import numpy as np
import pytest
from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
from rcl_interfaces.srv import SetParameters
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PoseStamped
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import String
from std_srvs.srv import Trigger

from ros_harness import Probe, node_process
from ssl_robot import topics
from ssl_robot.events import decode_sim_step
from ssl_robot.ros.convert import image_to_array, stamp_to_ns
from ssl_robot.ros.qos import RELIABLE_QOS, SENSOR_QOS
from ssl_robot.sim.config import load_sim_config
from ssl_robot.sync import ApproximateTimeSynchronizer

pytestmark = [pytest.mark.ros, pytest.mark.slow]

CAMERAS = [camera.name for camera in load_sim_config().cameras]
SIM = 'ssl_robot.nodes.sim_node'


def subscribe_images(probe: Probe, camera: str, store: dict, topic_of=topics.camera_image) -> None:
    def on_image(message: Image) -> None:
        with probe.lock:
            store.setdefault(camera, {})[stamp_to_ns(message.header.stamp)] = image_to_array(message)
    probe.node.create_subscription(Image, topic_of(camera), on_image, SENSOR_QOS)


def subscribe_joint_stamps(probe: Probe) -> set[int]:
    """The stamps of the /joint_states the probe receives, as they come."""
    stamps: set[int] = set()

    def on_joints(message: JointState) -> None:
        with probe.lock:
            stamps.add(stamp_to_ns(message.header.stamp))

    probe.node.create_subscription(JointState, topics.JOINT_STATES, on_joints, SENSOR_QOS)
    return stamps


def test_camera_sets_arrive_synchronized_with_configured_shape(probe):
    images: dict[str, dict[int, np.ndarray]] = {}
    for camera in CAMERAS:
        subscribe_images(probe, camera, images)
    with node_process(SIM, 'sim', {'image_width': 96, 'image_height': 64}):
        probe.wait_for(lambda: all(len(images.get(c, {})) >= 30 for c in CAMERAS), 120,
                       f'30 frames from each of {CAMERAS}')
    sync = ApproximateTimeSynchronizer(CAMERAS, queue_size=500, max_interval_ns=0)
    sets = []
    with probe.lock:
        arrivals = sorted((stamp, camera, image) for camera in CAMERAS for stamp, image in images[camera].items())
    for stamp, camera, image in arrivals:
        sets += sync.add(camera, stamp, image)
    assert len(CAMERAS) >= 3
    assert len(sets) >= 25, f'only {len(sets)} sets with identical stamps across {CAMERAS}'
    for synced in sets:
        assert set(synced.stamps.values()) == {synced.stamp_ns}
        for image in synced.items.values():
            assert image.shape == (64, 96, 3) and image.dtype == np.uint8
    first = sets[-1].items
    assert not np.array_equal(first[CAMERAS[0]], first[CAMERAS[1]]), 'two cameras see the same picture'


def test_scripted_grasp_event_links_the_right_images(probe):
    scene: dict[str, dict[int, np.ndarray]] = {}
    masks: dict[str, dict[int, np.ndarray]] = {}
    object_view: dict[str, dict[int, np.ndarray]] = {}
    events: list[dict] = []
    for camera in CAMERAS:
        subscribe_images(probe, camera, scene)
        subscribe_images(probe, camera, masks, topics.camera_segmentation)
    subscribe_images(probe, topics.OBJECT_CAMERA, object_view)

    def on_event(message: String) -> None:
        with probe.lock:
            events.append(topics.decode_event(message.data, 'grasp'))
    probe.node.create_subscription(String, topics.GRASP_EVENTS, on_event, RELIABLE_QOS)
    grasp = probe.node.create_client(Trigger, topics.GRASP_SERVICE)

    with node_process(SIM, 'sim', {'seed': 3}):
        success = None
        for attempt in range(8):
            response = probe.call(grasp, Trigger.Request())
            assert response.success, response.message
            probe.wait_for(lambda: len(events) > attempt, 180, f'grasp event {attempt + 1}')
            if events[-1]['success']:
                success = events[-1]
                break
        assert success is not None, f'no successful grasp in {len(events)} attempts: {events}'
        s_pre, o, s_post = (topics.stamp_from_dict(success[k]) for k in ('s_pre', 'o', 's_post'))
        assert s_pre < o < s_post
        probe.wait_for(lambda: all(s_post in masks.get(c, {}) for c in CAMERAS), 30, 's_post masks')

    with probe.lock:
        index = success['object']['index']
        # The grasped object is in view of some camera before the grasp and of none after it.
        assert any((masks[c][s_pre] == index + 1).any() for c in CAMERAS), 'grasped object not in s_pre'
        assert not any((masks[c][s_post] == index + 1).any() for c in CAMERAS), 'grasped object still in s_post'
        assert all(s_pre in scene[c] and s_post in scene[c] for c in CAMERAS)
        shown = object_view[topics.OBJECT_CAMERA][o]
        empty = object_view[topics.OBJECT_CAMERA][min(object_view[topics.OBJECT_CAMERA])]
        changed = np.abs(shown.astype(int) - empty.astype(int)).max(axis=2) > 30
        assert changed.mean() > 0.01, 'the object camera frame at o looks like the empty view'


def set_parameter(probe: Probe, name: str, value) -> tuple[bool, str]:
    client = probe.node.create_client(SetParameters, '/sim/set_parameters')
    if isinstance(value, str):
        parameter_value = ParameterValue(type=ParameterType.PARAMETER_STRING, string_value=value)
    elif isinstance(value, float):
        parameter_value = ParameterValue(type=ParameterType.PARAMETER_DOUBLE, double_value=value)
    else:
        parameter_value = ParameterValue(type=ParameterType.PARAMETER_INTEGER, integer_value=value)
    result = probe.call(client, SetParameters.Request(parameters=[Parameter(name=name, value=parameter_value)]))
    return result.results[0].successful, result.results[0].reason


def test_a_new_real_time_factor_retimes_the_running_sim(probe):
    clock: list[tuple[float, int]] = []  # (wall seconds, sim nanoseconds) of each /clock message

    def on_clock(message: Clock) -> None:
        with probe.lock:
            clock.append((time.monotonic(), stamp_to_ns(message.clock)))

    probe.node.create_subscription(Clock, topics.CLOCK, on_clock, RELIABLE_QOS)
    with node_process(SIM, 'sim', {'image_width': 32, 'image_height': 32}):
        probe.wait_for(lambda: len(clock) > 5, 120, '/clock from the sim')
        ok, reason = set_parameter(probe, 'real_time_factor', 0.05)
        assert ok, reason
        changed_at = time.monotonic()
        probe.wait_for(lambda: clock[-1][0] > changed_at + 6, 60, '/clock 6 s after the change')
    with probe.lock:
        after = [(wall, sim) for wall, sim in clock if wall > changed_at + 1]
    # Load can only slow a sim down: 5 s of wall time at factor 0.05 is at most 0.25 s of sim time (+ one tick).
    advanced_s = (after[-1][1] - after[0][1]) / 1e9
    assert 0 < advanced_s <= 0.05 * (after[-1][0] - after[0][0]) + 0.1, advanced_s


def test_bad_input_is_refused_with_reason_and_sim_keeps_running(probe):
    frames: dict[str, dict[int, np.ndarray]] = {}
    subscribe_images(probe, CAMERAS[0], frames)
    ee_target = probe.node.create_publisher(PoseStamped, topics.EE_TARGET, RELIABLE_QOS)
    counts: dict[str, str] = {}

    def on_diagnostics(message: DiagnosticArray) -> None:
        with probe.lock:
            for status in message.status:
                if status.name == 'ssl_robot/sim':
                    counts.update({value.key: value.value for value in status.values})

    probe.node.create_subscription(DiagnosticArray, topics.DIAGNOSTICS, on_diagnostics, RELIABLE_QOS)
    with node_process(SIM, 'sim') as sim:
        probe.wait_for(lambda: len(frames.get(CAMERAS[0], {})) > 5, 120, 'frames before the bad input')
        ok, reason = set_parameter(probe, 'object_set', 'no_such_set')
        assert not ok and 'no_such_set' in reason
        ok, reason = set_parameter(probe, 'image_width', 0)
        assert not ok and 'width' in reason
        ok, reason = set_parameter(probe, 'scene_file', '/nonexistent/scene.yaml')
        assert not ok and '/nonexistent/scene.yaml' in reason
        probe.wait_for(lambda: ee_target.get_subscription_count() > 0, 30, 'ee_target subscriber')
        nonsense = PoseStamped()
        nonsense.header.frame_id = topics.WORLD_FRAME
        nonsense.pose.position.x = float('nan')
        ee_target.publish(nonsense)
        with probe.lock:
            seen = len(frames[CAMERAS[0]])
        probe.wait_for(lambda: len(frames[CAMERAS[0]]) > seen + 10, 60, 'frames after the bad input')
        assert sim.poll() is None, 'the sim died'
        probe.wait_for(lambda: counts.get('count_rejected_ee_target') == '1'
                       and counts.get('count_rejected_parameters') == '3', 30, 'the rejections on /diagnostics')
    log = ''.join(sim.output)
    assert 'ee_target' in log and 'nan' in log.lower(), log[-2000:]


def test_render_every_publishes_frames_on_every_nth_tick_and_state_on_every_tick(probe):
    frames: dict[str, dict[int, np.ndarray]] = {}
    subscribe_images(probe, CAMERAS[0], frames)
    joint_stamps = subscribe_joint_stamps(probe)
    with node_process(SIM, 'sim', {'render_every': 3, 'publish_segmentation': False}):
        probe.wait_for(lambda: len(frames.get(CAMERAS[0], {})) >= 10, 120, '10 frames')
        ok, reason = set_parameter(probe, 'render_every', 0)
        assert not ok and 'render_every' in reason
    tick_ns = int(round(1e9 / load_sim_config().tick_rate_hz))
    with probe.lock:
        frame_ticks = {stamp // tick_ns for stamp in frames[CAMERAS[0]]}
        joint_ticks = {stamp // tick_ns for stamp in joint_stamps}
    assert all(tick % 3 == 0 for tick in frame_ticks), sorted(frame_ticks)
    assert any(tick % 3 != 0 for tick in joint_ticks), 'no state between the rendered ticks'


def test_a_stepped_sim_runs_one_period_per_request_and_renders_its_last_tick(probe):
    """stepping on_request: each /sim/step runs ticks_per_step ticks, answers with the period's stamps once its messages
    are out, and renders only its last tick; nothing ticks between requests. A free sim refuses to be stepped."""
    frames: dict[str, dict[int, np.ndarray]] = {}
    subscribe_images(probe, CAMERAS[0], frames)
    joint_stamps = subscribe_joint_stamps(probe)
    step = probe.node.create_client(Trigger, topics.STEP_SERVICE)
    tick_ns = int(round(1e9 / load_sim_config().tick_rate_hz))

    def step_once() -> tuple[int, int]:
        response = probe.call(step, Trigger.Request(), timeout=120)
        assert response.success, response.message
        return decode_sim_step(response.message)

    with node_process(SIM, 'sim', {'stepping': 'on_request', 'ticks_per_step': 3, 'publish_segmentation': False}):
        # Discovery may match the probe's subscriptions only after the first periods: step until it hears the sim.
        deadline = time.monotonic() + 120
        while not (frames and joint_stamps):
            assert time.monotonic() < deadline, 'no frame or joint state from the stepped sim'
            step_once()
        periods = [step_once() for _ in range(6)]
        probe.wait_for(lambda: periods[-1][1] in frames.get(CAMERAS[0], {}) and periods[-1][1] in joint_stamps, 60,
                       "the last period's frame and joint state")
        ok, reason = set_parameter(probe, 'ticks_per_step', 0)
        assert not ok and 'ticks_per_step' in reason
        ok, reason = set_parameter(probe, 'stepping', 'free')
        assert ok, reason
        refused = probe.call(step, Trigger.Request(), timeout=120)
        assert not refused.success and 'stepping' in refused.message
    assert all(end - start == 3 * tick_ns for start, end in periods)
    assert all(later[0] == earlier[1] for earlier, later in zip(periods, periods[1:]))
    ends = {end for _, end in periods}
    with probe.lock:
        frame_stamps = {stamp for stamp in frames[CAMERAS[0]] if periods[0][0] < stamp <= periods[-1][1]}
        stepped_joints = {stamp for stamp in joint_stamps if periods[0][0] < stamp <= periods[-1][1]}
    assert frame_stamps <= ends, sorted(frame_stamps - ends)
    assert periods[-1][1] - tick_ns in stepped_joints, 'no state between the rendered ticks'
