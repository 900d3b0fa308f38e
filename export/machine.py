"""What a benchmark needs to know about the machine it ran on: the CPU, and how much of it other processes took.

On a small shared machine a benchmark is only as good as its quiet: with two cores, one other busy process takes
half of what ONNX Runtime's two threads would use, and one-core rows (the rANS coder, JPEG) lose their core for
slices of the run. ``OtherLoad`` measures it instead of guessing: from the machine's CPU counters (/proc/stat on
Linux) less this process's own CPU time, while a block of calls runs.
"""
import os
import platform
import resource
import time

PROC_STAT = '/proc/stat'


def cpu_name():
    """'AMD EPYC (x86_64, avx2)': the CPU's model and its widest vector extension, since ONNX Runtime's
    convolutions run about twice as fast with AVX-512 as with AVX2 on the same core count (the JPEG baseline barely
    changes), so budget runs are comparable only on the same kind of CPU."""
    model, flags = '', set()
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                key, _, value = line.partition(':')
                if key.strip() == 'model name' and not model:
                    model = value.strip()
                elif key.strip() in ('flags', 'Features') and not flags:
                    flags = set(value.split())
    except OSError:
        pass
    isa = next((x for x in ('avx512f', 'avx2', 'asimd', 'neon') if x in flags), 'unknown vector extension')
    return '{} ({}, {})'.format(model or platform.processor() or 'unknown CPU', platform.machine(), isa)


def _sample(stat_path):
    """(monotonic s, busy s of all CPUs, steal s, this process's CPU s), or None without readable CPU counters."""
    try:
        with open(stat_path) as f:
            fields = f.readline().split()
        ticks = [int(v) for v in fields[1:9]]
    except (OSError, ValueError):
        return None
    if fields[0] != 'cpu' or len(ticks) < 8:
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = ticks
    hz = float(os.sysconf('SC_CLK_TCK'))
    me = resource.getrusage(resource.RUSAGE_SELF)       # every thread of this process (ONNX Runtime's too)
    return time.monotonic(), (user + nice + system + irq + softirq) / hz, steal / hz, me.ru_utime + me.ru_stime


class OtherLoad:
    """Accumulates, over the blocks run inside it (``with meter:``), the share of the machine's CPU time that went
    to other processes, and the share the hypervisor stole, in percent of all cores over those blocks' wall time.
    ``percent`` and ``steal_percent`` are None where the counters cannot be read (not Linux)."""

    def __init__(self, stat_path=PROC_STAT, cores=None):
        self.stat_path = stat_path
        self.cores = cores or os.cpu_count() or 1
        self.wall = self.other = self.steal = 0.0
        self.known = True
        self._start = None

    def __enter__(self):
        self._start = _sample(self.stat_path)
        return self

    def __exit__(self, *exc):
        end = _sample(self.stat_path)
        if self._start is None or end is None:
            self.known = False
            return False
        wall = end[0] - self._start[0]
        self.wall += wall
        self.other += max(0.0, (end[1] - self._start[1]) - (end[3] - self._start[3]))
        self.steal += max(0.0, end[2] - self._start[2])
        return False

    def _pct(self, seconds):
        if not self.known or self.wall <= 0:
            return None
        return min(100.0, 100.0 * seconds / (self.wall * self.cores))

    @property
    def percent(self):
        return self._pct(self.other)

    @property
    def steal_percent(self):
        return self._pct(self.steal)
