"""The link: ZeroMQ PUSH (edge) -> PULL (host), one nanolink message per ZeroMQ frame.

    with Receiver('tcp://*:5555') as rx:               # the host binds
        data = rx.recv(timeout_s=1.0)                   # bytes, MULTIPART, or None when nothing came in time
    with Sender('tcp://192.168.1.10:5555') as tx:      # edges connect (works through Docker and NAT)
        tx.send(message_bytes)                          # False if the host did not take it in time

Sender: while no host is connected up to ``hwm`` messages queue; beyond that ``send`` waits
``send_timeout_ms`` and drops the frame (returns False) rather than blocking the camera loop
(send_timeout_ms=-1 waits for the host, in short steps, so a ``stop`` event still ends the wait); ``close``
waits at most ``linger_ms`` for queued frames to leave; frames queued while no host was connected (a socket
monitor watches handshakes and disconnects) wait that long for one, and are then dropped and counted in
``undelivered`` (all of them when no host ever came: ``handshakes`` stays 0).
latest=True (both classes): ZMQ_CONFLATE keeps only the newest message in the queue, so a slow host shows
the newest frame instead of falling further behind; older frames are dropped (they show up as ``lost`` in the
host's per-stream counts). Reliable mode (the default) drops nothing while the host keeps up, at the cost
of latency growing when it does not.
Receiver: every receive has a timeout (no hangs); messages over ``max_message_bytes`` (twice the wire
format's limit) are refused by ZeroMQ itself (ZMQ_MAXMSGSIZE closes that connection, the message is never
seen, the edge reconnects); a socket monitor counts accepted and closed connections, so such a drop shows up
in ``connections_closed``; messages between the two limits arrive and are rejected, counted and logged by
wire.unpack; a multipart message is drained and returned as MULTIPART, since a nanolink frame is always one
ZeroMQ frame.
"""
import time

import zmq

from nanolink.common import wire
from nanolink.common.errors import NanolinkError, UsageError

MULTIPART = object()


def check_endpoint(endpoint, option, example, any_port=False):
    """A ZeroMQ endpoint: tcp://HOST:PORT with PORT in 1..65535 ('*' too where ``any_port``), ipc:// or inproc://;
    a UsageError naming the option otherwise."""
    if not endpoint.startswith(('tcp://', 'ipc://', 'inproc://')):
        raise UsageError('{} {}: expected an endpoint like {}'.format(option, endpoint, example))
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
        self.socket = self.context.socket(kind)
        self._auth = None
        for opt, value in options:
            self.socket.setsockopt(opt, value)

    def close(self):
        if self.socket is not None:
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


