"""End to end through the command line: sim bags made here -> `ssl-robot train` -> `ssl-robot eval`.

Tiny on purpose (a few episodes, a few steps, small images): it proves the pieces fit, not that
training helps; the figures that show that come from the default checkpoints (README)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from ssl_robot.apps.collect import collect

pytestmark = pytest.mark.slow

SMALL = ['--set', 'steps=3', '--set', 'batch_size=8', '--set', 'data.episodes_per_batch=2', '--set', 'num_workers=0',
         '--set', 'log_every=1', '--set', 'model.image_size=32', '--set', 'model.encoder_widths=[8, 16, 16]']


def ssl_robot(*args: str) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, '-m', 'ssl_robot.cli', *args], capture_output=True, text=True)
    assert result.returncode == 0, (f'ssl-robot {" ".join(args)} failed:\n{result.stdout[-2000:]}\n'
                                    f'{result.stderr[-3000:]}')
    return result


@pytest.fixture(scope='module')
def motion_bags(tmp_path_factory):
    root = tmp_path_factory.mktemp('bags')
    quiet = dict(progress=lambda _: None, image_size=(48, 48), record_every=2)
    collect('motion', 2, root / 'train', seed=0, **quiet)
    collect('motion', 2, root / 'held_out', seed=100, **quiet)
    return root / 'train', root / 'held_out'


@pytest.mark.parametrize('method, extra', [
    ('tcn', ['--set', 'model.negative_window=3']),
    ('ccvae', []),
])
def test_train_then_eval_from_sim_bags(motion_bags, tmp_path, method, extra):
    train_bag, held_out = motion_bags
    run = tmp_path / method
    ssl_robot('train', method, '--bag', str(train_bag), '--out', str(run), *SMALL, *extra)
    assert (run / 'config.yaml').is_file() and (run / 'version.json').is_file()
    assert list((run / 'checkpoints').glob('step_*/model.safetensors'))
    ssl_robot('eval', str(run), '--bag', str(held_out))
    report = json.loads((run / 'eval' / 'report.json').read_text())
    assert report['method'] == method
    rows = {row['metric']: row['values'] for row in report['rows']}
    assert rows, report
    for values in rows.values():
        assert values['trained'] is not None
    assert (run / 'eval' / 'report.md').read_text().count('|') > 10
    assert list((run / 'eval' / 'plots').glob('*.png'))
