"""The reports of the RL loop: `ssl-robot rl eval` (write_eval_report) and `ssl-robot eval-reward`.

    OUT_DIR/report.md     the tables, for a reader
    OUT_DIR/report.json   the same figures and every seed's, with the code version and time of writing
    OUT_DIR/NAME.png      the figures (curves.png: learning curves)

Files are written atomically, figures first, so a report never names a figure that is not there, as
ssl_robot.train.report writes its own; figures are drawn with its helpers, outside pyplot.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from ssl_robot.atomic import write_atomic
from ssl_robot.rl.evaluation import COLUMN_LABELS, OBSERVING, RANDOM_COLUMN, RunEvaluation, pooled_summary
from ssl_robot.rl.reward_faithfulness import FAITHFUL_RHO, STEP_M, step_summary
from ssl_robot.train.report import ReportFiles, curves_figure, new_figure, save_figure
from ssl_robot.train.run_dir import code_version, version_label

RELABEL_ORDER = ('none', 'future', 'prior', 'future + prior')
"""The ablation's rows in RIG's order: each adds a source of relabelled goals."""
COLUMN_ORDER = (*COLUMN_LABELS.values(), RANDOM_COLUMN)


# --- generic pieces ------------------------------------------------------------------------------------------

def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """A Markdown table, the first column left-aligned and the others right-aligned (numbers)."""
    def line(cells: Sequence[str]) -> str:
        return '| ' + ' | '.join(' '.join(str(cell).split()).replace('|', '\\|') for cell in cells) + ' |'
    return [line(header), '|---|' + '---:|' * (len(header) - 1), *map(line, rows)]


def with_interval(value: float, low: float, high: float, percent: bool = False) -> str:
    """'value [low, high]', as fractions in percent or to the millimetre."""
    if percent:
        return f'{value:.0%} [{low:.0%}, {high:.0%}]'
    return f'{value:.3f} [{low:.3f}, {high:.3f}]'


def write_rl_report(out_dir: Path, title: str, body: Sequence[str], payload: Mapping[str, Any],
                    figures: Mapping[str, Figure]) -> ReportFiles:
    """Write the figures as OUT_DIR/NAME.png, then report.json (payload, the figures' file names, the code
    version and the time of writing) and report.md (title, body lines, provenance and the figures)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    figure_files = {name: save_figure(figure, out_dir / f'{name}.png') for name, figure in figures.items()}
    version = code_version()
    written_at = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds')
    report = {**payload, 'figures': {name: path.name for name, path in figure_files.items()},
              'code_version': version, 'written_at': written_at}
    json_path, markdown_path = out_dir / 'report.json', out_dir / 'report.md'
    write_atomic(json_path, json.dumps(report, indent=2, allow_nan=False) + '\n')
    lines = [f'# {title}', '', *body]
    for name, path in figure_files.items():
        lines += ['', f'![{name}]({path.name})']
    lines += ['', f'- code: {version_label(version)}', f'- written: {written_at}']
    write_atomic(markdown_path, '\n'.join(lines) + '\n')
    return ReportFiles(json_path, markdown_path, figure_files)


def band_curves_figure(curves: Mapping[str, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]],
                       xlabel: str, ylabel: str, title: str) -> Figure:
    """One line per curve with a shaded band, every curve in one figure. curves: {label: (x, line, band low,
    band high)}; the curves may be sampled at different x: each is drawn on the union of all x (linearly
    between its own points, which is how a line joins them anyway, and blank outside its range)."""
    grid = np.unique(np.concatenate([x for x, *_ in curves.values()])).astype(np.float64)
    lines = {}
    for label, (x, line, _, _) in curves.items():
        on_grid = np.interp(grid, x, line)
        on_grid[(grid < x[0]) | (grid > x[-1])] = np.nan
        lines[label] = on_grid
    figure = curves_figure(lines, xlabel, ylabel, title, x=grid)
    axes = figure.axes[0]
    for drawn, (x, _, low, high) in zip(axes.lines, curves.values()):
        axes.fill_between(x, low, high, color=drawn.get_color(), alpha=0.2, linewidth=0)
    return figure


# --- ssl-robot rl eval ---------------------------------------------------------------------------------------

def _groups(evaluations: Sequence[RunEvaluation]) -> dict[tuple[str, str], list[RunEvaluation]]:
    """Evaluations by (column, relabelling), in report order: oracle, RIG, CC-RIG, pixel, random; relabelling
    none, future, prior, future + prior."""
    groups: dict[tuple[str, str], list[RunEvaluation]] = {}
    for evaluation in evaluations:
        groups.setdefault((evaluation.column, evaluation.relabel), []).append(evaluation)
    return dict(sorted(groups.items(), key=lambda item: (*_column_rank(item[0][0]),
                                                         (('',) + RELABEL_ORDER).index(item[0][1]))))


