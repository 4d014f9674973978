"""The event decoder (ssl_robot.events): hostile event texts end in EventError, never in another exception, and
events the sim writes decode to what was written. Pure: no ROS graph."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from hypothesis import given, settings, strategies as st

from ssl_robot import topics
from ssl_robot.events import (MAX_EVENT_CHARS, MAX_EVENT_DEPTH, CameraPose, EpisodeEvent, EventError, GraspEvent,
                              decode_event, decode_episode_event, decode_grasp_event, decode_sim_step)

S = 1_000_000_000
FUZZ = settings(max_examples=200, deadline=None)


def grasp_text(**fields) -> str:
    event = SimpleNamespace(attempt=3, success=True, reason='held', object_index=1, object_name='cube',
                            target_xy=(0.5, 0.1), s_pre_ns=5 * S, o_ns=6 * S + 7, s_post_ns=8 * S)
    for key, value in fields.items():
        setattr(event, key, value)
    return topics.encode_grasp_event(event)


def episode_text(stamp_ns: int = 9 * S) -> str:
    return topics.encode_episode_event(SimpleNamespace(stamp_ns=stamp_ns, episode=2, seed=40, mode='motion',
                                                       behaviour='push'))


def test_events_the_sim_writes_decode_to_what_it_wrote():
    assert decode_grasp_event(grasp_text()) == GraspEvent(stamp_ns=8 * S, attempt=3, success=True, s_pre_ns=5 * S,
                                                          o_ns=6 * S + 7, s_post_ns=8 * S)
    assert decode_grasp_event(grasp_text(o_ns=None, success=False)).o_ns is None
    assert decode_episode_event(episode_text()) == EpisodeEvent(9 * S, 2, 40, 'motion', 'push')
    assert topics.decode_event(episode_text(), 'episode')['seed'] == 40
    assert decode_sim_step(topics.encode_sim_step(2 * S, 2 * S + 100, ticks=3)) == (2 * S, 2 * S + 100)
    with pytest.raises(EventError, match='not after its start'):
        decode_sim_step(topics.encode_sim_step(2 * S, 2 * S, ticks=3))
    with pytest.raises(EventError, match='sim_step event is not valid JSON'):
        decode_sim_step('accepted')


POSE = {'eye': [1.0, 0.5, 0.5], 'target': [0.6, 0.0, 0.05], 'up': [0.0, 0.0, 1.0], 'fov_deg': 36.0}


def test_the_camera_poses_of_an_episode_decode_to_what_the_sim_recorded():
    text = topics.encode_episode_event(SimpleNamespace(stamp_ns=S, episode=0, seed=1, mode='motion', behaviour='push',
                                                       rig='held_out_a', cameras={'front_left': POSE}))
    event = decode_episode_event(text)
    assert event.rig == 'held_out_a'
    assert event.cameras == {'front_left': CameraPose((1.0, 0.5, 0.5), (0.6, 0.0, 0.05), (0.0, 0.0, 1.0), 36.0)}
    assert decode_episode_event(episode_text()).cameras == {}   # a bag from before poses were recorded


@pytest.mark.parametrize('cameras, problem', [
    ([1, 2], "'cameras' is not an object"),
    ({'a': 'pose'}, "camera 'a' is not an object"),
    ({'a': {**POSE, 'eye': [1.0, 2.0]}}, "field 'eye' is not 3 numbers"),
    ({'a': {**POSE, 'up': [1.0, True, 0.0]}}, "field 'up' is not 3 numbers"),
    ({'a': {**POSE, 'fov_deg': 180}}, "'fov_deg' is not a number in"),
])
def test_a_malformed_camera_pose_is_an_event_error(cameras, problem):
    text = topics.encode_event('episode', S, episode=0, seed=1, mode='motion', cameras=cameras)
    with pytest.raises(EventError, match=problem):
        decode_episode_event(text)


HOSTILE = {
    'infinity': ('{"kind": "episode", "stamp": {"sec": 1, "nanosec": 0}, "x": Infinity}', 'non-finite number Infinity'),
    'nan': ('{"kind": "episode", "stamp": {"sec": NaN, "nanosec": 0}}', 'non-finite number NaN'),
    'overflow': ('{"kind": "episode", "stamp": {"sec": 1e400, "nanosec": 0}}', 'number 1e400 overflows a float'),
    'deep': ('[' * 100_000, f'nests 100000 deep, more than {MAX_EVENT_DEPTH}'),
    'deep object': ('{"a":' * 50_000, 'nests 50000 deep'),
    'long': ('"' + 'x' * MAX_EVENT_CHARS + '"', f'more than {MAX_EVENT_CHARS}'),
    'huge int': ('{"kind": "episode", "stamp": {"sec": ' + '9' * 5000 + ', "nanosec": 0}}', 'not valid JSON'),
    'big sec': ('{"kind": "episode", "stamp": {"sec": 99999999999, "nanosec": 0}}', 'outside builtin_interfaces/Time'),
    'negative sec': ('{"kind": "episode", "stamp": {"sec": -1, "nanosec": 0}}', 'outside builtin_interfaces/Time'),
    'float sec': ('{"kind": "episode", "stamp": {"sec": 1.5, "nanosec": 0}}', 'outside builtin_interfaces/Time'),
    'nanosec 1e9': ('{"kind": "episode", "stamp": {"sec": 1, "nanosec": 1000000000}}', 'outside'),
    'stamp list': ('{"kind": "episode", "stamp": [1, 2]}', 'is not a {sec, nanosec} stamp'),
    'no stamp': ('{"kind": "episode"}', "has no 'stamp' field"),
    'not an object': ('[1, 2]', "expected a 'episode' event"),
    'other kind': (grasp_text(), "expected a 'episode' event"),
    'not json': ('{"kind": ', 'not valid JSON'),
}


@pytest.mark.parametrize('name', HOSTILE)
def test_a_hostile_episode_event_is_one_event_error_naming_the_problem(name):
    text, problem = HOSTILE[name]
    with pytest.raises(EventError, match=problem.replace('{', r'\{').replace('}', r'\}')):
        decode_episode_event(text)
    with pytest.raises(EventError):  # the generic decoder the bag readers use refuses it too
        topics.decode_event(text, 'episode')


@pytest.mark.parametrize('fields, problem', [
    ({'success': 1}, "field 'success' is not a bool"),
    ({'s_pre': None}, "field 's_pre' is not a {sec, nanosec} stamp"),
    ({'o': {'sec': -3, 'nanosec': 0}}, "field 'o' {sec: -3, nanosec: 0} is outside"),
    ({'attempt': 'three'}, "field 'attempt' is not an int64"),
    ({'attempt': 2**70}, "field 'attempt' is not an int64"),
])
def test_a_grasp_event_with_a_field_of_the_wrong_type_or_range_is_refused(fields, problem):
    event = json.loads(grasp_text())
    event.update(fields)
    with pytest.raises(EventError, match=problem.replace('{', r'\{').replace('}', r'\}')):
        decode_grasp_event(json.dumps(event))


# --- fuzzing: any text, and any JSON close to an event, decodes or raises EventError --------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20)
stamps = st.fixed_dictionaries({'sec': st.integers(-2**40, 2**40) | st.floats() | st.none(),
                                'nanosec': st.integers(-2**40, 2**40) | st.floats()}) | json_values
grasp_like = st.fixed_dictionaries(
    {'kind': st.sampled_from(['grasp', 'episode']), 'stamp': stamps},
    optional={'attempt': json_values, 'success': st.booleans() | json_values, 's_pre': stamps, 'o': stamps | st.none(),
              's_post': stamps, 'episode': json_values, 'seed': json_values, 'mode': json_values,
              'behaviour': json_values})


def decodes_or_refuses(decode, text):
    try:
        decode(text)
    except EventError:
        pass


@FUZZ
@given(st.text(max_size=200) | st.binary(max_size=50).map(lambda b: b.decode('latin-1')))
def test_any_text_decodes_or_raises_event_error(text):
    for decode in (decode_grasp_event, decode_episode_event, lambda t: decode_event(t, 'ground_truth')):
        decodes_or_refuses(decode, text)


@FUZZ
@given(grasp_like, st.sampled_from([None, 'Infinity', '-Infinity', 'NaN', '1e400', '-1e999']))
def test_any_event_shaped_json_decodes_or_raises_event_error(event, replacement):
    text = json.dumps(event)  # json.dumps writes inf and nan as Infinity and NaN, as a hostile sender would
    if replacement is not None:
        text = text.replace('0', replacement, 1)
    for decode in (decode_grasp_event, decode_episode_event):
        decodes_or_refuses(decode, text)


@FUZZ
@given(st.integers(0, 2**31 - 1), st.integers(0, S - 1), st.integers(-2**63, 2**63 - 1), st.booleans())
def test_valid_grasp_events_decode_exactly(sec, nanosec, attempt, success):
    stamp = sec * S + nanosec
    event = decode_grasp_event(grasp_text(attempt=attempt, success=success, s_pre_ns=stamp, o_ns=stamp))
    assert (event.s_pre_ns, event.o_ns, event.attempt, event.success) == (stamp, stamp, attempt, success)
