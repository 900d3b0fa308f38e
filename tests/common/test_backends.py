"""ONNX Runtime sessions on the CPU: how many threads (nanolink.common.cpus), not pinned, not spinning."""
import glob
import os
import subprocess
import sys

import pytest

from nanolink.common import zoo
from nanolink.common.backends import OnnxRuntimeBackend
from nanolink.common.cpus import cgroup_cpus, cpu_threads, physical_cores

DECODER = zoo.bundled_model('cae').decoder_file(zoo.FAST)
LINUX = pytest.mark.skipif(not hasattr(os, 'sched_getaffinity') or not os.path.isdir('/proc/self/task'),
                           reason='affinity masks and /proc are Linux-only')


def test_session_threads_do_not_spin():
    opts = OnnxRuntimeBackend(DECODER).session.get_session_options()
    assert opts.get_session_config_entry('session.intra_op.allow_spinning') == '0'
    assert opts.intra_op_num_threads == (cpu_threads() or 0)
    assert OnnxRuntimeBackend(DECODER, threads=1).session.get_session_options().intra_op_num_threads == 1


def _mask(status):
    """The Cpus_allowed_list of a /proc status file"""
    with open(status) as f:
        return [line.split()[1] for line in f if line.startswith('Cpus_allowed_list')][0]


def _thread_masks():
    return {task: _mask(os.path.join(task, 'status')) for task in glob.glob('/proc/self/task/*')}


@LINUX
@pytest.mark.skipif(hasattr(os, 'sched_getaffinity') and len(os.sched_getaffinity(0)) < 2,
                    reason='one CPU: no worker thread to pin')
def test_worker_threads_are_not_pinned():
    """ONNX Runtime's default pins each worker to one core; ours may run on every CPU the process may."""
    before = _thread_masks()
    backend = OnnxRuntimeBackend(DECODER, threads=2)
    workers = {t: m for t, m in _thread_masks().items() if t not in before}
    assert workers, 'a 2-thread session made no worker thread'
    assert set(workers.values()) == {_mask('/proc/self/status')}
    del backend


@LINUX
def test_cpu_threads_follow_the_affinity_mask():
    code = ('import os; os.sched_setaffinity(0, {{{}}}); '
            'from nanolink.common.cpus import cpu_threads; print(cpu_threads())'.format(min(os.sched_getaffinity(0))))
    out = subprocess.run([sys.executable, '-c', code], stdout=subprocess.PIPE, check=True, universal_newlines=True)
    assert out.stdout.strip() == '1'


def _tree(root, files):
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return str(root)


@pytest.mark.parametrize('siblings, cpus, cores', [
    ({0: '0,4', 1: '1,5', 2: '2,6', 3: '3,7', 4: '0,4', 5: '1,5', 6: '2,6', 7: '3,7'}, range(8), 4),  # SMT pairs
    ({0: '0,4', 1: '1,5', 2: '2,6', 3: '3,7', 4: '0,4', 5: '1,5', 6: '2,6', 7: '3,7'}, [0, 4, 1], 2),  # a mask
    ({c: str(c) for c in range(8)}, range(8), 8),   # arm64 clusters: core_id repeats, the siblings do not
    ({}, range(4), 4),                              # no topology in /sys: each CPU a core
])
def test_physical_cores(tmp_path, siblings, cpus, cores):
    root = _tree(tmp_path, {'cpu{}/topology/thread_siblings_list'.format(c): s + '\n' for c, s in siblings.items()})
    assert physical_cores(cpus, root) == cores


@pytest.mark.parametrize('proc, files, cpus', [
    ('0::/\n', {'cpu.max': 'max 100000\n'}, None),
    ('0::/\n', {'cpu.max': '150000 100000\n'}, 2),                    # docker --cpus 1.5, its own cgroup view
    ('0::/user.slice/app.service\n', {'cpu.max': 'max 100000\n', 'user.slice/cpu.max': '300000 100000\n',
                                      'user.slice/app.service/cpu.max': '100000 100000\n'}, 1),
    ('0::/user.slice/app.service\n', {'user.slice/cpu.max': '300000 100000\n'}, 3),   # a parent's quota
    ('0::/user.slice/app.service\n', {'user.slice/cpu.max': '100000 100000\n',         # the tighter one
                                      'user.slice/app.service/cpu.max': '300000 100000\n'}, 1),
    ('0::/docker/abc\n', {'cpu.max': '200000 100000\n'}, 2),         # a path not in this view: its root
    ('0::/\n', {'unified/cpu.max': '400000 100000\n'}, 4),           # hybrid layout
    ('4:cpu,cpuacct:/lxc/x\n0::/\n', {'cpu,cpuacct/lxc/x/cpu.cfs_quota_us': '250000\n',
                                      'cpu,cpuacct/lxc/x/cpu.cfs_period_us': '100000\n'}, 3),
    ('1:cpu:/\n', {'cpu/cpu.cfs_quota_us': '-1\n', 'cpu/cpu.cfs_period_us': '100000\n'}, None),
    ('0::/\n', {'cpu.max': 'garbage'}, None),
    ('0::/\n', {'cpu.max': '0 100000'}, None),
    ('0::/\n', {}, None),
])
def test_cgroup_quota(tmp_path, proc, files, cpus):
    root = _tree(tmp_path / 'cgroup', files)
    (tmp_path / 'proc').write_text(proc)
    assert cgroup_cpus(str(tmp_path / 'proc'), root) == cpus
