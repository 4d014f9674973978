"""The node parameter dataclasses (ssl_robot/params/): every field documented, defaults valid, bad values refused by
name, and the params files in config/ setting only parameters that their node declares."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest
import yaml

from ssl_robot.params.diagnostics_monitor import DiagnosticsMonitorParams
from ssl_robot.params.embedding import EmbeddingParams
from ssl_robot.params.goal import GoalParams
from ssl_robot.params.goal_sequence import GoalSequenceParams
from ssl_robot.params.grasp2vec import Grasp2VecParams
from ssl_robot.params.policy import PolicyParams
from ssl_robot.params.recorder import RecorderParams
from ssl_robot.params.reward import RewardParams
from ssl_robot.params.sim import SimParams
from ssl_robot.ros.parameters import field_docs

REPOSITORY = Path(__file__).resolve().parent.parent
CONFIG = REPOSITORY / 'config'
# Node params file -> the dataclass of its node, and whether the node also reads config/models.yaml.
NODES = {
    'diagnostics_monitor.yaml': (DiagnosticsMonitorParams, False),
    'embedding.yaml': (EmbeddingParams, True),
    'goal.yaml': (GoalParams, True),
    'goal_sequence.yaml': (GoalSequenceParams, False),
    'grasp2vec.yaml': (Grasp2VecParams, True),
    'policy.yaml': (PolicyParams, False),
    'recorder.yaml': (RecorderParams, False),
    'reward.yaml': (RewardParams, False),
    'sim.yaml': (SimParams, False),
}


def readme_parameter_tables() -> dict[str, set[str]]:
    """The parameter names in each README node section that has a parameter table, by params file."""
    text = (REPOSITORY / 'README.md').read_text()
    tables = {}
    for section in re.finditer(r'^### `\w+` \(node name `\w+`, parameters `config/(\w+\.yaml)`.*?$(.*?)(?=^##)', text,
                               re.S | re.M):
        rows = re.findall(r'^\| (.*?) \|', section.group(2), re.M)
        if rows and rows[0] == 'parameter':
            tables[section.group(1)] = {name for row in rows[2:] for name in re.findall(r'`(\w+)`', row)}
    return tables


def file_values(name: str) -> dict:
    return yaml.safe_load((CONFIG / name).read_text())['/**']['ros__parameters'] or {}


@pytest.mark.parametrize('params_class', [c for c, _ in NODES.values()], ids=lambda c: c.__name__)
def test_every_parameter_has_a_description_and_valid_defaults(params_class):
    docs = field_docs(params_class)
    assert set(docs) >= {f.name for f in dataclasses.fields(params_class)}
    assert all(docs.values())
    params_class()


@pytest.mark.parametrize('file_name', sorted(NODES))
def test_a_params_file_sets_only_parameters_its_node_declares_and_they_are_valid(file_name):
    params_class, reads_models = NODES[file_name]
    fields = {f.name for f in dataclasses.fields(params_class)}
    values = file_values(file_name)
    if reads_models:
        values.update({k: v for k, v in file_values('models.yaml').items() if k in fields})
    assert set(values) <= fields, sorted(set(values) - fields)
    params_class(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})


def test_models_yaml_sets_only_parameters_of_the_nodes_that_run_a_model():
    declared = set().union(*({f.name for f in dataclasses.fields(c)} for c, models in NODES.values() if models))
    assert set(file_values('models.yaml')) <= declared


def test_field_docs_read_the_docstring_under_each_field_through_the_bases():
    docs = field_docs(EmbeddingParams)
    assert docs['demo_bag'] == ('bag of the imitation demonstration, embedded and latched on /embeddings/demo; '
                                'empty = no demo')
    assert docs['reload_check_period_s'] == 'how often the checkpoint file is checked for a new version'


def test_a_field_without_a_docstring_is_refused_by_name():
    @dataclasses.dataclass(frozen=True)
    class Undocumented:
        documented: int = 1
        """described"""
        bare: int = 2

    with pytest.raises(TypeError, match=r"Undocumented fields \['bare'\] have no docstring"):
        field_docs(Undocumented)


@pytest.mark.parametrize('params_class, values, message', [
    (RewardParams, {'kinds': ('imitation', 'nope')},
     r"parameter kinds must list some of .*, got \['imitation', 'nope'\]"),
    (RewardParams, {'kinds': ()}, r'parameter kinds must list some of .*, got \[\]'),
    (RewardParams, {'latent_goal_scale': 0.0}, 'parameter latent_goal_scale must be a finite number > 0, got 0.0'),
    (RewardParams, {'imitation_alignment': 'closest'},
     "parameter imitation_alignment must be one of .*, got 'closest'"),
    (RewardParams, {'imitation_window': 3}, 'parameter imitation_window must be 0, or > 0 with imitation_alignment '
                                            'nearest_neighbour, got 3 with time_index'),
    (EmbeddingParams, {'torch_threads': -1}, 'parameter torch_threads must be an int >= 0 .*, got -1'),
    (EmbeddingParams, {'reload_check_period_s': float('nan')}, 'parameter reload_check_period_s must be .*, got nan'),
    (Grasp2VecParams, {'heatmap_opacity': 1.5}, r'parameter heatmap_opacity must be in \[0, 1\], got 1.5'),
    (Grasp2VecParams, {'frame_buffer_s': -1.0}, 'parameter frame_buffer_s must be a finite number > 0, got -1.0'),
    (RecorderParams, {'storage': 'zip'}, "parameter storage must be one of .*, got 'zip'"),
    (RecorderParams, {'max_duration_s': -1.0}, 'parameter max_duration_s must be a finite number >= 0.0, got -1.0'),
    (DiagnosticsMonitorParams, {'check_period_s': 0.0}, 'parameter check_period_s must be a finite number > 0'),
    (GoalSequenceParams, {'goal_positions': (0.5, 0.0)}, 'parameter goal_positions must hold x, y, z triples, got 2'),
    (GoalSequenceParams, {'ee_rpy_deg': (0.0, 180.0)}, r'parameter ee_rpy_deg must hold 3 numbers, got \[0.0, 180.0\]'),
    (GoalSequenceParams, {'reach_timeout_s': 0.0}, 'reach_timeout_s must be a finite number > 0, got 0.0'),
    (PolicyParams, {'control_hz': 0.0}, 'parameter control_hz must be a finite number > 0, got 0.0'),
    (PolicyParams, {'ee_rpy_deg': (1.0,)}, r'parameter ee_rpy_deg must hold 3 numbers, got \[1.0\]'),
    (SimParams, {'real_time_factor': -1.0}, 'parameter real_time_factor must be a finite number >= 0.0, got -1.0'),
    (SimParams, {'render_every': 0}, 'parameter render_every must be an integer >= 1, got 0'),
    (SimParams, {'render_every': True}, 'parameter render_every must be an integer >= 1, got True'),
])
def test_a_bad_value_is_refused_naming_the_parameter_and_the_value(params_class, values, message):
    with pytest.raises(ValueError, match=message):
        params_class(**values)


def test_goal_sequence_params_give_the_plan_config():
    config = GoalSequenceParams(goal_positions=(0.5, 0.0, 0.2, 0.6, 0.1, 0.2)).sequence()
    assert config.goal_positions == ((0.5, 0.0, 0.2), (0.6, 0.1, 0.2))
    assert GoalSequenceParams(reach_timeout_s=20.0).sequence().reach_timeout_s == 20.0
    assert GoalSequenceParams().sequence().goal_positions == ()


def test_every_node_params_file_has_its_dataclass():
    assert {path.name for path in CONFIG.glob('*.yaml')} - {'models.yaml'} == set(NODES)


def test_the_readme_parameter_tables_list_each_parameter_of_their_node():
    tables = readme_parameter_tables()
    assert {'sim.yaml', 'recorder.yaml', 'embedding.yaml'} <= set(tables)
    for file_name, names in tables.items():
        assert names == {f.name for f in dataclasses.fields(NODES[file_name][0])}, file_name
