"""Training throughput: model steps/s per method, data-loader samples/s against what training consumes, and bag
read throughput of ssl_robot.data.reader against plain rosbags.

Pure (no ROS node). Every method runs with its default model config and TrainConfig's default batch size:
1. steps/s of forward + backward + clip + AdamW step on a synthetic in-memory batch (compute only), on the CPU and
   on CUDA when present, after a few warm-up steps;
2. samples/s of make_dataset read through batch_stream, as `ssl-robot train` reads it, with 0 and 2 workers, and
   its ratio to the samples/s training consumes on the device training would pick (below 1: the loader is the
   bottleneck);
3. MB/s and messages/s of one full read of a bag's colour images: our index pass + BagReader.read_images in
   windows, against rosbags Reader.messages() over the same connections deserializing every message.

Without --motion-bag/--grasp-bag, small bags are collected from the sim into a temporary directory first.
Usage: python bench/bench_train.py [--seconds 5] [--methods tcn grasp2vec] [--motion-bag PATH] [--grasp-bag PATH]
"""

from __future__ import annotations

import argparse
import math
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from rosbags.rosbag2 import Reader

from ssl_robot import topics
from ssl_robot.apps.collect import collect
from ssl_robot.data.bag_index import index_bag
from ssl_robot.data.datasets import make_dataset
from ssl_robot.data.reader import IMAGE_TYPE, TYPESTORE, BagReader, ImageRef, bag_topics
from ssl_robot.data.recordings import ReadOptions, Recordings, index_recordings
from ssl_robot.models.registry import GRASP2VEC_FAMILY, METHODS, build_model, method_spec
from ssl_robot.train.config import TrainConfig
from ssl_robot.train.data_stream import Batch, batch_stream

WARMUP_STEPS = 3
LOADER_WORKERS = (0, 2)
MOTION_EPISODES = 4
GRASP_EPISODES = 3
# grasp2vec reads only the grasp keyframes, which collect records whatever the sampling: sparse sampling makes the
# bag several times faster to collect.
GRASP_RECORD_EVERY = 30


def default_config(method: str) -> TrainConfig:
    return TrainConfig(method=method, model=method_spec(method).config_class())


def bag_kind(method: str) -> str:
    return 'grasp' if method_spec(method).family == GRASP2VEC_FAMILY else 'motion'


def timed_rate(step: Callable[[], object], seconds: float) -> float:
    """Calls of step per second, calling it for at least `seconds` (and at least once)."""
    calls, start = 0, time.perf_counter()
    while calls == 0 or time.perf_counter() - start < seconds:
        step()
        calls += 1
    return calls / (time.perf_counter() - start)


# --- 1. training steps ------------------------------------------------------------------------------------

def synthetic_batch(config: TrainConfig, generator: torch.Generator) -> Batch:
    """Random images in [0, 1] shaped as make_dataset batches them for config.method: batch_size rows, an even
    share from each of episodes_per_batch episodes, times spaced so rows of one episode are negatives of each
    other (svtcn: (anchor, next frame) row pairs)."""
    method, data = config.method, config.data
    size, channels, views = data.image_size, config.model.channels, data.views
    rows = torch.arange(config.batch_size)
    per_episode = config.batch_size // data.episodes_per_batch
    spacing = (data.negative_window or 0) + 1
    episode = rows // per_episode
    times = (rows % per_episode) // 2 * spacing + rows % 2 if method == 'svtcn' else rows % per_episode * spacing

    def images(*leading: int) -> torch.Tensor:
        return torch.rand(config.batch_size, *leading, channels, size, size, generator=generator)

    if method_spec(method).family == GRASP2VEC_FAMILY:
        return {'pre': images(), 'post': images(), 'object': images(), 'episode': episode}
    pixels = {'tcn': lambda: {'frames': images(views)},
              'mftcn': lambda: {'clips': images(views, data.clip_frames)},
              'svtcn': lambda: {'frames': images()},
              'betavae': lambda: {'state': images()},
              'ccvae': lambda: {'state': images(), 'context': images()}}[method]()
    return {**pixels, 'times': times, 'episode': episode}


def input_shape(batch: Batch) -> str:
    image_key = next(key for key in ('frames', 'clips', 'state', 'pre') if key in batch)
    return f'{image_key} {"x".join(map(str, batch[image_key].shape))}'


@dataclass(frozen=True)
class TrainRate:
    steps_per_s: float
    parameters: int
    shape: str


