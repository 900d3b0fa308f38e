"""The link: ZeroMQ DEALER (edge) -> ROUTER (host), one nanolink message per ZeroMQ frame, with acknowledgements.

    with Receiver('tcp://*:5555') as rx:               # the host binds
        data = rx.recv(timeout_s=1.0)                   # bytes, MULTIPART, or None when nothing came in time
        rx.ack(session, seq)                            # after taking the frame (decoded, rejected or a repeat)
    with Sender('tcp://192.168.1.10:5555', session=s) as tx:   # edges connect (works through Docker and NAT)
        tx.send(message_bytes, seq)                     # False if it had to be dropped (buffer full too long)

(Sender is in nanolink.common.sender.)

Acknowledged mode (the default): an I/O thread owns the socket, so frames move and answers are read whatever the
caller does between sends; it keeps every frame until the host acknowledges it (the session and seq of each frame
taken; one taken but not decoded is also refused, with the reason: the sender counts those in ``refused``), in a
buffer of at most ``buffer_frames`` frames and ``buffer_bytes`` bytes, and has at most ``credit`` frames in
flight, as the host grants. After a reconnection (the host restarted, the network came back) it replaces the
socket, so nothing queued for the dead connection jumps the queue, and sends every unacknowledged frame again,
oldest first; the host drops repeats by (session, seq). A frame is dropped only when the buffer stayed full for
``send_timeout_ms`` (-1: wait, in short steps, until ``stop``); it is counted in ``dropped`` and its seq kept in
``dropped_seqs``. ``close`` waits for the rest to be acknowledged until ``linger_ms`` pass without an
acknowledgement, and counts what was not in ``undelivered`` (not acknowledged in time: a host may still have
them, e.g. one busy decoding). Nothing blocks without a timeout.
latest=True: no acknowledgements and no buffer; ZMQ_CONFLATE keeps only the newest unsent frame, so a slow host
shows the newest frame instead of falling behind (older ones show up as ``lost`` at the host).

Receiver: every receive has a timeout (no hangs); messages over ``max_message_bytes`` (twice the wire format's
limit) are refused by ZeroMQ itself (ZMQ_MAXMSGSIZE closes that connection, the message is never seen, the edge
reconnects); a socket monitor counts accepted and closed connections and refused CurveZMQ handshakes; a multipart
message is drained and returned as MULTIPART, since a nanolink frame is always one ZeroMQ frame. With CurveZMQ,
``user`` names the edge whose key sent the last message (nanolink-keys: the key file's name, its stream id).
"""
import time

import zmq

from nanolink.common import wire
from nanolink.common.answers import pack_ack, pack_refusal
from nanolink.common.errors import NanolinkError, UsageError

MULTIPART = object()
CREDIT = 32                # frames an edge may have in flight, unacknowledged, per the host's acknowledgements


def check_endpoint(endpoint, option, example, any_port=False):
    """A ZeroMQ endpoint: tcp://HOST:PORT with PORT in 1..65535 ('*' too where ``any_port``), ipc:// or inproc://;
    a UsageError naming the option otherwise."""
    if not isinstance(endpoint, str) or not endpoint.startswith(('tcp://', 'ipc://', 'inproc://')):
        raise UsageError('{} {}: expected an endpoint like {}'.format(
            option, endpoint if isinstance(endpoint, str) else repr(endpoint), example))
    if endpoint.startswith('tcp://'):
        host, _, port = endpoint[len('tcp://'):].rpartition(':')
        if not host or not (port.isdigit() and 1 <= int(port) <= 65535 or any_port and port == '*'):
            raise UsageError('{} {}: expected tcp://HOST:PORT with a port in 1..65535{}, e.g. {}'.format(
                option, endpoint, " or '*' (any free port)" if any_port else '', example))
    return endpoint


def _ipv6(endpoint):
    """IPv6 for a bracketed address (tcp://[::1]:5555) only: sockets stay IPv4 where a kernel has no IPv6."""
    return [(zmq.IPV6, 1)] if endpoint.startswith('tcp://[') else []


class _Socket(object):
    """Owns one socket (and its context unless one is given); a context manager."""

    def __init__(self, kind, context, options):
        self._own_context = context is None
        self.context = context or zmq.Context()
        self._auth = None
        self._monitor = None
        self._open(kind, options)

    def _open(self, kind, options):
        self.socket = self.context.socket(kind)
        for opt, value in options:
            self.socket.setsockopt(opt, value)

    def _close_monitor(self):
        if self._monitor is not None:
            self.socket.disable_monitor()
            self._monitor.close()
            self._monitor = None

    def close(self):
        if self.socket is not None:
            self._close_monitor()
            self.socket.close()
            self.socket = None
        if self._auth is not None:
            self._auth.stop()
            self._auth = None
        if self._own_context and not self.context.closed:
            self.context.term()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


