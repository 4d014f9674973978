"""`ssl-robot rl train ENV --config FILE [--set key.sub=value ...] --out RUN_DIR`, `ssl-robot rl eval RUN ...` and
`ssl-robot rl grasp-eval [--policy ...] [--object-set ...]` and `ssl-robot rl grasp-train --out RUN_DIR ...`.

Running the same train command again on the same RUN_DIR continues it. eval is ssl_robot.rl.evaluation's,
grasp-eval and grasp-train ssl_robot.rl.grasp_commands'.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ssl_robot.rl import evaluation, grasp_commands
from ssl_robot.rl.config import ENV_TASKS, config_to_yaml, load_rl_config


def add_rl_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest='rl_action', required=True, metavar='ACTION')
    train = actions.add_parser('train', help='train a goal-conditioned policy (resumes an existing RUN_DIR)',
                               description='train a goal-conditioned policy with SAC/TD3 and RIG relabelling')
    # Any name is taken here so that an unknown one gets load_rl_config's one-line error listing the known ones.
    train.add_argument('env', metavar='ENV', help=f'the task env: {", ".join(ENV_TASKS)}')
    train.add_argument('--config', type=Path, metavar='FILE', help='YAML file of RLConfig settings (config/rl/)')
    train.add_argument('--set', dest='overrides', action='append', default=[], metavar='KEY=VALUE',
                       help='override a setting after --config, e.g. --set total_steps=5000 --set env.mode=state '
                            '(value read as YAML; repeatable)')
    train.add_argument('--out', type=Path, metavar='RUN_DIR',
                       help='run directory: config, policy, learning curve, TensorBoard logs, resume state')
    train.add_argument('--print-config', action='store_true', help='print the resolved config as YAML and exit')
    evaluation.add_eval_arguments(actions.add_parser(
        'eval', help='evaluate trained runs on held-out goals, as a report',
        description='evaluate trained runs on held-out goals: markdown, JSON and PNG report'))
    grasp_eval = actions.add_parser(
        'grasp-eval', help='instance grasping in the sim: grasp the goal object of a goal image',
        description='instance grasping in the sim on held-out trays: how often each policy grasps the goal object '
                    'of a goal image, and any object, with 95 % Wilson intervals')
    grasp_commands.add_grasp_eval_arguments(grasp_eval)
    grasp_commands.add_grasp_train_arguments(actions.add_parser(
        'grasp-train', help='learn instance grasping from the Grasp2Vec reward (collects grasps in the sim)',
        description='collect indiscriminate grasps in the sim, relabel them with Grasp2Vec goals (posthoc and '
                    'auxiliary) and train a goal-conditioned grasp critic; writes RUN_DIR/grasp_policy.safetensors'))


def run_rl(args: argparse.Namespace) -> int:
    if args.rl_action == 'eval':
        return evaluation.run_eval(args)
    if args.rl_action == 'grasp-eval':
        return grasp_commands.run_grasp_eval(args)
    if args.rl_action == 'grasp-train':
        return grasp_commands.run_grasp_train(args)
    config = load_rl_config(args.env, args.config, args.overrides)
    if args.print_config:
        print(config_to_yaml(config), end='')
        return 0
    if args.out is None:
        raise ValueError('rl train needs --out RUN_DIR')
    from ssl_robot.rl.training import train  # SB3 loads only when training
    return train(config, args.out).exit_code
