"""docker/: the compose files are valid Compose (JSON schema of the Compose specification) and run real
nanolink commands with arguments our CLIs accept. No Docker engine runs here; the same two-process
simulation runs without Docker in tests/host/test_demo.py."""
import configparser
import json
import os
import re

import pytest

yaml = pytest.importorskip('yaml', reason='PyYAML is in the test extra: pip install ".[test]"')
jsonschema = pytest.importorskip('jsonschema')

from nanolink.edge import cli as edge_cli            # noqa: E402
from nanolink.host import cli as host_cli            # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCKER = os.path.join(ROOT, 'docker')
# The Compose specification's schema (github.com/compose-spec/compose-spec, Apache-2.0), vendored because a
# clone has no network at test time.
SCHEMA = os.path.join(ROOT, 'tests', 'data', 'compose-spec.json')
PARSERS = {'edge-sender': (edge_cli.build_parser, edge_cli.config_from_args),
           'host-receiver': (host_cli.build_parser, host_cli.config_from_args)}


def console_scripts():
    cfg = configparser.ConfigParser()
    cfg.read(os.path.join(ROOT, 'setup.cfg'))
    lines = cfg['options.entry_points']['console_scripts'].strip().splitlines()
    return {line.split('=')[0].strip() for line in lines}


def interpolate(value, env):
    """Compose's ${VAR}, ${VAR:-default} and ${VAR:?error} with env (a missing required VAR fails)."""
    def sub(m):
        name, op, rest = m.group(1), m.group(2) or '', m.group(3) or ''
        if name in env:
            return env[name]
        if op == ':?':
            raise KeyError('{} must be set: {}'.format(name, rest))
        return rest if op == ':-' else ''
    return re.sub(r'\$\{(\w+)(:[-?])?([^}]*)\}', sub, value)


def load(name):
    with open(os.path.join(DOCKER, name)) as f:
        return yaml.safe_load(f)


@pytest.mark.parametrize('name', ['docker-compose.yml', 'docker-compose.jetson.yml'])
def test_compose_file_matches_the_compose_specification(name):
    with open(SCHEMA) as f:
        schema = json.load(f)
    doc = load(name)
    jsonschema.Draft7Validator(schema).validate(doc)
    bad = dict(doc, services={'edge': dict(doc['services']['edge'], restart=['always'])})
    with pytest.raises(jsonschema.ValidationError):           # the schema really is checked
        jsonschema.Draft7Validator(schema).validate(bad)


@pytest.mark.parametrize('name', ['docker-compose.yml', 'docker-compose.jetson.yml'])
def test_compose_commands_are_our_console_scripts_with_valid_arguments(name):
    scripts = console_scripts()
    for service, spec in load(name)['services'].items():
        cmd = [interpolate(a, {'NANOLINK_HOST': '192.0.2.10'}) for a in spec['command']]
        assert cmd[0] in scripts, '{}: {} is not a nanolink console script'.format(service, cmd[0])
        build_parser, config_from_args = PARSERS[cmd[0]]
        config_from_args(build_parser().parse_args(cmd[1:]))        # exits non-zero on a bad argument
        dockerfile = os.path.join(ROOT, spec['build']['context'].replace('..', '.'), spec['build']['dockerfile'])
        assert os.path.isfile(os.path.normpath(dockerfile)), dockerfile
    if name == 'docker-compose.jetson.yml':
        with pytest.raises(KeyError, match='NANOLINK_HOST must be set'):
            edge_cmd = load(name)['services']['edge']['command']
            interpolate(edge_cmd[edge_cmd.index('--connect') + 1], {})


def test_simulation_edge_reaches_the_host_by_service_name_on_a_shared_network():
    services = load('docker-compose.yml')['services']
    assert set(services) == {'host', 'edge'}
    edge_cmd = services['edge']['command']
    connect = edge_cmd[edge_cmd.index('--connect') + 1]
    assert re.match(r'tcp://host:(\d+)$', connect)
    port = connect.rsplit(':', 1)[1]
    host_cmd = services['host']['command']
    assert host_cmd[host_cmd.index('--bind') + 1] == 'tcp://*:' + port
    assert set(services['edge']['networks']) & set(services['host']['networks'])
    assert edge_cmd[edge_cmd.index('--camera') + 1].endswith('.avi')       # a video-file source


def test_dockerfiles_install_from_the_repo_and_run_console_scripts():
    scripts = console_scripts()
    for name in ('Dockerfile.host', 'Dockerfile.edge', 'Dockerfile.jetson'):
        text = open(os.path.join(DOCKER, name)).read()
        cmd = json.loads(re.search(r'^CMD (\[.*\])$', text, re.M).group(1))
        assert cmd[0] in scripts, name
        for src in re.findall(r'^COPY (\S+) ', text, re.M):
            assert os.path.exists(os.path.join(ROOT, src)), '{}: COPY {} does not exist'.format(name, src)
    jetson = open(os.path.join(DOCKER, 'Dockerfile.jetson')).read()
    assert jetson.startswith('#') and 'FROM nvcr.io/nvidia/l4t-pytorch:r32.7.1' in jetson
    assert 'opencv' not in re.sub(r'#.*', '', jetson).lower()          # JetPack's OpenCV, never pip's
    assert 'python:3.6' in open(os.path.join(DOCKER, 'Dockerfile.edge')).read()
    compose = load('docker-compose.jetson.yml')['services']['edge']
    assert compose['runtime'] == 'nvidia' and '/tmp/argus_socket:/tmp/argus_socket' in compose['volumes']
