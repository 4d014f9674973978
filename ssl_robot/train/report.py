"""The evaluation report of a trained model: its metrics next to the baselines', and the plots.

    OUT_DIR/report.json     method, columns, rows, meta (data used, checkpoint, run), plot files, code version
    OUT_DIR/report.md       the same as a Markdown table, for a reader
    OUT_DIR/plots/NAME.png  one file per plot

Every file is written atomically (temp file, then os.replace), plots first, so a report never names a plot that
is not there. Figures are drawn with matplotlib's Agg canvas, not pyplot, so no display is needed and nothing is
left registered in pyplot.
"""

from __future__ import annotations

import dataclasses
import datetime
import io
import json
import math
import re
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ssl_robot.atomic import write_atomic
from ssl_robot.train.run_dir import code_version, version_label
from ssl_robot.typed_config import to_plain

PNG_SIGNATURE = b'\x89PNG\r\n\x1a\n'
REQUIRED_META = ('checkpoint', 'bags')
"""A report must say which weights and which data its numbers come from."""
_PLOT_NAME = re.compile(r'[A-Za-z0-9_-][A-Za-z0-9_.-]*')
_VIEW_MARKERS = ('o', 's', '^', 'D', 'v', 'P', 'X', '*')


@dataclasses.dataclass
class ReportRow:
    """One metric: its value for the trained model and for each baseline, by column name (None: not measured), and
    the 95 % confidence interval of the values that have one, by column name ([low, high]; see
    ssl_robot.train.intervals), over interval_units (e.g. '36 episodes')."""

    metric: str
    values: dict[str, float | None]
    lower_is_better: bool
    note: str = ''
    intervals: dict[str, list[float]] = dataclasses.field(default_factory=dict)
    interval_units: str = ''

    def __post_init__(self) -> None:
        if not isinstance(self.metric, str) or not self.metric.strip():
            raise ValueError(f'ReportRow.metric must be a non-empty string, got {self.metric!r}')
        if not isinstance(self.values, Mapping) or not self.values:
            raise ValueError(f'ReportRow {self.metric!r}: values must map column names to numbers, '
                             f'got {self.values!r}')
        values: dict[str, float | None] = {}
        for column, value in self.values.items():
            if not isinstance(column, str) or not column.strip():
                raise ValueError(f'ReportRow {self.metric!r}: column names must be non-empty strings, got {column!r}')
            if value is not None:
                if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
                        or not math.isfinite(value):
                    raise ValueError(f'ReportRow {self.metric!r}: {column!r} must be a finite number or None, '
                                     f'got {value!r}')
                value = float(value)
            values[column] = value
        self.values = values
        if not isinstance(self.lower_is_better, bool):
            raise ValueError(f'ReportRow {self.metric!r}: lower_is_better must be a bool, got {self.lower_is_better!r}')
        if not isinstance(self.note, str):
            raise ValueError(f'ReportRow {self.metric!r}: note must be a string, got {self.note!r}')
        intervals = {}
        for column, bounds in self.intervals.items():
            if self.values.get(column) is None:
                raise ValueError(f'ReportRow {self.metric!r}: an interval for {column!r}, which has no value')
            low, high = (float(bound) for bound in bounds)
            if not (math.isfinite(low) and math.isfinite(high) and low <= high):
                raise ValueError(f'ReportRow {self.metric!r}: the interval of {column!r} must be finite [low, high], '
                                 f'got {bounds!r}')
            intervals[column] = [low, high]
        self.intervals = intervals
        if intervals and not self.interval_units:
            raise ValueError(f'ReportRow {self.metric!r}: intervals need interval_units, what they resample')


class ReportFiles(NamedTuple):
    json: Path
    markdown: Path
    plots: dict[str, Path]


# --- figures ------------------------------------------------------------------------------------------------

def new_figure(width: float, height: float) -> Figure:
    """A figure on an Agg canvas, outside pyplot: nothing to close, no display needed."""
    figure = Figure(figsize=(width, height), layout='constrained')
    FigureCanvasAgg(figure)
    return figure