class Receiver(_Socket):
    def __init__(self, endpoint, hwm=1024, max_message_bytes=2 * wire.MAX_MESSAGE_BYTES, context=None, latest=False,
                 curve=None):
        """curve: (socket options, allow-list folder, {public key z85: edge name}) from
        nanolink.common.keys.host_options, or None. latest: ``recv`` returns only the newest message waiting (the
        ones it skips are acknowledged too: ``skipped`` lists their (session, seq) as read)."""
        check_endpoint(endpoint, '--bind', 'tcp://*:5555', any_port=True)
        options, allowed, self.names = curve if curve else ([], None, {})
        self.latest = latest
        _Socket.__init__(self, zmq.ROUTER, context, list(options) + _ipv6(endpoint) + [
            (zmq.RCVHWM, hwm), (zmq.MAXMSGSIZE, max_message_bytes), (zmq.LINGER, 0), (zmq.SNDHWM, 4096)])
        if allowed:
            from zmq.auth.thread import ThreadAuthenticator
            self._auth = ThreadAuthenticator(self.context)
            self._auth.start()
            self._auth.configure_curve(domain='*', location=allowed)     # only these edges get in
        try:
            self.socket.bind(endpoint)
        except zmq.ZMQError as e:
            self.close()
            if e.errno == zmq.EADDRINUSE:
                raise NanolinkError('--bind {}: {} (is another host-receiver using the port? pick another with '
                                    '--bind tcp://*:PORT)'.format(endpoint, e))
            raise NanolinkError('--bind {}: {} (bind to an address of this machine, e.g. tcp://*:5555 for all of '
                                'them or tcp://127.0.0.1:5555 for this machine only)'.format(endpoint, e))
        self.endpoint = self.socket.getsockopt_string(zmq.LAST_ENDPOINT)
        self.connections_accepted = self.connections_closed = self.handshakes_refused = 0
        self.peer = self.user = None          # the sending socket of the last message, and its key's edge name
        self.skipped = []                     # latest: (peer, data) of waiting messages recv passed over
        events = zmq.EVENT_ACCEPTED | zmq.EVENT_DISCONNECTED
        events |= getattr(zmq, 'EVENT_HANDSHAKE_FAILED_AUTH', 0) | getattr(zmq, 'EVENT_HANDSHAKE_FAILED_PROTOCOL', 0)
        self._monitor = self.socket.get_monitor_socket(events)
        self._poller = zmq.Poller()
        self._poller.register(self.socket, zmq.POLLIN)
        self._poller.register(self._monitor, zmq.POLLIN)

    def wait(self, timeout_s):
        """True when a message is ready within timeout_s seconds (connection events are counted meanwhile)."""
        deadline = time.time() + timeout_s
        while True:
            ready = dict(self._poller.poll(max(0, int((deadline - time.time()) * 1000))))
            if self._monitor in ready:
                self._drain_monitor()
            if self.socket in ready:
                return True
            if time.time() >= deadline:
                return False

    def connection_counts(self):
        """(accepted, closed) connections so far, after reading pending monitor events."""
        self._drain_monitor()
        return self.connections_accepted, self.connections_closed

    def _drain_monitor(self):
        from zmq.utils.monitor import recv_monitor_message
        while self._monitor.poll(0):
            event = recv_monitor_message(self._monitor)['event']
            if event == zmq.EVENT_ACCEPTED:
                self.connections_accepted += 1
            elif event == zmq.EVENT_DISCONNECTED:
                self.connections_closed += 1
            else:                              # a CurveZMQ handshake the allow-list (or the protocol) refused
                self.handshakes_refused += 1

    def _read(self):
        """(peer, user, data or MULTIPART) of the next message."""
        parts = self.socket.recv_multipart(copy=False)
        peer = parts[0].bytes
        user = None
        if self.names:
            try:
                user = self.names.get(parts[-1].get('User-Id'))
            except zmq.ZMQError:
                user = None
        return peer, user, (parts[1].bytes if len(parts) == 2 else MULTIPART)

    def recv_ready(self):
        """Take the message that ``wait`` reported: bytes, or MULTIPART for a multipart message. With latest, the
        newest of those already waiting (the others go to ``skipped``)."""
        self.peer, self.user, data = self._read()
        self.skipped = []
        while self.latest and self.socket.poll(0):
            self.skipped.append((self.peer, data))
            self.peer, self.user, data = self._read()
        return data

    def recv(self, timeout_s):
        return self.recv_ready() if self.wait(timeout_s) else None

    def close(self):
        if self.socket is not None:
            self.socket.setsockopt(zmq.LINGER, 500)     # the last acknowledgements still leave
        _Socket.close(self)

    def ack(self, session, seq, peer=None, refused=None):
        """Acknowledge ``session``'s frame ``seq`` to the socket that sent the last message (or ``peer``), granting
        it CREDIT more in flight; ``refused``: why the frame was not decoded, sent to the edge before and after the
        acknowledgement (a refusal: an edge in acknowledged mode has it before the acknowledgement can end its
        close, one in latest mode, whose socket keeps only the newest answer, has the second; an edge counts a
        frame's refusals once). Never blocks: an edge that reads no answers loses them."""
        refusal = [pack_refusal(session, seq, refused)] if refused else []
        for answer in refusal + [pack_ack(session, seq, CREDIT)] + refusal:
            try:
                self.socket.send_multipart([peer or self.peer, answer], zmq.NOBLOCK)
            except zmq.ZMQError:               # the edge is gone (or not reading): it sends again after reconnecting
                return
