"""The shipped launch/*.launch.xml files hold up under the real `ros2 launch` as well as `ssl-robot launch`:
every value they take is checked where it is declared, before anything starts. Read with the project's
reader (ssl_robot.ros.launch_xml); no process is started."""

from __future__ import annotations

import re
from pathlib import Path
from xml.etree import ElementTree

import pytest

from ssl_robot.ros.launch_xml import LaunchFileError, load_launch_file

REPOSITORY = Path(__file__).resolve().parent.parent
LAUNCH = REPOSITORY / 'launch'
LAUNCH_FILES = sorted(LAUNCH.glob('*.launch.xml'))
_CONDITION_VARIABLE = re.compile(r'\$\(var (\w+)\)')


@pytest.fixture(autouse=True)
def repository_share(monkeypatch) -> None:
    monkeypatch.setenv('SSL_ROBOT_SHARE', str(REPOSITORY))


def boolean_arguments(path: Path) -> dict[str, ElementTree.Element]:
    """The <arg>s of a file that hold a boolean: a true/false default, or read by an if/unless condition or as
    use_sim_time."""
    root = ElementTree.parse(path).getroot()
    read_as_boolean = {name for element in root.iter() for attribute in ('if', 'unless')
                       for name in _CONDITION_VARIABLE.findall(element.attrib.get(attribute, ''))}
    return {arg.attrib['name']: arg for arg in root.findall('arg')
            if arg.attrib.get('default') in ('true', 'false') or arg.attrib['name'] in read_as_boolean
            or arg.attrib['name'] == 'use_sim_time'}


@pytest.mark.parametrize('path', LAUNCH_FILES, ids=lambda p: p.name)
def test_every_boolean_argument_declares_true_and_false_as_its_only_choices(path):
    """ros2 launch checks choices when the <arg> is declared; a condition only fails when it is evaluated,
    after the nodes before it have started."""
    for name, arg in boolean_arguments(path).items():
        assert [choice.attrib['value'] for choice in arg.findall('choice')] == ['true', 'false'], (path.name, name)


def test_sim_launch_has_boolean_arguments_to_check():
    assert {'record', 'learning'} <= set(boolean_arguments(LAUNCH / 'sim.launch.xml'))


def test_a_bad_boolean_is_refused_at_its_declaration_naming_the_argument_value_and_choices():
    sim = LAUNCH / 'sim.launch.xml'
    line = next(number for number, text in enumerate(sim.read_text().splitlines(), 1) if '<arg name="record"' in text)
    with pytest.raises(LaunchFileError) as error:
        load_launch_file(sim, {'record': 'yes'})
    assert str(error.value).startswith(f'{sim}:{line}: ')
    assert "'record' is 'yes', which is not one of its choices: true, false" in str(error.value)


def test_a_default_outside_the_choices_is_an_error_naming_file_and_line(tmp_path):
    path = tmp_path / 'bad.launch.xml'
    path.write_text('<launch>\n<arg name="record" default="no"><choice value="true"/><choice value="false"/></arg>\n'
                    '</launch>\n')
    with pytest.raises(LaunchFileError, match=f"{path}:2: .*default 'no' is not one of its choices: true, false"):
        load_launch_file(path, {})


@pytest.mark.parametrize('name', ['sim.launch.xml', 'robot.launch.xml', 'main_job.launch.xml'])
def test_the_launch_files_give_every_node_the_shared_memory_dds_profile(monkeypatch, name):
    """Set by the files themselves (<set_env>), so the real `ros2 launch` applies it too; a profile the user
    has already chosen (the environment variable) is kept."""
    monkeypatch.delenv('FASTDDS_DEFAULT_PROFILES_FILE', raising=False)
    nodes = load_launch_file(LAUNCH / name, {}).nodes
    shipped = str(REPOSITORY / 'config' / 'fastdds_shm.xml')
    assert nodes and all(node.env.get('FASTDDS_DEFAULT_PROFILES_FILE') == shipped for node in nodes), \
        {node.name: node.env.get('FASTDDS_DEFAULT_PROFILES_FILE') for node in nodes}
    monkeypatch.setenv('FASTDDS_DEFAULT_PROFILES_FILE', '/mine.xml')
    nodes = load_launch_file(LAUNCH / name, {}).nodes
    assert all(node.env['FASTDDS_DEFAULT_PROFILES_FILE'] == '/mine.xml' for node in nodes)


