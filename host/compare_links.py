"""nanolink-compare's transport half: the same frames over loopback through imagezmq + JPEG (its documented
ImageSender / ImageHub, REQ/REP) and through nanolink (nanolink.Sender into a host-receiver process), one frame
after the other as a user's loop sends them; then each link's receiver is killed and restarted mid-stream.

Per-frame latency is capture (before encoding) to decoded on the receiving side, both clocks being this machine's;
fps is frames over the time from the first capture to the last decode.
"""
import os
import socket
import subprocess
import sys
import threading
import time

import numpy as np

from nanolink.common.classical import encode_jpeg
from nanolink.common.errors import NanolinkError
from nanolink.common.stages import read_jsonl
from nanolink.host.launch import HostProcess, read_line

# imagezmq's hub as its README shows it, plus a log line per frame: "seq t_done" after cv2.imdecode.
HUB = r'''
import sys, time, cv2, numpy as np, imagezmq
hub = imagezmq.ImageHub(open_port=sys.argv[1])
print('ready', flush=True)
while True:
    name, buf = hub.recv_jpg()
    image = cv2.imdecode(np.frombuffer(buf, dtype='uint8'), cv2.IMREAD_COLOR)
    print(name, repr(time.time()), flush=True)
    hub.send_reply(b'OK')
'''


