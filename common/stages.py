"""Stage names, the per-frame stage clock, JSON-lines logs and the latency summary table.

One set of names is used everywhere (code, logs, tables, the wire format):
    edge: capture, preprocess, encode, gpu_to_cpu, entropy, reference, serialise, send
    host: receive, deserialise, decode, postprocess, display
entropy is the lossless coding of a binary code's payload on the edge CPU (zlib; ~0 when it is off);
deserialise includes its decoding on the host. reference is the JPEG coding of the source frame that
edge-sender --reference-every N sends every N frames for the host's quality monitor (~0 on other frames).
    end_to_end: host display done minus edge capture time (meaningful when both share a clock).
Backends return from ``forward`` only after the device has finished (they synchronise), so a stage's
clock never stops on queued GPU work.
"""
import collections
import json
import math
import os
import time

from nanolink.common.errors import NanolinkError

EDGE_STAGES = ('capture', 'preprocess', 'encode', 'gpu_to_cpu', 'entropy', 'reference', 'serialise', 'send')
HOST_STAGES = ('receive', 'deserialise', 'decode', 'postprocess', 'display')
END_TO_END = 'end_to_end'
ALL_STAGES = EDGE_STAGES + HOST_STAGES + (END_TO_END,)
SUMMARY_WINDOW = 5000    # the CLIs' exit tables cover the last this-many frames (memory stays bounded)


def sample_window():
    """A bounded store of one stage's latest timings (the per-frame log keeps them all)."""
    return collections.deque(maxlen=SUMMARY_WINDOW)


class StageClock(object):
    """Times named stages of one frame in milliseconds.

        clock = StageClock()
        with clock('encode'):
            ...
        clock.ms  # {'encode': 3.1}
    """

    def __init__(self):
        self.ms = {}
        self._name = None
        self._t0 = 0.0

    def __call__(self, name):
        if name not in ALL_STAGES:
            raise ValueError('unknown stage "{}", should be one of {}'.format(name, ALL_STAGES))
        self._name = name
        return self

    def __enter__(self):
        self._t0 = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.ms[self._name] = (time.perf_counter() - self._t0) * 1000.0
        return False


class JsonlLog(object):
    """Writes one JSON object per line, line-buffered."""

    def __init__(self, path, mode='w'):
        self._f = open(path, mode, buffering=1)

    def write(self, record):
        self._f.write(json.dumps(record, separators=(',', ':')) + '\n')

    def close(self):
        if self._f is not None:
            f, self._f = self._f, None
            f.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


class StreamLogs(object):
    """JSON-lines logs for many streams: a path containing ``{stream}`` gives one file per stream
    (e.g. ``logs/{stream}.jsonl``); any other path one file whose lines carry the stream id."""

    def __init__(self, path):
        self.path = path
        self._logs = {}
        self._closed = set()                  # streams whose file was closed (evicted): reopened to append
        if path and '{stream}' not in path:
            self._open(None)                  # a plain path is created (and checked) at start

    def _open(self, key):
        path = self.path.replace('{stream}', key) if key else self.path
        d = os.path.dirname(path)
        try:
            if d and not os.path.isdir(d):
                os.makedirs(d)
            log = self._logs[key] = JsonlLog(path, 'a' if key in self._closed else 'w')
        except OSError as e:
            raise NanolinkError('--log {}: cannot write there ({})'.format(path, e.strerror))
        return log

    def write(self, record):
        if not self.path:
            return
        key = record['stream'] if '{stream}' in self.path else None
        log = self._logs.get(key) or self._open(key)
        try:
            log.write(record)
        except OSError as e:                  # a full disk / SD card: one clear line, not a traceback
            raise NanolinkError('--log {}: cannot write to it ({}): free some space or point --log elsewhere'.format(
                self.path, e.strerror or e))

    def close_stream(self, stream):
        """Close a per-stream file ({stream} paths) of a stream that went idle; it is appended to if it returns."""
        log = self._logs.pop(stream, None)
        if log is not None:
            self._closed.add(stream)
            log.close()

    def close(self):
        logs, self._logs = self._logs, {}
        failed = []
        for log in logs.values():
            try:
                log.close()
            except OSError as e:
                failed.append(e.strerror or str(e))
        if failed:
            raise NanolinkError('--log {}: the last lines could not be written ({}): free some space or point --log '
                                'elsewhere'.format(self.path, failed[0]))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


def time_calls(fn, runs, warmup=3):
    """Milliseconds of each of ``runs`` calls of fn, after ``warmup`` untimed calls (benchmark scripts)."""
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1000.0)
    return out


def read_jsonl(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def percentile(values, q):
    """Linear-interpolated percentile (q in [0, 100]) of a non-empty sequence."""
    v = sorted(values)
    pos = (len(v) - 1) * q / 100.0
    lo, hi = int(math.floor(pos)), int(math.ceil(pos))
    return v[lo] + (v[hi] - v[lo]) * (pos - lo)


def summarise(stage_samples):
    """{stage: [ms, ...]} -> {stage: {median_ms, min_ms, max_ms, p5_ms, p95_ms, n}} in ALL_STAGES order."""
    out = {}
    for name in ALL_STAGES:
        vals = stage_samples.get(name)
        if vals:
            out[name] = {'median_ms': percentile(vals, 50), 'min_ms': min(vals), 'max_ms': max(vals),
                         'p5_ms': percentile(vals, 5), 'p95_ms': percentile(vals, 95), 'n': len(vals)}
    return out


def format_table(summary, title=''):
    """The per-stage latency table as text: median and min-max of each stage in milliseconds."""
    lines = [title] if title else []
    lines.append('{:<12} {:>9} {:>19} {:>6}'.format('stage', 'median ms', 'min-max ms', 'n'))
    for name, s in summary.items():
        where = 'edge' if name in EDGE_STAGES else ('host' if name in HOST_STAGES else 'both')
        lines.append('{:<12} {:>9.2f} {:>9.2f}-{:<9.2f} {:>6}   {}'.format(
            name, s['median_ms'], s['min_ms'], s['max_ms'], s['n'], where))
    return '\n'.join(lines)