def _column_rank(column: str) -> tuple[int, str]:
    """Where a column sits: by its goals' column, a policy that observes another mode right after it."""
    base, _, observed = column.partition(OBSERVING)
    return COLUMN_ORDER.index(base), observed


def _name(column: str, relabel: str, relabels_differ: bool) -> str:
    return f'{column}, relabel {relabel}' if relabels_differ and relabel else column


def _learning_curves(groups: Mapping[str, list[RunEvaluation]]) -> dict[str, tuple[np.ndarray, ...]]:
    """{name: (env steps, mean over seeds, min, max)} of the median final distance, over the evaluation steps
    every seed of the group reached; groups without curve.json are left out."""
    curves = {}
    for name, members in groups.items():
        runs = [{point['env_steps']: point['final_distance_median'] for point in member.curve}
                for member in members if member.curve]
        steps = sorted(set.intersection(*(set(run) for run in runs))) if runs else []
        if steps:
            values = np.array([[run[step] for step in steps] for run in runs])
            curves[name] = (np.array(steps), values.mean(axis=0), values.min(axis=0), values.max(axis=0))
    return curves


def write_eval_report(out_dir: Path, evaluations: Sequence[RunEvaluation], eval_seed: int) -> ReportFiles:
    """The report of `ssl-robot rl eval`: one row per column (pooled over its training seeds), every seed's
    figures, a relabelling ablation when the runs differ in relabelling, and the learning curves."""
    env = evaluations[0].env
    push = env.task == 'push'
    relabels = {evaluation.relabel for evaluation in evaluations if evaluation.relabel}
    relabels_differ = len(relabels) > 1
    groups = {_name(column, relabel, relabels_differ): members
              for (column, relabel), members in _groups(evaluations).items()}
    summaries = {name: pooled_summary([member.result for member in members]) for name, members in groups.items()}
    success_cm = f'{env.success_distance_m * 100:g} cm'
    distance_header = f'final {"object" if push else "hand"} distance median, m [95 % CI]'

    def figures_of(summary: Mapping[str, float]) -> list[str]:
        cells = [with_interval(summary['final_distance_median'], summary['final_distance_median_ci_low'],
                               summary['final_distance_median_ci_high']),
                 with_interval(summary['success_rate'], summary['success_rate_ci_low'],
                               summary['success_rate_ci_high'], percent=True)]
        return cells + ([f'{summary["hand_final_distance_median"]:.3f}'] if push else [])

    figure_header = [distance_header, f'success at {success_cm} [95 % CI]'] + (
        ['final hand distance median, m'] if push else [])
    body = [f'Task {env.task}: {env.episode_steps}-step episodes on {len(evaluations[0].result.episodes)} '
            f'held-out goals (true states, seeds {eval_seed}...), the same for every policy. Pooled over training '
            f'seeds: the mean of the seeds\' medians, its interval a bootstrap over seeds then goals; the success '
            f'rate over every episode, its interval Wilson\'s.', '']
    body += markdown_table(['column', 'seeds', 'goals', *figure_header],
                           [[name, f'{summary["seeds"]:.0f}', f'{summary["episodes"]:.0f}', *figures_of(summary)]
                            for name, summary in summaries.items()])
    ablated = [column for column in COLUMN_ORDER
               if len({evaluation.relabel for evaluation in evaluations if evaluation.column == column}) > 1]
    if ablated:
        ablation = [[name, *figures_of(summaries[name])[:2]] for name, members in groups.items()
                    if members[0].column in ablated]
        body += ['', '## Relabelling ablation', '', 'Goals relabelled from none / future states / future states '
                 'and the prior (RIG\'s ordering: future + prior <= future <= none in final distance).', '']
        body += markdown_table(['column, relabelling', distance_header, f'success at {success_cm} [95 % CI]'],
                               ablation)
    body += ['', '## Every seed', '']
    body += markdown_table(['column', 'seed', 'run', *figure_header],
                           [[name, str(member.seed), str(member.run or '-'), *figures_of(member.result.summary())]
                            for name, members in groups.items() for member in members])

    curves = _learning_curves(groups)
    figures = {}
    if curves:
        figures['curves'] = band_curves_figure(
            curves, 'env steps', f'final {"object" if push else "hand"} distance, median over goals (m)',
            f'{env.task}: mean over seeds, band min to max')
        body += ['', '## Learning curves', '', 'Median final distance at each evaluation during training: the '
                 'mean over seeds, the band from the lowest to the highest seed.']
    else:
        body += ['', 'No run has a curve.json: no learning curves.']
    payload = {'task': env.task, 'eval_seed': eval_seed, 'success_distance_m': env.success_distance_m,
               'columns': [{'column': name, 'relabel': members[0].relabel, **summaries[name],
                            'per_seed': [{'seed': member.seed, 'run': str(member.run) if member.run else None,
                                          **member.result.summary()} for member in members]}
                           for name, members in groups.items()],
               'curves': {name: {'env_steps': x.tolist(), 'mean': line.tolist(), 'min': low.tolist(),
                                 'max': high.tolist()} for name, (x, line, low, high) in curves.items()}}
    return write_rl_report(out_dir, f'Goal reaching: {env.task}', body, payload, figures)


