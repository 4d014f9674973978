"""The Foxglove layout of the main job (config/foxglove/main_job.json): valid JSON in Foxglove's layout format, every
panel placed, and every topic it shows one the graph publishes."""

from __future__ import annotations

import json
from pathlib import Path

from ssl_robot import topics

LAYOUT = Path(__file__).resolve().parent.parent / 'config' / 'foxglove' / 'main_job.json'


def placed(node) -> list[str]:
    return [node] if isinstance(node, str) else placed(node['first']) + placed(node['second'])


def test_every_panel_is_placed_once_and_shows_a_topic_of_the_graph():
    layout = json.loads(LAYOUT.read_text())
    assert sorted(placed(layout['layout'])) == sorted(layout['configById'])
    shown = set()
    for panel, config in layout['configById'].items():
        if panel.startswith('Image!'):
            assert config['cameraTopic'] == config['imageMode']['imageTopic']
            shown.add(config['cameraTopic'])
        elif panel.startswith('Plot!'):
            shown.update(path['value'].rsplit('.vector', 1)[0] for path in config['paths'])
        else:
            shown.add(config['topicPath'].rsplit('.', 1)[0])
    published = {topics.camera_image('task'), topics.camera_image('front_left'), topics.GOAL_IMAGE,
                 topics.GRASP2VEC_HEATMAP, topics.reward_topic('latent_goal'), topics.POLICY_STATUS,
                 topics.GOAL_SEQUENCE_EVENTS}
    assert shown == published
