"""The host's frame path as a Python object: ``nanolink.Receiver`` (host-receiver is a loop around it).

    with nanolink.Receiver('tcp://*:5555') as rx:
        for f in rx:                            # ReceivedFrame: f.image (H, W, 3) BGR uint8, f.stream, f.seq, ...
            ...
        f = rx.recv(timeout=1.0)                # None when no frame came in time (never hangs)

One message: receive -> wire.unpack (validation; rANS or zlib decoding into bounded buffers) -> checks (a CurveZMQ key
sends only its own stream id, size, the bounded stream table, repeats) -> decoder network -> postprocess (crop) ->
acknowledgement to its edge. The caller's thread owns the socket (receive, unpack, checks, acknowledgements); the
decoder network and postprocess run on ``workers`` decode threads (default 1), so the next messages are received
and unpacked while one is decoded, and with several streams several frames decode at once. Frames come out of
``recv`` in the order they arrived either way. workers=0 decodes on the caller's thread (and ``latest`` does,
so the newest frame is the one decoded). A message that fails a check is counted (``rejects``), logged at most 5 lines a
second, refused with the reason and acknowledged when its ids can be read (so its edge knows), and never raises.
Streams are (stream id, session): a restarted edge or a twin with the same id is ``<id>~2``, ``~3``... Repeats of
frames already taken are acknowledged (refused again if they were), not decoded twice.
"""
import collections
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor, wait as wait_futures

from nanolink.common import keys, wire
from nanolink.common.codec import HostDecoder, load_decoders
from nanolink.common.checks import check_decoder, check_int, check_number
from nanolink.common.errors import UsageError
from nanolink.common.imageproc import check_size
from nanolink.common.stages import StageClock
from nanolink.common.transport import MULTIPART, Receiver as Link, check_endpoint
from nanolink.host.streams import RejectLog, StreamTable

log = logging.getLogger('nanolink.host')
MAX_WORKERS = 64                    # decode threads: Receiver(workers=), host-receiver --decode-workers


class ReceivedFrame(object):
    """A decoded frame: ``image`` (H, W, 3) BGR uint8 at the sender's size; ``stream`` (the id, or id~N for a later
    session of it), ``stream_id``, ``session``, ``seq``, ``t_cap`` (capture time, sender's clock), ``model``,
    ``decoder`` (fast | quality), ``bytes`` (message), ``bpp`` (codec bits per pixel, without a reference), ``stages``
    (the sender's stage ms; a message carries the previous frame's serialise and send, so a session's first
    frame has neither), ``timings`` (this host's: receive, deserialise, decode, postprocess), ``ref`` (a
    reference JPEG or None), ``stats`` (the stream's counters), ``message`` (the validated wire.Frame)."""

    def __init__(self, message, image, stream_id, data_bytes, timings, stats, decoder, peer):
        self.message, self.image, self.stream_id, self.timings, self.stats = message, image, stream_id, timings, stats
        self.stream, self.session, self.seq, self.t_cap = message.stream, message.session, message.seq, message.t_cap
        self.model, self.size, self.stages, self.ref = message.model, message.size, message.stages, message.ref
        self.bytes, self.decoder, self.peer = data_bytes, decoder, peer
        ref = len(message.ref) if message.ref is not None else 0
        self.bpp = (data_bytes - ref) * 8.0 / (message.size[0] * message.size[1])

    def __repr__(self):
        return 'ReceivedFrame(stream={!r}, seq={}, {}x{}, {:.3f} bpp)'.format(self.stream, self.seq, self.size[1],
                                                                             self.size[0], self.bpp)


class _Job(object):
    """One admitted message between the socket thread and a decode thread."""

    def __init__(self, frame, dec, st, clock, nbytes, stream_id, peer):
        self.frame, self.dec, self.st, self.clock, self.nbytes = frame, dec, st, clock, nbytes
        self.stream_id, self.peer, self.key = stream_id, peer, (frame.stream, frame.seq)
        self.image = self.error = self.future = None

    def decode(self):
        """The decoder network and postprocess (a decode thread; the caller's with workers=0)."""
        with self.clock('decode'):
            try:
                image = self.dec.decode(self.frame)
            except wire.WireError as e:
                self.error = e
                return
        with self.clock('postprocess'):
            self.image = self.dec.postprocess(image, self.frame)


def _names(name, value, example):
    """models / model_dirs: None, one (a str) or several in a list; UsageError for anything else."""
    value = [value] if isinstance(value, str) else value
    if value is not None and not (isinstance(value, (list, tuple, set)) and all(isinstance(v, str) for v in value)):
        raise UsageError("{} must be a list of str, e.g. ['{}'], got {!r}".format(name, example, value))
    return value


