"""Instance grasping in the tray sim (issue 13 part 4): given the scene and an image of a goal object, grasp that one.

Pure (no rclpy). A trial, for one held-out tray seed:
1. Reset the tray with the seed and pick the goal object, uniformly among the objects the arm can reach.
2. Its goal image is what Grasp2Vec sees of a grasped object: the object camera's image o of it, held in the gripper
   in front of the object camera, from a scripted grasp at its centre (the sim's grasp-collection attempt). An
   object that this grasp cannot lift and present gets no goal image; the next candidate is tried, and a tray with no
   presentable object is skipped (counted, never scored).
3. Reset the tray with the same seed again: the same objects in the same places, the arm home, out of view. The
   policy gets the scene camera's image of it, the goal image and the camera (GraspView), and answers where to grasp.
4. The sim's scripted top-down grasp runs there. Success: the lifted object is the goal object (ground truth);
   any-object success: some object was lifted.

Policies (GraspPolicy): the learned one (ssl_robot.rl.grasp_policy) beside two baselines,
- indiscriminate: the sim's own choice, a uniformly drawn reachable object (what grasp collection grasps), blind to
  the goal; scored against the same goals, its any-object rate is the indiscriminate grasp rate;
- heatmap_argmax: zero-shot Grasp2Vec, the argmax of phi_o(goal) . phi_s,spatial(scene) over the scene image, its
  pixel's ray met with a plane just above the tray floor.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from ssl_robot.inference.model_holder import LoadedModel, model_input
from ssl_robot.models.grasp2vec import Grasp2Vec
from ssl_robot.rl.evaluation import wilson_interval
from ssl_robot.sim.cameras import pixel_on_plane
from ssl_robot.sim.config import CameraSpec, SimConfig
from ssl_robot.sim.runner import GraspEvent, SimRunner, TickOutput

MAX_ATTEMPT_TICKS = 1500
"""A scripted grasp-collection attempt takes about 200 ticks; its moves time out well within this."""
GOAL_CANDIDATES = 3
"""Objects tried per tray for a goal image before the tray is skipped."""
GRASP_PLANE_HEIGHT_M = 0.03
"""Policies that aim at a scene pixel (heatmap_argmax, the learned policy) grasp where its ray meets this height above
the tray floor: the objects (3 to 12 cm tall) show their upper parts to the cameras, so the floor itself would put
oblique views' grasps behind the object."""


@dataclass(frozen=True)
class GraspView:
    """What a policy sees of one trial."""

    scene: np.ndarray
    """(H, W, 3) uint8 RGB: the scene camera's image of the tray, the arm home out of view."""
    goal: np.ndarray
    """(H, W, 3) uint8 RGB: the object camera's image of the goal object held in the gripper (Grasp2Vec's o)."""
    camera: CameraSpec
    """The scene camera (pose and intrinsics) the scene image comes from."""
    tray_floor_z: float


GraspPolicy = Callable[[GraspView], 'tuple[float, float] | None']
"""Where to grasp (tray x, y in metres, world frame); None hands the choice to the sim (indiscriminate)."""


@dataclass(frozen=True)
class GraspTrial:
    seed: int
    goal_index: int
    goal_name: str
    xy: tuple[float, float]
    """Where the grasp went."""
    goal_distance_m: float
    """From xy to the goal object's centre, horizontally, before the grasp: how far off the policy aimed."""
    grasped_name: str | None
    any_success: bool
    """Some object was lifted."""
    goal_success: bool
    """The lifted object is the goal object."""
    reason: str


@dataclass(frozen=True)
class GraspEvaluation:
    policy: str
    object_set: str
    trials: tuple[GraspTrial, ...]
    skipped_seeds: tuple[int, ...]
    """Trays in which no goal image could be had (no reachable object the scripted grasp could present)."""

    def rate(self, which: str) -> tuple[int, int, tuple[float, float]]:
        """(successes, trials, 95 % Wilson interval) of 'goal' or 'any' success; ValueError without trials."""
        if which not in ('goal', 'any'):
            raise ValueError(f"success must be 'goal' or 'any', got {which!r}")
        if not self.trials:
            raise ValueError(f'{self.policy} on {self.object_set}: no trial was scored')
        hits = sum(t.goal_success if which == 'goal' else t.any_success for t in self.trials)
        return hits, len(self.trials), wilson_interval(hits, len(self.trials))


def indiscriminate(view: GraspView) -> None:
    """The indiscriminate baseline: the sim grasps a uniformly drawn reachable object, whatever the goal."""
    return None


class HeatmapArgmax:
    """Zero-shot Grasp2Vec: grasp under the peak of the goal object's heatmap over the scene."""

    def __init__(self, loaded: LoadedModel, plane_height_m: float = GRASP_PLANE_HEIGHT_M) -> None:
        if not isinstance(loaded.model, Grasp2Vec):
            raise ValueError(f'heatmap_argmax needs a Grasp2Vec checkpoint, got {loaded.model_id}')
        self.loaded = loaded
        self.plane_height_m = plane_height_m

    def peak_pixel(self, scene: np.ndarray, goal: np.ndarray) -> tuple[float, float]:
        """(u, v) in the scene image's pixels of the heatmap's argmax (the first of equal maxima)."""
        scene_input = model_input(self.loaded, scene)
        heat = self.loaded.model.heatmap(scene_input, model_input(self.loaded, goal), upsample=True)[0].cpu().numpy()
        row, column = np.unravel_index(int(heat.argmax()), heat.shape)
        # The model saw the scene resized to heat.shape; a model pixel's centre maps back to the frame's pixels.
        height, width = scene.shape[:2]
        return ((column + 0.5) * width / heat.shape[1] - 0.5, (row + 0.5) * height / heat.shape[0] - 0.5)

    def __call__(self, view: GraspView) -> tuple[float, float]:
        point = pixel_on_plane(view.camera, self.peak_pixel(view.scene, view.goal),
                               view.tray_floor_z + self.plane_height_m)
        return float(point[0]), float(point[1])


