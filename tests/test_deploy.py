"""deploy/: the Jetson install scripts are valid bash, the systemd unit verifies with systemd-analyze and
runs edge-sender with arguments our real parser accepts. The scripts themselves need a Jetson (apt,
TensorRT, sudo) and are not run here."""
import configparser
import os
import re
import shlex
import shutil
import subprocess
import sys

import pytest

from nanolink.edge import cli as edge_cli

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
JETSON = os.path.join(ROOT, 'deploy', 'jetson')
SCRIPTS = ['install-jetpack4.sh', 'install-jetpack6.sh', 'install-service.sh']


@pytest.mark.parametrize('name', SCRIPTS)
def test_install_scripts_are_valid_bash_and_strict(name):
    path = os.path.join(JETSON, name)
    assert os.access(path, os.X_OK), '{} is not executable'.format(name)
    subprocess.run(['bash', '-n', path], check=True)
    assert 'set -euo pipefail' in open(path).read()


def test_jetpack4_script_never_pip_installs_opencv_and_sets_openblas():
    text = open(os.path.join(JETSON, 'install-jetpack4.sh')).read()
    code = re.sub(r'#.*', '', text)
    pip_lines = [l for l in code.splitlines() if 'pip install' in l or l.strip().startswith('"')]
    assert not any('opencv' in l.lower() for l in pip_lines)
    assert 'OPENBLAS_CORETYPE=ARMV8' in code and 'swapon' in code and 'pip==21.3.1' in code
    assert 'nanolink-build-engine --model cae' in code


def test_install_script_rejects_unknown_options():
    r = subprocess.run(['bash', os.path.join(JETSON, 'install-jetpack4.sh'), '--bogus'], cwd=ROOT,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True)
    assert r.returncode == 2 and 'unknown option --bogus' in r.stderr


def filled_unit(tmp_path, bin_dir):
    """The unit and env file as install-service.sh writes them (same substitutions)."""
    unit = open(os.path.join(JETSON, 'nanolink-edge.service')).read()
    unit = unit.replace('@USER@', 'root').replace('@BIN@', bin_dir)
    env = open(os.path.join(JETSON, 'nanolink-edge.env')).read()
    env = env.replace('/home/@USER@', str(tmp_path)).replace('@HOST@', '192.0.2.10').replace('@STREAM@', 'nano')
    path = tmp_path / 'nanolink-edge.service'
    path.write_text(unit)
    return str(path), unit, env


def test_systemd_unit_runs_edge_sender_with_valid_arguments_and_restarts(tmp_path):
    bin_dir = os.path.dirname(sys.executable)
    _, unit, env_text = filled_unit(tmp_path, bin_dir)
    cfg = configparser.ConfigParser(strict=False, interpolation=None)
    cfg.optionxform = str
    cfg.read_string(unit)
    assert cfg['Service']['Restart'] == 'always' and cfg['Service']['KillSignal'] == 'SIGINT'
    assert cfg['Install']['WantedBy'] == 'multi-user.target'
    env = dict(line.split('=', 1) for line in env_text.splitlines() if line and not line.startswith('#'))
    argv = shlex.split(re.sub(r'\$\{(\w+)\}', lambda m: env[m.group(1)], cfg['Service']['ExecStart']))
    assert argv[0] == os.path.join(bin_dir, 'edge-sender')
    c = edge_cli.config_from_args(edge_cli.build_parser().parse_args(argv[1:]))
    assert (c.camera, c.connect, c.stream_id) == ('csi://0', 'tcp://192.0.2.10:5555', 'nano')
    assert c.engine.endswith('nanolink/cae.trt')


@pytest.mark.skipif(shutil.which('systemd-analyze') is None, reason='systemd-analyze is not installed here')
def test_systemd_unit_verifies(tmp_path):
    bin_dir = os.path.dirname(sys.executable)
    if not os.path.isfile(os.path.join(bin_dir, 'edge-sender')):
        pytest.skip('edge-sender is not installed beside this python ({})'.format(bin_dir))
    path, _, _ = filled_unit(tmp_path, bin_dir)
    r = subprocess.run(['systemd-analyze', 'verify', path], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       universal_newlines=True)
    assert r.returncode == 0, r.stdout
    bad, _, _ = filled_unit(tmp_path, str(tmp_path / 'nowhere'))
    r = subprocess.run(['systemd-analyze', 'verify', bad], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       universal_newlines=True)
    assert r.returncode != 0 and 'edge-sender' in r.stdout           # the check really looks at ExecStart