class Receiver(object):
    """Receives, validates and decodes the frames of any number of nanolink edges (``nanolink.Sender``,
    edge-sender).

    bind: where edges connect, e.g. tcp://*:5555 (tcp://127.0.0.1:* picks a free port: see ``endpoint``).
    models: decode only these bundled models (a list of names, or one name; default: all, and the jpeg / raw
        baselines); model_dirs: more exported model folders (a list, or one). decoder: 'onnxruntime' or 'torch';
        device: 'cpu' or 'cuda'; threads: decoder CPU threads (0: one per usable core); decoder_variant: 'fast' or
        'quality' (the heavier decoder of the same bits, for GPU hosts).
    latest: decode only the newest waiting frame (the older ones are acknowledged and counted, not decoded).
    curve_keys: a nanolink-keys folder: only edges whose keys are in its authorized/ get in, each under its name.
    max_streams, stream_idle_s, max_size (W, H), max_pixel_rate: the bounds one sender cannot grow (host/streams.py).
    auto_ack: acknowledge each frame as ``recv`` returns it; False: call ``ack(frame)`` once it is safely kept
        (host-receiver --save acknowledges after the PNG is written). on_evict(stream): a stream went idle.
    workers: decode threads, 0..64 (0: decode on the caller's thread); at most workers + 1 messages are taken ahead.
    A bad argument is a UsageError naming it, raised before anything is loaded or bound.
    stop: a threading.Event that ends ``__iter__``. trust_checkpoints: load --model-dir .pt decoders (torch) on torch
    older than 1.13, which can only unpickle them (that may run code).
    """

    def __init__(self, bind='tcp://*:5555', models=None, decoder='onnxruntime', device='cpu', threads=0,
                 decoder_variant='fast', model_dirs=(), latest=False, curve_keys=None, max_streams=64,
                 stream_idle_s=300.0, max_size=(wire.MAX_FRAME_SIDE, wire.MAX_FRAME_SIDE), max_pixel_rate=250e6,
                 auto_ack=True, on_evict=None, stop=None, trust_checkpoints=False, workers=1):
        check_endpoint(bind, 'bind', "'tcp://*:5555'", any_port=True)
        models, model_dirs = _names('models', models, 'cae'), _names('model_dirs', model_dirs, 'exported/cae') or ()
        check_decoder(decoder, device, threads)
        max_streams = check_int('max_streams', max_streams, 1)
        stream_idle_s = check_number('stream_idle_s', stream_idle_s, 0, unit=' seconds', above=True, inf_ok=True)
        max_size = check_size(max_size, 'max_size') or (wire.MAX_FRAME_SIDE, wire.MAX_FRAME_SIDE)   # None: the wire's
        max_pixel_rate = check_number('max_pixel_rate', max_pixel_rate, 0, unit=' pixels a second', above=True,
                                      inf_ok=True)
        workers = check_int('workers', workers, 0, MAX_WORKERS)
        self.decoders = load_decoders(models, decoder, device, threads, model_dirs, decoder_variant,
                                      trust_checkpoints)
        curve = keys.host_options(curve_keys) if curve_keys else None
        self.link = Link(bind, latest=latest, curve=curve)
        self.endpoint = self.link.endpoint
        self.rejects = RejectLog()
        self.streams = StreamTable(max_streams, stream_idle_s, max_pixel_rate, on_evict)
        self.max_size, self.auto_ack, self.stop = tuple(max_size), auto_ack, stop or threading.Event()
        self.received = self.decoded = 0
        self.on_reject = None               # called with (stream or None) after each rejection (the live viewer)
        self.workers = 0 if latest else workers
        self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix='decode') if self.workers else None
        self._jobs = collections.deque()    # admitted messages being decoded, in arrival order
        self._pending = set()               # their (stream, seq): a repeat of one in flight is not decoded twice

    def models(self):
        """[(name, fingerprint, decoder variant)] of the learned models this receiver decodes."""
        return [(name, fp, dec.variant) for name, by_fp in sorted(self.decoders.items())
                for fp, dec in sorted(by_fp.items()) if isinstance(dec, HostDecoder)]

    def recv(self, timeout=None):
        """The next decoded frame, or None when none came within ``timeout`` seconds (None: wait until one does or
        ``stop`` is set). Messages that fail a check are counted and logged on the way, never raised."""
        deadline = None if timeout is None else time.time() + timeout
        while not self.stop.is_set():
            left = 0.2 if deadline is None else min(0.2, deadline - time.time())
            if self._jobs and self._jobs[0].future.done():      # the oldest one decoded: it comes out first
                f = self._finish(self._jobs.popleft())
                if f is not None:
                    return f
                continue
            if left < 0:
                return None
            if len(self._jobs) <= self.workers:                  # room to take one more ahead
                if self.link.wait(min(max(0.0, left), 0.002) if self._jobs else max(0.0, left)):
                    job = self._admit()
                    if job is not None and self._pool is None:
                        job.decode()
                        f = self._finish(job)
                        if f is not None:
                            return f
                    elif job is not None:
                        job.future = self._pool.submit(job.decode)
                        self._jobs.append(job)
                        self._pending.add(job.key)
                elif not self._jobs and deadline is not None and time.time() >= deadline:
                    return None
                continue
            wait_futures([self._jobs[0].future], timeout=max(0.0, left))
        return None

    def __iter__(self):
        """Decoded frames as they come, until ``stop`` is set (or the caller breaks out); between frames it wakes
        every 0.2 s to look at ``stop``. Rejected messages are counted and logged, never raised."""
        while not self.stop.is_set():
            f = self.recv(0.2)
            if f is not None:
                yield f

    def ack(self, frame):
        """Acknowledge a frame to its edge (auto_ack=False): it will not be sent again."""
        self.link.ack(frame.session, frame.seq, frame.peer)

    def ack_ids(self, peer, session, seq):
        self.link.ack(session, seq, peer)

    def _reject(self, reason, stream, mismatch=False):
        self.rejects.add(reason, stream, fingerprint_mismatch=mismatch)
        st = self.streams.get(stream)        # only live streams (they delivered a frame): a flood of made-up ids
        if st is not None:                   # must not grow memory (they are counted in the totals and reasons)
            st.received += 1
            st.rejected += 1
        if self.on_reject:
            self.on_reject(stream if st is not None else None)

    def _ack_message(self, data, peer=None, refused=None):
        ids = wire.peek_ids(data)            # a message taken without decoding: acknowledged if it has ids
        if ids is not None:
            self.link.ack(ids[0], ids[1], peer, refused)

    def _admit(self):
        """Receive, unpack and check one waiting message: a _Job to decode, or None (rejected, a repeat, passed
        over: counted, and acknowledged where its ids can be read)."""
        rx, clock = self.link, StageClock()
        with clock('receive'):
            data = rx.recv_ready()
        self.received += 1
        for peer, older in rx.skipped:      # latest: waiting messages passed over for a newer one
            self.received += 1
            self._ack_message(older, peer)
        if data is MULTIPART:
            self._reject('multipart message: a nanolink frame is one ZeroMQ frame', None)
            return None
        with clock('deserialise'):
            try:
                frame = wire.unpack(data, self.decoders)
            except wire.WireError as e:
                frame, err = None, e
        if frame is None:
            self._reject(err.reason, err.stream, err.fingerprint_mismatch)
            self._ack_message(data, refused=err.reason)
            return None
        if rx.names and frame.stream != rx.user:   # CurveZMQ: a key may only send its own stream id
            why = 'stream id {} is not the one of the key that sent it ({})'.format(frame.stream, rx.user)
            self._reject(why, None)
            rx.ack(frame.session, frame.seq, refused=why)
            return None
        stream_id = frame.stream
        # from here on the stream is (stream id, session), named by its label
        frame.stream = self.streams.label(frame.stream, frame.session)
        st = self.streams.get(frame.stream)
        if (frame.stream, frame.seq) in self._pending:   # sent again while the first one decodes: its ack follows
            if st is not None:
                st.repeats += 1
            return None
        if st is not None and st.is_repeat(frame.seq):
            st.repeats += 1                  # sent again after a reconnection: already taken (refused again if it was)
            rx.ack(frame.session, frame.seq, refused=st.refusals.get(frame.seq))
            return None
        h, w = frame.size
        why = None
        if w > self.max_size[0] or h > self.max_size[1]:
            why = 'frame of {}x{} is over --max-size {}x{}'.format(w, h, *self.max_size)
        else:
            st, why = self.streams.admit(frame.stream, time.time(), w * h)
        if why:
            self._reject(why, frame.stream)
            if st is not None:               # taken, not lost: a repeat of it is refused again, not decoded
                st.refuse(frame.seq, why)
            rx.ack(frame.session, frame.seq, refused=why)
            return None
        return _Job(frame, self.decoders[frame.model][frame.fp], st, clock, len(data), stream_id, rx.peer)

    def _finish(self, job):
        """A decoded _Job on the caller's thread: counted, acknowledged (auto_ack) and returned as a ReceivedFrame,
        or, when its payload did not decode, rejected and acknowledged (None)."""
        self._pending.discard(job.key)
        frame, st, rx = job.frame, job.st, self.link
        if job.error is not None:                # a payload the codec cannot decode (e.g. a broken JPEG)
            self._reject(job.error.reason, job.error.stream or frame.stream)
            st.refuse(frame.seq, job.error.reason)
            rx.ack(frame.session, frame.seq, job.peer, refused=job.error.reason)
            return None
        st.received += 1
        self.decoded += 1
        f = ReceivedFrame(frame, job.image, job.stream_id, job.nbytes, job.clock.ms, st, job.dec.variant, job.peer)
        st.decoded_frame(frame, job.nbytes, time.time())
        if self.auto_ack:
            rx.ack(frame.session, frame.seq, job.peer)
        return f

    @property
    def in_flight(self):
        """Messages taken from the socket and still decoding (not yet returned by ``recv``, not acknowledged)."""
        return len(self._jobs)

    def connection_counts(self):
        return self.link.connection_counts()

    def close(self):
        """Close the socket; frames still decoding are dropped unacknowledged (their edges send them again)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)
        self.link.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False
