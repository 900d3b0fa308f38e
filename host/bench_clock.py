"""latency-bench's clock for two-machine runs: the host answers time requests on its data port + 1, and the edge
estimates the offset between the two clocks from the fastest of a few round trips."""
import threading
import time

import msgpack
import numpy as np
import zmq

from nanolink.common.errors import NanolinkError


class ClockServer(object):
    """Answers b't' with the host's time.time() as 8 ASCII-free bytes (msgpack float) on a REP socket."""

    def __init__(self, endpoint, context):
        self.socket = context.socket(zmq.REP)
        self.socket.setsockopt(zmq.LINGER, 0)
        try:
            self.socket.bind(endpoint)
        except zmq.ZMQError as e:
            self.socket.close()
            raise NanolinkError('the clock cannot listen on {} ({}): give --bind a port below 65535 whose next port '
                                'is free'.format(endpoint, e))
        self.endpoint = self.socket.getsockopt_string(zmq.LAST_ENDPOINT)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self):
        poller = zmq.Poller()
        poller.register(self.socket, zmq.POLLIN)
        while not self._stop.is_set():
            if poller.poll(100):
                self.socket.recv()
                self.socket.send(msgpack.packb(time.time()))

    def close(self):
        self._stop.set()
        self._thread.join()
        self.socket.close()


def clock_offset(endpoint, rounds=12, timeout_ms=2000):
    """(offset s to add to local time to get the host's, its error bound s) from the fastest round trips.

    Each round trip brackets the host's reading: its offset estimate is off by at most half that round trip. The
    offset is the median of the three fastest estimates, so half the slowest of those three bounds its error."""
    ctx = zmq.Context()
    s = ctx.socket(zmq.REQ)
    s.setsockopt(zmq.LINGER, 0)
    s.setsockopt(zmq.RCVTIMEO, timeout_ms)
    s.connect(endpoint)
    samples = []
    try:
        for _ in range(rounds):
            t0 = time.time()
            s.send(b't')
            try:
                t_host = msgpack.unpackb(s.recv())
            except zmq.Again:
                raise NanolinkError('no clock answer from {} within {} ms: is latency-bench --role host running '
                                    'there?'.format(endpoint, timeout_ms))
            t1 = time.time()
            samples.append((t1 - t0, t_host - (t0 + t1) / 2.0))
    finally:
        s.close()
        ctx.term()
    best = sorted(samples)[:3]
    return float(np.median([o for _, o in best])), best[-1][0] / 2.0


def time_endpoint(data_endpoint):
    """The clock endpoint beside a data endpoint: same host, port + 1."""
    base, port = data_endpoint.rsplit(':', 1)
    if not port.isdigit():
        raise NanolinkError('cannot derive the clock port from {}: give a numeric port'.format(data_endpoint))
    return '{}:{}'.format(base, int(port) + 1)
