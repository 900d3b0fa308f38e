"""The host's end of the link: a ZeroMQ PULL socket that edge-senders connect to.

    with Receiver('tcp://*:5555') as rx:
        data = rx.recv(timeout_s=1.0)     # bytes, or None when nothing arrived in time

Every receive has a timeout (no hangs). The socket refuses messages over ``max_message_bytes``
(ZMQ_MAXMSGSIZE: the peer is disconnected) and multipart messages are drained and reported as one
malformed message (``MULTIPART``), since a nanolink frame is always a single ZeroMQ frame.
"""
import zmq

from nanolink.common import wire
from nanolink.common.errors import NanolinkError

MULTIPART = object()


class Receiver(object):
    def __init__(self, endpoint, hwm=64, max_message_bytes=wire.MAX_MESSAGE_BYTES, context=None):
        if not endpoint.startswith(('tcp://', 'ipc://', 'inproc://')):
            raise NanolinkError('--bind {}: expected an endpoint like tcp://*:5555'.format(endpoint))
        self._own_context = context is None
        self.context = context or zmq.Context()
        self.socket = self.context.socket(zmq.PULL)
        self.socket.setsockopt(zmq.RCVHWM, hwm)
        self.socket.setsockopt(zmq.MAXMSGSIZE, max_message_bytes)
        self.socket.setsockopt(zmq.LINGER, 0)
        try:
            self.socket.bind(endpoint)
        except zmq.ZMQError as e:
            self.close()
            raise NanolinkError('--bind {}: {} (is another host-receiver using the port? pick another with '
                                '--bind tcp://*:PORT)'.format(endpoint, e))
        self.endpoint = self.socket.getsockopt_string(zmq.LAST_ENDPOINT)
        self._poller = zmq.Poller()
        self._poller.register(self.socket, zmq.POLLIN)

    def wait(self, timeout_s):
        """True when a message is ready within timeout_s seconds."""
        return bool(self._poller.poll(int(timeout_s * 1000)))

    def recv_ready(self):
        """Take the message that ``wait`` reported: bytes, or MULTIPART for a multipart message."""
        data = self.socket.recv()
        if self.socket.getsockopt(zmq.RCVMORE):
            while self.socket.getsockopt(zmq.RCVMORE):
                self.socket.recv()
            return MULTIPART
        return data

    def recv(self, timeout_s):
        return self.recv_ready() if self.wait(timeout_s) else None

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
