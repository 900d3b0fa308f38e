"""What every nanolink CLI does the same way: logging to stderr and Ctrl-C / SIGTERM as a clean stop."""
import logging
import signal
import sys
import threading


def setup(prog, quiet):
    """Configure ``prog: message`` logging and return an Event that SIGINT / SIGTERM set."""
    logging.basicConfig(level=logging.WARNING if quiet else logging.INFO, format=prog + ': %(message)s',
                        stream=sys.stderr)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    return stop
