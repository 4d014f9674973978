"""The evaluation report: files written and parseable, the table as a reader sees it, valid PNG plots."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from matplotlib.figure import Figure

from ssl_robot.train.report import (PNG_SIGNATURE, ReportRow, curves_figure, plot_curves,
                                    plot_embedding_trajectories, write_report)

META = {'checkpoint': Path('runs/tcn/checkpoints/step_000001000'), 'run': 'runs/tcn',
        'bags': [Path('bags/a.mcap'), Path('bags/b.mcap')], 'episodes': np.int64(12), 'samples': 3400}


def rows() -> list[ReportRow]:
    return [
        ReportRow('alignment error', {'trained': 0.0812, 'random encoder': 0.31, 'single-view TCN': 0.12,
                                      'chance': 0.333}, lower_is_better=True, note='3 views, all ordered pairs'),
        ReportRow('k-NN error: gripper_closed', {'trained': 0.05, 'raw pixels': 0.2, 'chance': 0.41},
                  lower_is_better=True),
        ReportRow('retrieval top-1', {'trained': np.float32(0.75), 'random encoder': None, 'chance': 0.125},
                  lower_is_better=False, note='batches of 8 | 40 grasps'),
    ]


def assert_png(path: Path) -> None:
    data = path.read_bytes()
    assert data.startswith(PNG_SIGNATURE)
    assert len(data) > 2000, f'{path} is only {len(data)} bytes'


def trajectory(times: int, dims: int, shift: float) -> np.ndarray:
    t = np.linspace(0, 2 * np.pi, times)[:, None]
    return np.sin(t * np.arange(1, dims + 1) + shift)


def test_report_json_holds_rows_meta_and_plots(tmp_path):
    figure = curves_figure({'trained': np.linspace(-1, 0, 20)}, 'step', 'reward')
    files = write_report(tmp_path / 'eval', 'tcn', rows(), {'reward': figure}, META)
    report = json.loads(files.json.read_text())
    assert report['method'] == 'tcn'
    assert report['columns'] == ['trained', 'random encoder', 'single-view TCN', 'chance', 'raw pixels']
    assert report['rows'][2] == {'metric': 'retrieval top-1', 'values': {'trained': 0.75, 'random encoder': None,
                                                                           'chance': 0.125},
                                 'lower_is_better': False, 'note': 'batches of 8 | 40 grasps', 'intervals': {},
                                 'interval_units': ''}
    assert report['meta'] == {'checkpoint': 'runs/tcn/checkpoints/step_000001000', 'run': 'runs/tcn',
                              'bags': ['bags/a.mcap', 'bags/b.mcap'], 'episodes': 12, 'samples': 3400}
    assert report['plots'] == {'reward': 'plots/reward.png'}
    assert set(report['code_version']) >= {'package_version', 'git_commit'}
    assert_png(tmp_path / 'eval' / 'plots' / 'reward.png')
    assert not [p for p in (tmp_path / 'eval').rglob('*.tmp')]


def test_report_markdown_table_shows_each_metric_against_its_baselines(tmp_path):
    files = write_report(tmp_path, 'tcn', rows(), {}, META)
    text = files.markdown.read_text()
    lines = text.splitlines()
    assert '| metric | better | trained | random encoder | single-view TCN | chance | raw pixels | note |' in lines
    # Lower is better: the trained model's 0.0812 is the best of its row.
    assert ('| alignment error | lower | **0.0812** | 0.31 | 0.12 | 0.333 | n/a | 3 views, all ordered pairs |'
            in lines)
    assert '| k-NN error: gripper_closed | lower | **0.05** | n/a | n/a | 0.41 | 0.2 |  |' in lines
    # A '|' in a note must not open a new column.
    assert ('| retrieval top-1 | higher | **0.75** | n/a | n/a | 0.125 | n/a | batches of 8 \\| 40 grasps |'
            in lines)
    assert '- checkpoint: runs/tcn/checkpoints/step_000001000' in lines
    assert '- bags: bags/a.mcap, bags/b.mcap' in lines
    assert '- episodes: 12' in lines
    assert any(line.startswith('- code: ') for line in lines)


def test_report_closes_pyplot_figures_it_writes(tmp_path):
    import matplotlib
    matplotlib.use('Agg')
    from matplotlib import pyplot
    figure = pyplot.figure()
    figure.gca().plot([0, 1], [1, 0])
    write_report(tmp_path, 'tcn', rows(), {'line': figure}, META)
    assert not pyplot.fignum_exists(figure.number)
    assert_png(tmp_path / 'plots' / 'line.png')


def test_report_copies_png_files_and_links_them(tmp_path):
    source = plot_curves({'a': [0, 1, 3], 'b': [2, 2, 1]}, tmp_path / 'curves.png', 'step', 'reward')
    files = write_report(tmp_path / 'eval', 'grasp2vec', rows(), {'rewards': source}, META)
    assert files.plots['rewards'].read_bytes() == source.read_bytes()
    assert '![rewards](plots/rewards.png)' in files.markdown.read_text().splitlines()


def test_report_rewrite_replaces_the_files(tmp_path):
    write_report(tmp_path, 'tcn', rows(), {}, META)
    files = write_report(tmp_path, 'tcn', rows()[:1], {}, META)
    assert len(json.loads(files.json.read_text())['rows']) == 1
    assert 'gripper_closed' not in files.markdown.read_text()


@pytest.mark.parametrize('meta, message', [
    ({'bags': []}, r"lacks \['checkpoint'\]"),
    ({**META, 'model': object()}, 'cannot be written as JSON'),
    ({**META, 'loss': float('nan')}, 'cannot be written as JSON'),
])
def test_report_refuses_meta_that_does_not_say_where_numbers_come_from(tmp_path, meta, message):
    with pytest.raises(ValueError, match=message):
        write_report(tmp_path, 'tcn', rows(), {}, meta)
    assert not (tmp_path / 'report.json').exists()


def test_report_refuses_bad_rows_and_plots(tmp_path):
    with pytest.raises(ValueError, match=r"repeated: \['alignment error'\]"):
        write_report(tmp_path, 'tcn', rows() + rows()[:1], {}, META)
    with pytest.raises(ValueError, match=r"plot names must be file names .* got \['../escape'\]"):
        write_report(tmp_path, 'tcn', rows(), {'../escape': Figure()}, META)
    not_png = tmp_path / 'plot.png'
    not_png.write_text('hello')
    with pytest.raises(ValueError, match="plot 'p': .*plot.png is not a PNG file"):
        write_report(tmp_path, 'tcn', rows(), {'p': not_png}, META)
    with pytest.raises(ValueError, match="plot 'q': cannot read"):
        write_report(tmp_path, 'tcn', rows(), {'q': tmp_path / 'missing.png'}, META)


@pytest.mark.parametrize('values, message', [
    ({'trained': float('nan')}, "'trained' must be a finite number or None"),
    ({'trained': '0.5'}, "'trained' must be a finite number or None"),
    ({}, 'values must map column names to numbers'),
])
def test_report_row_refuses_bad_values(values, message):
    with pytest.raises(ValueError, match=message):
        ReportRow('alignment error', values, lower_is_better=True)


def test_confidence_intervals_sit_beside_their_values_and_the_note_names_their_units(tmp_path):
    row = ReportRow('alignment error', {'trained': 0.134, 'random encoder': 0.32, 'chance': 0.333},
                    lower_is_better=True, note='3 views', intervals={'trained': (0.12, 0.151)},
                    interval_units='36 episodes')
    files = write_report(tmp_path, 'tcn', [row], {}, META)

    assert ('| alignment error | lower | **0.134** [0.12, 0.151] | 0.32 | 0.333 | 3 views; 95 % CI over 36 '
            'episodes |' in files.markdown.read_text().splitlines())
    saved = json.loads(files.json.read_text())['rows'][0]
    assert saved['intervals'] == {'trained': [0.12, 0.151]} and saved['interval_units'] == '36 episodes'


@pytest.mark.parametrize('intervals, units, message', [
    ({'chance': (0.1, 0.2)}, 'episodes', "an interval for 'chance', which has no value"),
    ({'trained': (0.3, 0.2)}, 'episodes', "the interval of 'trained' must be finite"),
    ({'trained': (0.1, float('inf'))}, 'episodes', "the interval of 'trained' must be finite"),
    ({'trained': (0.1, 0.2)}, '', 'intervals need interval_units'),
])
def test_report_row_refuses_bad_intervals(intervals, units, message):
    with pytest.raises(ValueError, match=message):
        ReportRow('alignment error', {'trained': 0.15, 'chance': None}, lower_is_better=True, intervals=intervals,
                  interval_units=units)


def test_embedding_trajectories_plot_is_a_png(tmp_path):
    views = {'left': trajectory(40, 8, 0.0), 'right': trajectory(40, 8, 0.3), 'top': trajectory(40, 8, 0.6)}
    assert_png(plot_embedding_trajectories(views, tmp_path / 'episode_3.png', title='episode 3'))
    # One view (no distance panel) and one dimension (a single principal component) draw too.
    assert_png(plot_embedding_trajectories({'left': trajectory(10, 1, 0.0)}, tmp_path / 'one.png'))


def test_embedding_trajectories_refuse_views_of_different_shapes(tmp_path):
    with pytest.raises(ValueError, match='one shape'):
        plot_embedding_trajectories({'left': np.zeros((5, 2)), 'right': np.zeros((6, 2))}, tmp_path / 'x.png')
    with pytest.raises(ValueError, match="view 'left' must be a finite"):
        plot_embedding_trajectories({'left': np.full((5, 2), np.inf)}, tmp_path / 'x.png')


def test_curves_plot_is_a_png_and_checks_lengths(tmp_path):
    assert_png(plot_curves({'trained': np.linspace(0, 1, 30), 'random': np.zeros(30)}, tmp_path / 'r.png',
                           'time step', 'reward', x=np.arange(30) * 0.1))
    with pytest.raises(ValueError, match="curve 'short' must be 1-D and as long as x"):
        curves_figure({'short': np.zeros(3)}, 'step', 'reward', x=np.arange(4))
