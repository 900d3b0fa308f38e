"""The edge's frame path as a Python object: ``nanolink.Sender`` (edge-sender is a loop around it).

    with nanolink.Sender('tcp://pc:5555', model='cae', quality=3, stream_id='dock-cam') as tx:
        info = tx.send(frame_bgr)               # SentFrame: seq, bytes, delivered, stages (ms)

One frame: preprocess (pad to the model's multiple) -> encoder network (ONNX Runtime, torch or TensorRT) ->
device-to-host copy -> entropy coding (rANS for cae, zlib for cae-bin, JPEG for ae) -> wire.pack -> the
transport (acknowledged by default: frames are kept and sent again until the host has them). Every stage is timed.
"""
import logging
import random
import time

from collections import namedtuple

from nanolink.common import keys, wire, zoo
from nanolink.common.classical import CLASSICAL, ClassicalEncoder, encode_jpeg
from nanolink.common.codec import EdgeEncoder, rate_label
from nanolink.common.errors import NanolinkError, UsageError
from nanolink.common.imageproc import as_bgr, resize_to
from nanolink.common.stages import StageClock
from nanolink.common.sender import Sender as Link

log = logging.getLogger('nanolink.edge')
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
    quality: cae's rate point 1..5; channels: cae-bin's; jpeg_quality: ae / ae-full / jpeg's.
    stream_id: names this stream at the host (1-64 of A-Z a-z 0-9 _ . : -); size: (width, height) to resize to.
    device: 'cpu' or 'cuda' for the encoder (TensorRT engines: the GPU); threads: encoder threads (0: default).
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
        if model in CLASSICAL and not engine:
            self.encoder = ClassicalEncoder(model, 75 if jpeg_quality is None else jpeg_quality, size)
        else:
            self.encoder = EdgeEncoder.open(model or zoo.DEFAULT_MODEL, engine, channels, device, size, threads,
                                            jpeg_quality, quality, trust=trust_checkpoint)
        self.link = None
        try:
            info = self.info = self.encoder.info
            if entropy == 'none' and info.dtype == 'rans':
                raise UsageError('{} always codes its symbols with rANS: drop --entropy none (it is for cae-bin)'
                                 .format(info.name))
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
                raise NanolinkError('cannot send a {}x{} frame: {}{}'.format(
                    size[1], size[0], e.reason, '; shrink frames with --size WxH or use a learned model'
                    if e.too_big else ''))
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
        the encoder (a TensorRT engine's CUDA context too). Counts on ``link``: dropped, undelivered, resent."""
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
