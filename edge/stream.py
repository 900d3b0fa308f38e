"""edge-sender's frame loop, pipelined: three stages on three threads, bounded queues between them.

    capture thread   source.read()                         (live cameras: their grab thread keeps the newest
         | queue of 2                                        frame, so nothing queues up and nothing is stale)
    caller's thread  preprocess -> encode -> gpu_to_cpu      (the device half: the GPU on a Jetson)
         | queue of 2
    CPU thread       entropy -> reference -> serialise -> send -> per-frame log   (in frame order)

The frame rate is then 1 / (slowest stage) instead of 1 / (sum of stages). Each frame keeps its own StageClock,
so its logged stage times are its own; stages that run at the same time on a small CPU slow each other down,
and the log shows it. ``pipeline=False`` (edge-sender --no-pipeline) runs the same stages one after the other on
the caller's thread. On stop (Ctrl-C) nothing already captured is lost: the capture thread stops reading, and
every frame in a queue is encoded, sent and logged before the loop returns.
"""
import logging
import queue
import threading
import time

from nanolink.common.stages import StageClock

log = logging.getLogger('nanolink.edge')

DEPTH = 2                  # frames each queue holds: enough to ride out jitter, too few to add latency
_END = object()            # the end of a queue's frames
_POLL_S = 0.05             # how often a blocked put / get looks for a failed stage


def _put_while(q, item, go_on):
    """Put item in the bounded queue q, retrying every _POLL_S while ``go_on()``; True once it is in."""
    while go_on():
        try:
            q.put(item, timeout=_POLL_S)
            return True
        except queue.Full:
            continue
    return False


class _Stage(object):
    """A daemon thread that runs ``work(item)`` on the items of a bounded queue, in order, until _END."""

    def __init__(self, name, work, depth=DEPTH):
        self.name, self.work = name, work
        self.q = queue.Queue(depth)
        self.error = None
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self):
        self.thread.start()
        return self

    def _run(self):
        while True:
            item = self.q.get()
            if item is _END:
                return
            try:
                self.work(item)
            except BaseException as e:           # re-raised in the caller's thread by put() / close()
                self.error = e
                return

    def put(self, item):
        """Block while the queue is full; raise the stage's error if it has failed."""
        if not _put_while(self.q, item, lambda: self.error is None):
            raise self.error

    def close(self):
        """Let the stage finish every queued item, then stop it; re-raise its error."""
        _put_while(self.q, _END, self.thread.is_alive)
        self.thread.join()
        if self.error is not None:
            raise self.error


def _pace(t0, n, fps, event):
    """Wait until frame n of a stream paced at ``fps`` from t0 is due (or ``event`` is set)."""
    if fps and n:
        delay = t0 + n / fps - time.time()
        if delay > 0:
            event.wait(delay)


class _Capture(object):
    """Reads a finite source (file, folder, synthetic) ahead of the encoder on its own thread, at most
    ``limit`` frames at ``fps`` at most, into a queue of DEPTH (frame, t_cap, clock) items, then None."""

    def __init__(self, source, limit, fps, stop):
        self.source, self.limit, self.fps, self.stop = source, limit, fps, stop
        self.q = queue.Queue(DEPTH)
        self.error = None
        self._halt = threading.Event()          # read no more frames
        self._abandon = threading.Event()       # and stop offering them (the caller is gone)
        self.thread = threading.Thread(target=self._run, name='capture', daemon=True)
        self.thread.start()

    def _run(self):
        n, t0 = 0, time.time()
        try:
            while not self._halted() and (self.limit is None or n < self.limit):
                _pace(t0, n, self.fps, self.stop)
                if self._halted():
                    break
                clock = StageClock()
                with clock('capture'):
                    item = self.source.read()
                if item is None:
                    break
                self._put(item + (clock,))       # read after a halt or not: it is offered, so it is sent
                n += 1
        except BaseException as e:              # re-raised in the caller's thread by get()
            self.error = e
        finally:
            self._put(None)

    def _halted(self):
        return self._halt.is_set() or self.stop.is_set()

    def _put(self, item):
        _put_while(self.q, item, lambda: not self._abandon.is_set())

    def get(self):
        """The next (frame, t_cap, clock), or None at the end of the source (or after ``halt``)."""
        while True:
            try:
                item = self.q.get(timeout=_POLL_S)
            except queue.Empty:
                if self.thread.is_alive() or not self.q.empty():
                    continue
                item = None
            if item is None and self.error is not None:
                raise self.error
            return item

    def halt(self):
        """Read no more frames; the ones already read stay in the queue for ``get``."""
        self._halt.set()

    def close(self):
        """Stop the thread (frames still queued are dropped: call after ``get`` returned None, or on an error)."""
        self._halt.set()
        self._abandon.set()
        self.thread.join()


class _Direct(object):
    """The sequential (or live-camera) capture: source.read() on the caller's thread, when asked."""

    def __init__(self, source, limit, fps, stop):
        self.source, self.limit, self.fps, self.stop = source, limit, fps, stop
        self.n, self.t0, self.halted = 0, time.time(), False

    def get(self):
        if self.n == 0:
            self.t0 = time.time()
        if self.halted or self.stop.is_set() or (self.limit is not None and self.n >= self.limit):
            return None                          # checked before pacing: no wait after the last frame
        _pace(self.t0, self.n, self.fps, self.stop)
        if self.halted or self.stop.is_set():
            return None
        clock = StageClock()
        with clock('capture'):
            item = self.source.read()
        if item is None:
            return None
        self.n += 1
        return item + (clock,)

    def halt(self):
        self.halted = True

    def close(self):
        self.halted = True


def run_frames(tx, source, on_sent, stop, frames=None, fps=None, reference_every=0, pipeline=True,
               live=False):
    """Stream frames from ``source`` through the Sender ``tx`` until the source ends, ``frames`` were read or
    ``stop`` is set; ``on_sent(SentFrame, t_cap)`` runs for each, in frame order (on the CPU thread when
    pipelined), with t_cap its capture time on the host's clock (Sender.clock_offset added). fps paces capture;
    reference_every attaches a reference JPEG to every N-th frame. live: the source is a camera whose grab thread
    already keeps only its newest frame, so it is read on the caller's thread (a queue would only add latency).

    Returns (frames read, seconds from the first read to the last frame sent). A stage's exception is raised
    here after the others have stopped, once every frame before it was sent."""
    capture = _Capture(source, frames, fps, stop) if pipeline and not live else _Direct(source, frames, fps, stop)
    sink = _Stage('cpu-stage', lambda e: on_sent(tx.finish(e), e.t_cap)).start() if pipeline else None
    n, t0 = 0, time.time()
    try:
        while True:
            if stop.is_set():
                capture.halt()               # frames already read are still encoded and sent: nothing is lost
            item = capture.get()
            if item is None:
                break
            frame, t_cap, clock = item
            encoded = tx.encode(frame, t_cap, bool(reference_every and n % reference_every == 0), clock)
            n += 1
            if sink is None:
                on_sent(tx.finish(encoded), encoded.t_cap)
            else:
                sink.put(encoded)
    finally:
        capture.close()
        if sink is not None:
            left = sink.q.qsize()
            if stop.is_set() and left:
                log.info('stopping: sending the %d frame%s still in the pipeline', left, '' if left == 1 else 's')
            sink.close()
    return n, time.time() - t0
