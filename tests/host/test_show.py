"""host-receiver --show in a real window: an X server (Xvfb) and OpenCV with a GUI, in a separate venv
because the package's runtime OpenCV is headless. scripts/test.sh prepares both when it can and exports
NANOLINK_GUI_PYTHON."""
import os
import select
import shutil
import subprocess
import threading
import sys
import time

import cv2
import pytest


GUI_PYTHON = os.environ.get('NANOLINK_GUI_PYTHON')
pytestmark = [
    pytest.mark.skipif(not GUI_PYTHON, reason='no GUI OpenCV venv: scripts/test.sh makes .venv-gui and sets '
                                              'NANOLINK_GUI_PYTHON when Xvfb is installed'),
    pytest.mark.skipif(shutil.which('Xvfb') is None, reason='Xvfb is not installed (apt-get install xvfb)'),
]


@pytest.fixture
def display(tmp_path):
    """A private Xvfb. -displayfd lets the server itself take the first display number it can bind (file and
    abstract socket both), so a display left behind or held by another process never collides with ours."""
    rfd, wfd = os.pipe()
    log = open(str(tmp_path / 'xvfb.log'), 'w')
    proc = subprocess.Popen(['Xvfb', '-displayfd', str(wfd), '-screen', '0', '1280x800x24', '-nolisten', 'tcp'],
                            stdout=subprocess.DEVNULL, stderr=log, pass_fds=(wfd,))
    os.close(wfd)
    log.close()
    got, deadline = b'', time.time() + 60
    with os.fdopen(rfd, 'rb', buffering=0) as r:   # Xvfb writes "<n>\n" once it accepts connections, or exits
        while not got.endswith(b'\n') and time.time() < deadline:
            if select.select([r], [], [], 1)[0]:
                chunk = r.read(16)
                if not chunk:
                    break
                got += chunk
    if not got.strip().isdigit():
        proc.kill()
    assert got.strip().isdigit(), 'Xvfb did not start: ' + open(str(tmp_path / 'xvfb.log')).read()[-1000:]
    yield ':' + got.decode().strip()
    proc.terminate()
    proc.wait(10)


def window_names(disp):
    r = subprocess.run(['xwininfo', '-root', '-tree'], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       universal_newlines=True, env=dict(os.environ, DISPLAY=disp))
    return r.stdout


def test_show_opens_a_window_per_stream_and_exits_cleanly(tmp_path, display):
    env = dict(os.environ, DISPLAY=display, QT_QPA_PLATFORM='xcb')
    host = subprocess.Popen([GUI_PYTHON, '-m', 'nanolink.host.cli', '--bind', 'tcp://127.0.0.1:*', '--show',
                             '--frames', '60', '--timeout', '60', '--log', str(tmp_path / 'host.jsonl')],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, env=env)
    try:
        line = host.stdout.readline().strip()
        assert line.startswith('listening on '), host.stderr.read()
        endpoint = line.split()[-1]
        edges = [subprocess.Popen([sys.executable, '-m', 'nanolink.edge.cli', '--camera', 'synthetic://320x240',
                                   '--frames', '30', '--fps', '6', '--connect', endpoint, '--stream-id', name,
                                   '--quiet'], stderr=subprocess.PIPE, universal_newlines=True)
                 for name in ('cam-a', 'cam-b')]
        titles = ''
        if shutil.which('xwininfo'):
            deadline = time.time() + 120          # two edges start on a loaded machine; then 5 s of both windows
            while host.poll() is None and time.time() < deadline and not ('nanolink - cam-a' in titles and 'nanolink - cam-b' in titles):
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
    assert '60 decoded, 0 rejected' in err
    rows = [l for l in open(str(tmp_path / 'host.jsonl'))]
    assert len(rows) == 60


def test_show_without_a_display_is_a_clear_error():
    r = subprocess.run([GUI_PYTHON, '-m', 'nanolink.host.cli', '--bind', 'tcp://127.0.0.1:*', '--show',
                        '--frames', '1'], stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True,
                       env=dict(os.environ, DISPLAY='', WAYLAND_DISPLAY=''), timeout=60)
    assert r.returncode == 1 and 'no display' in r.stderr and 'Traceback' not in r.stderr


