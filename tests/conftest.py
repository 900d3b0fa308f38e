"""Shared fixtures: real files, real processes, real sockets on 127.0.0.1."""
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest

from nanolink.common import zoo
from nanolink.common.errors import NanolinkError
from nanolink.host import launch

SAMPLE = zoo.SAMPLE_DIR
CAE_QUALITIES = '1..{}'.format(max(zoo.bundled_model('cae').rate_points))   # what cae's --quality takes


def sample_images():
    return sorted(os.path.join(SAMPLE, f) for f in os.listdir(SAMPLE) if f.endswith('.jpg'))


@pytest.fixture(scope='session')
def sample_frame():
    return cv2.imread(sample_images()[0])


@pytest.fixture(scope='session')
def video_file(tmp_path_factory):
    """An MJPEG AVI of 24 natural 768x512 frames panning over the sample photos, written with cv2.VideoWriter."""
    path = str(tmp_path_factory.mktemp('video') / 'clip.avi')
    w = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*'MJPG'), 25.0, (768, 512))
    assert w.isOpened(), 'OpenCV cannot write MJPEG AVI here'
    imgs = [cv2.imread(p) for p in sample_images()]
    for i in range(24):
        img = imgs[i // 4]
        shift = (i % 4) * 6
        w.write(np.ascontiguousarray(np.roll(img, shift, axis=1)))
    w.release()
    return path


def cli(module, *args, timeout=120, **kw):
    """Run a nanolink CLI as a real subprocess: python -m nanolink.<module> args."""
    return subprocess.run([sys.executable, '-m', module] + [str(a) for a in args], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, timeout=timeout, universal_newlines=True, **kw)


class HostProcess(launch.HostProcess):
    """host-receiver on tcp://127.0.0.1:<random port>, as a subprocess (nanolink.host.launch, as the demo and
    latency-bench start it); stderr piped, and ``wait`` returns (exit status, stderr)."""

    def __init__(self, *args, bind='tcp://127.0.0.1:*'):
        try:
            launch.HostProcess.__init__(self, args, bind=bind)
        except NanolinkError as e:
            raise AssertionError(str(e))

    def wait(self, timeout=60):
        try:
            out, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, err = self.proc.communicate()
            raise AssertionError('host-receiver did not finish in {} s:\n{}'.format(timeout, err[-3000:]))
        return self.proc.returncode, err


@pytest.fixture
def host_process():
    made = []

    def start(*args, **kw):
        h = HostProcess(*args, **kw)
        made.append(h)
        return h
    yield start
    for h in made:
        h.kill()
