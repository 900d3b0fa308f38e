"""The edge's frame path as a Python object: ``nanolink.Sender`` (edge-sender is a loop around it).

    with nanolink.Sender('tcp://pc:5555', model='cae', quality=3, stream_id='dock-cam') as tx:
        info = tx.send(frame_bgr)               # SentFrame: seq, bytes, delivered, stages (ms)

One frame: preprocess (pad to the model's multiple) -> encoder network (ONNX Runtime, torch or TensorRT) ->
device-to-host copy -> entropy coding (rANS for cae, zlib for cae-bin, JPEG for ae) -> wire.pack -> the
transport (acknowledged by default: frames are kept and sent again until the host has them). Every stage is timed.

The loop that feeds it from a source (edge-sender; ``run_frames`` at the end of this file) is pipelined: three
stages on three threads, bounded queues between them.

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
import random
import threading
import time

from collections import namedtuple

from nanolink.common import keys, wire, zoo
from nanolink.common.classical import CLASSICAL, ClassicalEncoder, encode_jpeg
from nanolink.common.cli import MAX_THREADS
from nanolink.common.codec import EdgeEncoder, rate_label, unsendable
from nanolink.common.checks import check_choice, check_int, check_number, check_rate
from nanolink.common.errors import NanolinkError, UsageError
from nanolink.common.imageproc import as_bgr, check_size, resize_to
from nanolink.common.transport import check_endpoint
from nanolink.common.stages import StageClock
from nanolink.common.sender import Sender as Link

log = logging.getLogger('nanolink.edge')
ENTROPY = ('zlib', 'none')      # the lossless coding of binary codes (cae-bin): Sender(entropy=), --entropy
MAX_BUFFER_FRAMES, MAX_SEND_TIMEOUT_MS, MAX_CLOCK_OFFSET_S = 1 << 20, 2 ** 31 - 1, 86400.0    # edge-sender's too
IN_MESSAGE = ('capture', 'preprocess', 'encode', 'gpu_to_cpu', 'entropy', 'reference')   # this frame's, in its message

SentFrame = namedtuple('SentFrame', 'seq bytes delivered stages size ref_bytes')
_Encoded = namedtuple('_Encoded', 'frame t_cap size payload shape clock')     # between encode and finish
SentFrame.__doc__ = """What ``Sender.send`` did with one frame: its ``seq``, the wire message's ``bytes``, whether it was
``delivered`` to the link (False: dropped, the buffer stayed full), its ``stages`` (stage -> ms), ``size`` (H, W) and
the bytes of its reference JPEG, ``ref_bytes`` (0 without one)."""


class Sender(object):
    """Encodes frames with a nanolink model and sends them to a host (``nanolink.Receiver`` or host-receiver).

    connect: the host's endpoint, tcp://HOST:PORT (the host binds, edges connect).
    model: a bundled model (``cae`` default-quality 3, ``cae-bin``, ``ae``, ``ae-full``) or a baseline (``jpeg``,
        ``raw``); engine: an encoder file instead (.onnx, .pt or a TensorRT .trt/.engine from nanolink-build-engine).
    quality: cae's rate point 1..6; channels: cae-bin's; jpeg_quality: ae / ae-full / jpeg's.
    stream_id: names this stream at the host (1-64 of A-Z a-z 0-9 _ . : -); size: (width, height) or 'WxH' to
    resize to, 8..4096 each. A bad argument is a UsageError naming it, raised before anything is loaded.
    device: 'cpu' or 'cuda' for the encoder (TensorRT engines: the GPU); threads: encoder CPU threads (0: one per
    usable core).
    latest: keep only the newest unsent frame, no acknowledgements (lowest latency; drops under load).
    curve_keys: a nanolink-keys folder (encrypts and authenticates; uses <stream_id>.key_secret and host.key).
    send_timeout_ms: with the buffer full, how long send waits before dropping the frame (-1: until it fits).
    buffer_frames, buffer_mb: frames kept until acknowledged (sent again after a reconnection).
    entropy: 'zlib' or 'none' for cae-bin's binary codes. clock_offset: seconds added to capture times.
    reference_quality: JPEG quality of the reference frames ``send(..., reference=True)`` attaches.
    stop: a threading.Event that cuts waits short (Ctrl-C). trust_checkpoint: load an --engine .pt on torch older
    than 1.13, which can only unpickle it (that may run code).
    """

    def __init__(self, connect, model=None, engine=None, quality=None, channels=None, jpeg_quality=None,
                 stream_id='edge', size=None, device=None, threads=0, latest=False, curve_keys=None,
                 send_timeout_ms=1000, buffer_frames=256, buffer_mb=64.0, entropy='zlib', clock_offset=0.0,
                 reference_quality=95, linger_ms=None, stop=None, trust_checkpoint=False):
        try:
            wire.check_stream_id(stream_id)
        except wire.WireError as e:
            raise UsageError('stream_id: ' + e.reason)
        check_endpoint(connect, 'connect', "'tcp://192.168.1.10:5555'")
        quality, channels, jpeg_quality = check_rate(model, engine, quality, channels, jpeg_quality)
        size = check_size(size)
        threads = check_int('threads', threads, 0, MAX_THREADS, optional=True)
        buffer_frames = check_int('buffer_frames', buffer_frames, 1, MAX_BUFFER_FRAMES)
        buffer_mb = check_number('buffer_mb', buffer_mb, 0, unit=' MB', above=True)
        check_choice('entropy', entropy, ENTROPY)
        send_timeout_ms = check_int('send_timeout_ms', send_timeout_ms, -1, MAX_SEND_TIMEOUT_MS)
        linger_ms = check_int('linger_ms', linger_ms, -1, optional=True)
        clock_offset = check_number('clock_offset', clock_offset, -MAX_CLOCK_OFFSET_S, MAX_CLOCK_OFFSET_S, ' seconds')
        reference_quality = check_int('reference_quality', reference_quality, 1, 100)
        if latest and (buffer_frames != 256 or buffer_mb != 64.0):          # as edge-sender --latest --buffer
            raise UsageError('latest=True sends the newest frame only, without acknowledgements: it keeps no buffer '
                             '(drop buffer_frames and buffer_mb)')
        if model in CLASSICAL and not engine and device == 'cuda':
            raise UsageError('model {} is a classical baseline coded on the CPU: drop device=\'cuda\''.format(model))
        if model in CLASSICAL and not engine:
            self.encoder = ClassicalEncoder(model, 75 if jpeg_quality is None else jpeg_quality, size)
        else:
            self.encoder = EdgeEncoder.open(model or zoo.DEFAULT_MODEL, engine, channels, device, size, threads,
                                            jpeg_quality, quality, trust=trust_checkpoint)
        self.link = None
        try:
            info = self.info = self.encoder.info
            if entropy == 'none' and info.dtype == 'rans':
                raise UsageError("{} always codes its symbols with rANS: drop entropy='none' (--entropy none; it is "
                                 'for cae-bin)'.format(info.name))
            if engine and model and model != info.name:
                raise UsageError('--engine {} holds model {}, not --model {}: drop --model or pick the {} engine'
                                 .format(engine, info.name, model, model))
            self.stream_id, self.size, self.entropy, self.clock_offset = stream_id, size, entropy, clock_offset
            self.reference_quality = reference_quality
            self.session = random.SystemRandom().randrange(1, 2 ** 63)    # a restart is a new session at the host
            curve = keys.edge_options(curve_keys, stream_id) if curve_keys else ()
            self.link = Link(connect, send_timeout_ms=send_timeout_ms, latest=latest, curve=curve, stop=stop,
                             linger_ms=(-1 if send_timeout_ms < 0 else 2000) if linger_ms is None else linger_ms,
                             session=self.session, buffer_frames=buffer_frames, buffer_bytes=int(buffer_mb * 2 ** 20))
        except BaseException:
            self.close()
            raise
        self.connect, self.seq, self.bytes = connect, 0, 0
        self._prev = {}

    @property
    def rate(self):
        """The rate point in words: 'quality 3', 'JPEG quality 75', '8 channels'."""
        info, enc = self.info, self.encoder
        if info.dtype in ('jpeg', 'bits', 'rans'):
            return rate_label(info, {'jpeg': getattr(enc, 'quality', None), 'bits': enc.channels,
                                     'rans': getattr(enc, 'rate', None)}[info.dtype])
        return info.dtype

    def send(self, frame, t_cap=None, reference=False, clock=None):
        """Encode and send one BGR (or grey / BGRA) uint8 frame captured at ``t_cap`` (Unix seconds; default now).
        reference: attach a high-quality JPEG of it, for the host's live PSNR. Returns a SentFrame; raises
        NanolinkError for a frame that cannot be sent at all (over the wire's size limit). The same as
        ``finish(encode(...))``: a pipelined caller runs the two halves on two threads."""
        return self.finish(self.encode(frame, t_cap, reference, clock))

    def encode(self, frame, t_cap=None, reference=False, clock=None):
        """The device half: preprocess, encoder network, device-to-host copy. Returns what ``finish`` takes."""
        clock = clock or StageClock()
        t_cap = (time.time() if t_cap is None else t_cap) + self.clock_offset
        enc = self.encoder
        with clock('preprocess'):
            blob, size = enc.preprocess(frame)
        with clock('encode'):
            out = enc.backend.forward(blob)
        with clock('gpu_to_cpu'):
            payload, shape = enc.fetch(out)
        return _Encoded(frame if reference else None, t_cap, size, payload, shape, clock)

    def finish(self, e):
        """The CPU half, in frame order: entropy coding, the reference JPEG, wire message, hand-over to the link."""
        clock, payload, size, shape, t_cap = e.clock, e.payload, e.size, e.shape, e.t_cap
        enc = self.encoder
        with clock('entropy'):
            payload, dtype = enc.entropy_code(payload, self.entropy)
        with clock('reference'):
            ref = encode_jpeg(resize_to(as_bgr(e.frame), self.size), self.reference_quality).tobytes() \
                if e.frame is not None else None
        stages = dict((k, clock.ms[k]) for k in IN_MESSAGE if k in clock.ms)
        stages.update(self._prev)
        with clock('serialise'):
            try:
                msg = wire.pack(wire.Frame(stream=self.stream_id, session=self.session, seq=self.seq, t_cap=t_cap,
                                           model=self.info.name, fp=self.info.fingerprint, dtype=dtype, shape=shape,
                                           size=size, payload=payload, stages=stages, ref=ref))
            except wire.WireError as e:
                raise unsendable(e, size, self.info.name)
        with clock('send'):
            delivered = self.link.send(msg, self.seq)
        self._prev = {'serialise': clock.ms['serialise'], 'send': clock.ms['send']}
        sent = SentFrame(self.seq, len(msg), delivered, dict(clock.ms), size, len(ref) if ref else 0)
        self.seq += 1
        self.bytes += len(msg)
        return sent

    def wait_connected(self, timeout_s):
        """True once a host has taken the connection (waiting up to timeout_s)."""
        return self.link.wait_connected(timeout_s)

    def close(self):
        """Wait (up to the linger time) for the host to acknowledge what is buffered, then release the link and
        the encoder (a TensorRT engine's CUDA context too). Counts on ``link``: dropped, undelivered, resent,
        refused."""
        try:
            if self.link is not None:
                self.link.close()
        finally:
            self.encoder.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


# -- the loop (edge-sender): run_frames drives a Sender from a source --

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
