"""The pip-only launch runner: launch XML parsing and evaluation (ssl_robot.ros.launch_xml) and process
supervision (ssl_robot.ros.launch_runner), with test/data/launch/dummy_node.py standing in for the node
executables. No ROS node is created."""

from __future__ import annotations

import argparse
import io
import os
import signal
import subprocess
import sys
from importlib.metadata import PackageNotFoundError
from pathlib import Path

import pytest
import yaml

from launch_harness import dummy_nodes  # noqa: F401  (a fixture)
from launch_harness import DATA, WAIT_S, dummy_entry_points, load, shutdown_when, wait_until, write_launch
from ssl_robot.ros import launch_runner
from ssl_robot.ros.launch_runner import (DDS_PROFILE_ENV, LaunchError, find_launch_file, node_command,
                                         node_entry_points, node_environment_changes)
from ssl_robot.ros.launch_xml import LaunchFileError, declared_arguments, load_launch_file, parse_launch_arguments

SHARE = DATA / 'share'
SIM = SHARE / 'launch' / 'sim.launch.xml'


@pytest.fixture(autouse=True)
def fixture_share(monkeypatch) -> None:
    """$(find-pkg-share ssl_robot) and launch NAMEs resolve into test/data/launch/share."""
    monkeypatch.setenv('SSL_ROBOT_SHARE', str(SHARE))


# ---------------------------------------------------------------------------------------------
# Parsing and evaluation

def test_sim_fixture_gives_node_with_global_params_file_param_and_remap():
    sim, = load_launch_file(SIM, {}).nodes
    assert (sim.package, sim.executable, sim.name, sim.namespace, sim.output) == \
        ('ssl_robot', 'sim_node', 'sim', None, 'screen')
    assert sim.parameters == ({'use_sim_time': 'true'}, SHARE / 'config' / 'sim.yaml', {'camera_rig': 'default'})
    assert sim.remappings == (('/cameras/cam0/image', '/robot/cam0/image_raw'),)


def test_command_line_arguments_follow_launch_ros_order():
    nodes = load_launch_file(SIM, {'record': 'true', 'use_sim_time': 'false'}).nodes
    assert nodes[0].command_arguments() == [
        '--ros-args', '-r', '__node:=sim', '-p', 'use_sim_time:=false',
        '--params-file', str(SHARE / 'config' / 'sim.yaml'), '-p', 'camera_rig:=default',
        '-r', '/cameras/cam0/image:=/robot/cam0/image_raw']
    assert nodes[1].command_arguments() == [
        '--ros-args', '-r', '__node:=recorder', '-r', '__ns:=/rec', '-p', 'use_sim_time:=false',
        '-p', 'topics:=/robot/cam0/image_raw', '-p', 'output_dir:=/tmp/bags']


def test_node_args_and_ros_args_come_before_the_generated_ros_arguments(tmp_path):
    node, = load(tmp_path, '<node pkg="ssl_robot" exec="talker" args="--rate 5" ros_args="--log-level debug"/>')
    assert node.command_arguments() == ['--rate', '5', '--ros-args', '--log-level', 'debug', '--ros-args']


def test_conditional_include_runs_in_pushed_namespace_with_given_args(monkeypatch):
    monkeypatch.setenv('BAG_ROOT', '/data')
    assert [n.name for n in load_launch_file(SIM, {}).nodes] == ['sim']
    recorder = load_launch_file(SIM, {'record': 'True'}).nodes[1]
    assert recorder.namespace == '/rec'
    assert recorder.parameters[1:] == ({'topics': '/robot/cam0/image_raw'}, {'output_dir': '/data/bags'})


@pytest.mark.parametrize('value, started', [('true', True), ('TRUE', True), ('1', True),
                                            ('false', False), ('False', False), ('0', False)])
