"""ONNX Runtime sessions: how many threads they run on, and that those threads do not spin."""
import os
import subprocess
import sys

import pytest

from nanolink.common import zoo
from nanolink.common.backends import OnnxRuntimeBackend, _cgroup_cpus, cpu_threads

DECODER = zoo.bundled_model('cae').decoder_file(zoo.FAST)


def test_session_uses_the_cores_without_spinning():
    opts = OnnxRuntimeBackend(DECODER).session.get_session_options()
    assert opts.intra_op_num_threads == cpu_threads()
    assert opts.get_session_config_entry('session.intra_op.allow_spinning') == '0'
    assert OnnxRuntimeBackend(DECODER, threads=1).session.get_session_options().intra_op_num_threads == 1


@pytest.mark.skipif(not hasattr(os, 'sched_setaffinity'), reason='CPU affinity is Linux-only')
def test_cpu_threads_follow_the_affinity_mask():
    one = sorted(os.sched_getaffinity(0))[:1]
    code = ('import os; os.sched_setaffinity(0, {}); '
            'from nanolink.common.backends import cpu_threads; print(cpu_threads())'.format(set(one)))
    out = subprocess.run([sys.executable, '-c', code], stdout=subprocess.PIPE, check=True, universal_newlines=True)
    assert out.stdout.strip() == '1'
    assert 1 <= cpu_threads() <= len(os.sched_getaffinity(0))


@pytest.mark.parametrize('files, cpus', [
    ({'cpu.max': 'max 100000\n'}, None),
    ({'cpu.max': '150000 100000\n'}, 2),
    ({'cpu.max': '100000 100000\n'}, 1),
    ({'cpu/cpu.cfs_quota_us': '-1\n', 'cpu/cpu.cfs_period_us': '100000\n'}, None),
    ({'cpu/cpu.cfs_quota_us': '300000\n', 'cpu/cpu.cfs_period_us': '100000\n'}, 3),
    ({'cpu.max': 'garbage'}, None),
    ({}, None),
])
def test_cgroup_quota(tmp_path, files, cpus):
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    assert _cgroup_cpus(str(tmp_path)) == cpus
