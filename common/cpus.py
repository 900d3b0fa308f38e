"""How many threads a network runtime should use: one per physical core this process may run on.

    cpu_threads()      # None outside Linux, where ONNX Runtime's own default stands

The cores are those of the process's affinity mask (taskset, a container's cpuset), each counted once however many
hyperthreads it has (they share its vector units), and no more than the tightest CPU quota of its cgroup and the
cgroups above it allows (docker --cpus, systemd CPUQuota=). Linux only: the files read are the kernel's.
"""
import os

SYS_CPU = '/sys/devices/system/cpu'
CGROUP_ROOT = '/sys/fs/cgroup'
PROC_CGROUP = '/proc/self/cgroup'


def cpu_threads():
    """One per physical core this process may use, within its cgroup's CPU quota; None where that cannot be read
    (not Linux, or a sandbox that hides the affinity mask)."""
    try:
        allowed = os.sched_getaffinity(0)
    except (AttributeError, OSError):
        return None
    cores = physical_cores(allowed)
    quota = cgroup_cpus()
    return max(1, min(cores, quota) if quota else cores)


def physical_cores(cpus, sys_cpu=SYS_CPU):
    """How many cores the logical CPUs numbered ``cpus`` are on. CPUs that share a core list the same
    topology/thread_siblings_list; (physical_package_id, core_id) is not unique on every kernel (arm64 clusters
    since Linux 6.0, multi-die AMD). A CPU without that file counts as a core of its own."""
    cores = set()
    for cpu in cpus:
        try:
            cores.add(_read(os.path.join(sys_cpu, 'cpu{}'.format(cpu), 'topology', 'thread_siblings_list')))
        except OSError:
            cores.add('cpu{}'.format(cpu))
    return len(cores)


def cgroup_cpus(proc_cgroup=PROC_CGROUP, root=CGROUP_ROOT):
    """The CPUs that the tightest quota on this process's cgroup or one above it allows, rounded up; None without a
    quota. cgroup v2: cpu.max (at root, or root/unified on a hybrid host); v1: cpu.cfs_quota_us over
    cpu.cfs_period_us of the cpu controller (mounted at cpu or cpu,cpuacct). A container with its own cgroup view
    sees its cgroup at root, and a path that is not there is skipped."""
    try:
        lines = _read(proc_cgroup).splitlines()
    except OSError:
        lines = ['0::/', '1:cpu:/']
    best = None
    for line in lines:
        fields = line.split(':', 2)
        if len(fields) != 3:
            continue
        if fields[0] == '0' and not fields[1]:
            mounts, files = ('', 'unified'), ('cpu.max', None)
        elif 'cpu' in fields[1].split(','):
            mounts, files = ('cpu', 'cpu,cpuacct', 'cpuacct,cpu'), ('cpu.cfs_quota_us', 'cpu.cfs_period_us')
        else:
            continue
        for mount in mounts:
            for folder in _up_from(os.path.join(root, mount), fields[2]):
                cpus = _quota(folder, *files)
                if cpus is not None and (best is None or cpus < best):
                    best = cpus
    return best


def _up_from(base, path):
    """base + path, then each folder above it up to base itself"""
    parts = [p for p in path.split('/') if p and p not in ('.', '..')]
    for i in range(len(parts), -1, -1):
        yield os.path.join(base, *parts[:i])


def _quota(folder, quota_file, period_file):
    try:
        fields = _read(os.path.join(folder, quota_file)).split()
        quota = fields[0]
        period = fields[1] if period_file is None else _read(os.path.join(folder, period_file))
        if quota in ('max', '-1'):
            return None
        cpus = -(-int(quota) // int(period))
    except (OSError, IndexError, ValueError, ZeroDivisionError):
        return None
    return cpus if cpus > 0 else None


def _read(path):
    with open(path) as f:
        return f.read().strip()
