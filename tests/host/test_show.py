"""host-receiver --show in a real window: an X server (Xvfb) and OpenCV with a GUI, in a separate venv
because the package's runtime OpenCV is headless. scripts/test.sh prepares both when it can and exports
NANOLINK_GUI_PYTHON."""
import os
import shutil
import subprocess
import sys
import time

import pytest


GUI_PYTHON = os.environ.get('NANOLINK_GUI_PYTHON')
pytestmark = [
    pytest.mark.skipif(not GUI_PYTHON, reason='no GUI OpenCV venv: scripts/test.sh makes .venv-gui and sets '
                                              'NANOLINK_GUI_PYTHON when Xvfb is installed'),
    pytest.mark.skipif(shutil.which('Xvfb') is None, reason='Xvfb is not installed (apt-get install xvfb)'),
]


@pytest.fixture
def display():
    for n in range(90, 140):
        if not os.path.exists('/tmp/.X11-unix/X{}'.format(n)) and not os.path.exists('/tmp/.X{}-lock'.format(n)):
            break
    proc = subprocess.Popen(['Xvfb', ':{}'.format(n), '-screen', '0', '1280x800x24', '-nolisten', 'tcp'],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 10
    while not os.path.exists('/tmp/.X11-unix/X{}'.format(n)):
        assert proc.poll() is None and time.time() < deadline, 'Xvfb did not start'
        time.sleep(0.1)
    yield ':{}'.format(n)
    proc.terminate()
    proc.wait(10)


def window_names(disp):
    r = subprocess.run(['xwininfo', '-root', '-tree'], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       universal_newlines=True, env=dict(os.environ, DISPLAY=disp))
    return r.stdout


def test_show_opens_a_window_per_stream_and_exits_cleanly(tmp_path, display):
    env = dict(os.environ, DISPLAY=display, QT_QPA_PLATFORM='xcb')
    host = subprocess.Popen([GUI_PYTHON, '-m', 'nanolink.host.cli', '--bind', 'tcp://127.0.0.1:*', '--show',
                             '--frames', '24', '--timeout', '60', '--log', str(tmp_path / 'host.jsonl')],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, env=env)
    try:
        line = host.stdout.readline().strip()
        assert line.startswith('listening on '), host.stderr.read()
        endpoint = line.split()[-1]
        edges = [subprocess.Popen([sys.executable, '-m', 'nanolink.edge.cli', '--camera', 'synthetic://320x240',
                                   '--frames', '12', '--fps', '6', '--connect', endpoint, '--stream-id', name,
                                   '--quiet'], stderr=subprocess.PIPE, universal_newlines=True)
                 for name in ('cam-a', 'cam-b')]
        titles = ''
        if shutil.which('xwininfo'):
            deadline = time.time() + 30
            while time.time() < deadline and not ('nanolink - cam-a' in titles and 'nanolink - cam-b' in titles):
                time.sleep(0.3)
                titles = window_names(display)
            assert 'nanolink - cam-a' in titles and 'nanolink - cam-b' in titles, titles[-2000:]
        for e in edges:
            assert e.wait(60) == 0, e.stderr.read()
        out, err = host.communicate(timeout=60)
    finally:
        if host.poll() is None:
            host.kill()
    assert host.returncode == 0, err
    assert '24 decoded, 0 rejected' in err
    rows = [l for l in open(str(tmp_path / 'host.jsonl'))]
    assert len(rows) == 24


def test_show_without_a_display_is_a_clear_error():
    r = subprocess.run([GUI_PYTHON, '-m', 'nanolink.host.cli', '--bind', 'tcp://127.0.0.1:*', '--show',
                        '--frames', '1'], stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True,
                       env=dict(os.environ, DISPLAY='', WAYLAND_DISPLAY=''), timeout=60)
    assert r.returncode == 1 and 'no display' in r.stderr and 'Traceback' not in r.stderr
