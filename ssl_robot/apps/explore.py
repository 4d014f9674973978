"""Random-action exploration of a task, recorded as a bag: the images a task's VAE is trained on.

RIG trains its VAE on images of the states the task visits, collected with random actions before any policy
exists. Each episode here is a TrayGoalEnv episode (random start hand, and for push a random puck) driven by
uniformly random actions; every step's task camera image goes to /cameras/<camera>/image_raw with the step's sim
time as its stamp, and each episode start to /sim/episode, so `ssl-robot train betavae|ccvae --bag BAG` reads
the bag like any other: one episode per reset, the CC-VAE's context being its first frame.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from rclpy.serialization import serialize_message
from std_msgs.msg import String

from ssl_robot import topics
from ssl_robot.data.bag_writer import BagWriter
from ssl_robot.ros.convert import array_to_image, ns_to_stamp
from ssl_robot.ros.sim_messages import ros_type_name, sim_topic_specs
from ssl_robot.rl.envs import TrayGoalEnv
from ssl_robot.rl.tasks import EnvConfig
from ssl_robot.sim.runner import EpisodeEvent

EXPLORE_MODE = 'explore'
EXPLORE_BEHAVIOUR = 'random_actions'


@dataclass
class ExploreReport:
    episodes: int
    frames: int
    wall_s: float

    def summary(self) -> str:
        return f'{self.episodes} exploration episodes, {self.frames} frames in {self.wall_s:.1f} s wall'


def record_exploration(task: str, episodes: int, output: Path, *, seed: int = 0, image_size: int = 48,
                       episode_steps: int = 50, rig: str = '', storage: str = 'mcap',
                       max_minutes: float | None = None,
                       progress: Callable[[str], None] = print,
                       clock: Callable[[], float] = time.monotonic) -> ExploreReport:
    """Record `episodes` random-action episodes of task to a new bag at output (fewer if max_minutes runs out:
    collection stops at an episode boundary once another episode would not end in time). rig: the task camera's rig
    (EnvConfig.rig; '' = the task's own)."""
    if episodes < 1:
        raise ValueError(f'episodes must be >= 1, got {episodes}')
    if max_minutes is not None and not max_minutes > 0:
        raise ValueError(f'max_minutes must be > 0, got {max_minutes}')
    # Pixel mode renders the task camera at every step and needs no model; its goals are unused here.
    env = TrayGoalEnv(EnvConfig(task=task, mode='pixel', goal_source='state', image_size=image_size,
                                pixel_size=1, episode_steps=episode_steps, rig=rig), render_mode='rgb_array')
    camera = env.sim_config.cameras[0].name
    image_topic = topics.camera_image(camera)
    specs = sim_topic_specs([camera], segmentation=False)
    step_ns = env.ticks_per_step * int(round(1e9 / env.sim_config.tick_rate_hz))
    rng = np.random.default_rng(seed)
    env.action_space.seed(seed)
    report = ExploreReport(0, 0, 0.0)
    start = clock()
    slowest_episode_s = 0.0
    stamp_ns = 0
    try:
        with BagWriter(output, storage=storage) as bag:
            for topic in (image_topic, topics.EPISODES):
                bag.add_topic(topic, ros_type_name(specs[topic].type))
            while report.episodes < episodes:
                episode_start = clock()
                episode_seed = int(rng.integers(2**31))
                env.reset(seed=episode_seed)
                stamp_ns += step_ns
                event = EpisodeEvent(episode=report.episodes, seed=episode_seed, mode=EXPLORE_MODE,
                                     stamp_ns=stamp_ns, behaviour=EXPLORE_BEHAVIOUR)
                bag.write(topics.EPISODES, stamp_ns, serialize_message(String(data=topics.encode_episode_event(event))))
                for step in range(episode_steps + 1):
                    if step:
                        env.step(env.action_space.sample())
                        stamp_ns += step_ns
                    image = array_to_image(env.render(), 'rgb8', ns_to_stamp(stamp_ns),
                                           topics.camera_frame_id(camera))
                    bag.write(image_topic, stamp_ns, serialize_message(image))
                    report.frames += 1
                report.episodes += 1
                now = clock()
                slowest_episode_s = max(slowest_episode_s, now - episode_start)
                report.wall_s = now - start
                progress(f'episode {report.episodes}/{episodes}: {report.summary()}')
                if max_minutes is not None and report.wall_s + slowest_episode_s > 60 * max_minutes:
                    break
    finally:
        env.close()
    report.wall_s = clock() - start
    return report
