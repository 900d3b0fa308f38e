"""Bounded per-stream state of a host-receiver: what one unauthenticated sender cannot grow.

    table = StreamTable(max_streams=64, idle_s=300, max_pixel_rate=250e6)
    st, why = table.admit('cam1', now, pixels)     # None and a reason when the stream cannot be taken
    rejects = RejectLog()                          # counts by reason with a bounded set of keys

A stream gets state (counters, and the per-stream log file, video track, window and viewer slot that hang off
it) only once it delivers a valid frame, and only while fewer than ``max_streams`` streams are live; a stream
that sent nothing for ``idle_s`` seconds is evicted to make room (its counters are kept for the summary, its
resources released through ``on_evict``). Each stream may have at most ``max_pixel_rate`` decoded pixels a
second (a token bucket one second deep): a flood of large frames is rejected before the decoder runs.
"""
import collections
import logging
import re
import time

log = logging.getLogger('nanolink.host')

MAX_REASON_KEYS = 32
MAX_GAP = 100000          # a seq gap larger than this is a jump, not lost frames (an hour at 30 fps)
MAX_SESSIONS = 1000       # (stream id, session) labels remembered
TAKEN_WINDOW = 4096       # seqs remembered per stream to tell a repeat from a late frame
REFUSALS_KEPT = 64        # refused seqs remembered per stream, with why, to refuse a repeat again
_VALUES = re.compile(r"'[^']*'|\"[^\"]*\"|\[[^\]]*\]|\{[^}]*\}|\b[0-9a-f]{16}\b|-?\d+(\.\d+)?(e-?\d+)?")


class StreamStats(object):
    """Per-stream counters, sequence tracking and the latest figures the viewers show."""

    FPS_WINDOW_S = 2.0

    def __init__(self, now=None):
        self.received = 0         # messages from this stream (decoded or rejected)
        self.decoded = 0
        self.rejected = 0
        self.lost = 0
        self.reordered = 0
        self.repeats = 0          # frames sent again after a reconnection, already taken: acknowledged, not decoded
        self.jumps = 0            # seq jumps too large to be lost frames (MAX_GAP): counted here, not as lost
        self.last_seq = None
        self.bits = 0             # codec bits (message bytes without the reference frame)
        self.pixels = 0
        self.ref_bytes = 0
        self.clock_ahead = 0      # frames whose capture time is after their decode time (sender clock ahead)
        self.latest = {}          # the newest decoded frame's figures
        self.last_seen = time.time() if now is None else now
        self.budget = None        # decoded pixels it may still spend this second (StreamTable)
        self._times = collections.deque()
        self._taken = collections.deque(maxlen=TAKEN_WINDOW)     # the latest seqs taken, for repeats
        self._taken_set = set()
        self.refusals = collections.OrderedDict()   # seq -> why, of the latest REFUSALS_KEPT taken but not decoded

    def is_repeat(self, seq):
        """True for a seq this stream has taken already (an edge sending it again after a reconnection); a seq
        older than the window of the last TAKEN_WINDOW counts as one too."""
        if self.last_seq is None or seq > self.last_seq:
            return False
        return seq in self._taken_set or seq < self.last_seq - TAKEN_WINDOW

    def taken(self, seq):
        if len(self._taken) == self._taken.maxlen:
            self._taken_set.discard(self._taken[0])
        self._taken.append(seq)
        self._taken_set.add(seq)

    def refuse(self, seq, reason):
        """A frame taken but not decoded: counted as taken (update), and its reason kept, so that a repeat of it (the
        edge sent it again after a reconnection, the refusal lost) is refused again."""
        self.update(seq)
        self.refusals[seq] = reason
        if len(self.refusals) > REFUSALS_KEPT:
            self.refusals.popitem(last=False)

    def update(self, seq):
        """A gap counts its frames as lost (one larger than MAX_GAP is a jump: no real stream loses that many
        between two frames, so one bad seq cannot poison the count); a frame older than the newest is reordered
        and, having been counted lost when the gap opened, no longer lost (a repeat of the newest is reordered
        only)."""
        if self.last_seq is not None:
            if seq > self.last_seq + 1 + MAX_GAP:
                self.jumps += 1
            elif seq > self.last_seq + 1:
                self.lost += seq - self.last_seq - 1
            elif seq <= self.last_seq:
                self.reordered += 1
                if seq < self.last_seq and self.lost:
                    self.lost -= 1
        if self.last_seq is None or seq > self.last_seq:
            self.last_seq = seq
        self.taken(seq)

    def decoded_frame(self, frame, message_bytes, now):
        """Count a decoded frame; returns its bpp (codec bytes over the frame's pixels)."""
        self.update(frame.seq)
        self.decoded += 1
        ref = len(frame.ref) if frame.ref is not None else 0
        pixels = frame.size[0] * frame.size[1]
        bpp = (message_bytes - ref) * 8.0 / pixels
        self.bits += (message_bytes - ref) * 8
        self.pixels += pixels
        self.ref_bytes += ref
        self._times.append(now)
        while self._times and now - self._times[0] > self.FPS_WINDOW_S:
            self._times.popleft()
        return bpp

    @property
    def fps(self):
        t = self._times
        return (len(t) - 1) / (t[-1] - t[0]) if len(t) > 1 and t[-1] > t[0] else 0.0

    def as_dict(self):
        """The counters and latest figures as plain JSON-able values (for /stats.json)."""
        out = {'received': self.received, 'decoded': self.decoded, 'rejected': self.rejected, 'lost': self.lost,
               'reordered': self.reordered, 'repeats': self.repeats, 'jumps': self.jumps,
               'clock_ahead': self.clock_ahead, 'last_seq': self.last_seq,
               'fps': round(self.fps, 3),
               'mean_bpp': self.bits / float(self.pixels) if self.pixels else None, 'ref_bytes': self.ref_bytes}
        out.update(self.latest)
        return out