def free_port():
    s = socket.socket()
    s.bind(('127.0.0.1', 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Hub(object):
    """imagezmq's ImageHub in a subprocess, on a fixed port; ``done`` maps frame name -> decode time."""

    def __init__(self, port):
        self.proc = subprocess.Popen([sys.executable, '-c', HUB, 'tcp://127.0.0.1:{}'.format(port)],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True)
        if read_line(self.proc.stdout, 60) != 'ready':
            self.kill()
            raise NanolinkError('imagezmq hub did not start: {}'.format(self.proc.stderr.read()[-500:]))
        self.done = {}
        self.odd_lines = 0
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self):
        # Only whole "name time" lines count: a hub killed mid-stream may leave a partial last line behind.
        for line in self.proc.stdout:
            parts = line.split()
            if len(parts) == 2 and line.endswith('\n'):
                try:
                    self.done[parts[0]] = float(parts[1])
                except ValueError:
                    self.odd_lines += 1
            else:
                self.odd_lines += 1

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


def jpeg_quality_at(frame, max_bytes):
    """The highest JPEG quality whose bytes of frame do not exceed max_bytes (1 at least)."""
    lo, hi, best = 1, 100, 1
    while lo <= hi:
        q = (lo + hi) // 2
        if len(encode_jpeg(frame, q)) <= max_bytes:
            best, lo = q, q + 1
        else:
            hi = q - 1
    return best


def _pace(t0, i, fps):
    if fps:
        delay = t0 + i / fps - time.time()
        if delay > 0:
            time.sleep(delay)


def imagezmq_run(frames, qualities, fps=None, restart_after=None, wait_s=10.0):
    """Send frames through imagezmq as JPEGs of the given qualities (chosen beforehand: JPEG at nanolink's bytes),
    at most fps a second. With restart_after=N: kill the hub (SIGKILL) once the sender has N replies, while the
    sender streams on, start a new one on the port and see whether the sender goes on within wait_s.
    Returns {'latency_ms', 'fps', 'bytes'} or {'sent', 'after_restart', 'hung', 'waited_s'}."""
    import imagezmq
    port = free_port()
    hub = Hub(port)
    sender = imagezmq.ImageSender(connect_to='tcp://127.0.0.1:{}'.format(port))
    t_cap, sizes, answered = {}, [], []
    stop = threading.Event()
    t0 = time.time()

    def loop(start, stop_at):
        for i in range(start, stop_at):
            if stop.is_set():
                return
            _pace(t0, i, fps)
            name = str(i)
            t_cap[name] = time.time()
            buf = encode_jpeg(frames[i % len(frames)], qualities[i % len(qualities)])
            sizes.append(len(buf))
            sender.send_jpg(name, buf)                     # REQ: blocks until the hub replies
            answered.append(i)
    hung = False
    try:
        if restart_after is None:
            loop(0, len(frames))
            deadline = time.time() + 30
            while len(hub.done) < len(frames) and time.time() < deadline:
                time.sleep(0.01)
            lat = [1000.0 * (hub.done[str(i)] - t_cap[str(i)]) for i in range(len(frames)) if str(i) in hub.done]
            span = max(hub.done.values()) - min(t_cap.values())
            return {'latency_ms': lat, 'fps': len(lat) / span, 'bytes': sizes}
        t = threading.Thread(target=loop, args=(0, 10 ** 6), daemon=True)
        t.start()                                          # a daemon: a hung REQ socket cannot be interrupted
        # Wait on the sender's side (replies received), not on the hub's log: the hub prints a frame before it
        # replies, so a kill timed on its log can beat the reply and leave one frame fewer answered.
        deadline = time.time() + 60
        while len(answered) < restart_after and time.time() < deadline:
            time.sleep(0.001)
        hub.kill()                                         # mid-stream, as a crash would: a request in flight
        before = len(answered)
        hub = Hub(port)
        deadline = time.time() + wait_s
        while time.time() < deadline and len(hub.done) == 0:
            time.sleep(0.05)
        stop.set()
        t.join(5.0)
        hung = t.is_alive()                   # still blocked in send_jpg: its socket stays open until exit
        return {'sent': before, 'after_restart': len(hub.done), 'hung': len(hub.done) == 0, 'waited_s': wait_s}
    finally:
        hub.kill()
        if not hung:
            sender.zmq_socket.close(linger=0)
            sender.zmq_context.term()


def nanolink_run(frames, model, out_dir, tag, fps=None, restart_after=None):
    """Send frames with nanolink.Sender (acknowledged delivery) to a host-receiver process. With restart_after=N:
    kill the host (SIGKILL) after N frames, start a new one on the port, send the rest, and count the frames no
    host decoded. Returns {'latency_ms', 'fps', 'bytes'} or {'sent', 'decoded', 'lost', 'after_restart_s'}."""
    import nanolink
    port = free_port()
    bind = 'tcp://127.0.0.1:{}'.format(port)
    logs = [os.path.join(out_dir, 'nanolink-{}-host{}.jsonl'.format(tag, i)) for i in range(2)]
    for p in logs:
        if os.path.exists(p):
            os.remove(p)
    host = HostProcess(['--log', logs[0], '--quiet', '--model', model], bind=bind,
                       stderr_path=logs[0].replace('.jsonl', '.stderr.txt'))
    sizes = []
    try:
        with nanolink.Sender(bind, model=model, send_timeout_ms=-1, stream_id='cmp') as tx:
            t0 = time.time()
            for i, f in enumerate(frames):
                if restart_after is not None and i == restart_after:
                    host.kill()
                    host = HostProcess(['--log', logs[1], '--quiet', '--model', model], bind=bind,
                                       stderr_path=logs[1].replace('.jsonl', '.stderr.txt'))
                    t_restart = time.time()
                _pace(t0, i, fps)
                sent = tx.send(f)
                sizes.append(sent.bytes)
            if not tx.wait_connected(30):
                raise NanolinkError('no host-receiver took the connection at {}'.format(bind))
        # the Sender's close waited for every acknowledgement: everything decoded is logged
        rows = [r for p in logs if os.path.exists(p) for r in read_jsonl(p)]
    finally:
        host.kill()
    seqs = set(r['seq'] for r in rows)
    if restart_after is not None:
        after = [r['t_done'] for r in read_jsonl(logs[1])] if os.path.exists(logs[1]) else []
        return {'sent': len(frames), 'decoded': len(seqs), 'lost': len(set(range(len(frames))) - seqs),
                'after_restart_s': (min(after) - t_restart) if after else None}
    lat = [1000.0 * (r['t_done'] - r['t_cap']) for r in rows]
    span = max(r['t_done'] for r in rows) - min(r['t_cap'] for r in rows)
    return {'latency_ms': lat, 'fps': len(rows) / span, 'bytes': sizes}


def summary(run):
    lat = np.array(run['latency_ms'])
    return {'latency_median_ms': float(np.median(lat)), 'latency_p95_ms': float(np.percentile(lat, 95)),
            'fps': float(run['fps']), 'bytes_mean': float(np.mean(run['bytes']))}