class Sender(_Socket):
    WAIT_STEP_MS = 200     # with send_timeout_ms=-1, how often a blocked send looks at its stop event

    STOP_LINGER_MS = 2000  # once ``stop`` is set, the longest close still waits for queued frames to leave

    def __init__(self, endpoint, hwm=64, send_timeout_ms=1000, linger_ms=2000, context=None, latest=False,
                 curve=(), stop=None):
        """curve: socket options from nanolink.common.keys.edge_options (CurveZMQ client), or ().
        stop: a threading.Event (Ctrl-C) that cuts waits for the host short: a blocked send, and close."""
        self.endpoint = check_endpoint(endpoint, '--connect', 'tcp://192.168.1.10:5555')
        self.stop = stop
        self.wait_forever = send_timeout_ms < 0
        self.linger_ms = linger_ms
        _Socket.__init__(self, zmq.PUSH, context, list(curve) + _ipv6(endpoint) + [
            (zmq.CONFLATE, int(latest)), (zmq.SNDHWM, hwm),
            (zmq.SNDTIMEO, self.WAIT_STEP_MS if self.wait_forever else send_timeout_ms), (zmq.LINGER, linger_ms)])
        self._monitor = self.socket.get_monitor_socket(zmq.EVENT_HANDSHAKE_SUCCEEDED | zmq.EVENT_DISCONNECTED)
        try:
            self.socket.connect(endpoint)
        except zmq.ZMQError as e:
            self.close()
            raise UsageError('--connect {}: {} (expected tcp://HOST:PORT)'.format(endpoint, e))
        self.sent = 0
        self.dropped = 0
        self.handshakes = 0           # hosts that completed a ZeroMQ handshake with this socket (reconnects too)
        self.connected = False        # a host is connected now (as of the last monitor event read)
        self.queued_while_away = 0    # frames queued since the host went away (or before it ever came)
        self.undelivered = 0          # set by close: frames still queued with no host to take them

    def send(self, message):
        """Queue one message; False (and counted in ``dropped``) when the queue stayed full for send_timeout_ms,
        or, waiting for the host, when ``stop`` was set."""
        stop = self.stop
        self._read_events(0)
        while True:
            try:
                self.socket.send(message, copy=len(message) < 65536)
                break
            except zmq.Again:
                if not self.wait_forever or (stop is not None and stop.is_set()):
                    self.dropped += 1
                    return False
        self.sent += 1
        if not self.connected:
            self.queued_while_away += 1
        return True

    def _read_events(self, timeout_ms):
        """Read the monitor's events, waiting up to timeout_ms for the first; True if one was read."""
        from zmq.utils.monitor import recv_monitor_message
        got = False
        while self._monitor is not None and self._monitor.poll(timeout_ms if not got else 0):
            got = True
            event = recv_monitor_message(self._monitor)['event']
            if event == zmq.EVENT_HANDSHAKE_SUCCEEDED:     # frames queued meanwhile leave now
                self.handshakes += 1
                self.connected, self.queued_while_away = True, 0
            elif event == zmq.EVENT_DISCONNECTED:
                self.connected = False
        return got

    def _await_host(self, timeout_ms):
        """Wait up to timeout_ms (-1: until one comes, or ``stop`` plus STOP_LINGER_MS) for a connected host."""
        deadline = None if timeout_ms < 0 else time.time() + timeout_ms / 1000.0
        stop_deadline = None
        self._read_events(0)
        while self._monitor is not None and not self.connected:
            if stop_deadline is None and self.stop is not None and self.stop.is_set():
                stop_deadline = time.time() + self.STOP_LINGER_MS / 1000.0
                deadline = stop_deadline if deadline is None else min(deadline, stop_deadline)
            left = min(200, max(0, int((deadline - time.time()) * 1000))) if deadline else 200
            if not self._read_events(left) and deadline is not None and time.time() >= deadline:
                break
        return self.connected

    def close(self, linger_ms=None):
        """Close, waiting up to ``linger_ms`` (default: the constructor's; -1: as long as it takes) for queued
        frames to leave. While frames were queued with no host connected, that time is spent waiting for one; with
        none by then, those frames (all, if no host ever came) are dropped at once and counted in ``undelivered``,
        since nothing could take them."""
        if self.socket is not None:
            linger = self.linger_ms if linger_ms is None else linger_ms
            t0 = time.time()
            self._read_events(0)
            # wait for a host only when frames wait for one: a host that left after taking every frame is fine
            connected = self._await_host(linger) if self.queued_while_away else True
            if not self.connected and linger < 0:     # the host left after taking our frames: do not wait forever
                linger = self.STOP_LINGER_MS
            if self.stop is not None and self.stop.is_set():
                linger = self.STOP_LINGER_MS if linger < 0 else min(linger, self.STOP_LINGER_MS)
            if connected and linger >= 0:
                linger = max(0, linger - int((time.time() - t0) * 1000))
            if not connected:
                self.undelivered = self.queued_while_away
            self.socket.setsockopt(zmq.LINGER, linger if connected else 0)
            if self._monitor is not None:
                self.socket.disable_monitor()
                self._monitor.close()
                self._monitor = None
        _Socket.close(self)


class Receiver(_Socket):
    def __init__(self, endpoint, hwm=64, max_message_bytes=2 * wire.MAX_MESSAGE_BYTES, context=None, latest=False,
                 curve=None):
        """curve: (socket options, allow-list folder) from nanolink.common.keys.host_options, or None."""
        check_endpoint(endpoint, '--bind', 'tcp://*:5555', any_port=True)
        options, allowed = curve if curve else ([], None)
        _Socket.__init__(self, zmq.PULL, context, list(options) + _ipv6(endpoint) + [
            (zmq.CONFLATE, int(latest)), (zmq.RCVHWM, hwm), (zmq.MAXMSGSIZE, max_message_bytes), (zmq.LINGER, 0)])
        if allowed:
            from zmq.auth.thread import ThreadAuthenticator
            self._auth = ThreadAuthenticator(self.context)
            self._auth.start()
            self._auth.configure_curve(domain='*', location=allowed)     # only these edges get in
        self._monitor = None
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
        self.connections_accepted = self.connections_closed = 0
        self._monitor = self.socket.get_monitor_socket(zmq.EVENT_ACCEPTED | zmq.EVENT_DISCONNECTED)
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

    def close(self):
        if self.socket is not None and self._monitor is not None:
            self.socket.disable_monitor()
            self._monitor.close()
            self._monitor = None
        _Socket.close(self)

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
