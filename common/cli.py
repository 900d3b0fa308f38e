"""What every nanolink CLI does the same way: logging to stderr and Ctrl-C / SIGTERM as a clean stop."""
import logging
import os
import signal
import sys
import threading

from nanolink.common.errors import UsageError


MAX_THREADS = 256     # --threads of the encoder / decoder runtimes: 0 (one per usable physical core) .. this


def check_at_least_one(option, value):
    """None (not given) or an integer >= 1; a UsageError naming the option otherwise."""
    if value is not None and value < 1:
        raise UsageError('{} must be at least 1, got {}'.format(option, value))
    return value


def check_positive(option, value, unit=''):
    """None (not given) or a number > 0; a UsageError naming the option otherwise."""
    if value is not None and not value > 0:
        raise UsageError('{} must be > 0{}, got {}'.format(option, unit, value))
    return value


def check_at_least(option, value, low):
    """None (not given) or an integer >= low; a UsageError naming the option otherwise."""
    if value is not None and value < low:
        raise UsageError('{} must be at least {}, got {}'.format(option, low, value))
    return value


def check_range(option, value, low, high):
    """None (not given) or a number in low..high; a UsageError naming the option otherwise."""
    if value is not None and not low <= value <= high:
        raise UsageError('{} must be in {}..{}, got {}'.format(option, low, high, value))
    return value


def check_output_file(option, path, exts=None):
    """A file a tool will write (its folder must exist, it must not be a folder, its name end in one of ``exts``);
    a UsageError naming the option otherwise. Checked before the work that leads to it; creates nothing."""
    if not path:
        raise UsageError('{} is empty: give a file name'.format(option))
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise UsageError('{} {} is a folder: give a file name in it'.format(option, path))
    if not os.path.isdir(folder):
        raise UsageError('{} {}: the folder {} does not exist; create it first'.format(option, path, folder))
    if not os.access(folder, os.W_OK):
        raise UsageError('{} {}: cannot write in {}'.format(option, path, folder))
    if exts and not path.lower().endswith(exts):
        raise UsageError('{} {}: the file name must end in {}'.format(option, path, ' or '.join(exts)))
    return path


def check_output_folder(option, path):
    """A folder a tool will write into, made (with its parents) when missing: a UsageError naming the option when
    it is a file, or the nearest existing folder above it is a file or not writable. Creates nothing itself."""
    if not path:
        raise UsageError('{} is empty: give a folder (it is created when missing)'.format(option))
    if os.path.exists(path) and not os.path.isdir(path):
        raise UsageError('{} {} is a file, not a folder: give a folder (it is created when missing)'.format(
            option, path))
    parent = os.path.abspath(path)
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        raise UsageError('{} {}: {} is a file, not a folder'.format(option, path, parent))
    if not os.access(parent, os.W_OK):
        raise UsageError('{} {}: cannot write in {}'.format(option, path, parent))
    return path


def torch_missing(prog, error):
    """The one line a training / export tool prints when torch (or one of the [train] extras) is not installed: its
    --help works without them, a run needs them. Returns exit status 1."""
    print('{}: error: this tool needs the training extras ({}): pip install "nanolink[train]" (install a CPU or CUDA '
          'build of torch first, e.g. pip install torch)'.format(prog, error), file=sys.stderr)
    return 1


def fail(prog, error):
    """Print ``prog: error: message`` to stderr and return the error's exit status (1, or 2 for bad arguments)."""
    print('{}: error: {}'.format(prog, error), file=sys.stderr)
    return error.exit_code


def setup(prog, quiet):
    """Configure ``prog: message`` logging and return an Event that SIGINT / SIGTERM set."""
    logging.basicConfig(level=logging.WARNING if quiet else logging.INFO, format=prog + ': %(message)s',
                        stream=sys.stderr)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    return stop
