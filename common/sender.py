"""The edge's end of the link: a ZeroMQ DEALER whose I/O thread keeps frames until the host acknowledges them.

    with Sender('tcp://192.168.1.10:5555', session=s) as tx:   # edges connect (works through Docker and NAT)
        tx.send(message_bytes, seq)                     # False if it had to be dropped (buffer full too long)

The protocol (acknowledgements, credit, resending after a reconnection, latest mode) is described in
nanolink.common.transport; the acknowledgement message is in nanolink.common.wire.
"""
import collections
import itertools
import logging
import os
import threading
import time

import zmq

from nanolink.common import wire
from nanolink.common.answers import unpack_answer
from nanolink.common.errors import UsageError
from nanolink.common.transport import CREDIT, _ipv6, _Socket, check_endpoint

log = logging.getLogger('nanolink')


class Sender(_Socket):
    WAIT_STEP_MS = 200     # how often a wait looks at its stop event
    MAX_REASONS = 16       # distinct refusal reasons counted one by one
    REMEMBER = 4096        # frames answered, remembered so that a refusal after its acknowledgement still counts
    STOP_LINGER_MS = 2000  # once ``stop`` is set, how long a wait goes on without an acknowledgement coming in
    RESEND_AFTER_S = 10.0  # connected, frames in flight and no acknowledgement for this long: send them again

    def __init__(self, endpoint, hwm=64, send_timeout_ms=1000, linger_ms=2000, context=None, latest=False,
                 curve=(), stop=None, session=None, buffer_frames=256, buffer_bytes=64 << 20):
        """curve: socket options from nanolink.common.keys.edge_options (CurveZMQ client), or ().
        stop: a threading.Event (Ctrl-C) that cuts waits for the host short -- a full buffer, and close -- once
            STOP_LINGER_MS pass without an acknowledgement (a slow host that still acknowledges is waited for).
        session: the wire session of the frames (acknowledgements of other sessions are ignored); None: read from
        each message. buffer_frames, buffer_bytes: the acknowledged mode's buffer."""
        self.endpoint = check_endpoint(endpoint, '--connect', 'tcp://192.168.1.10:5555')
        self.stop, self.session, self.latest = stop, session, latest
        self._stalled = False                 # stopping, and a full buffer got no acknowledgement in STOP_LINGER_MS
        self.send_timeout_ms, self.linger_ms = send_timeout_ms, linger_ms
        self.buffer_frames, self.buffer_bytes = buffer_frames, buffer_bytes
        options = list(curve) + _ipv6(endpoint) + [(zmq.LINGER, 0), (zmq.SNDHWM, hwm if latest else 4 * CREDIT)]
        options += [(zmq.CONFLATE, 1)] if latest else []
        # (not ZMQ_IMMEDIATE: it drops a connection's unread incoming messages, the last acknowledgements among
        # them, when the host closes; instead a connection that dies takes its socket with it, see _reopen)
        self._options = options
        _Socket.__init__(self, zmq.DEALER, context, options)
        try:
            self._watch_and_connect()
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
        self._pending = collections.deque()     # [session, seq, message, in flight, sent ever, t sent, skipped,
                                                #  refused]
        self._bytes = 0
        self._in_flight = 0
        self._credit = CREDIT
        self._last_progress = time.time()
        self.sent = 0                 # frames handed to the socket (first sends)
        self.resent = 0               # frames sent again (after a reconnection, or an acknowledgement that did not come)
        self.acked = 0                # frames the host acknowledged
        self.dropped = 0              # frames given up: the buffer stayed full (or, latest: the socket refused)
        self.dropped_seqs = []        # their seqs (the first 10000)
        self.handshakes = 0           # hosts that completed a ZeroMQ handshake with this socket (reconnects too)
        self.connected = False        # a host is connected now (as of the last monitor event read)
        self.undelivered = 0          # set by close: frames never acknowledged
        self.bad_acks = 0             # answers that were not acknowledgements of this sender's frames
        self.refused = 0              # frames the host took but did not decode (a refusal came with the reason)
        self.refused_seqs = []        # their seqs (the first 10000)
        self.refusals = collections.Counter()    # reason -> frames (MAX_REASONS reasons, the rest as 'other')
        self.on_refused = None        # called as on_refused(seq, reason) on the I/O thread, e.g. to log it
        self._answered = collections.OrderedDict()   # (session, seq) -> refusal counted, of the latest answered
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
            left, t_progress = len(self._pending), time.time()
            while len(self._pending) >= self.buffer_frames or (self._pending and
                                                               self._bytes + len(message) > self.buffer_bytes):
                now = time.time()
                if len(self._pending) < left:            # acknowledgements came in: the host is there
                    left, t_progress, self._stalled = len(self._pending), now, False
                if deadline is not None and now >= deadline:
                    return self._drop(seq)
                if self.stop is not None and self.stop.is_set() and (
                        self._stalled or now - t_progress >= self.STOP_LINGER_MS / 1000.0):
                    self._stalled = True                 # stopping, and nothing acknowledged for a while: the host
                    return self._drop(seq)               # is gone, so the frames after this one do not wait either
                self._cond.wait(self.WAIT_STEP_MS / 1000.0 if deadline is None else
                                min(self.WAIT_STEP_MS / 1000.0, deadline - now))
            self._pending.append([session, seq, message, False, False, 0.0, False, False])
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
        """latest: acknowledgements are not needed; read them (refusals counted) and connection events, so that
        they do not pile up."""
        while self._monitor.poll(0):
            self._event()
        while self.socket.poll(0):
            self._answer(self.socket.recv())

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
            if not self.latest:
                self._reopen()        # what that connection did not acknowledge goes again, in order, on the next one

    def _reopen(self):
        """A connection died: take the acknowledgements it delivered, then replace the socket. ZeroMQ would keep the
        frames still queued for the dead connection and send them first on the next one, ahead of the older frames
        that died in flight: the host would get 13 before 3..12. A fresh socket starts with an empty queue, and every
        unacknowledged frame goes again from the oldest (the host drops the ones it already has)."""
        while self.socket.poll(0):
            self._answer(self.socket.recv())
        for sock in (self.socket, self._monitor):
            self._poller.unregister(sock)
        self._close_monitor()
        self.socket.close()
        self._open(zmq.DEALER, self._options)
        self._watch_and_connect()
        self._poller.register(self.socket, zmq.POLLIN)
        self._poller.register(self._monitor, zmq.POLLIN)
        self._rewind()

    def _watch_and_connect(self):
        self._monitor = self.socket.get_monitor_socket(zmq.EVENT_HANDSHAKE_SUCCEEDED | zmq.EVENT_DISCONNECTED)
        self.socket.connect(self.endpoint)

    def _rewind(self):
        for entry in self._pending:
            entry[3] = entry[6] = False
        self._in_flight = 0
        self._last_progress = time.time()

    def _answer(self, data):
        """One acknowledgement: the frame (session, seq) was taken. Only that frame leaves the buffer: the host may
        have taken a newer frame first (a repeat of an older one still on its way), so an acknowledgement says
        nothing of the frames before it. An older frame still in flight that the host passed over (its
        acknowledgement was lost, or the host answered out of turn) is marked, and sent again if no acknowledgement
        comes for it within RESEND_AFTER_S."""
        try:
            kind, session, seq, last = unpack_answer(data)
        except wire.WireError:
            self.bad_acks += 1
            return
        if self.session is not None and session != self.session:
            self.bad_acks += 1
            return
        if kind == 'refused':
            self._refusal(session, seq, last)
            return
        if self.latest:
            return
        self._credit = last
        for i, entry in enumerate(self._pending):       # nearly always the oldest
            if entry[1] == seq and entry[0] == session and entry[4]:
                break
        else:
            return                    # a repeat's second acknowledgement: already taken
        del self._pending[i]
        self._bytes -= len(entry[2])
        self._in_flight -= int(entry[3])
        self.acked += 1
        self._last_progress = time.time()
        self._stalled = False                        # a host is there again: close waits for it as usual
        self._remember((session, seq), entry[7])     # its refusal, if any, comes next (or came first)
        for older in itertools.islice(self._pending, i):
            older[6] = older[3]

    def _remember(self, key, counted):
        self._answered[key] = counted
        if len(self._answered) > self.REMEMBER:
            self._answered.popitem(last=False)

    def _refusal(self, session, seq, reason):
        """The host took frame seq but did not decode it: counted once (a frame sent again and refused again is the
        same frame) and reported. The host sends it before and after the frame's acknowledgement (a conflating
        socket, latest mode, keeps the newest answer): it counts either way. A refusal of a frame this sender has
        not sent is passed over."""
        key = (session, seq)
        entry = None if self.latest else next((e for e in self._pending if e[1] == seq and e[0] == session and e[4]),
                                              None)
        if entry is not None:
            if entry[7]:
                return
            entry[7] = True
        else:                                       # acknowledged already (or, latest, never buffered)
            never_sent = seq >= self.sent + self.dropped if self.latest else key not in self._answered
            if never_sent or self._answered.get(key):
                return                              # not this sender's frame, or its refusal counted already
            self._remember(key, True)
        reason = ''.join(c if c.isprintable() else '?' for c in reason)   # a host's words, shown in a terminal
        self.refused += 1
        if len(self.refused_seqs) < 10000:
            self.refused_seqs.append(seq)
        key = reason if reason in self.refusals or len(self.refusals) < self.MAX_REASONS else 'other'
        self.refusals[key] += 1
        if self.on_refused is not None:
            try:
                self.on_refused(seq, reason)
            except Exception:                       # the caller's callback: its failure must not stop the link
                log.exception('on_refused(%d, ...) raised; the link goes on', seq)

    def _transmit(self):
        now = time.time()
        if self.connected and self._in_flight and now - self._last_progress > self.RESEND_AFTER_S:
            self._rewind()            # acknowledgements stopped on a live connection: send the window again
        else:
            for entry in self._pending:
                if entry[6] and now - entry[5] > self.RESEND_AFTER_S:
                    entry[3] = entry[6] = False          # passed over and still no acknowledgement: again
                    self._in_flight -= 1
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
            entry[5] = now
            self._in_flight += 1
        for entry in untracked:
            self._pending.remove(entry)
            self._bytes -= len(entry[2])

    def wait_acknowledged(self, timeout_ms):
        """Wait for every buffered frame to be acknowledged, giving up after timeout_ms without an acknowledgement
        (-1: never; once ``stop`` is set, STOP_LINGER_MS at most, and not at all when a send already waited that
        long after the stop for nothing), so a slow host that keeps acknowledging is waited for; True if none is
        left."""
        if self.latest:
            return True
        limit = None if timeout_ms < 0 else timeout_ms / 1000.0
        with self._cond:
            left, t_progress = len(self._pending), time.time()
            while self._pending:
                now = time.time()
                if len(self._pending) < left:            # a slow host that still acknowledges is waited for
                    left, t_progress = len(self._pending), now
                wait = limit
                if self.stop is not None and self.stop.is_set():
                    if self._stalled:                    # send already gave the host STOP_LINGER_MS after the stop
                        break
                    wait = self.STOP_LINGER_MS / 1000.0 if wait is None else min(wait, self.STOP_LINGER_MS / 1000.0)
                if wait is not None and now - t_progress >= wait:
                    break
                self._cond.wait(self.WAIT_STEP_MS / 1000.0)
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
        """Close after waiting for buffered frames to be acknowledged, until ``linger_ms`` (default: the
        constructor's; -1: no limit; ``stop``: STOP_LINGER_MS) pass without an acknowledgement; those that were not
        are counted in ``undelivered``."""
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