class StreamTable(object):
    """The live streams (at most ``max_streams``), plus the counters of evicted ones for the summary."""

    def __init__(self, max_streams=64, idle_s=300.0, max_pixel_rate=250e6, on_evict=None, max_kept=1000):
        self.max_streams, self.idle_s, self.max_pixel_rate = max_streams, idle_s, max_pixel_rate
        self.on_evict = on_evict or (lambda name: None)
        self.live = collections.OrderedDict()    # name -> StreamStats, least recently seen first
        self.evicted = collections.OrderedDict()  # name -> StreamStats of streams evicted after idling
        self.max_kept = max_kept
        self.refused = 0                          # frames of new streams refused while the table was full
        self._refused_logged = 0.0
        self._labels = collections.OrderedDict()  # (stream id, session) -> label
        self._sessions = collections.Counter()    # stream id -> sessions seen

    def label(self, stream, session):
        """The name of stream id ``stream``'s ``session`` here: the id itself for its first session, then
        ``id~2``, ``id~3``... for a twin or a restarted edge ('~' is not in stream ids: no clash)."""
        key = (stream, session)
        name = self._labels.get(key)
        if name is None:
            self._sessions[stream] += 1
            n = self._sessions[stream]
            name = self._labels[key] = stream if n == 1 else '{}~{}'.format(stream, n)
            if n > 1:
                log.info('stream %s: a new session (%016x), counted and saved as %s', stream, session, name)
            while len(self._labels) > MAX_SESSIONS:
                self._labels.popitem(last=False)
        return name

    def get(self, name):
        """The live stream's state, or None (unknown or evicted)."""
        return self.live.get(name)

    def admit(self, name, now, pixels):
        """(StreamStats, None) for a frame of ``pixels`` from stream ``name`` that may be decoded, else
        (StreamStats or None, reason). Makes room by evicting the longest-idle stream past ``idle_s``."""
        st = self.live.get(name)
        if st is None:
            if len(self.live) >= self.max_streams:
                oldest_name, oldest = next(iter(self.live.items()))
                if now - oldest.last_seen < self.idle_s:
                    self.refused += 1
                    if now - self._refused_logged >= 10:
                        self._refused_logged = now
                        log.warning('refusing new streams: %d are live (host-receiver --max-streams %d); a stream '
                                    'is evicted after %.0f s without frames', len(self.live), self.max_streams,
                                    self.idle_s)
                    return None, 'too many streams (--max-streams {})'.format(self.max_streams)
                self.evict(oldest_name)
            st = StreamStats(now)
            if name in self.evicted:              # a stream back after eviction keeps its counters
                st = self.evicted.pop(name)
            self.live[name] = st
        else:
            self.live.move_to_end(name)
        elapsed = now - st.last_seen
        st.last_seen = now
        st.budget = self.max_pixel_rate if st.budget is None else min(
            self.max_pixel_rate, st.budget + max(elapsed, 0.0) * self.max_pixel_rate)
        if pixels > st.budget:
            return st, 'over the decoded pixel rate of this stream (--max-pixel-rate {:g} Mpx/s)'.format(
                self.max_pixel_rate / 1e6)
        st.budget -= pixels
        return st, None

    def evict(self, name):
        st = self.live.pop(name)
        self.evicted[name] = st
        while len(self.evicted) > self.max_kept:
            self.evicted.popitem(last=False)
        log.info('stream %s: no frame for %.0f s, its state released (%d streams live)', name, self.idle_s,
                 len(self.live))
        self.on_evict(name)

    def all(self):
        """Every stream seen (live and evicted, at most max_kept of the latter), by name."""
        out = dict(self.evicted)
        out.update(self.live)
        return out


