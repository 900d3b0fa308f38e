"""edge-sender's frame loop (nanolink.edge.pipeline: run_frames): pipelined and sequential, through real sockets to a real
Receiver -- order, bit-exactness, nothing lost on stop, a stage's error reaching the caller, and the CLI's Ctrl-C."""
import re
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

import nanolink
from nanolink.common.errors import NanolinkError
from nanolink.edge.sources import Source
from nanolink.edge.pipeline import run_frames

DEADLINE_S = 120.0          # generous: a loaded 2-core machine


class ListSource(Source):
    """Test-owned frames, in order; counts its reads. ``endless`` repeats the list."""
    description = 'test frames'

    def __init__(self, frames, endless=False):
        self.frames, self.endless = frames, endless
        self.reads = 0
        self.read_more = threading.Condition()

    def read(self):
        if self.reads >= len(self.frames) and not self.endless:
            return None
        frame = self.frames[self.reads % len(self.frames)]
        with self.read_more:
            self.reads += 1
            self.read_more.notify_all()
        return frame, time.time()


def random_frames(n, h=24, w=40, seed=0):
    rng = np.random.RandomState(seed)
    return [rng.randint(0, 256, (h, w, 3)).astype(np.uint8) for _ in range(n)]


def receive(rx, n):
    got = []
    for _ in range(n):
        f = rx.recv(timeout=DEADLINE_S)
        assert f is not None, 'frame {} of {} did not arrive'.format(len(got), n)
        got.append(f)
    assert rx.recv(timeout=0.5) is None, 'more frames arrived than were sent'
    return got


@pytest.mark.parametrize('pipeline', [True, False])
def test_every_frame_arrives_once_in_order_and_bit_exact(pipeline):
    frames = random_frames(12)
    sent = []
    with nanolink.Receiver('tcp://127.0.0.1:*', models=['raw']) as rx:
        with nanolink.Sender(rx.endpoint, model='raw', stream_id='order', send_timeout_ms=-1) as tx:
            n, elapsed = run_frames(tx, ListSource(frames), lambda s, t: sent.append(s.seq), threading.Event(),
                                    pipeline=pipeline)
            got = receive(rx, len(frames))
    assert n == len(frames) and elapsed > 0
    assert sent == list(range(len(frames))) and tx.link.undelivered == 0
    assert [g.seq for g in got] == list(range(len(frames)))
    for f, g in zip(frames, got):
        np.testing.assert_array_equal(g.image, f)


def test_frames_limit_reads_no_more_than_asked():
    src = ListSource(random_frames(3), endless=True)
    with nanolink.Receiver('tcp://127.0.0.1:*', models=['raw']) as rx:
        with nanolink.Sender(rx.endpoint, model='raw', send_timeout_ms=-1) as tx:
            n, _ = run_frames(tx, src, lambda s, t: None, threading.Event(), frames=7)
            got = receive(rx, 7)
    assert n == 7 and src.reads == 7 and [g.seq for g in got] == list(range(7))


def test_stop_sends_every_frame_already_read():
    """The sending stage is held on frame 0 until capture has read at least 4 frames ahead, then stop is set:
    every frame read -- queued between the stages or not -- is still encoded, sent and received, in order."""
    frames = random_frames(5, seed=1)
    src = ListSource(frames, endless=True)
    stop = threading.Event()
    sent = []

    def on_sent(s, t_cap):
        if s.seq == 0:
            with src.read_more:
                assert src.read_more.wait_for(lambda: src.reads >= 4, timeout=DEADLINE_S), 'capture did not read ahead'
            stop.set()
        sent.append(s.seq)

    with nanolink.Receiver('tcp://127.0.0.1:*', models=['raw']) as rx:
        with nanolink.Sender(rx.endpoint, model='raw', send_timeout_ms=-1) as tx:
            n, _ = run_frames(tx, src, on_sent, stop)
            got = receive(rx, src.reads)
    assert n == src.reads >= 4, (n, src.reads)
    assert sent == list(range(n)) and [g.seq for g in got] == list(range(n))
    for i, g in enumerate(got):
        np.testing.assert_array_equal(g.image, frames[i % len(frames)])


