"""Grasp2Vec reward, dot product against cosine: how often each ranks the goal object first among a tray's objects.

Pure (no ROS node). Reads the successful grasps of held-out grasp bags (`ssl-robot collect --mode grasp`), embeds
each grasped object's image with the checkpoint's object encoder phi_o, and for every tray (episode) with two or more
grasped objects, every object of it and every image of that object from another episode's grasp (the goal image),
ranks the tray's objects by the reward phi_o(g) . phi_o(o), or its cosine
(ssl_robot.rewards.evaluation.goal_ranked_first). Prints the rate of each with its 95 % bootstrap interval over the
episodes (n trials, n episodes). This chose grasp2vec_normalize's default (README, reward_node).

Without --bag it first collects the held-out bag the README's figures come from, in a temporary directory (a few
minutes; only the grasp keyframes are rendered): `ssl-robot collect --mode grasp --episodes 10 --seed 4000
--object-set random_urdfs_12 --record-every 0 --no-segmentation`.
Usage: python bench/bench_grasp2vec_reward.py [--bag BAG ...] [--checkpoint ssl_robot/checkpoints/grasp2vec.safetensors]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import torch

from ssl_robot import topics
from ssl_robot.apps.collect import collect
from ssl_robot.data.bag_index import index_bag
from ssl_robot.data.reader import BagReader, ImageRef, find_bags
from ssl_robot.data.samplers import bag_episodes, episode_of
from ssl_robot.images import rgb_to_tensor
from ssl_robot.inference.model_holder import default_checkpoint
from ssl_robot.models import load_checkpoint
from ssl_robot.rewards.evaluation import goal_ranked_first
from ssl_robot.train.intervals import ratio_interval

OBJECT_TOPIC = topics.camera_image(topics.OBJECT_CAMERA)
COLLECT_SEED = 4000
"""Far from the seeds of the shipped checkpoints' bags (0 for training; 1000, 2000 held out)."""
COLLECT_OBJECTS = 'random_urdfs_12'
TOLERANCE_NS = 1_000_000


def grasped_objects(bags: list[Path], image_size: int) -> tuple[np.ndarray, list[str], list[int]]:
    """The object images (N, S, S, 3) of every successful grasp of the bags, the grasped objects' names, and the
    episode of each, numbered across the bags."""
    images, names, episodes = [], [], []
    first_episode = 0
    for bag in bags:
        index = index_bag(bag, [OBJECT_TOPIC])
        bag_episode_list = bag_episodes(index, 0, first_episode)
        stamps = index.images[OBJECT_TOPIC]
        refs = []
        for event in index.grasps:
            if not event['success'] or event['o'] is None:
                continue
            position = stamps.nearest(topics.stamp_from_dict(event['o']), TOLERANCE_NS)
            if position is None:
                continue
            refs.append(ImageRef(OBJECT_TOPIC, int(stamps.stamp_ns[position]), int(stamps.log_ns[position])))
            names.append(event['object']['name'])
            pre = np.array([topics.stamp_from_dict(event['s_pre'])], dtype=np.int64)
            episodes.append(bag_episode_list[int(episode_of(bag_episode_list, pre)[0])].id)
        reader = BagReader(bag)
        read = reader.read_images(refs, image_size)
        reader.close()
        images += [read[ref] for ref in refs]
        first_episode += len(bag_episode_list)
    return np.stack(images), names, episodes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--bag', dest='bags', type=Path, nargs='+', default=None,
                        help='held-out grasp bags (default: collect the README\'s, see above)')
    parser.add_argument('--episodes', type=int, default=10, help='episodes to collect without --bag (default 10)')
    parser.add_argument('--checkpoint', type=Path, default=None, help='Grasp2Vec checkpoint (default: the shipped one)')
    args = parser.parse_args()
    torch.set_num_threads(1)
    model, header = load_checkpoint(args.checkpoint or default_checkpoint('grasp2vec'), method='grasp2vec',
                                    device='cpu')
    with tempfile.TemporaryDirectory() as scratch:
        bags = args.bags
        if bags is None:
            bags = [Path(scratch) / 'grasp_held_out']
            print(collect('grasp', args.episodes, bags[0], seed=COLLECT_SEED, object_set=COLLECT_OBJECTS,
                          record_every=0, segmentation=False, progress=lambda _: None).summary())
        images, names, episodes = grasped_objects(find_bags(bags), model.config.image_size)
    embeddings = model.object_embedding(rgb_to_tensor(images)).numpy()
    print(f'{len(names)} successful grasps of {len(set(names))} objects in {len(set(episodes))} episodes; '
          f'checkpoint step {header.step}')
    for label, normalize in (('dot product', False), ('cosine', True)):
        results = goal_ranked_first(embeddings, names, episodes, normalize=normalize)
        hits = [float(h) for h, _ in results.values()]
        trials = [float(t) for _, t in results.values()]
        if not trials:
            print(f'{label}: no trial (no object was grasped in two episodes)')
            continue
        interval = ratio_interval(hits, trials)
        spread = f' [{interval.low:.2f}, {interval.high:.2f}]' if interval else ''
        print(f'{label}: goal object ranked first {sum(hits) / sum(trials):.2f}{spread} '
              f'({int(sum(hits))} of {int(sum(trials))} trials, {len(trials)} episodes)')


if __name__ == '__main__':
    main()