# --- ssl-robot eval-reward -----------------------------------------------------------------------------------

def write_faithfulness_report(out_dir: Path, task: str, columns: Mapping[str, tuple[np.ndarray, Mapping[str, float]]],
                              samples: int, seed: int, vary: str = 'both',
                              step_ratios: Mapping[str, np.ndarray] | None = None) -> ReportFiles:
    """The report of `ssl-robot eval-reward`. columns: {label: (rho per goal, rho_summary)}; vary: its probe;
    step_ratios (push): {label: puck step / hand step per scene}, for every column or none."""
    goals = len(next(iter(columns.values()))[0])
    ranked = 'puck' if task == 'push' and vary != 'hand' else 'hand'
    held = {'puck': ", the hand held at the goal's", 'hand': ", the puck held at the goal's"}.get(vary, '')
    body = [f'Task {task}: Spearman rho of each reward against minus the true {ranked} distance to the goal, over '
            f'{samples} random scenes{held} around each of {goals} held-out goals (env seeds {seed}...), the same '
            f'goals and scenes for every column. Median: bootstrap 95 % CI over goals; rho > {FAITHFUL_RHO}: Wilson '
            f'95 % CI.', '']
    header = ['reward', 'median rho [95 % CI]', 'mean rho', f'goals with rho > {FAITHFUL_RHO} [95 % CI]']
    rows = [[label, with_interval(summary['rho_median'], summary['rho_median_ci_low'], summary['rho_median_ci_high']),
             f'{summary["rho_mean"]:.3f}',
             with_interval(summary['faithful_fraction'], summary['faithful_fraction_ci_low'],
                           summary['faithful_fraction_ci_high'], percent=True)]
            for label, (_, summary) in columns.items()]
    steepness = {label: step_summary(ratios) for label, ratios in (step_ratios or {}).items()}
    if steepness:
        scenes = len(next(iter(step_ratios.values())))
        body[1:1] = ['', f'Steepness: over {scenes} random scenes, how far the reward moves when the puck moves '
                     f'{STEP_M * 100:g} cm, over how far when the hand makes the same move (the oracle: 1); median, '
                     f'bootstrap 95 % CI over scenes.']
        header.append('puck / hand step [95 % CI]')
        for row, label in zip(rows, columns):
            summary = steepness[label]
            row.append('n/a' if summary['step_ratio_median'] is None else with_interval(
                summary['step_ratio_median'], summary['step_ratio_ci_low'], summary['step_ratio_ci_high']))
    body += markdown_table(header, rows)
    figure = new_figure(7, 1.2 + 0.5 * len(columns))
    axes = figure.subplots()
    labels = list(columns)
    axes.boxplot([columns[label][0] for label in labels], orientation='horizontal', tick_labels=labels)
    axes.axvline(FAITHFUL_RHO, color='0.5', linestyle='--', linewidth=1)
    axes.set_xlabel('Spearman rho(reward, -true distance) per goal')
    axes.set_xlim(-1.05, 1.05)
    axes.invert_yaxis()
    axes.grid(alpha=0.3, axis='x')
    payload = {'task': task, 'vary': vary, 'goals': goals, 'samples': samples, 'seed': seed,
               'faithful_rho': FAITHFUL_RHO,
               'columns': [{'column': label, **summary, 'rho_per_goal': rhos.tolist(), **steepness.get(label, {})}
                           for label, (rhos, summary) in columns.items()]}
    return write_rl_report(out_dir, f'Reward faithfulness: {task}', body, payload, {'rho': figure})