def test_the_learning_nodes_respawn_and_the_others_do_not():
    """A dead learning node would otherwise go unnoticed while the sim keeps running; the recorder must not
    start a second bag and the goal reacher's exit ends the demo."""
    nodes = {node.name: node for node in load_launch_file(LAUNCH / 'main_job.launch.xml', {}).nodes}
    respawning = {name for name, node in nodes.items() if node.respawn}
    assert respawning == {'embedding', 'reward', 'grasp2vec', 'goal'}
    assert all(nodes[name].respawn_delay > 0 for name in respawning)


CHECKPOINT_PARAMETERS = {  # launch argument -> {node: parameter}
    'embedding_checkpoint': {'embedding': 'embedding_checkpoint'},
    'vae_checkpoint': {'goal': 'vae_checkpoint'},
    'grasp2vec_checkpoint': {'grasp2vec': 'grasp2vec_checkpoint'},
}


def parameter(node, name: str) -> str | None:
    """The value a node's command line gives `name` last (the one that wins), or None."""
    values = [group[name] for group in node.parameters if isinstance(group, dict) and name in group]
    return values[-1] if values else None


@pytest.mark.parametrize('name', ['sim.launch.xml', 'robot.launch.xml', 'main_job.launch.xml'])
def test_custom_checkpoints_are_launch_arguments_that_reach_every_node_using_them(name):
    """One argument per model, given to every node that runs the model, so that they cannot disagree."""
    given = {argument: f'/models/{argument} x.safetensors' for argument in CHECKPOINT_PARAMETERS}
    nodes = {node.name: node for node in load_launch_file(LAUNCH / name, given).nodes}
    for argument, parameters in CHECKPOINT_PARAMETERS.items():
        for node_name, parameter_name in parameters.items():
            # Quoted, so that rcl and launch_ros read a string whatever the path looks like.
            assert parameter(nodes[node_name], parameter_name) == f"'{given[argument]}'", (argument, node_name)


def test_checkpoints_default_to_the_shipped_ones():
    """An empty string is what the nodes' config files mean by "the shipped checkpoint"."""
    nodes = {node.name: node for node in load_launch_file(LAUNCH / 'sim.launch.xml', {}).nodes}
    for parameters in CHECKPOINT_PARAMETERS.values():
        for node_name, parameter_name in parameters.items():
            assert parameter(nodes[node_name], parameter_name) == "''"


def test_robot_launch_runs_the_policy_node_disabled_on_the_system_clock():
    """On a robot the policy sends nothing until /policy/enable says true, whatever config/policy.yaml says: the
    launch file's own `enabled` comes after the params file, so it wins."""
    nodes = {node.name: node for node in load_launch_file(LAUNCH / 'robot.launch.xml', {}).nodes}
    policy = nodes['policy']
    assert policy.executable == 'policy_node'
    assert policy.parameters[0] == REPOSITORY / 'config' / 'policy.yaml'
    assert parameter(policy, 'enabled') == 'false' and parameter(policy, 'use_sim_time') == 'false'
    assert parameter(policy, 'checkpoint') == "''"  # the shipped reach policy
    given = load_launch_file(LAUNCH / 'robot.launch.xml', {'policy_checkpoint': '/p/my policy.safetensors',
                                                           'vae_method': 'betavae', 'goal_camera': '/cam/task'}).nodes
    nodes = {node.name: node for node in given}
    assert parameter(nodes['policy'], 'checkpoint') == "'/p/my policy.safetensors'"
    assert parameter(nodes['goal'], 'vae_method') == 'betavae' and parameter(nodes['goal'], 'camera') == '/cam/task'