def test_if_and_unless_take_true_false_1_0_in_any_case(tmp_path, value, started):
    nodes = load(tmp_path, f'''
        <node pkg="ssl_robot" exec="talker" name="when" if="{value}"/>
        <node pkg="ssl_robot" exec="talker" name="otherwise" unless="{value}"/>''')
    assert [n.name for n in nodes] == (['when'] if started else ['otherwise'])


def test_condition_that_is_not_a_boolean_is_an_error(tmp_path):
    with pytest.raises(LaunchFileError, match=r'test.launch.xml:3: .*\'yes\' is not a boolean'):
        load(tmp_path, '<arg name="gui" default="yes"/>\n<node pkg="ssl_robot" exec="talker" if="$(var gui)"/>')


def test_group_scopes_set_parameter_namespace_let_and_set_env(tmp_path):
    inside, outside = load(tmp_path, '''
        <group>
          <set_parameter name="rate" value="10"/>
          <push_ros_namespace namespace="robot"/>
          <let name="label" value="in"/>
          <set_env name="MODE" value="fast"/>
          <node pkg="ssl_robot" exec="talker" name="$(var label)"/>
        </group>
        <let name="label" value="out"/>
        <node pkg="ssl_robot" exec="talker" name="$(var label)"/>''')
    assert (inside.name, inside.namespace, inside.parameters, inside.env) == \
        ('in', '/robot', ({'rate': '10'},), {'MODE': 'fast'})
    assert (outside.name, outside.namespace, outside.parameters, outside.env) == ('out', None, (), {})


def test_unscoped_group_leaks_its_settings(tmp_path):
    node, = load(tmp_path, '''
        <group scoped="false"><push_ros_namespace namespace="robot"/></group>
        <node pkg="ssl_robot" exec="talker"/>''')
    assert node.namespace == '/robot'


def test_set_parameter_applies_only_to_following_nodes_and_comes_before_node_params(tmp_path):
    before, after = load(tmp_path, '''
        <node pkg="ssl_robot" exec="talker" name="before"/>
        <set_parameter name="use_sim_time" value="true"/>
        <node pkg="ssl_robot" exec="talker" name="after"><param name="use_sim_time" value="false"/></node>''')
    assert before.parameters == ()
    assert after.parameters == ({'use_sim_time': 'true'}, {'use_sim_time': 'false'})


def test_pushed_namespaces_nest_and_absolute_node_namespace_is_kept(tmp_path):
    relative, absolute = load(tmp_path, '''
        <push-ros-namespace namespace="robot"/>
        <group>
          <push_ros_namespace namespace="arm/"/>
          <node pkg="ssl_robot" exec="talker" namespace="cam"/>
        </group>
        <node pkg="ssl_robot" exec="talker" namespace="/global"/>''')
    assert relative.namespace == '/robot/arm/cam'
    assert absolute.namespace == '/global'


def test_include_is_not_a_scope_unless_wrapped_in_a_group(tmp_path):
    write_launch(tmp_path, '<let name="from_child" value="child"/><push_ros_namespace namespace="inner"/>',
                 name='child.launch.xml')
    bare = load(tmp_path, '''
        <include file="$(dirname)/child.launch.xml"/>
        <node pkg="ssl_robot" exec="talker" name="$(var from_child)"/>''')
    assert (bare[0].name, bare[0].namespace) == ('child', '/inner')
    with pytest.raises(LaunchFileError, match="no launch argument or let named 'from_child'"):
        load(tmp_path, '''
            <group><include file="$(dirname)/child.launch.xml"/></group>
            <node pkg="ssl_robot" exec="talker" name="$(var from_child)"/>''')


def test_arg_keeps_a_value_given_on_the_command_line_and_checks_choices(tmp_path):
    body = '<arg name="rig" default="default"><choice value="default"/><choice value="stereo"/></arg>' \
           '<node pkg="ssl_robot" exec="talker" args="$(var rig)"/>'
    assert load(tmp_path, body, rig='stereo')[0].arguments == ('stereo',)
    with pytest.raises(LaunchFileError, match="'rig' is 'mono', which is not one of its choices: default, stereo"):
        load(tmp_path, body, rig='mono')


