"""The edge's end of the link: a ZeroMQ PUSH socket that connects to a host-receiver.

    with Sender('tcp://192.168.1.10:5555') as tx:
        tx.send(message_bytes)        # False if the host did not take it within send_timeout_ms

The host binds and edges connect (works through Docker and NAT; many edges fan in to one host). While no
host is connected, up to ``hwm`` messages queue; beyond that ``send`` waits ``send_timeout_ms`` and then
drops the frame (returns False) instead of blocking the camera loop forever. ``close`` waits at most
``linger_ms`` for queued frames to leave.
"""
import zmq

from nanolink.common.errors import NanolinkError


def check_endpoint(endpoint, option):
    if not endpoint.startswith(('tcp://', 'ipc://', 'inproc://')):
        raise NanolinkError('{} {}: expected an endpoint like tcp://HOST:PORT'.format(option, endpoint))
    return endpoint


class Sender(object):
    def __init__(self, endpoint, hwm=64, send_timeout_ms=1000, linger_ms=2000, context=None):
        check_endpoint(endpoint, '--connect')
        self.endpoint = endpoint
        self._own_context = context is None
        self.context = context or zmq.Context()
        self.socket = self.context.socket(zmq.PUSH)
        self.socket.setsockopt(zmq.SNDHWM, hwm)
        self.socket.setsockopt(zmq.SNDTIMEO, send_timeout_ms)
        self.socket.setsockopt(zmq.LINGER, linger_ms)
        try:
            self.socket.connect(endpoint)
        except zmq.ZMQError as e:
            self.close()
            raise NanolinkError('--connect {}: {} (expected tcp://HOST:PORT)'.format(endpoint, e))
        self.sent = 0
        self.dropped = 0

    def send(self, message):
        try:
            self.socket.send(message, copy=len(message) < 65536)
        except zmq.Again:
            self.dropped += 1
            return False
        self.sent += 1
        return True

    def close(self):
        if self.socket is not None:
            self.socket.close()
            self.socket = None
        if self._own_context:
            self.context.term()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False
