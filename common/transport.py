"""The link: ZeroMQ DEALER (edge) -> ROUTER (host), one nanolink message per ZeroMQ frame, with acknowledgements.

    with Receiver('tcp://*:5555') as rx:               # the host binds
        data = rx.recv(timeout_s=1.0)                   # bytes, MULTIPART, or None when nothing came in time
        rx.ack(session, seq)                            # after taking the frame (decoded, rejected or a repeat)
    with Sender('tcp://192.168.1.10:5555', session=s) as tx:   # edges connect (works through Docker and NAT)
        tx.send(message_bytes, seq)                     # False if it had to be dropped (buffer full too long)

Acknowledged mode (the default): an I/O thread owns the socket, so frames move and acknowledgements are read
whatever the caller does between sends; it keeps every frame until the host acknowledges it (wire.pack_ack: the
session and the highest seq taken), in a buffer of at most ``buffer_frames`` frames and ``buffer_bytes`` bytes, and
has at most ``credit`` frames in flight, as the host grants. After a reconnection (the host restarted, the network
came back) it sends every unacknowledged frame again, in order; the host drops repeats by (session, seq). A frame is
dropped only when the buffer stayed full for ``send_timeout_ms`` (-1: wait, in short steps, until ``stop``); it is
counted in ``dropped`` and its seq kept in ``dropped_seqs``. ``close`` waits at most ``linger_ms`` for the rest to be
acknowledged and counts what was not in ``undelivered``. Nothing blocks without a timeout.
latest=True: no acknowledgements and no buffer; ZMQ_CONFLATE keeps only the newest unsent frame, so a slow host
shows the newest frame instead of falling behind (older ones show up as ``lost`` at the host).

Receiver: every receive has a timeout (no hangs); messages over ``max_message_bytes`` (twice the wire format's
limit) are refused by ZeroMQ itself (ZMQ_MAXMSGSIZE closes that connection, the message is never seen, the edge
reconnects); a socket monitor counts accepted and closed connections and refused CurveZMQ handshakes; a multipart
message is drained and returned as MULTIPART, since a nanolink frame is always one ZeroMQ frame. With CurveZMQ,
``user`` names the edge whose key sent the last message (nanolink-keys: the key file's name, its stream id).
"""
import collections
import os
import threading
import time

import zmq

from nanolink.common import wire
from nanolink.common.errors import NanolinkError, UsageError

MULTIPART = object()
CREDIT = 32                # frames an edge may have in flight, unacknowledged, per the host's acknowledgements


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
        self._monitor = None
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