def test_substitutions_env_dirname_find_pkg_share_nested_and_quoted(tmp_path, monkeypatch):
    monkeypatch.setenv('SSL_TEST_ROOT', '/srv')
    monkeypatch.delenv('SSL_TEST_UNSET', raising=False)
    node, = load(tmp_path, '''
        <let name="pkg" value="ssl_robot"/>
        <set_env name="SSL_TEST_MODE" value="sim"/>
        <node pkg="ssl_robot" exec="talker">
          <param name="root" value="$(env SSL_TEST_ROOT)"/>
          <param name="fallback" value="$(env SSL_TEST_UNSET 'two words')"/>
          <param name="mode" value="$(env SSL_TEST_MODE)"/>
          <param name="here" value="$(dirname)"/>
          <param name="share" value="$(find-pkg-share $(var pkg))/config"/>
        </node>''')
    assert node.parameters == ({'root': '/srv'}, {'fallback': 'two words'}, {'mode': 'sim'},
                               {'here': str(tmp_path)}, {'share': f'{SHARE}/config'})


def test_nested_params_join_names_with_dots(tmp_path):
    node, = load(tmp_path, '''
        <node pkg="ssl_robot" exec="talker">
          <param name="camera">
            <param name="width" value="640"/>
            <param name="size"><param name="h" value="480"/></param>
          </param>
        </node>''')
    assert node.parameters == ({'camera.width': '640', 'camera.size.h': '480'},)


def test_args_split_like_a_shell_but_a_substitution_stays_one_argument(tmp_path):
    node, = load(tmp_path, '''
        <let name="dir" value="/tmp/with space"/>
        <node pkg="ssl_robot" exec="talker" args="--out $(var dir)/run.log --tag 'a b' -n 3"/>''')
    assert node.arguments == ('--out', '/tmp/with space/run.log', '--tag', 'a b', '-n', '3')


def test_node_env_children_add_to_set_env(tmp_path):
    node, = load(tmp_path, '''
        <set_env name="A" value="1"/>
        <node pkg="ssl_robot" exec="talker"><env name="B" value="$(env A)2"/></node>''')
    assert node.env == {'A': '1', 'B': '12'}


def test_on_exit_shutdown_marks_the_node(tmp_path):
    marked, plain = load(tmp_path, '<node pkg="ssl_robot" exec="talker" on_exit="shutdown"/>'
                                   '<node pkg="ssl_robot" exec="talker"/>')
    assert (marked.shutdown_on_exit, plain.shutdown_on_exit) == (True, False)


def test_declared_arguments_follow_includes_minus_the_args_they_pass():
    arguments = {a.name: a for a in declared_arguments(SIM)}
    assert list(arguments) == ['use_sim_time', 'rig', 'record', 'bag_dir']
    assert arguments['rig'].choices == ('default', 'stereo')
    assert arguments['bag_dir'].conditional and arguments['bag_dir'].default == '$(env BAG_ROOT /tmp)/bags'


def test_parse_launch_arguments():
    assert parse_launch_arguments(['a:=1', 'b:=x:=y', 'c:=']) == {'a': '1', 'b': 'x:=y', 'c': ''}
    with pytest.raises(LaunchFileError, match="name:=value, got 'record=true'"):
        parse_launch_arguments(['record=true'])


# -- errors: each names the file, the line where there is one, and the item