def test_show_keys_snapshot_pause_and_quit(tmp_path, display):
    """s writes the shown frame as PNG, space holds the window still while frames keep arriving (two snapshots
    while paused are the same frame), q quits with the usual summary. Keys are typed with xdotool."""
    if shutil.which('xdotool') is None:
        pytest.skip('xdotool is not installed (apt-get install xdotool; CI does)')
    env = dict(os.environ, DISPLAY=display, QT_QPA_PLATFORM='xcb')
    snaps = tmp_path / 'snaps'
    host = subprocess.Popen([GUI_PYTHON, '-m', 'nanolink.host.cli', '--bind', 'tcp://127.0.0.1:*', '--show',
                             '--snapshot-dir', str(snaps), '--log', str(tmp_path / 'host.jsonl'), '--timeout', '60'],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, env=env)
    err_lines = []
    reader = threading.Thread(target=lambda: err_lines.extend(iter(host.stderr.readline, '')), daemon=True)
    edge = None
    try:
        line = host.stdout.readline().strip()
        assert line.startswith('listening on '), line
        reader.start()
        edge_err = open(str(tmp_path / 'edge.err'), 'w')
        edge = subprocess.Popen([sys.executable, '-m', 'nanolink.edge.cli', '--camera', 'synthetic://320x240',
                                 '--fps', '8', '--connect', line.split()[-1], '--stream-id', 'cam', '--quiet'],
                                stderr=edge_err)
        edge_err.close()
        xenv = dict(os.environ, DISPLAY=display)

        def xdo(*args):
            return subprocess.run(['xdotool'] + list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  universal_newlines=True, env=xenv, timeout=30)

        def frames_logged():
            path = tmp_path / 'host.jsonl'
            return len(open(str(path)).readlines()) if path.exists() else 0

        def state():
            return 'host rc {}, edge rc {}, {} frames logged\nhost stderr:\n{}\nedge stderr:\n{}\nwindows:\n{}'.format(
                host.poll(), edge.poll(), frames_logged(), ''.join(err_lines)[-2000:],
                open(str(tmp_path / 'edge.err')).read()[-2000:], window_names(display)[-1500:])

        # the window opens on the first decoded frame: wait for that event first, then for the window itself
        deadline = time.time() + 120
        while frames_logged() == 0 and host.poll() is None and edge.poll() is None and time.time() < deadline:
            time.sleep(0.3)
        assert frames_logged() > 0, 'no frame decoded: ' + state()
        deadline = time.time() + 60
        wid, r = [], None
        while not wid and host.poll() is None and time.time() < deadline:
            r = xdo('search', '--name', 'nanolink - cam')
            wid = r.stdout.split()
            time.sleep(0.3)
        assert wid, 'no window (xdotool: {!r}): {}'.format(r and r.stderr, state())

        def press(key, until, what):
            xdo('windowfocus', '--sync', wid[-1])
            xdo('key', key)
            end = time.time() + 30
            while time.time() < end:
                if until():
                    return
                time.sleep(0.2)
            raise AssertionError('after key {!r}: no {}; host log:\n{}'.format(key, what, ''.join(err_lines)[-2000:]))

        def logged(words):
            return lambda: any(words in l for l in err_lines)

        def pngs():
            return sorted(f for f in os.listdir(str(snaps)) if f.endswith('.png')) if snaps.is_dir() else []

        press('s', lambda: len(pngs()) == 1, 'snapshot')
        img = cv2.imread(str(snaps / pngs()[0]))
        assert img is not None and img.shape == (240, 320, 3) and pngs()[0].startswith('cam-')
        press('space', logged('display paused'), '"paused" line')
        os.remove(str(snaps / pngs()[0]))
        press('s', lambda: len(pngs()) == 1, 'snapshot while paused')
        held, n_held = pngs()[0], frames_logged()
        end = time.time() + 60                            # frames keep arriving and being decoded...
        while frames_logged() <= n_held + 4 and time.time() < end:
            time.sleep(0.2)
        assert frames_logged() > n_held + 4, state()
        os.remove(str(snaps / held))
        press('s', lambda: len(pngs()) == 1, 'second snapshot while paused')
        assert pngs() == [held]                           # ...but the window still shows the held frame
        press('space', logged('display resumed'), '"resumed" line')
        press('q', lambda: host.poll() is not None, 'exit')
        assert host.wait(30) == 0
        reader.join(10)
        assert any('decoded, 0 rejected' in l for l in err_lines), ''.join(err_lines)
    finally:
        for p in (edge, host):
            if p is not None and p.poll() is None:
                p.kill()
                p.wait()