def reason_key(reason):
    """A rejection reason without the sender's values (quoted strings, numbers, lists, fingerprints), cut at its
    first colon: the key it is counted under."""
    return _VALUES.sub('#', reason.split(':')[0])[:60].strip()


class RejectLog(object):
    """Counts rejected messages by reason (at most MAX_REASON_KEYS keys, the rest as "other"); logs at most
    ``per_s`` lines a second, then says how many it held back."""

    def __init__(self, per_s=5):
        self.counts = collections.Counter()
        self.examples = {}                        # key -> the first reason counted under it, values and all
        self.per_s, self._window, self._n, self._held = per_s, 0, 0, 0
        self._mismatch_seen = set()

    def add(self, reason, stream, fingerprint_mismatch=False):
        key = reason_key(reason)
        if key not in self.counts and len(self.counts) >= MAX_REASON_KEYS - 1:
            key = 'other'
        self.counts[key] += 1
        self.examples.setdefault(key, reason[:200])
        if fingerprint_mismatch:                  # one line per stream and model, not one per frame
            mkey = (stream, reason.split(' with fingerprint')[0])
            if mkey in self._mismatch_seen or len(self._mismatch_seen) >= 1000:
                return self._limited(None)
            self._mismatch_seen.add(mkey)
            return self._limited('refusing stream {}: {} (further frames of it are counted, not logged)'.format(
                stream, reason))
        self._limited('rejected message from {}: {}'.format('stream ' + stream if stream else 'unknown sender',
                                                              reason))

    def _limited(self, line):
        now = int(time.time())
        if now != self._window:
            if self._held:
                log.warning('... %d more rejected messages not shown', self._held)
            self._window, self._n, self._held = now, 0, 0
        if line is None:
            return
        if self._n < self.per_s:
            self._n += 1
            log.warning('%s', line)
        else:
            self._held += 1

    def flush(self):
        """Say how many lines were held back in the current second (called on exit)."""
        if self._held:
            log.warning('... %d more rejected messages not shown', self._held)
            self._held = 0

    @property
    def total(self):
        return sum(self.counts.values())