@pytest.mark.parametrize('body, message', [
    ('<arg name="x" default="1"/>\n<group if="false"><rosparam file="a.yaml"/></group>',
     r':3: <rosparam> is not supported inside <group> \(supported: arg, group'),
    ('<node pkg="ssl_robot" exec="talker" respawn="true" respawn_max_retries="3"/>',
     r':2: <node> attribute\(s\) respawn_max_retries not supported'),
    ('<node pkg="ssl_robot"/>', r':2: <node> needs attribute\(s\) exec'),
    ('<node pkg="ssl_robot" exec="talker"><param name="a" value="1" type="int"/></node>',
     r':2: <param> attribute\(s\) type not supported'),
    ('<node pkg="ssl_robot" exec="talker"><param name="a"/></node>', r':2: <param name=...> needs either value'),
    ('<node pkg="ssl_robot" exec="talker" if="true" unless="true"/>', r':2: <node> cannot have both if and unless'),
    ('<let name="x" value="$(eval 1 + 2)"/>', r':2: substitution \$\(eval \.\.\.\) is not supported'),
    ('<let name="x" value="$(command ls)"/>', r':2: substitution \$\(command \.\.\.\) is not supported'),
    ('<let name="x" value="$(var"/>', r':2: unterminated \$\(var'),
    ('<let name="x" value="$(var a b)"/>', r':2: \$\(var\) takes 1..1 argument'),
    ('<let name="x" value="$(env SSL_TEST_SURELY_UNSET)"/>', r':2: \$\(env SSL_TEST_SURELY_UNSET\): .* not set'),
    ('<node pkg="turtlesim" exec="turtlesim_node"/>', r':2: <node pkg="turtlesim">: .*need a ROS install'),
    ('<let name="x" value="$(find-pkg-share nav2_bringup)"/>', r':2: .*nav2_bringup.*need a ROS install'),
    ('<node pkg="ssl_robot" exec="talker" output="journal"/>', r':2: <node output="journal">'),
    ('<node pkg="ssl_robot" exec="talker" on_exit="restart"/>', r':2: <node on_exit="restart">'),
    ('<node pkg="ssl_robot" exec="talker" name="bad-name"/>', r":2: invalid ROS node name 'bad-name'"),
    ('<node pkg="ssl_robot" exec="talker" namespace="9lives"/>', r":2: invalid ROS namespace '/9lives'"),
    ('<node pkg="ssl_robot" exec="talker"><param from="/no/such/params.yaml"/></node>',
     r':2: parameters file /no/such/params.yaml does not exist'),
    ('<include file="other.launch.xml"/>', r":2: include path 'other.launch.xml' is relative"),
    ('<include file="$(dirname)/test.launch.xml"/>', r':2: include cycle'),
    ('<include file="/opt/ros/kilted/share/demo/launch/demo.launch.py"/>', r':2: can only include .launch.xml'),
    ('<node pkg="ssl_robot" exec="talker">\n  text\n</node>', r':2: unexpected text in <node>'),
    ('<node pkg="ssl_robot" exec="talker"', r':3: not well-formed XML'),
])
def test_unsupported_or_wrong_input_is_an_error_with_file_and_line(tmp_path, body, message):
    with pytest.raises(LaunchFileError, match=r'test\.launch\.xml' + message):
        load(tmp_path, body)


def test_missing_required_arguments_are_listed_together(tmp_path):
    path = write_launch(tmp_path, '<arg name="robot" description="Robot model"/><arg name="world"/>'
                                  '<arg name="optional" default="x"/><arg name="later" if="false"/>')
    with pytest.raises(LaunchFileError, match=r'missing required launch argument\(s\): robot \(Robot model, .*'
                                              r'test.launch.xml:2\); world \(no description') as error:
        load_launch_file(path, {})
    assert 'optional' not in str(error.value) and 'later' not in str(error.value)
    assert load_launch_file(path, {'robot': 'ur5', 'world': 'tray'}).nodes == ()


def test_undeclared_command_line_arguments_are_an_error_listing_the_declared_ones():
    with pytest.raises(LaunchFileError, match=r'launch argument\(s\) recrod not declared; '
                                              r'declared: bag_dir, record, rig, use_sim_time'):
        load_launch_file(SIM, {'recrod': 'true'})