class Sender(_Socket):
    WAIT_STEP_MS = 200     # how often a wait looks at its stop event
    STOP_LINGER_MS = 2000  # once ``stop`` is set, the longest close still waits for frames to be acknowledged
    RESEND_AFTER_S = 10.0  # connected, frames in flight and no acknowledgement for this long: send them again

    def __init__(self, endpoint, hwm=64, send_timeout_ms=1000, linger_ms=2000, context=None, latest=False,
                 curve=(), stop=None, session=None, buffer_frames=256, buffer_bytes=64 << 20):
        """curve: socket options from nanolink.common.keys.edge_options (CurveZMQ client), or ().
        stop: a threading.Event (Ctrl-C) that cuts waits for the host short: a full buffer, and close.
        session: the wire session of the frames (acknowledgements of other sessions are ignored); None: read from
        each message. buffer_frames, buffer_bytes: the acknowledged mode's buffer."""
        self.endpoint = check_endpoint(endpoint, '--connect', 'tcp://192.168.1.10:5555')
        self.stop, self.session, self.latest = stop, session, latest
        self.send_timeout_ms, self.linger_ms = send_timeout_ms, linger_ms
        self.buffer_frames, self.buffer_bytes = buffer_frames, buffer_bytes
        options = list(curve) + _ipv6(endpoint) + [(zmq.LINGER, 0), (zmq.SNDHWM, hwm if latest else 4 * CREDIT)]
        options += [(zmq.CONFLATE, 1)] if latest else []
        # (not ZMQ_IMMEDIATE: it drops a connection's unread incoming messages, the last acknowledgements among
        # them, when the host closes; frames queued for a connection that died are sent again anyway, and the host
        # drops the repeats)
        _Socket.__init__(self, zmq.DEALER, context, options)
        self._monitor = self.socket.get_monitor_socket(zmq.EVENT_HANDSHAKE_SUCCEEDED | zmq.EVENT_DISCONNECTED)
        try:
            self.socket.connect(endpoint)
        except zmq.ZMQError as e:
            self.close()
            raise UsageError('--connect {}: {} (expected tcp://HOST:PORT)'.format(endpoint, e))
        self._poller = zmq.Poller()
        self._poller.register(self.socket, zmq.POLLIN)
        self._poller.register(self._monitor, zmq.POLLIN)
        self._wake_r, self._wake_w = os.pipe()   # send() wakes the I/O thread through it
        os.set_blocking(self._wake_w, False)
        self._poller.register(self._wake_r, zmq.POLLIN)
        self._cond = threading.Condition()
        self._closing = False
        self._thread = None
        self._pending = collections.deque()     # [session, seq, message, sent now, sent ever], oldest first
        self._bytes = 0
        self._in_flight = 0
        self._credit = CREDIT
        self._last_progress = time.time()
        self.sent = 0                 # frames handed to the socket (first sends)
        self.resent = 0               # frames sent again after a reconnection
        self.acked = 0                # frames the host acknowledged
        self.dropped = 0              # frames given up: the buffer stayed full (or, latest: the socket refused)
        self.dropped_seqs = []        # their seqs (the first 10000)
        self.handshakes = 0           # hosts that completed a ZeroMQ handshake with this socket (reconnects too)
        self.connected = False        # a host is connected now (as of the last monitor event read)
        self.undelivered = 0          # set by close: frames never acknowledged
        self.bad_acks = 0             # answers that were not acknowledgements of this sender's frames
        if not latest:                # from here on the I/O thread alone uses the socket
            self._thread = threading.Thread(target=self._io, name='nanolink-sender', daemon=True)
            self._thread.start()

    def describe(self):
        """The buffer, as the edge prints it at start."""
        if self.latest:
            return 'latest frame only (no acknowledgements)'
        return 'acknowledged, buffer {} frames / {:.0f} MB'.format(self.buffer_frames, self.buffer_bytes / 2.0 ** 20)

    def send(self, message, seq=None):
        """Queue one message (its seq, or read from it); False when it had to be dropped. Acknowledged mode: the
        I/O thread sends it (and again after a reconnection) until the host acknowledges it."""
        if self.latest:
            self._read_answers()
            try:
                self.socket.send(message, zmq.NOBLOCK, copy=len(message) < 65536)
            except zmq.Again:
                return self._drop(seq)
            self.sent += 1
            return True
        session = self.session
        if seq is None or session is None:
            ids = wire.peek_ids(message)
            if ids is None:                   # not a frame (a test's junk): sent once connected, never acknowledged
                session = seq = None
            else:
                session, seq = ids if session is None else (session, seq if seq is not None else ids[1])
        deadline = None if self.send_timeout_ms < 0 else time.time() + self.send_timeout_ms / 1000.0
        with self._cond:
            while len(self._pending) >= self.buffer_frames or (self._pending and
                                                               self._bytes + len(message) > self.buffer_bytes):
                now = time.time()
                if (deadline is not None and now >= deadline) or (self.stop is not None and self.stop.is_set()):
                    return self._drop(seq)
                self._cond.wait(self.WAIT_STEP_MS / 1000.0 if deadline is None else
                                min(self.WAIT_STEP_MS / 1000.0, deadline - now))
            self._pending.append([session, seq, message, False, False])
            self._bytes += len(message)
        self._wake()
        return True

    def _drop(self, seq):
        self.dropped += 1
        if seq is not None and len(self.dropped_seqs) < 10000:
            self.dropped_seqs.append(seq)
        return False

    def _wake(self):
        try:
            os.write(self._wake_w, b'x')
        except (BlockingIOError, OSError):    # the pipe is full: the thread is awake anyway
            pass

    def _read_answers(self):
        """latest: acknowledgements are not needed; read them (and connection events) so they do not pile up."""
        while self._monitor.poll(0):
            self._event()
        while self.socket.poll(0):
            self.socket.recv()

    def _io(self):
        """The I/O thread of the acknowledged mode: the only user of the socket after start."""
        while True:
            ready = dict(self._poller.poll(self.WAIT_STEP_MS))
            with self._cond:
                if self._wake_r in ready:
                    try:
                        os.read(self._wake_r, 4096)
                    except (BlockingIOError, OSError):
                        pass
                while self._monitor.poll(0):
                    self._event()
                while self.socket.poll(0):
                    self._answer(self.socket.recv())
                self._transmit()
                self._cond.notify_all()
                if self._closing:
                    return

    def _event(self):
        from zmq.utils.monitor import recv_monitor_message
        event = recv_monitor_message(self._monitor)['event']
        if event == zmq.EVENT_HANDSHAKE_SUCCEEDED:
            self.handshakes += 1
            self.connected = True
        elif event == zmq.EVENT_DISCONNECTED:
            self.connected = False
            self._rewind()            # what that connection did not acknowledge goes again on the next one

    def _rewind(self):
        for entry in self._pending:
            entry[3] = False
        self._in_flight = 0
        self._last_progress = time.time()

    def _answer(self, data):
        try:
            session, seq, credit = wire.unpack_ack(data)
        except wire.WireError:
            self.bad_acks += 1
            return
        if self.session is not None and session != self.session:
            self.bad_acks += 1
            return
        self._credit = credit
        popped = False
        while self._pending and self._pending[0][4] and self._pending[0][0] == session and self._pending[0][1] <= seq:
            entry = self._pending.popleft()
            self._bytes -= len(entry[2])
            self._in_flight -= int(entry[3])
            self.acked += 1
            popped = True
        if popped:
            self._last_progress = time.time()

    def _transmit(self):
        if self.connected and self._in_flight and time.time() - self._last_progress > self.RESEND_AFTER_S:
            self._rewind()            # acknowledgements stopped on a live connection: send the window again
        untracked = []
        for entry in self._pending:
            if self._in_flight >= self._credit:
                break
            if entry[3]:
                continue
            try:
                self.socket.send(entry[2], zmq.NOBLOCK, copy=len(entry[2]) < 65536)
            except zmq.Again:         # the socket's queue is full (no host for a while)
                break
            if entry[1] is None:      # not a frame: sent once, nothing to wait for
                untracked.append(entry)
                continue
            if entry[4]:
                self.resent += 1
            else:
                self.sent += 1
            entry[3] = entry[4] = True
            self._in_flight += 1
        for entry in untracked:
            self._pending.remove(entry)
            self._bytes -= len(entry[2])

    def wait_acknowledged(self, timeout_ms):
        """Wait up to timeout_ms (-1: until all are, or ``stop`` plus STOP_LINGER_MS) for every buffered frame to be
        acknowledged; True if none is left."""
        if self.latest:
            return True
        deadline = None if timeout_ms < 0 else time.time() + timeout_ms / 1000.0
        stopped = False
        with self._cond:
            while self._pending:
                if not stopped and self.stop is not None and self.stop.is_set():
                    stopped = True
                    stop_deadline = time.time() + self.STOP_LINGER_MS / 1000.0
                    deadline = stop_deadline if deadline is None else min(deadline, stop_deadline)
                now = time.time()
                if deadline is not None and now >= deadline:
                    break
                self._cond.wait(self.WAIT_STEP_MS / 1000.0 if deadline is None else
                                min(self.WAIT_STEP_MS / 1000.0, deadline - now))
            return not self._pending

    def wait_connected(self, timeout_s):
        """True once a host has completed a handshake with this socket (waiting up to timeout_s for one)."""
        deadline = time.time() + timeout_s
        while not self.connected and time.time() < deadline:
            if self.latest:
                if self._monitor.poll(int(min(self.WAIT_STEP_MS, max(0, deadline - time.time()) * 1000))):
                    self._event()
            else:
                with self._cond:
                    self._cond.wait(min(self.WAIT_STEP_MS / 1000.0, max(0, deadline - time.time())))
        return self.connected

    @property
    def pending(self):
        return len(self._pending)

    def close(self, linger_ms=None):
        """Close after waiting up to ``linger_ms`` (default: the constructor's; -1: as long as it takes, until
        ``stop``) for buffered frames to be acknowledged; those that were not are counted in ``undelivered``."""
        if self.socket is not None:
            linger = self.linger_ms if linger_ms is None else linger_ms
            if self.latest and self._monitor is not None:
                self._read_answers()
                self.socket.setsockopt(zmq.LINGER, max(0, linger) if linger >= 0 else self.STOP_LINGER_MS)
            elif getattr(self, '_thread', None) is not None:
                self.wait_acknowledged(linger)
                with self._cond:
                    self._closing = True
                self._wake()
                self._thread.join()
                self._thread = None
                self.undelivered = len(self._pending)
        for fd in (getattr(self, '_wake_r', None), getattr(self, '_wake_w', None)):
            if fd is not None:
                os.close(fd)
        self._wake_r = self._wake_w = None
        _Socket.close(self)


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

    def ack(self, session, seq, peer=None):
        """Acknowledge ``session``'s frames up to ``seq`` to the socket that sent the last message (or ``peer``),
        granting it CREDIT more in flight. Never blocks: an edge that reads no acknowledgements loses them."""
        try:
            self.socket.send_multipart([peer or self.peer, wire.pack_ack(session, seq, CREDIT)], zmq.NOBLOCK)
        except zmq.ZMQError:                   # the edge is gone (or not reading): it sends again after reconnecting
            pass