def train_rate(config: TrainConfig, device: torch.device, seconds: float) -> TrainRate:
    """Optimizer steps per second as ssl_robot.train.loop takes them, on one batch that stays on the device."""
    torch.manual_seed(config.seed)
    model = build_model(config.method, config.model).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    host_batch = synthetic_batch(config, torch.Generator().manual_seed(config.seed))
    batch = {key: value.to(device) for key, value in host_batch.items()}
    max_norm = config.grad_clip or math.inf

    def step() -> None:
        loss, _ = model(batch)  # its metrics call .item(), which waits for the device as training does
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)
        optimizer.step()

    for _ in range(WARMUP_STEPS):
        step()
    if device.type == 'cuda':
        torch.cuda.synchronize(device)
    rate = timed_rate(step, seconds)
    if device.type == 'cuda':
        torch.cuda.synchronize(device)
    return TrainRate(rate, sum(p.numel() for p in model.parameters()), input_shape(host_batch))


# --- 2. data loader ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class LoaderRate:
    first_batch_s: float
    samples_per_s: float


def loader_rate(config: TrainConfig, bag: Path, recordings: Recordings, num_workers: int, seconds: float) -> LoaderRate:
    """Samples per second of the batch stream `ssl-robot train` reads; the first batch (worker start, readers
    opened, first windows read) is timed on its own and left out of the rate."""
    dataset = make_dataset(config.method, [bag], config.data, 'train', batch_size=config.batch_size,
                           seed=config.seed, recordings=recordings)
    batches = batch_stream(dataset, num_workers, config.seed, pin_memory=False)
    try:
        start = time.perf_counter()
        next(batches)
        first_batch_s = time.perf_counter() - start
        return LoaderRate(first_batch_s, timed_rate(lambda: next(batches), seconds) * config.batch_size)
    finally:
        batches.close()  # drops the DataLoader iterator, which stops its workers


# --- 3. bag reads -----------------------------------------------------------------------------------------

def colour_image_topics(bag: Path) -> list[str]:
    return sorted(topic for topic, msgtype in bag_topics(bag).items()
                  if msgtype == IMAGE_TYPE and topic.endswith('/image_raw'))


def rosbags_pass(bag: Path, read_topics: set[str]) -> tuple[int, int]:
    """One plain rosbags pass deserializing every message of read_topics: (messages, serialized bytes)."""
    messages = size = 0
    with Reader(bag) as reader:
        connections = [c for c in reader.connections if c.topic in read_topics]
        for connection, _, raw in reader.messages(connections):
            TYPESTORE.deserialize_cdr(raw, connection.msgtype)
            messages += 1
            size += len(raw)
    return messages, size


def ssl_robot_pass(bag: Path, image_topics: list[str], image_size: int | None) -> None:
    """The dataset's way through a bag: the index pass, then the decoded images read a window at a time."""
    index = index_bag(bag, image_topics)
    refs = sorted((ImageRef(topic, int(stamp), int(log))
                   for topic, stamps in index.images.items() for stamp, log in zip(stamps.stamp_ns, stamps.log_ns)),
                  key=lambda ref: ref.log_ns)
    per_read = ReadOptions().window_samples * len(image_topics)
    reader = BagReader(bag)
    try:
        for start in range(0, len(refs), per_read):
            reader.read_images(refs[start:start + per_read], image_size)
    finally:
        reader.close()


# --- running and printing ---------------------------------------------------------------------------------

def load_average() -> str:
    return f'load average {" ".join(f"{load:.2f}" for load in os.getloadavg())} (1, 5, 15 min)'


def collected_bags(kinds: list[str], directory: Path) -> Iterator[tuple[str, Path]]:
    episodes = {'motion': MOTION_EPISODES, 'grasp': GRASP_EPISODES}
    record_every = {'motion': 3, 'grasp': GRASP_RECORD_EVERY}
    for kind in kinds:
        path = directory / kind
        report = collect(kind, episodes[kind], path, record_every=record_every[kind], progress=lambda _: None)
        print(f'collected {kind} bag {path} (record_every {record_every[kind]}) in {report.wall_s:.1f} s: '
              f'{report.summary()}', flush=True)
        yield kind, path


def print_train_rates(methods: list[str], devices: list[torch.device], seconds: float) -> dict[str, float]:
    """Prints the table and returns training samples/s per method on the last device (the one 'auto' picks)."""
    print(f'\n1. Training steps/s: synthetic batch, forward + backward + clip + AdamW, {WARMUP_STEPS} warm-up steps, '
          f'{seconds:g} s each')
    print(f'{"method":<10} {"device":<6} {"batch":>5} {"image":>5} {"input":<26} {"params":>9} {"steps/s":>8} '
          f'{"ms/step":>8} {"samples/s":>9}')
    consumed = {}
    for device in devices:
        for method in methods:
            config = default_config(method)
            rate = train_rate(config, device, seconds)
            consumed[method] = rate.steps_per_s * config.batch_size
            print(f'{method:<10} {device.type:<6} {config.batch_size:>5} {config.data.image_size:>5} '
                  f'{rate.shape:<26} {rate.parameters:>9,} {rate.steps_per_s:>8.2f} {1000 / rate.steps_per_s:>8.1f} '
                  f'{consumed[method]:>9.1f}', flush=True)
    return consumed


