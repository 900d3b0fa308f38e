"""Ctrl-C while a console script is still importing (numpy, OpenCV, ONNX Runtime) ends it with no traceback.

The installed scripts (nanolink.entry) are run as a user runs them. The signal is sent once numpy's library shows in
the process's memory map (Linux /proc): from then on the process is inside nanolink's imports for a while (OpenCV
and ONNX Runtime follow), which is where a plain KeyboardInterrupt used to print a traceback."""
import os
import signal
import subprocess
import sys
import time

import pytest

SCRIPTS = {
    'edge-sender': ['--camera', 'synthetic', '--frames', '20', '--connect', 'tcp://127.0.0.1:9', '--quiet',
                    '--send-timeout', '100'],
    'host-receiver': ['--bind', 'tcp://127.0.0.1:*', '--frames', '1', '--timeout', '5', '--quiet'],
}


def script(name):
    path = os.path.join(os.path.dirname(sys.executable), name)
    if not os.path.exists(path):
        pytest.skip('{} is not installed next to {} (pip install . installs it)'.format(name, sys.executable))
    return path


@pytest.mark.skipif(not os.path.isdir('/proc/self'), reason='needs Linux /proc to see when the imports run')
@pytest.mark.parametrize('name', sorted(SCRIPTS))
def test_ctrl_c_while_importing_prints_no_traceback(name):
    proc = subprocess.Popen([script(name)] + SCRIPTS[name], stderr=subprocess.PIPE, universal_newlines=True)
    maps = '/proc/{}/maps'.format(proc.pid)
    deadline = time.time() + 60
    seen = False
    while not seen and proc.poll() is None and time.time() < deadline:
        try:
            with open(maps) as f:
                seen = 'numpy' in f.read()
        except OSError:
            break
    assert seen, 'numpy never loaded in {}'.format(name)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert 'Traceback' not in err and 'KeyboardInterrupt' not in err, err[-2000:]
    assert proc.returncode in (-signal.SIGINT, 130, 0, 1), (proc.returncode, err[-2000:])
