"""What every nanolink CLI does the same way: logging to stderr and Ctrl-C / SIGTERM as a clean stop."""
import logging
import signal
import sys
import threading

from nanolink.common.errors import NanolinkError


def check_at_least_one(option, value):
    """None (not given) or an integer >= 1; a NanolinkError naming the option otherwise."""
    if value is not None and value < 1:
        raise NanolinkError('{} must be at least 1, got {}'.format(option, value))
    return value


def check_positive(option, value, unit=''):
    """None (not given) or a number > 0; a NanolinkError naming the option otherwise."""
    if value is not None and not value > 0:
        raise NanolinkError('{} must be > 0{}, got {}'.format(option, unit, value))
    return value


def setup(prog, quiet):
    """Configure ``prog: message`` logging and return an Event that SIGINT / SIGTERM set."""
    logging.basicConfig(level=logging.WARNING if quiet else logging.INFO, format=prog + ': %(message)s',
                        stream=sys.stderr)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    return stop
