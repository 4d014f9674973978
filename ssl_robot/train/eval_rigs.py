"""One evaluation report over several camera rigs: the held-out bags of `--bag` and those of each `--rig NAME=BAG`,
each evaluated alone, their rows set side by side (every metric once per rig, in the order --bag, then the rigs as
given) so that a model's figure on a moved rig reads next to its figure on the rig it was trained on.

A bag records the rig of each episode (the /sim/episode event's 'rig', ssl_robot.data.samplers.Episode.rig); a bag
named for a rig it was not recorded with is refused, since a mislabelled rig would report a false robustness.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from ssl_robot.train.report import ReportRow


BAGS_LABEL = 'bags'
"""The label of the --bag bags when their episodes do not name one rig."""


def rig_name(rig: str) -> str:
    """The name a rig is known by: sim/rigs/NAME.yaml, or a rig file given as a path, is NAME."""
    return Path(rig).stem if rig.endswith('.yaml') or '/' in rig else rig


def recorded_rig_label(recorded: Sequence[str]) -> str:
    """The label of the --bag group: the one rig its episodes were recorded with, else BAGS_LABEL."""
    names = sorted({rig_name(rig) for rig in recorded if rig})
    return names[0] if len(names) == 1 else BAGS_LABEL


def recorded_rig_problem(name: str, bags: Sequence[Path], recorded: Sequence[str]) -> str | None:
    """What is wrong with bags given as rig `name` whose episodes name the rigs recorded, if anything: another rig
    (bags that name none pass)."""
    others = sorted({rig_name(rig) for rig in recorded if rig} - {rig_name(name)})
    if not others:
        return None
    return f'--rig {name}={",".join(map(str, bags))}: the bags were recorded with rig {", ".join(others)}, not {name}'



def _plot_label(label: str) -> str:
    return re.sub(r'[^A-Za-z0-9_-]+', '_', label)


def side_by_side(evaluations: Mapping[str, tuple[list[ReportRow], dict[str, Figure], dict[str, Any]]]
                 ) -> tuple[list[ReportRow], dict[str, Figure], dict[str, Any]]:
    """The rows, plots and meta of one report from {rig label: (rows, plots, meta)}, the first the --bag group:
    each metric as 'METRIC [LABEL]' once per rig, adjacent; the first group's plots under their own names, the others'
    as NAME-LABEL; meta {LABEL: meta} under 'rigs'."""
    metrics = list(dict.fromkeys(row.metric for rows, _, _ in evaluations.values() for row in rows))
    by_metric = {label: {row.metric: row for row in rows} for label, (rows, _, _) in evaluations.items()}
    rows = [ReportRow(f'{metric} [{label}]', row.values, row.lower_is_better, row.note, row.intervals,
                      row.interval_units)
            for metric in metrics for label, found in by_metric.items() if (row := found.get(metric))]
    first = next(iter(evaluations))
    plots = {name if label == first else f'{name}-{_plot_label(label)}': figure
             for label, (_, figures, _) in evaluations.items() for name, figure in figures.items()}
    return rows, plots, {'rigs': {label: meta for label, (_, _, meta) in evaluations.items()}}