def figure_png(figure: Figure) -> bytes:
    """The figure as PNG bytes. A figure made with pyplot is closed afterwards: pyplot keeps every figure it
    made alive until then. Only a module that already imported pyplot can have made one, hence the lookup."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format='png', dpi=100)
    pyplot = sys.modules.get('matplotlib.pyplot')
    if pyplot is not None:
        pyplot.close(figure)
    return buffer.getvalue()


def save_figure(figure: Figure, path: Path) -> Path:
    """Write the figure to path as a PNG, atomically."""
    path = Path(path)
    write_atomic(path, figure_png(figure))
    return path


def _embedding_matrix(name: str, embeddings: np.ndarray) -> np.ndarray:
    matrix = np.asarray(embeddings, dtype=np.float64)
    if matrix.ndim != 2 or 0 in matrix.shape or not np.isfinite(matrix).all():
        raise ValueError(f'embeddings of view {name!r} must be a finite, non-empty (T, D) array, '
                         f'got shape {np.shape(embeddings)}')
    return matrix


def embedding_trajectories_figure(embeddings_per_view: Mapping[str, np.ndarray], title: str = '') -> Figure:
    """All views of one episode: each view's trajectory in the first two principal components of all views'
    embeddings together (time as colour, view as marker), and, with two views or more, |e_i[t, d] - e_j[t, d]|
    per dimension d and time t, averaged over view pairs: where the views disagree and when.

    embeddings_per_view: {view name: (T, D) embeddings}, the same T and D for every view.
    """
    if not embeddings_per_view:
        raise ValueError('embeddings_per_view is empty: nothing to plot')
    views = {name: _embedding_matrix(name, embeddings) for name, embeddings in embeddings_per_view.items()}
    shapes = {name: matrix.shape for name, matrix in views.items()}
    if len(set(shapes.values())) != 1:
        raise ValueError(f'the views of an episode must have embeddings of one shape (T, D), got {shapes}')
    stacked = np.concatenate(list(views.values()))
    centred = stacked - stacked.mean(axis=0)
    _, singular_values, components = np.linalg.svd(centred, full_matrices=False)
    projected = np.zeros((len(stacked), 2))
    projected[:, :min(2, len(components))] = centred @ components[:2].T
    variance = singular_values[:2] ** 2
    explained = np.zeros(2)
    if singular_values.any():
        explained[:len(variance)] = variance / np.sum(singular_values ** 2)

    times = len(next(iter(views.values())))
    figure = new_figure(12 if len(views) > 1 else 6, 5)
    trajectory_axes, *distance_axes = figure.subplots(1, 2 if len(views) > 1 else 1, squeeze=False)[0]
    for number, (name, points) in enumerate(zip(views, np.split(projected, len(views)))):
        marker = _VIEW_MARKERS[number % len(_VIEW_MARKERS)]
        trajectory_axes.plot(points[:, 0], points[:, 1], color='0.7', linewidth=0.8, zorder=1)
        scatter = trajectory_axes.scatter(points[:, 0], points[:, 1], c=np.arange(times), cmap='viridis',
                                          marker=marker, s=22, edgecolors='k', linewidths=0.3, zorder=2,
                                          label=name)
    trajectory_axes.set_xlabel(f'PC1 ({explained[0]:.0%} of variance)')
    trajectory_axes.set_ylabel(f'PC2 ({explained[1]:.0%} of variance)')
    trajectory_axes.set_title('trajectory per view (PCA of all views)')
    trajectory_axes.legend(loc='best', fontsize='small')
    figure.colorbar(scatter, ax=trajectory_axes, label='time step')
    if distance_axes:
        matrices = list(views.values())
        differences = np.mean([np.abs(matrices[i] - matrices[j]) for i in range(len(matrices))
                               for j in range(i + 1, len(matrices))], axis=0)
        image = distance_axes[0].imshow(differences.T, aspect='auto', origin='lower', cmap='magma',
                                        interpolation='nearest')
        distance_axes[0].set_xlabel('time step')
        distance_axes[0].set_ylabel('embedding dimension')
        distance_axes[0].set_title('|difference| between views, mean over view pairs')
        figure.colorbar(image, ax=distance_axes[0])
    if title:
        figure.suptitle(title)
    return figure


def plot_embedding_trajectories(embeddings_per_view: Mapping[str, np.ndarray], path: Path,
                                title: str = '') -> Path:
    """embedding_trajectories_figure, written to path as a PNG."""
    return save_figure(embedding_trajectories_figure(embeddings_per_view, title), path)


def curves_figure(curves: Mapping[str, np.ndarray], xlabel: str, ylabel: str, title: str = '',
                  x: np.ndarray | None = None) -> Figure:
    """One line per curve, e.g. the reward along an episode for each method or goal.

    curves: {label: (T,) values}; x: (T,) shared abscissae, or None to plot each curve against its index (the
    curves may then differ in length).
    """
    if not curves:
        raise ValueError('curves is empty: nothing to plot')
    figure = new_figure(7, 4.5)
    axes = figure.subplots()
    for label, values in curves.items():
        values = np.asarray(values, dtype=np.float64)
        abscissae = np.arange(len(values)) if x is None else np.asarray(x, dtype=np.float64)
        if values.ndim != 1 or abscissae.shape != values.shape:
            raise ValueError(f'curve {label!r} must be 1-D and as long as x, got shape {values.shape} '
                             f'for x of shape {abscissae.shape}')
        axes.plot(abscissae, values, label=label)
    axes.set_xlabel(xlabel)
    axes.set_ylabel(ylabel)
    axes.grid(alpha=0.3)
    axes.legend(loc='best', fontsize='small')
    if title:
        axes.set_title(title)
    return figure


def plot_curves(curves: Mapping[str, np.ndarray], path: Path, xlabel: str, ylabel: str, title: str = '',
                x: np.ndarray | None = None) -> Path:
    """curves_figure, written to path as a PNG."""
    return save_figure(curves_figure(curves, xlabel, ylabel, title, x), path)


# --- report -------------------------------------------------------------------------------------------------

def _json_value(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return to_plain(value)
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (np.generic, np.ndarray)):
        return value.tolist()
    raise TypeError(f'{type(value).__name__} is not JSON serializable: {value!r}')


def _plain_meta(meta: Mapping[str, Any]) -> dict[str, Any]:
    missing = [key for key in REQUIRED_META if key not in meta]
    if missing:
        raise ValueError(f'report meta lacks {missing}: a report must name the checkpoint and the bags its '
                         f'numbers come from (got keys {sorted(meta)})')
    try:
        return json.loads(json.dumps(dict(meta), default=_json_value, allow_nan=False))
    except (TypeError, ValueError) as err:
        raise ValueError(f'report meta cannot be written as JSON: {err}') from err


def _columns(rows: Sequence[ReportRow]) -> list[str]:
    """Every value column, in the order the rows first name them."""
    return list(dict.fromkeys(column for row in rows for column in row.values))


def _cell(text: str) -> str:
    return ' '.join(str(text).split()).replace('|', '\\|')


def _number_cells(row: ReportRow, columns: list[str]) -> list[str]:
    """The row's values, the best one(s) in bold, each with its [low, high] 95 % interval if it has one, n/a where a
    column was not measured."""
    measured = [value for value in row.values.values() if value is not None]
    best = (min if row.lower_is_better else max)(measured, default=None)
    cells = []
    for column in columns:
        value = row.values.get(column)
        if value is None:
            cells.append('n/a')
            continue
        text = f'**{value:.4g}**' if value == best and len(measured) > 1 else f'{value:.4g}'
        if column in row.intervals:
            low, high = row.intervals[column]
            text += f' [{low:.3g}, {high:.3g}]'
        cells.append(text)
    return cells


def _meta_text(value: Any) -> str:
    if isinstance(value, list):
        return ', '.join(_meta_text(item) for item in value)
    if isinstance(value, dict):
        return json.dumps(value)
    return str(value)


def _markdown(method: str, rows: Sequence[ReportRow], meta: dict[str, Any], plots: dict[str, str],
              version: str, written_at: str) -> str:
    columns = _columns(rows)
    lines = [f'# Evaluation of {method}', '',
             'Best value of each row in bold; n/a: not measured; [low, high]: 95 % confidence interval, a bootstrap '
             'over the units the note names (n).', '',
             '| ' + ' | '.join(['metric', 'better', *map(_cell, columns), 'note']) + ' |',
             '|' + '---|---|' + '---:|' * len(columns) + '---|']
    for row in rows:
        note = f'{row.note}; 95 % CI over {row.interval_units}' if row.interval_units else row.note
        cells = [_cell(row.metric), 'lower' if row.lower_is_better else 'higher', *_number_cells(row, columns),
                 _cell(note)]
        lines.append('| ' + ' | '.join(cells) + ' |')
    lines += ['', '## Data and provenance', '']
    lines += [f'- {key}: {_meta_text(value)}' for key, value in meta.items()]
    lines += [f'- code: {version}', f'- written: {written_at}']
    if plots:
        lines += ['', '## Plots']
        for name, relative in plots.items():
            lines += ['', f'### {name}', '', f'![{name}]({relative})']
    return '\n'.join(lines) + '\n'


def _plot_png(name: str, plot: Figure | str | Path) -> bytes:
    if isinstance(plot, Figure):
        return figure_png(plot)
    path = Path(plot)
    try:
        data = path.read_bytes()
    except OSError as err:
        raise ValueError(f'plot {name!r}: cannot read {path}: {err.strerror}') from err
    if not data.startswith(PNG_SIGNATURE):
        raise ValueError(f'plot {name!r}: {path} is not a PNG file')
    return data


def write_report(out_dir: Path, method: str, rows: Sequence[ReportRow], plots: Mapping[str, Figure | str | Path],
                 meta: Mapping[str, Any]) -> ReportFiles:
    """Write report.json, report.md and plots/NAME.png into out_dir (created if needed).

    rows: the metrics, one ReportRow each, distinct names; the table's columns are the value names in the order
    the rows first use them (e.g. trained, random encoder, raw pixels, single-view TCN, chance).
    plots: {name: a matplotlib Figure, or the path of a PNG file}; names are file names without .png.
    meta: the data used and where the model came from, JSON-serializable (Paths, NumPy values and dataclasses
    are converted); must hold REQUIRED_META, e.g. {'checkpoint': ..., 'run': ..., 'bags': [...],
    'episodes': 12, 'samples': 3400}. The code version and the time of writing are added.
    """
    if not isinstance(method, str) or not method.strip():
        raise ValueError(f'method must be a non-empty string, got {method!r}')
    if not rows:
        raise ValueError('a report needs at least one ReportRow')
    names = [row.metric for row in rows]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ValueError(f'report rows must name distinct metrics; repeated: {repeated}')
    bad_names = [name for name in plots if not isinstance(name, str) or not _PLOT_NAME.fullmatch(name)]
    if bad_names:
        raise ValueError(f'plot names must be file names of letters, digits, _, - and . (not starting with .), '
                         f'got {bad_names}')
    plain_meta = _plain_meta(meta)
    out_dir = Path(out_dir)
    plot_dir = out_dir / 'plots'
    plot_dir.mkdir(parents=True, exist_ok=True)

    plot_files = {}
    for name, plot in plots.items():
        plot_files[name] = plot_dir / f'{name}.png'
        write_atomic(plot_files[name], _plot_png(name, plot))
    relative_plots = {name: path.relative_to(out_dir).as_posix() for name, path in plot_files.items()}

    version = code_version()
    written_at = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds')
    report = {'method': method, 'columns': _columns(rows), 'rows': [dataclasses.asdict(row) for row in rows],
              'meta': plain_meta, 'plots': relative_plots, 'code_version': version, 'written_at': written_at}
    json_path, markdown_path = out_dir / 'report.json', out_dir / 'report.md'
    write_atomic(json_path, (json.dumps(report, indent=2, allow_nan=False) + '\n').encode())
    write_atomic(markdown_path, _markdown(method, rows, plain_meta, relative_plots, version_label(version),
                                          written_at).encode())
    return ReportFiles(json_path, markdown_path, plot_files)