def test_stop_in_sequential_mode_reads_nothing_more():
    src = ListSource(random_frames(4, seed=2), endless=True)
    stop = threading.Event()

    def on_sent(s, t_cap):
        if s.seq == 2:
            stop.set()
    with nanolink.Receiver('tcp://127.0.0.1:*', models=['raw']) as rx:
        with nanolink.Sender(rx.endpoint, model='raw', send_timeout_ms=-1) as tx:
            n, _ = run_frames(tx, src, on_sent, stop, pipeline=False)
            got = receive(rx, 3)
    assert n == src.reads == 3 and [g.seq for g in got] == [0, 1, 2]


@pytest.mark.parametrize('pipeline', [True, False])
def test_an_error_in_the_sending_stage_reaches_the_caller_after_the_frames_before_it(pipeline):
    """A 4104-pixel-wide frame cannot go on the wire (sides are 1..4096): the NanolinkError raised while it is
    serialised (on the CPU stage's thread when pipelined) comes out of run_frames; the frames before it arrived."""
    small = random_frames(2, seed=3)
    frames = small + [np.zeros((16, 4104, 3), np.uint8)] + random_frames(3, seed=4)
    with nanolink.Receiver('tcp://127.0.0.1:*', models=['raw']) as rx:
        with nanolink.Sender(rx.endpoint, model='raw', send_timeout_ms=-1) as tx:
            with pytest.raises(NanolinkError, match='cannot send a 4104x16 frame: size .* out of range'):
                run_frames(tx, ListSource(frames), lambda s, t: None, threading.Event(), pipeline=pipeline)
            got = receive(rx, 2)
    assert tx.seq == 2
    for f, g in zip(small, got):
        np.testing.assert_array_equal(g.image, f)


def test_an_error_in_capture_reaches_the_caller():
    class Broken(ListSource):
        def read(self):
            if self.reads == 2:
                raise NanolinkError('the camera went away')
            return ListSource.read(self)
    with nanolink.Receiver('tcp://127.0.0.1:*', models=['raw']) as rx:
        with nanolink.Sender(rx.endpoint, model='raw', send_timeout_ms=-1) as tx:
            with pytest.raises(NanolinkError, match='the camera went away'):
                run_frames(tx, Broken(random_frames(5)), lambda s, t: None, threading.Event())
            got = receive(rx, 2)
    assert [g.seq for g in got] == [0, 1]


def test_ctrl_c_on_the_cli_loses_no_frame(tmp_path, host_process):
    """edge-sender (pipelined, the default) on an endless synthetic source, interrupted with SIGINT once frames
    flow: the host receives exactly the frames the edge says it sent, and the edge exits 0 with its summary."""
    h = host_process('--timeout', 30, '--log', tmp_path / 'host.jsonl')
    p = subprocess.Popen([sys.executable, '-m', 'nanolink.edge.cli', '--camera', 'synthetic://96x64', '--model',
                          'raw', '--connect', h.endpoint, '--send-timeout', '0'], stderr=subprocess.PIPE,
                         universal_newlines=True)
    lines = []
    deadline = time.time() + DEADLINE_S
    while time.time() < deadline:                        # the first status line: frames are flowing
        line = p.stderr.readline()
        if not line:
            break
        lines.append(line)
        if ' fps, ' in line:
            break
    assert any(' fps, ' in l for l in lines), ''.join(lines)
    assert 'pipelined' in ''.join(lines)
    p.send_signal(signal.SIGINT)
    err = ''.join(lines) + p.communicate(timeout=DEADLINE_S)[1]
    assert p.returncode == 0, err
    n = int(re.search(r'edge-sender: (\d+) frames in', err).group(1))
    assert 'stopped after {} frames'.format(n) in err and 'Traceback' not in err
    h.proc.send_signal(signal.SIGINT)
    rc, herr = h.wait()
    assert rc == 0, herr
    assert '{} decoded, 0 rejected of {} received'.format(n, n) in herr, herr[-2000:]


def test_no_pipeline_flag_runs_sequentially(host_process):
    h = host_process('--frames', 3, '--timeout', 60)
    r = subprocess.run([sys.executable, '-m', 'nanolink.edge.cli', '--camera', 'synthetic://64x48', '--model', 'raw',
                        '--frames', '3', '--connect', h.endpoint, '--no-pipeline'], stderr=subprocess.PIPE,
                       universal_newlines=True, timeout=DEADLINE_S)
    assert r.returncode == 0 and 'sequential (--no-pipeline)' in r.stderr, r.stderr
    assert h.wait()[0] == 0
