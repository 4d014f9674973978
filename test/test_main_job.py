"""The main job (`ssl-robot main-job`): its report from a made-up recording, the real run in the sim graph, and the
end-to-end reach of scene goals whose true arm position is known."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from ssl_robot import topics
from ssl_robot.apps.main_job import (SHUTDOWN_GRACE_S, GoalRow, MainJobRecording, Stamped, format_goal_table,
                                    goal_rows, plot_main_job, read_recording)
from ssl_robot.rl.goal_sequence import GoalSequenceConfig, Step, goal_sequence_plan

S = 1_000_000_000


def goal_event(index: int, source: str, goal_s: float, end_s: float, position=None) -> dict:
    return {'kind': 'goal_sequence', 'stamp': topics.stamp_dict(int(end_s * S)), 'index': index, 'goal_id': index + 2,
            'source': source, 'goal_position': position, 'goal_stamp': topics.stamp_dict(int(goal_s * S)),
            'steps': 50, 'reward': -0.1, 'done': True}


def recording() -> MainJobRecording:
    times = np.arange(10, 200) / 10
    rewards = Stamped([int(t * S) for t in times], [-float(t % 5) for t in times])
    hand = Stamped([int(t * S) for t in times], [np.array([0.5 + t / 100, 0.0, 0.115]) for t in times])
    return MainJobRecording(
        goals=[goal_event(0, 'imagined', 2.0, 6.0), goal_event(1, 'scene', 6.0, 10.0, [0.6, 0.05, 0.115])],
        rewards=rewards, goal_latents={2 * S: np.array([1.0, 2.0]), 6 * S: np.array([0.0, 0.0])},
        goal_images={2 * S: np.zeros((8, 8, 3), np.uint8)}, hand=hand,
        task_frames=Stamped([5 * S], [np.full((8, 8, 3), 255, np.uint8)]))


def test_rows_take_rewards_after_the_goal_arrived_and_the_true_hand_at_the_end():
    asked = []

    def nearest(latent):
        asked.append(latent.tolist())
        return np.array([0.55, 0.0])

    imagined, scene = goal_rows(recording(), nearest)
    assert asked == [[1.0, 2.0]]                     # only the imagined goal needs its nearest achievable state
    assert (imagined.goal_id, imagined.steps, imagined.start_s, imagined.end_s) == (2, 50, 2.0, 6.0)
    assert imagined.reward_start == pytest.approx(-2.2)   # the first reward 0.2 s after the goal's stamp
    assert imagined.reward_end == pytest.approx(-1.0)     # the last reward stamped by the end (6.0 s)
    assert imagined.final_xy == pytest.approx((0.56, 0.0)) and imagined.distance_m == pytest.approx(0.01)
    assert imagined.success
    assert scene.goal_xy == (0.6, 0.05) and scene.final_xy == pytest.approx((0.6, 0.0))
    assert scene.distance_m == pytest.approx(0.05) and not scene.success   # within 5 cm, strictly


def test_goal_table_has_a_row_per_goal_and_the_success_count():
    rows = goal_rows(recording(), lambda latent: np.array([0.55, 0.0]))
    given_up = GoalRow(2, None, 'imagined', 0, False, 1.0, 2.0, None, None, None, None)   # never taken by the policy
    table = format_goal_table(rows + [given_up])
    lines = table.splitlines()
    assert lines[1].split()[:5] == ['1', '2', 'imagined', '50', 'yes'] and lines[1].split()[-1] == 'yes'
    assert lines[2].split()[-1] == 'no' and lines[3].split()[:5] == ['3', '-', 'imagined', '0', 'no']
    assert lines[3].split()[-2:] == ['-', 'no']
    assert 'success (final hand within 5 cm of the goal state): 1 of 3' in table


def test_main_job_plot_is_a_png(tmp_path):
    rows = goal_rows(recording(), lambda latent: np.array([0.55, 0.0]))
    assert plot_main_job(recording(), rows, tmp_path / 'main_job.png').read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'


def test_goal_sequence_plans_imagined_and_scene_goals():
    imagined = goal_sequence_plan(GoalSequenceConfig(goals=2))
    assert [step.kind for step in imagined] == ['close_gripper', 'move', 'settle', 'goal', 'enable', 'reach', 'goal',
                                                'reach']
    scene = goal_sequence_plan(GoalSequenceConfig(goal_positions=((0.5, 0.1, 0.115),), start_position=(0.6, 0, 0.1)))
    assert scene[3:] == [Step('enable', False), Step('move', (0.5, 0.1, 0.115)), Step('settle'),
                         Step('goal', 'from_scene'), Step('move', (0.6, 0.0, 0.1)), Step('settle'),
                         Step('enable', True), Step('reach', 0)]
    with pytest.raises(ValueError, match='goals'):
        GoalSequenceConfig(goals=0)


# ---------------------------------------------------------------------------------------------------------------
# The graph: the main job from the command line, and scene goals reached end to end. Each runs the whole sim graph
# (minutes of wall time on a loaded machine); generous timeouts, no timing asserted.

@pytest.mark.ros
@pytest.mark.slow
def test_main_job_reaches_imagined_goals_and_reports_each(tmp_path, ros_domain_id, monkeypatch):
    monkeypatch.setenv('OMP_NUM_THREADS', '1')
    result = subprocess.run([sys.executable, '-m', 'ssl_robot.cli', 'main-job', '--goals', '2', '--out', str(tmp_path)],
                            capture_output=True, text=True, timeout=1500)
    assert result.returncode == 0, f'{result.stdout[-3000:]}\n{result.stderr[-3000:]}'
    table = result.stdout[result.stdout.index('goal  id source'):]
    assert [line.split()[2] for line in table.splitlines()[1:3]] == ['imagined', 'imagined']
    assert 'success (final hand within 5 cm of the goal state):' in table
    assert (tmp_path / 'main_job.png').read_bytes()[:4] == b'\x89PNG'


SCENE_GOALS = [(0.50, 0.10, 0.115), (0.70, -0.10, 0.115), (0.52, -0.09, 0.115), (0.69, 0.09, 0.115),
               (0.60, 0.12, 0.115)]


@pytest.mark.ros
@pytest.mark.slow
def test_the_policy_brings_the_gripper_within_5_cm_of_scene_goals(tmp_path, ros_domain_id, monkeypatch):
    """Goals set from scenes whose true arm position is known (/goal/from_scene): the arm is posed there, the scene
    made the goal, the arm sent back to the start 9-15 cm away, and the policy node reaches; the final hand position
    is the ground truth of /sim/ground_truth."""
    monkeypatch.setenv('OMP_NUM_THREADS', '1')
    positions = '[' + ', '.join(f'{v}' for position in SCENE_GOALS for v in position) + ']'
    bag = tmp_path / 'bag'
    result = subprocess.run([sys.executable, '-m', 'ssl_robot.cli', 'launch', 'main_job', f'bag:={bag}',
                             f'goal_positions:={positions}', '--duration', '1500', '--grace-period',
                             str(SHUTDOWN_GRACE_S)],
                            capture_output=True, text=True, timeout=1800)
    assert result.returncode == 0, f'{result.stdout[-3000:]}\n{result.stderr[-3000:]}'
    rows = goal_rows(read_recording(bag), nearest_position=None)
    table = format_goal_table(rows)
    print(table)   # the figures, with pytest -s
    # On failure, the table and the end of the graph's log (the goal sequence's steps and any warnings).
    report = f'{table}\n{result.stdout[-6000:]}\n{result.stderr[-3000:]}'
    assert [row.source for row in rows] == ['scene'] * len(SCENE_GOALS), report
    assert [row.goal_xy for row in rows] == [position[:2] for position in SCENE_GOALS], report
    assert all(row.done for row in rows), report
    assert sum(row.success for row in rows) >= 4, report
