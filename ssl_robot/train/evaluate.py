"""`ssl-robot eval RUN_DIR|CHECKPOINT --bag HELD_OUT [HELD_OUT ...] [--rig RIG=BAG ...] [--out DIR]
[--baseline svtcn=RUN_DIR] [--compare RUN_DIR]`: how good a trained representation is on held-out bags (and on the
bags of held-out camera rigs, side by side), next to baselines, as a report (ssl_robot.train.report:
report.json, report.md, plots/*.png) in RUN_DIR/eval/ or --out. The Python API is evaluate_run().

Every episode of every bag given is evaluated: the bags are the held-out data. The run's latest checkpoint is
loaded into the model its config.yaml describes, so a checkpoint of another method or shape is refused. What each
report holds is REPORT_CONTENTS (also shown by `ssl-robot eval --help`). Each family is evaluated in its own module
(eval_embeddings, eval_grasps, eval_vaes) on what they share (eval_common); this one picks the family and writes the
report.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from ssl_robot.models import default_device
from ssl_robot.models.registry import TCN_FAMILY, VAE_FAMILY, methods_of
from ssl_robot.train.eval_common import BASELINE_RUNS, EvalError, EvalOptions, Evaluation, load_run
from ssl_robot.train.eval_embeddings import evaluate_embeddings
from ssl_robot.train.eval_grasps import evaluate_grasps
from ssl_robot.train.eval_rigs import recorded_rig_label, recorded_rig_problem, rig_name, side_by_side
from ssl_robot.train.eval_vaes import evaluate_vaes
from ssl_robot.train.report import write_report

REPORT_CONTENTS = """\
Metrics and columns per method (metric definitions in ssl_robot.train.metrics):
tcn, mftcn, svtcn: alignment error between the camera views (every ordered view pair), and the kNN classification
    error of gripper closed / object lifted / gripper contact: the episodes, in index order, alternate between the
    half the kNN is fitted on and the half it is tested on; every view of a time is one row. Columns: trained,
    random encoder (same architecture, fixed seed), raw pixels (each view on its own, area-downsampled to
    16x16 RGB), single-view TCN (tcn and mftcn only; n/a unless --baseline svtcn=RUN_DIR is given), chance (a
    uniformly random neighbour; for kNN the error of predicting the majority class of the fit half on the test
    half, which can exceed 0.5 when the halves differ). svtcn is evaluated on the views a multi-view TCN
    would be. For mftcn time t is the clip ending at t, and the times before the first full clip are left out of
    every column, the baselines' too.
grasp2vec: top-1 retrieval of each scene difference's object within batches of B successful grasps (a fixed
    shuffle of them; --retrieval-batch), and localisation success: the heatmap's argmax on the grasped object's
    mask in s_pre (successful grasps). Columns: trained, random encoder, chance.
