"""Live state of a running host-receiver, shared between its receive loop (the only writer) and readers on
other threads (the web viewer's HTTP handlers).

The receive loop publishes each decoded frame with a small dict of that stream's counters; readers get
consistent copies under one lock. A frame is JPEG-coded for the browser only when a reader asks for it, at
most once per frame however many browsers watch, and outside the lock, so a viewer never slows decoding
down by more than the copy of a reference.
"""
import collections
import threading
import time

from nanolink.common.classical import encode_jpeg

HISTORY = 600          # end-to-end latency points kept per stream for the live plot


class LiveView(object):
    def __init__(self, jpeg_quality=80, history=HISTORY):
        self.jpeg_quality = jpeg_quality
        self._cond = threading.Condition()
        self._frames = {}          # stream -> (frame number, BGR image)
        self._jpeg = {}            # stream -> (frame number, JPEG bytes)
        self._stats = {}           # stream -> counters dict (from the receive loop)
        self._history = {}         # stream -> deque of (unix time, end-to-end ms)
        self._totals = {}
        self._history_len = history
        self._closed = False
        self.started = time.time()

    # -- the receive loop ------------------------------------------------------------------------------------
    def publish(self, stream, image, stats, t_done, end_to_end_ms):
        """A decoded frame of ``stream`` (BGR, not modified afterwards) and its stream's counters."""
        with self._cond:
            n = self._frames.get(stream, (0, None))[0] + 1
            self._frames[stream] = (n, image)
            self._stats[stream] = stats
            hist = self._history.get(stream)
            if hist is None:
                hist = self._history[stream] = collections.deque(maxlen=self._history_len)
            if end_to_end_ms is not None:      # None: the sender's clock is ahead of ours (not measurable)
                hist.append((t_done, end_to_end_ms))
            self._cond.notify_all()

    def update_stream(self, stream, stats):
        """New counters for a stream without a new frame (a rejected message, a quality score)."""
        with self._cond:
            self._stats[stream] = stats

    def forget(self, stream):
        """Drop an evicted stream's frame, counters and history."""
        with self._cond:
            for d in (self._frames, self._jpeg, self._stats, self._history):
                d.pop(stream, None)

    def update_totals(self, totals):
        with self._cond:
            self._totals = totals

    def close(self):
        """Wake every waiting reader; streams end."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    # -- readers ---------------------------------------------------------------------------------------------
    @property
    def closed(self):
        return self._closed

    def streams(self):
        with self._cond:
            return sorted(self._stats)

    def jpeg(self, stream, after=0, timeout=1.0):
        """(frame number, JPEG bytes) of the stream's newest frame once it is newer than ``after``; None when
        no such frame arrived within ``timeout`` seconds or the view closed."""
        deadline = time.time() + timeout
        with self._cond:
            while not self._closed:
                n, image = self._frames.get(stream, (0, None))
                if n > after:
                    break
                left = deadline - time.time()
                if left <= 0:
                    return None
                self._cond.wait(left)
            else:
                return None
            cached = self._jpeg.get(stream)
            if cached and cached[0] == n:
                return cached
        data = encode_jpeg(image, self.jpeg_quality).tobytes()        # outside the lock: decoding goes on
        with self._cond:
            self._jpeg[stream] = (n, data)
        return n, data

    def snapshot(self):
        """Everything /stats.json serves: totals, and per stream its counters and latency history (seconds
        before now, end-to-end ms)."""
        now = time.time()
        with self._cond:
            streams = {}
            for name, stats in self._stats.items():
                s = dict(stats)
                s['frame_number'] = self._frames.get(name, (0, None))[0]
                s['latency_history'] = [[round(t - now, 3), round(ms, 2)] for t, ms in self._history.get(name, ())]
                streams[name] = s
            out = dict(self._totals)
        out['streams'] = streams
        out['uptime_s'] = round(now - self.started, 3)
        out['time'] = now
        return out