def print_loader_rates(methods: list[str], bags: dict[str, Path], consumed: dict[str, float], device: str,
                       seconds: float) -> None:
    print(f'\n2. Data loader samples/s (make_dataset via batch_stream, first batch timed apart) vs training samples/s '
          f'on {device}; ratio < 1: the loader is the bottleneck')
    worker_columns = ''.join(f' {f"{n}w first s":>10} {f"{n}w samp/s":>10} {f"{n}w ratio":>8}' for n in LOADER_WORKERS)
    print(f'{"method":<10} {"bag":<6} {"index s":>7}{worker_columns} {"train samp/s":>12}')
    for method in methods:
        config = default_config(method)
        bag = bags[bag_kind(method)]
        start = time.perf_counter()
        recordings = index_recordings(method, [bag], config.data)
        cells = f'{method:<10} {bag_kind(method):<6} {time.perf_counter() - start:>7.2f}'
        for workers in LOADER_WORKERS:
            rate = loader_rate(config, bag, recordings, workers, seconds)
            cells += f' {rate.first_batch_s:>10.2f} {rate.samples_per_s:>10.1f} ' \
                     f'{rate.samples_per_s / consumed[method]:>8.2f}'
        print(f'{cells} {consumed[method]:>12.1f}', flush=True)
    print('   (the loader ran alone: on a CPU-only machine its workers would share the cores with training)')


def print_bag_reads(bags: dict[str, Path], image_size: int, seconds: float) -> None:
    print(f'\n3. Bag read throughput: colour images + episode/grasp events, full passes for {seconds:g} s each '
          f'(MB: serialized bytes of those messages)')
    print(f'{"bag":<6} {"MB":>7} {"messages":>8} {"reader":<46} {"MB/s":>7} {"msgs/s":>8} {"passes":>6}')
    for kind, bag in bags.items():
        image_topics = colour_image_topics(bag)
        read_topics = {*image_topics, topics.EPISODES, topics.GRASP_EVENTS}
        messages, size = rosbags_pass(bag, read_topics)  # also brings the bag into the page cache
        readers = {'rosbags Reader.messages + deserialize_cdr': lambda: rosbags_pass(bag, read_topics),
                   f'ssl_robot index_bag + read_images, {image_size} px': lambda: ssl_robot_pass(
                       bag, image_topics, image_size),
                   'ssl_robot index_bag + read_images, native size': lambda: ssl_robot_pass(bag, image_topics, None)}
        for name, read in readers.items():
            passes = timed_rate(read, seconds)
            print(f'{kind:<6} {size / 1e6:>7.1f} {messages:>8} {name:<46} {passes * size / 1e6:>7.1f} '
                  f'{passes * messages:>8.0f} {passes:>6.2f}', flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--seconds', type=float, default=5.0, help='length of each measurement (default 5)')
    parser.add_argument('--methods', nargs='+', choices=list(METHODS), default=list(METHODS))
    parser.add_argument('--motion-bag', type=Path, help='bag for the frame methods (default: collect a small one)')
    parser.add_argument('--grasp-bag', type=Path, help='bag for grasp2vec (default: collect a small one)')
    args = parser.parse_args()
    if args.seconds <= 0:
        parser.error(f'--seconds must be > 0, got {args.seconds}')
    kinds = sorted({bag_kind(method) for method in args.methods}, reverse=True)
    given = {kind: path for kind, path in (('motion', args.motion_bag), ('grasp', args.grasp_bag))
             if kind in kinds and path is not None}
    for kind, path in given.items():
        if not path.exists():
            parser.error(f'--{kind}-bag {path} does not exist')
    devices = [torch.device('cpu'), *([torch.device('cuda')] if torch.cuda.is_available() else [])]
    print(f'torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs, {load_average()}; '
          f'devices: {", ".join(d.type for d in devices)}')

    with tempfile.TemporaryDirectory(prefix='bench_train_') as directory:
        bags = dict(given)
        bags.update(collected_bags([kind for kind in kinds if kind not in given], Path(directory)))
        consumed = print_train_rates(args.methods, devices, args.seconds)
        print_loader_rates(args.methods, bags, consumed, devices[-1].type, args.seconds)
        print_bag_reads({kind: bags[kind] for kind in kinds}, default_config(args.methods[0]).data.image_size,
                        args.seconds)
    # Other processes' load skews every figure above: printed at both ends so a reader can judge by how much.
    print(f'\nat the end: {load_average()}')


if __name__ == '__main__':
    main()
