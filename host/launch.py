"""Start host-receiver as a subprocess and learn where it listens: the one way the demo, latency-bench, the scripts
and the tests launch it.

    with HostProcess(['--frames', '100', '--save', 'out/'], stderr_path='out/host.stderr.txt') as host:
        ...host.endpoint...                          # tcp://127.0.0.1:PORT, from its first stdout line
        rc = host.wait(60)
"""
import subprocess
import sys
import threading

from nanolink.common.errors import NanolinkError


def read_line(stream, timeout_s):
    """One line of a subprocess pipe, or '' when none came within timeout_s (never blocks longer)."""
    box = []
    t = threading.Thread(target=lambda: box.append(stream.readline()), daemon=True)
    t.start()
    t.join(timeout_s)
    line = box[0] if box else ''
    return (line.decode('utf-8', 'replace') if isinstance(line, bytes) else line).strip()


def tail(path, n=15):
    """The last n lines of a text file (a subprocess's stderr), for an error message."""
    try:
        with open(path, errors='replace') as f:
            return ''.join(f.readlines()[-n:])
    except OSError:
        return ''


class HostProcess(object):
    """``python -m nanolink.host.cli --bind BIND ARGS`` with stdout piped (its first line names the endpoint) and
    stderr to ``stderr_path`` (or piped when None). NanolinkError, with its last lines, if it does not start."""

    def __init__(self, args, bind='tcp://127.0.0.1:*', stderr_path=None, start_timeout_s=60):
        self._err = open(stderr_path, 'w') if stderr_path else None
        self.stderr_path = stderr_path
        self.proc = subprocess.Popen([sys.executable, '-m', 'nanolink.host.cli', '--bind', bind] +
                                     [str(a) for a in args], stdout=subprocess.PIPE,
                                     stderr=self._err if self._err else subprocess.PIPE, universal_newlines=True)
        line = read_line(self.proc.stdout, start_timeout_s)
        if not line.startswith('listening on '):
            self.kill()
            why = tail(stderr_path) if stderr_path else (self.proc.stderr.read() if self.proc.stderr else '')
            raise NanolinkError('host-receiver did not start ({!r}):\n{}'.format(line, why))
        self.endpoint = line[len('listening on '):]

    def readline(self, timeout_s=60):
        """The next stdout line (with --http: 'viewer on URL')."""
        return read_line(self.proc.stdout, timeout_s)

    def wait(self, timeout_s=60):
        """Exit status; the process is killed (and NanolinkError raised) when it runs past timeout_s."""
        try:
            return self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()
            raise NanolinkError('host-receiver did not finish in {} s'.format(timeout_s))

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if self._err:
            self._err.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.kill()
        return False
