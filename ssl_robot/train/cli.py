"""`ssl-robot train METHOD --bag PATH... --out RUN_DIR [--config FILE] [--set key.sub=value ...]`.

Running the same command again on the same RUN_DIR resumes from its latest checkpoint. Under
`torchrun --nproc_per_node=N -m ssl_robot.cli train ...` every process runs this and trains one DDP replica.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ssl_robot.models.registry import METHODS, method_spec
from ssl_robot.train.config import config_to_yaml, load_train_config
from ssl_robot.train.data_stream import DataShard, MakeDataset
from ssl_robot.train.errors import TrainError
from ssl_robot.train.loop import train


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('method', choices=sorted(METHODS), help='the model to train')
    parser.add_argument('--bag', dest='bags', type=Path, nargs='+', action='extend', required=True, metavar='PATH',
                        help='rosbag2 recordings to train on (repeatable)')
    parser.add_argument('--out', type=Path, required=True, metavar='RUN_DIR',
                        help='run directory: config, code version, checkpoints, TensorBoard logs; resumed if it exists')
    parser.add_argument('--config', type=Path, metavar='FILE', help='YAML file of TrainConfig settings')
    parser.add_argument('--set', dest='overrides', action='append', default=[], metavar='KEY=VALUE',
                        help='override a setting after --config, e.g. --set steps=5000 --set model.margin=0.5 '
                             '(value read as YAML; repeatable)')
    parser.add_argument('--print-config', action='store_true', help='print the resolved config as YAML and exit')


def _data_module_make_dataset() -> MakeDataset:
    try:
        from ssl_robot.data.datasets import make_dataset
    except ImportError as err:
        raise TrainError(f'ssl_robot.data.datasets.make_dataset is not available, so bags cannot be read: '
                         f'{err}') from err
    return make_dataset


def run_train(args: argparse.Namespace, make_dataset: MakeDataset | None = None) -> int:
    """Train as args say; make_dataset defaults to ssl_robot.data.datasets.make_dataset. Returns the exit status."""
    config = load_train_config(args.method, method_spec(args.method).config_class, args.config, args.overrides)
    if args.print_config:
        print(config_to_yaml(config), end='')
        return 0
    missing = [str(bag) for bag in args.bags if not bag.exists()]
    if missing:
        raise TrainError(f'no such bag: {", ".join(missing)}')
    make_dataset = make_dataset or _data_module_make_dataset()

    def make_batches(shard: DataShard):
        return make_dataset(args.method, args.bags, config.data, 'train', batch_size=config.batch_size,
                            seed=shard.seed, shard=(shard.rank, shard.world_size))

    return train(config, make_batches, args.out).exit_code