def test_an_argument_only_an_include_passes_is_not_settable():
    with pytest.raises(LaunchFileError, match=r'topics not declared'):
        load_launch_file(SIM, {'record': 'true', 'topics': '/a'})


def test_unknown_tag_in_an_included_file_names_that_file(tmp_path):
    write_launch(tmp_path, '<executable cmd="ls"/>', name='child.launch.xml')
    with pytest.raises(LaunchFileError, match=r'child\.launch\.xml:2: <executable> is not supported'):
        load(tmp_path, '<include file="$(dirname)/child.launch.xml"/>')


# ---------------------------------------------------------------------------------------------
# From plan to command lines

def test_launch_name_resolves_in_share_and_unknown_name_lists_available(tmp_path):
    assert find_launch_file('sim') == SIM
    assert find_launch_file(str(SIM)) == SIM
    with pytest.raises(LaunchError, match="no launch file named 'simm'.*available: recorder, sim"):
        find_launch_file('simm')
    with pytest.raises(LaunchError, match='does not exist'):
        find_launch_file(str(tmp_path / 'gone.launch.xml'))


def test_entry_points_need_an_installed_distribution(monkeypatch):
    def not_installed(name):
        raise PackageNotFoundError(name)
    monkeypatch.setattr(launch_runner, 'distribution', not_installed)
    with pytest.raises(LaunchError, match=r'pip install -e \.'):
        node_entry_points()


def test_node_command_loads_the_console_script_in_a_fresh_interpreter():
    sim = load_launch_file(SIM, {}).nodes[0]
    command = node_command(sim, dummy_entry_points())
    assert command[:2] == [sys.executable, '-c']
    assert 'EntryPoint("sim_node", "dummy_node:main", "console_scripts").load()()' in command[2]
    assert command[3:] == sim.command_arguments()


def test_unknown_executable_lists_the_installed_ones(tmp_path):
    node, = load(tmp_path, '<node pkg="ssl_robot" exec="planner_node"/>')
    with pytest.raises(LaunchError, match=r'test.launch.xml:2: <node exec="planner_node">.*installed: '
                                          r'recorder_node, sim_node, talker'):
        node_command(node, dummy_entry_points())


def test_the_dds_profile_comes_from_the_launch_file_and_dds_profile_overrides_it(tmp_path):
    """One source of truth: the launch file's set_env (the shipped ones select config/fastdds_shm.xml); the runner
    adds no profile of its own, and --dds-profile replaces or removes whatever the file set."""
    profile = tmp_path / 'profile.xml'
    profile.write_text('<dds/>')
    node, = load(tmp_path, '<node pkg="ssl_robot" exec="talker"/>')
    assert node_environment_changes(node, None, {}) == {}
    assert node_environment_changes(node, None, {DDS_PROFILE_ENV: '/mine.xml'}) == {}
    with_env, = load(tmp_path, f'<set_env name="{DDS_PROFILE_ENV}" value="/launch.xml"/>'
                               '<node pkg="ssl_robot" exec="talker"/>')
    assert node_environment_changes(with_env, None, {}) == {DDS_PROFILE_ENV: '/launch.xml'}
    assert node_environment_changes(with_env, 'none', {DDS_PROFILE_ENV: '/mine.xml'}) == {DDS_PROFILE_ENV: None}
    assert node_environment_changes(with_env, str(profile), {}) == {DDS_PROFILE_ENV: str(profile)}
    with pytest.raises(LaunchError, match='--dds-profile /no/such.xml: no such file'):
        node_environment_changes(node, '/no/such.xml', {})