betavae, ccvae: reconstruction error of the held-out frames, over all pixels and over the changed pixels only
    (those that moved from the episode's first frame: the arm, pushed objects), and goal consistency: goals imagined
    per episode (CC-VAE: z ~ N(0, I) decoded with the context of the episode's first frame; beta-VAE: prior samples,
    which know no context) each take the episode of their nearest held-out frame (compared as 16x16 pixels), and
    are consistent when that is their own episode; for a CC-VAE also the share of its goals that show a change from
    its own reconstruction of the first frame. Columns: trained, `compare: METHOD` (--compare OTHER_VAE_RUN, on the
    same frames), random encoder, mean image (reconstruction: every frame rebuilt as the mean frame), first frame
    (every frame predicted by its episode's first frame), chance (goal consistency: the largest episode's share).
Every measured figure has a 95 % confidence interval, a bootstrap over the units the note names (episodes; retrieval:
batches). With --rig RIG=BAG every metric is reported once per rig, 'METRIC [RIG]': first the rig the --bag bags were
recorded with ('bags' if they do not name one), then each held-out rig.
"""

EMBEDDING_METHODS = methods_of(TCN_FAMILY)
VAE_METHODS = methods_of(VAE_FAMILY)


# --- TCN family ---------------------------------------------------------------------------------------------


# --- Grasp2Vec ----------------------------------------------------------------------------------------------


# --- VAEs ---------------------------------------------------------------------------------------------------


# --- API and command line -----------------------------------------------------------------------------------

def resolve_device(name: str | torch.device | None) -> torch.device:
    """'auto' or None: CUDA when present, else the CPU; 'cuda' is refused on a machine without it."""
    if name is None or name == 'auto':
        return default_device()
    device = torch.device(name)
    if device.type == 'cuda' and not torch.cuda.is_available():
        raise EvalError(f'device {name!r} asked for, but torch sees no CUDA device here')
    return device


def default_out(run_dir: Path) -> Path:
    """Where a run's report goes when no --out is given: RUN_DIR/eval, or for a checkpoint file (which may be a
    shipped one, inside the package) runs/eval-<file name without suffix> in the working directory."""
    run_dir = Path(run_dir)
    return Path('runs') / f'eval-{run_dir.stem}' if run_dir.is_file() else run_dir / 'eval'


def evaluate_run(run_dir: str | Path, bags: Sequence[str | Path], out: str | Path | None = None,
                 baseline_runs: Mapping[str, str | Path] | None = None, compare: str | Path | None = None, *,
                 rigs: Mapping[str, Sequence[str | Path]] | None = None, options: EvalOptions = EvalOptions(),
                 device: str | torch.device | None = None) -> dict[str, Any]:
    """Evaluate the latest checkpoint of run_dir (or a checkpoint file) on the held-out bags and write the report into
    out (default: default_out). baseline_runs: {'svtcn': RUN_DIR} adds a single-view TCN column to a tcn or mftcn
    report. compare: another beta-VAE or CC-VAE run, evaluated beside a VAE run. rigs: {rig name: its held-out bags},
    each evaluated alone and reported beside the bags' rig (ssl_robot.train.eval_rigs). Returns the report as
    report.json holds it: 'method', 'columns', 'rows' (each {'metric', 'values': {column: number or None},
    'lower_is_better', 'note', 'intervals', 'interval_units'}), 'meta', 'plots' (paths relative to out). Bad input
    raises a ValueError naming the file and the problem."""
    device = resolve_device(device)
    baseline_runs = dict(baseline_runs or {})
    unknown = sorted(set(baseline_runs) - set(BASELINE_RUNS))
    if unknown:
        raise EvalError(f'unknown baseline {", ".join(unknown)}: the baselines are {", ".join(BASELINE_RUNS)}')
    bags = [Path(bag) for bag in bags]
    if not bags:
        raise EvalError('no held-out bags given: name them with --bag')
    run = load_run(run_dir, device)
    for name in baseline_runs:
        if run.method not in BASELINE_RUNS[name]:
            raise EvalError(f'--baseline {name} is a baseline for {" and ".join(BASELINE_RUNS[name])} runs; '
                            f'{run.path} is a {run.method!r} run')
    if compare is not None and run.method not in VAE_METHODS:
        raise EvalError(f'--compare sets one VAE run beside another; {run.path} is a {run.method!r} run')
    svtcn = baseline_runs.get('svtcn')
    svtcn_run = load_run(svtcn, device, role='--baseline svtcn', methods=('svtcn',)) if svtcn else None
    compared = load_run(compare, device, role='--compare', methods=VAE_METHODS) if compare else None

    def evaluate(held_out: list[Path]) -> Evaluation:
        if run.method in EMBEDDING_METHODS:
            return evaluate_embeddings(run, svtcn_run, held_out, options, device)
        if run.method in VAE_METHODS:
            return evaluate_vaes(run, compared, held_out, options, device)
        return evaluate_grasps(run, held_out, options, device)

    evaluation = evaluate(bags)
    if rigs:
        groups = {recorded_rig_label(evaluation.meta['recorded_rigs']): evaluation._replace(
            meta={'bags': bags, **evaluation.meta})}
        for name, rig_bags in rigs.items():
            if rig_name(name) in groups:
                raise EvalError(f'--rig {name}: rig {rig_name(name)} is already in the report')
            rig_bags = [Path(bag) for bag in rig_bags]
            result = evaluate(rig_bags)
            problem = recorded_rig_problem(name, rig_bags, result.meta['recorded_rigs'])
            if problem:
                raise EvalError(problem)
            groups[rig_name(name)] = result._replace(meta={'bags': rig_bags, **result.meta})
        rows, plots, rig_meta = side_by_side(groups)
        evaluation = Evaluation(rows, plots, {**evaluation.meta, **rig_meta})
    meta = {'run': run.path, 'checkpoint': run.checkpoint, 'step': run.step, 'bags': bags, 'device': str(device),
            'options': options, **evaluation.meta}
    files = write_report(Path(out) if out is not None else default_out(run.path), run.method, evaluation.rows,
                         evaluation.plots, meta)
    return json.loads(files.json.read_text())


def _named_path(example: str) -> Callable[[str], tuple[str, Path]]:
    """An argparse type for NAME=PATH arguments; example shows one in the error."""
    def parse(text: str) -> tuple[str, Path]:
        name, separator, path = text.partition('=')
        if not separator or not name or not path:
            raise argparse.ArgumentTypeError(f'expected {example}, got {text!r}')
        return name, Path(path)
    return parse


def add_eval_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = REPORT_CONTENTS
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument('run_dir', type=Path, metavar='RUN_DIR|CHECKPOINT',
                        help='run directory of `ssl-robot train` (its latest checkpoint is evaluated), or a checkpoint '
                             'file such as ssl_robot/checkpoints/tcn.safetensors (read with the data settings of '
                             'config/train/METHOD.yaml)')
    parser.add_argument('--bag', dest='bags', type=Path, nargs='+', action='extend', required=True,
                        metavar='HELD_OUT', help='held-out rosbag2 recordings, every episode evaluated (repeatable)')
    parser.add_argument('--out', type=Path, metavar='DIR',
                        help='report directory (default: RUN_DIR/eval; for a checkpoint file runs/eval-NAME)')
    parser.add_argument('--baseline', dest='baselines', type=_named_path('NAME=RUN_DIR, e.g. svtcn=runs/svtcn'),
                        action='append', default=[],
                        metavar='svtcn=RUN_DIR',
                        help='a single-view TCN run for the single-view TCN column of a tcn or mftcn report '
                             '(without it the column says n/a)')
    parser.add_argument('--rig', dest='rigs', type=_named_path('RIG=BAG, e.g. held_out_a=bags/held_out_a'),
                        action='append', default=[], metavar='RIG=BAG',
                        help='held-out bags recorded with another camera rig (ssl-robot collect --rig RIG), reported '
                             'beside the --bag bags, every metric once per rig; repeat for more rigs or bags')
    parser.add_argument('--compare', type=Path, metavar='RUN_DIR',
                        help='another betavae or ccvae run, evaluated beside a VAE run on the same frames')
    parser.add_argument('--batch-size', type=int, default=EvalOptions.batch_size, metavar='N',
                        help=f'images per forward pass (default {EvalOptions.batch_size})')
    parser.add_argument('--retrieval-batch', type=int, default=EvalOptions.retrieval_batch, metavar='B',
                        help=f'grasp2vec: grasps per retrieval batch, chance 1/B '
                             f'(default {EvalOptions.retrieval_batch})')
    parser.add_argument('--knn-k', type=int, default=EvalOptions.knn_k, metavar='K',
                        help=f'neighbours of the kNN attribute classifier (default {EvalOptions.knn_k})')
    parser.add_argument('--device', choices=('auto', 'cpu', 'cuda'), default='auto',
                        help='where the models run (default auto: CUDA when present)')


def _printed_value(value: float | None, interval: list[float] | None) -> str:
    if value is None:
        return 'n/a'
    return f'{value:.4g}' + (f' [{interval[0]:.3g}, {interval[1]:.3g}]' if interval else '')


def run_eval(args: argparse.Namespace) -> int:
    """Evaluate as args say and print the table; returns the exit status."""
    baselines = dict(args.baselines)
    if len(baselines) < len(args.baselines):
        raise EvalError('--baseline names the same baseline twice')
    options = EvalOptions(batch_size=args.batch_size, retrieval_batch=args.retrieval_batch, knn_k=args.knn_k)
    rigs: dict[str, list[Path]] = {}
    for name, bag in args.rigs:
        rigs.setdefault(name, []).append(bag)
    report = evaluate_run(args.run_dir, args.bags, args.out, baselines, args.compare, rigs=rigs, options=options,
                          device=args.device)
    out = args.out if args.out is not None else default_out(args.run_dir)
    for row in report['rows']:
        values = ', '.join(f'{column} {_printed_value(value, row["intervals"].get(column))}'
                           for column, value in row['values'].items())
        print(f'{row["metric"]}: {values}')
    print(f'report: {out / "report.md"}')
    return 0
