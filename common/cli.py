"""What every nanolink CLI does the same way: logging to stderr and Ctrl-C / SIGTERM as a clean stop."""
import logging
import signal
import sys
import threading

from nanolink.common.errors import UsageError


MAX_THREADS = 256     # --threads of the encoder / decoder runtimes: 0 (the runtime's default) .. this


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