def attempt_grasp(runner: SimRunner, xy: tuple[float, float] | None) -> tuple[GraspEvent, dict[int, TickOutput]]:
    """Request one grasp-collection attempt and tick (rendering only its keyframes) until its event."""
    runner.request_grasp(xy)
    outputs = {}
    for _ in range(MAX_ATTEMPT_TICKS):
        output = runner.tick(render=False)
        if output.keyframes:
            outputs[output.stamp_ns] = output
        for event in output.events:
            if isinstance(event, GraspEvent):
                return event, outputs
    raise RuntimeError(f'no grasp event within {MAX_ATTEMPT_TICKS} ticks of a grasp at {xy}')


def reset_tray(runner: SimRunner, seed: int, render: bool) -> TickOutput:
    runner.request_reset(seed)
    return runner.tick(render=render)


def goal_image(runner: SimRunner, seed: int) -> tuple[int, np.ndarray] | None:
    """(goal object index, its object camera image) for the tray of `seed`, or None when no candidate of up to
    GOAL_CANDIDATES reachable objects (drawn by the seed) could be grasped and presented."""
    reset_tray(runner, seed, render=False)
    candidates = runner.graspable_objects()
    order = np.random.default_rng([seed, 3]).permutation(candidates)[:GOAL_CANDIDATES]
    for number, goal in enumerate(order):
        if number:
            reset_tray(runner, seed, render=False)
        event, outputs = attempt_grasp(runner, tuple(runner.world.object_center(int(goal))[:2]))
        if event.success and event.object_index == goal and event.o_ns in outputs:
            return int(goal), outputs[event.o_ns].object_camera.rgb
    return None


def run_trial(runner: SimRunner, seed: int, policy: GraspPolicy, camera: str) -> GraspTrial | None:
    """One instance-grasping trial in the tray of `seed` (module doc), or None when the tray is skipped."""
    found = goal_image(runner, seed)
    if found is None:
        return None
    goal, goal_rgb = found
    scene = reset_tray(runner, seed, render=True).scene[camera]
    config = runner.config
    spec = scene_camera(config, camera)
    xy = policy(GraspView(scene.rgb, goal_rgb, spec, config.tray_floor_z))
    goal_name = runner.world.objects[goal].spec.name
    goal_xy = runner.world.object_center(goal)[:2]
    if xy is not None:
        xy = (float(xy[0]), float(xy[1]))
        problem = runner.grasp_problem(xy)
        if problem:
            return GraspTrial(seed, goal, goal_name, xy, float(np.linalg.norm(goal_xy - xy)), None, False, False,
                              problem)
    event, _ = attempt_grasp(runner, xy)
    return GraspTrial(seed, goal, goal_name, event.target_xy, float(np.linalg.norm(goal_xy - event.target_xy)),
                      event.object_name if event.success else None, event.success,
                      event.success and event.object_index == goal, event.reason)


def check_trials(trials: int, seed: int) -> None:
    for name, value, minimum in (('trials', trials, 1), ('seed', seed, 0)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
            raise ValueError(f'{name} must be an integer >= {minimum}, got {value!r}')


def check_camera(config: SimConfig, camera: str) -> None:
    names = [c.name for c in config.cameras]
    if camera not in names:
        raise ValueError(f'unknown scene camera {camera!r}; the rig {config.rig!r} has: {", ".join(names)}')


def scene_camera(config: SimConfig, camera: str) -> CameraSpec:
    """The rig's scene camera of that name; ValueError naming the rig's cameras if there is none."""
    check_camera(config, camera)
    return next(c for c in config.cameras if c.name == camera)


def evaluate(config: SimConfig, policy_name: str, policy: GraspPolicy, trials: int, first_seed: int,
             camera: str, progress: Callable[[GraspTrial | None], None] = lambda _: None) -> GraspEvaluation:
    """`trials` scored trials in the trays of seeds first_seed, first_seed + 1, ... (skipped trays take no trial
    of the count but add a seed; at most 2 * trials + 10 seeds are tried)."""
    check_trials(trials, first_seed)
    check_camera(config, camera)
    scored, skipped = [], []
    with SimRunner(config, mode='idle', seed=first_seed) as runner:
        for seed in range(first_seed, first_seed + 2 * trials + 10):
            if len(scored) == trials:
                break
            trial = run_trial(runner, seed, policy, camera)
            progress(trial)
            if trial is None:
                skipped.append(seed)
            else:
                scored.append(trial)
    return GraspEvaluation(policy_name, config.object_set, tuple(scored), tuple(skipped))


def format_table(evaluations: list[GraspEvaluation]) -> str:
    """Markdown: per policy and object set, goal-object and any-object success rates with 95 % Wilson intervals."""
    lines = ['| policy | object set | goal object grasped | any object grasped | median aim off goal (cm) '
             '| n (trays skipped) |',
             '|---|---|---|---|---|---|']
    for evaluation in evaluations:
        cells = []
        for which in ('goal', 'any'):
            hits, count, (low, high) = evaluation.rate(which)
            cells.append(f'{hits / count:.2f} [{low:.2f}, {high:.2f}] ({hits} of {count})')
        aim_cm = 100 * float(np.median([t.goal_distance_m for t in evaluation.trials]))
        lines.append(f'| {evaluation.policy} | {evaluation.object_set} | {cells[0]} | {cells[1]} | {aim_cm:.1f} | '
                     f'{len(evaluation.trials)} ({len(evaluation.skipped_seeds)}) |')
    return '\n'.join(lines)
