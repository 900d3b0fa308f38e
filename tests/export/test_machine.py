"""export/machine.py: how much of the machine other processes took while a benchmark's calls ran."""
import os
import subprocess
import sys
import time

import pytest

from nanolink.export.budget import quiet_line
from nanolink.export.machine import OtherLoad, cpu_name

needs_proc = pytest.mark.skipif(not os.path.exists('/proc/stat'), reason='no /proc/stat: not Linux')


@needs_proc
def test_a_busy_process_beside_the_block_is_counted():
    mine = OtherLoad()
    with mine:                                       # this process busy, nothing started beside it
        t = time.process_time()
        while time.process_time() - t < 0.5:
            pass
    child = subprocess.Popen([sys.executable, '-c', 'while True: pass'])
    try:
        time.sleep(0.5)                              # the child is running before the block starts
        other = OtherLoad()
        with other:
            t = time.process_time()
            while time.process_time() - t < 1.0:     # a second of this process's own CPU time
                pass
    finally:
        child.kill()
        child.wait()
    cores = os.cpu_count()
    # the child (with whatever else runs) had at least a quarter of a core through the block: more load only adds
    assert other.percent >= 25.0 / cores
    assert 0.0 <= mine.percent <= 100.0 and 0.0 <= other.steal_percent <= 100.0


def test_counters_are_read_from_the_stat_file_and_steal_is_apart(tmp_path):
    stat = tmp_path / 'stat'
    hz = os.sysconf('SC_CLK_TCK')

    def write(user, steal):
        stat.write_text('cpu  {} 0 0 1000 0 0 0 {} 0 0\ncpu0 0 0 0 0 0 0 0 0 0 0\n'.format(user, steal))

    write(0, 0)
    meter = OtherLoad(str(stat), cores=4)
    with meter:
        write(2 * hz, hz)                            # 2 s of busy time, 1 s stolen
        time.sleep(0.05)
    other = 100.0 * 2.0 / (meter.wall * 4)           # less this process's CPU time in the block
    assert meter.steal_percent == pytest.approx(min(100.0, 100.0 / (meter.wall * 4)))
    assert 0.0 < meter.percent <= min(100.0, other)
    assert meter.percent == pytest.approx(min(100.0, other), rel=0.05, abs=1.0)


def test_without_counters_it_says_so_and_the_report_flags_a_busy_run(tmp_path):
    meter = OtherLoad(str(tmp_path / 'missing'))
    with meter:
        pass
    assert meter.percent is None and meter.steal_percent is None
    assert 'not measured' in quiet_line({'other_cpu_pct': None, 'steal_pct': None, 'cores': 2})
    assert 'NOT a quiet run' in quiet_line({'other_cpu_pct': 12.0, 'steal_pct': 0.0, 'cores': 2})
    line = quiet_line({'other_cpu_pct': 0.4, 'steal_pct': 0.1, 'cores': 2})
    assert 'took 0.4 % of the 2 cores' in line and 'steal 0.1 %' in line and 'NOT' not in line
    assert '(' in cpu_name() and ')' in cpu_name()