def parse_cli(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    launch_runner.add_launch_arguments(parser)
    return parser.parse_args(argv)


def test_print_shows_command_lines_without_running(monkeypatch, capsys):
    monkeypatch.setattr(launch_runner, 'node_entry_points', dummy_entry_points)
    assert launch_runner.run_launch(parse_cli('sim', 'record:=true', '--print', '--dds-profile', 'none')) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == ['[sim]', '[recorder]']
    assert lines[1].endswith('--ros-args -r __node:=recorder -r __ns:=/rec -p use_sim_time:=true '
                             '-p topics:=/robot/cam0/image_raw -p output_dir:=/tmp/bags')


def test_show_args_lists_defaults_descriptions_and_choices(capsys):
    assert launch_runner.run_launch(parse_cli('sim', '--show-args')) == 0
    out = capsys.readouterr().out
    assert "    'rig':\n        Camera rig under sim/rigs\n        Valid choices are: default, stereo\n" \
           "        (default: 'default')" in out
    assert "'bag_dir'" in out and "'topics'" not in out


def test_launch_file_errors_exit_with_status_2(capsys):
    assert launch_runner.run_launch(parse_cli('sim', 'recrod:=true')) == 2
    assert 'ssl-robot launch: error: ' in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------
# Supervision, with dummy_node.py as every executable

def test_requested_shutdown_sends_sigint_and_output_is_prefixed(dummy_nodes, tmp_path):
    screen, log = io.StringIO(), io.StringIO()
    supervisor = dummy_nodes(f'''
        <node pkg="ssl_robot" exec="talker" name="loud" output="screen" args="--ready-file {tmp_path}/loud"/>
        <node pkg="ssl_robot" exec="talker" name="quiet" args="--ready-file {tmp_path}/quiet"/>''', screen, log)
    shutdown_when(supervisor, lambda: (tmp_path / 'loud').exists() and (tmp_path / 'quiet').exists())
    assert supervisor.run() == 0
    shown, logged = screen.getvalue().splitlines(), log.getvalue().splitlines()
    assert '[loud] got SIGINT' in shown and '[loud] a line on stderr' in shown
    assert '[loud] got SIGINT' not in logged  # output="screen": not in the launch log
    assert '[quiet] got SIGINT' in logged and '[quiet] got SIGINT' not in shown  # output="log": stdout to the log
    assert '[quiet] a line on stderr' in shown and '[quiet] a line on stderr' in logged
    assert any(line.startswith('[loud] argv: --ready-file') and '-r __node:=loud' in line for line in shown)
    finished = [line for line in shown if 'process has finished cleanly' in line]
    assert [line.split()[1] for line in finished] == ['[loud]:', '[quiet]:']


def test_duration_elapsing_shuts_everything_down(dummy_nodes):
    screen = io.StringIO()
    supervisor = dummy_nodes('<node pkg="ssl_robot" exec="talker" output="screen"/>', screen)
    assert supervisor.run(duration=0.5) == 0
    out = screen.getvalue()
    assert 'shutting down: --duration 0.5 s elapsed' in out
    assert '[INFO] [talker]: process has finished' in out  # cleanly, or ended by SIGINT if it came very early


def test_a_node_dying_is_reported_and_the_others_keep_running(dummy_nodes, tmp_path):
    screen = io.StringIO()
    supervisor = dummy_nodes(f'''
        <node pkg="ssl_robot" exec="talker" name="crash" output="screen" args="--exit-code 3"/>
        <node pkg="ssl_robot" exec="talker" name="steady" output="screen" args="--ready-file {tmp_path}/ready"/>''',
                             screen)
    crash = supervisor.processes[0]
    shutdown_when(supervisor, lambda: crash.reported and (tmp_path / 'ready').exists())
    assert supervisor.run() == 1
    lines = screen.getvalue().splitlines()
    pid = crash.popen.pid
    died = lines.index(f'[ERROR] [crash]: process has died [pid {pid}, exit code 3]')
    assert lines.index('[INFO] [launch]: shutting down: test') > died
    assert '[steady] got SIGINT' in lines[died:]


def test_a_node_marked_on_exit_shutdown_stops_the_others(dummy_nodes, tmp_path):
    screen = io.StringIO()
    supervisor = dummy_nodes(f'''
        <node pkg="ssl_robot" exec="talker" name="steady" output="screen" args="--ready-file {tmp_path}/ready"/>
        <node pkg="ssl_robot" exec="talker" name="main" on_exit="shutdown"
              args="--wait-for {tmp_path}/ready --exit-code 0"/>''', screen)
    assert supervisor.run() == 0
    out = screen.getvalue()
    assert 'shutting down: main exited and is marked on_exit="shutdown"' in out
    assert '[steady] got SIGINT' in out


def test_a_node_ignoring_sigint_gets_sigterm_and_fails_the_run(dummy_nodes, tmp_path):
    screen = io.StringIO()
    supervisor = dummy_nodes(f'''<node pkg="ssl_robot" exec="talker" name="stubborn" output="screen"
        args="--ignore-sigint --ready-file {tmp_path}/ready"/>''', screen, grace_period=0.2)
    shutdown_when(supervisor, lambda: (tmp_path / 'ready').exists())
    assert supervisor.run() == 1
    lines = screen.getvalue().splitlines()
    assert '[stubborn] ignoring SIGINT' in lines
    assert '[WARNING] [launch]: stubborn still running, sending SIGTERM' in lines
    assert f'[ERROR] [stubborn]: process has died [pid {supervisor.processes[0].popen.pid}, exit code -15]' in lines


@pytest.mark.parametrize('stop_signal', [signal.SIGINT, signal.SIGTERM])
def test_signal_to_the_runner_is_forwarded_as_sigint(tmp_path, stop_signal):
    launch_file = write_launch(tmp_path, f'''
        <node pkg="ssl_robot" exec="sim_node" name="sim" output="screen" args="--ready-file {tmp_path}/sim"/>
        <node pkg="ssl_robot" exec="recorder_node" name="recorder" output="screen"
              args="--ready-file {tmp_path}/recorder"/>''')
    environment = {**os.environ, 'PYTHONPATH': os.pathsep.join([str(DATA), str(Path(__file__).parents[1])])}
    runner = subprocess.Popen([sys.executable, str(DATA / 'run_with_dummy_nodes.py'), str(launch_file)],
                              env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        ready = wait_until(lambda: (tmp_path / 'sim').exists() and (tmp_path / 'recorder').exists())
        runner.send_signal(stop_signal)
        out, err = runner.communicate(timeout=WAIT_S)
    finally:
        runner.kill()
    assert ready, err
    assert runner.returncode == 0, out + err
    lines = out.splitlines()
    assert f'[INFO] [launch]: shutting down: received {stop_signal.name}' in lines
    assert '[sim] got SIGINT' in lines and '[recorder] got SIGINT' in lines
    assert sum('process has finished cleanly' in line for line in lines) == 2


def test_run_launch_writes_log_output_under_ros_log_dir(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(launch_runner, 'node_entry_points', dummy_entry_points)
    monkeypatch.setenv('PYTHONPATH', str(DATA))
    monkeypatch.setenv('ROS_LOG_DIR', str(tmp_path / 'log'))
    launch_file = write_launch(tmp_path, '<node pkg="ssl_robot" exec="talker" args="--exit-code 0"/>')
    assert launch_runner.run_launch(parse_cli(str(launch_file), '--duration', '30')) == 0
    log_file, = (tmp_path / 'log').glob('*-ssl-robot-launch-*/launch.log')
    assert f'node output log: {log_file}' in capsys.readouterr().out
    logged = log_file.read_text().splitlines()
    assert '[talker] a line on stderr' in logged and any(line.startswith('[talker] argv: --exit-code 0')
                                                         for line in logged)
    assert '[INFO] [talker]: process has finished cleanly' in logged[-1]


def test_entry_points_are_the_console_scripts_setup_py_declares():
    try:
        entry_points = node_entry_points()
    except LaunchError:
        pytest.skip('ssl_robot is not pip-installed in this environment')
    assert {'sim_node', 'recorder_node'} <= set(entry_points)


# ---------------------------------------------------------------------------------------------
# The shipped launch files

REPOSITORY = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize('name', sorted(p.name for p in (REPOSITORY / 'launch').glob('*.launch.xml')
                                        if p.name != 'learning.launch.xml'))
def test_shipped_launch_files_load_with_their_defaults_and_name_installed_executables(monkeypatch, name):
    """learning.launch.xml is only ever included (its arguments have no defaults); the others run as they are."""
    monkeypatch.setenv('SSL_ROBOT_SHARE', str(REPOSITORY))
    nodes = load_launch_file(REPOSITORY / 'launch' / name, {}).nodes
    executables = set(node_entry_points())
    assert nodes and all(node.executable in executables for node in nodes), [n.executable for n in nodes]
    for node in nodes:
        assert all(p.is_file() for p in node.parameters if isinstance(p, Path)), node.parameters


def test_main_job_launch_records_the_sim_graph_and_ends_with_the_goal_sequence(monkeypatch):
    monkeypatch.setenv('SSL_ROBOT_SHARE', str(REPOSITORY))
    nodes = {node.name: node for node in load_launch_file(REPOSITORY / 'launch' / 'main_job.launch.xml',
                                                          {'bag': '/tmp/x'}).nodes}
    assert set(nodes) == {'sim', 'embedding', 'reward', 'grasp2vec', 'goal', 'recorder', 'policy', 'goal_sequence',
                          'diagnostics_monitor'}
    assert {'mode': 'idle'} in nodes['sim'].parameters and {'output': '/tmp/x'} in nodes['recorder'].parameters
    assert {'camera_rig': 'main_job'} in nodes['sim'].parameters and {'num_objects': '0'} in nodes['sim'].parameters
    assert [name for name, node in nodes.items() if node.shutdown_on_exit] == ['goal_sequence']
    for name in ('policy', 'goal_sequence'):
        assert {'use_sim_time': 'true'} in nodes[name].parameters
    # The policy's inputs come from the model it was trained on: the task camera's beta-VAE.
    assert {'camera': 'cameras/task/image_raw'} in nodes['goal'].parameters
    assert {'vae_method': 'betavae'} in nodes['goal'].parameters
    assert {'vae_checkpoint': "'rl_reach_vae.safetensors'"} in nodes['goal'].parameters


def test_every_model_is_configured_once_in_models_yaml_and_given_to_the_node_that_runs_it(monkeypatch):
    """config/models.yaml holds every model's settings; each node that runs a model gets it after its own file, and
    the reward node, which runs none, does not get it. No other node params file sets what it holds."""
    monkeypatch.setenv('SSL_ROBOT_SHARE', str(REPOSITORY))
    config = REPOSITORY / 'config'
    model_keys = set(yaml.safe_load((config / 'models.yaml').read_text())['/**']['ros__parameters'])
    assert model_keys == {'embedding_method', 'embedding_checkpoint', 'clip_frame_period_s', 'vae_method',
                          'vae_checkpoint', 'grasp2vec_checkpoint'}
    nodes = {node.name: node for node in load_launch_file(REPOSITORY / 'launch' / 'sim.launch.xml', {}).nodes}
    for name, own_file in (('embedding', 'embedding.yaml'), ('goal', 'goal.yaml'), ('grasp2vec', 'grasp2vec.yaml'),
                           ('reward', 'reward.yaml')):
        files = [p for p in nodes[name].parameters if isinstance(p, Path)]
        assert files == [config / own_file] + ([] if name == 'reward' else [config / 'models.yaml']), files
    for params_file in config.glob('*.yaml'):
        if params_file.name != 'models.yaml':
            own_keys = set(yaml.safe_load(params_file.read_text())['/**']['ros__parameters'])
            assert not own_keys & model_keys, (params_file.name, own_keys & model_keys)
