"""The two halves of a learned codec, as the edge and the host use them.

    enc = EdgeEncoder.open(model='cae')                     # or engine='cae-enc-q3.onnx'
    blob, size = enc.preprocess(frame)                      # preprocess
    out = enc.backend.forward(blob)                         # encode (synchronised)
    payload, shape = enc.fetch(out)                         # gpu_to_cpu
    ...wire...
    dec = HostDecoder(info, backend)
    image = dec.decode(frame)                               # decode
    bgr = dec.postprocess(image, frame)                     # postprocess

Pre- and post-processing (pad, prepare, finish) are here too, since a frame meets them right beside the networks;
the resize policy is in nanolink.common.imageproc.
"""
import os

import cv2
import numpy as np

from nanolink.common import imageproc, wire, zoo
from nanolink.common.backends import open_backend
from nanolink.common import cli as cliutil
from nanolink.common.errors import NanolinkError, UsageError


def rate_for(info, channels=None, quality=None, rate=None):
    """The rate point a bundled model sends: its JPEG quality (image codes), channel count (binary codes) or quality
    level (entropy-coded latents), the model's default for None; UsageError for an option the model does not take
    or a value it has no encoder for."""
    check_no_rate(info, rate)
    if info.dtype == 'rans':
        if channels or quality is not None:
            raise UsageError('{} sets its rate with --quality 1..{} (quality=), not --channels or --jpeg-quality'
                             .format(info.name, max(info.rate_points)))
        rate = info.default_channels if rate is None else rate
        return cliutil.check_range('--quality', rate, min(info.rate_points), max(info.rate_points))
    if info.dtype == 'jpeg':
        return JpegCodeEncoder.checked_quality(info, quality, channels)
    if quality is not None:
        raise UsageError('--jpeg-quality (jpeg_quality=) is for models whose code is an image (ae, ae-full) or the '
                         'jpeg baseline, not {}'.format(info.name))
    k = channels or info.default_channels
    if k not in info.encoders:
        raise UsageError('--channels {} (channels=): model {} has encoders for {} channels'.format(
            k, info.name, ', '.join(str(c) for c in sorted(info.encoders))))
    return k


def check_no_rate(info, rate):
    """UsageError for a --quality (rate point of entropy-coded models) given to a model that sets its rate otherwise."""
    if rate is not None and info.dtype != 'rans':
        raise UsageError('--quality (quality=) is for entropy-coded models (cae); {} takes {}'.format(
            info.name, '--jpeg-quality (jpeg_quality=)' if info.dtype == 'jpeg' else '--channels (channels=)'))


def rate_label(info, k):
    """'quality 3' (cae), 'JPEG quality 75' (ae, ae-full), '8 channels' (cae-bin): rate point k in words."""
    return {'rans': 'quality {}', 'jpeg': 'JPEG quality {}'}.get(info.dtype, '{} channels').format(k)



def unsendable(error, size, model):
    """The NanolinkError for a frame whose message wire.pack refused (``error``), at size (H, W): for a frame or
    message over the wire's limits it says to shrink frames (a classical baseline: or use a learned model)."""
    from nanolink.common.classical import CLASSICAL
    return NanolinkError('cannot send a {}x{} frame: {}{}'.format(size[1], size[0], error.reason, (
        '; shrink frames with size=(W, H) (edge-sender: --size WxH){}'.format(
            ' or use a learned model' if model in CLASSICAL else '')) if error.too_big else ''))


def pad(frame, multiple, size=None):
    """BGR uint8 (H, W, 3) -> (BGR uint8 (Hp, Wp, 3), (H, W) the host outputs): resized to ``size`` (width,
    height) first if given, then padded with edge pixels to ``multiple``."""
    frame = imageproc.to_send(frame, size)
    h, w = frame.shape[:2]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph or pw:
        frame = cv2.copyMakeBorder(frame, 0, ph, 0, pw, cv2.BORDER_REPLICATE)
    return np.ascontiguousarray(frame), (h, w)


def prepare(frame, multiple, size=None):
    """BGR uint8 (H, W, 3) -> (blob float32 (1, 3, Hp, Wp) RGB in [0, 1], (H, W) the host outputs).

    size: optional (width, height) to resize to first. Hp, Wp are H, W rounded up to ``multiple``.
    """
    frame, (h, w) = pad(frame, multiple, size)
    blob = np.empty((1, 3) + frame.shape[:2], dtype=np.float32)               # (1, 3, Hp, Wp) RGB in [0, 1]
    for c in range(3):                                                         # BGR interleaved -> RGB planes
        np.multiply(frame[:, :, 2 - c], np.float32(1.0 / 255.0), out=blob[0, c], dtype=np.float32)
    return blob, (h, w)


def finish(image, size):
    """Decoder output (1, Hp, Wp, 3) BGR uint8 (the learned decoders round to bytes themselves) -> (H, W, 3)
    cropped to size (H, W); no copy when there is no padding to crop off."""
    if image.dtype != np.uint8 or image.ndim != 4 or image.shape[3] != 3:
        raise NanolinkError('a decoder returned {} {}, not (1, H, W, 3) uint8 BGR: re-export it with this version '
                            '(nanolink-export)'.format(image.dtype, image.shape))
    h, w = size
    return np.ascontiguousarray(image[0, :h, :w])

class EdgeEncoder(object):
    """Encoder half: BGR frame -> packed payload bytes of ``channels`` binary channels."""

    def __init__(self, backend, info, channels, size=None):
        self.backend, self.info, self.channels, self.size = backend, info, channels, size

    @classmethod
    def open(cls, model='cae', engine=None, channels=None, device=None, size=None, threads=0, quality=None, rate=None,
             trust=False):
        """From a bundled model name (picking its encoder for the rate point) or an engine file.

        The rate point is ``rate`` (quality level 1..Q) for entropy-coded models (dtype "rans", ``cae``), ``quality``
        (JPEG quality) for models whose code is an image (dtype "jpeg", ``ae``), ``channels`` for binary codes."""
        if engine:
            backend = open_backend(engine, 'encoder', channels, device, threads, trust)
            if getattr(backend, 'input_name', 'image') != 'image':     # an exported decoder reads 'symbols'
                raise NanolinkError('{} is a decoder (its input is "{}"), not an encoder: give --engine an encoder '
                                    '(an -enc ONNX file, or drop --engine for the bundled --model)'.format(
                                        engine, backend.input_name))
            info = zoo.info_from_metadata(backend.metadata, engine)
            check_no_rate(info, rate)
            if info.dtype == 'rans':
                return RansEncoder.for_engine(backend, info, engine, channels, quality, rate, size)
            if info.dtype == 'jpeg':
                return JpegCodeEncoder(backend, info, quality, size, channels)
            if channels and channels != info.default_channels:
                raise NanolinkError('{} encodes {} channels, not {}: export or build an encoder for that rate'.format(
                    engine, info.default_channels, channels))
            return cls(backend, info, info.default_channels, size)
        info = zoo.bundled_model(model)
        if info.dtype == 'jpeg':                # image codes check their own rate option, not through rate_for
            check_no_rate(info, rate)
            if info.stride == 1:
                return FrameJpegEncoder(info, quality, size, channels, device)
            return JpegCodeEncoder(open_backend(info.encoder, 'encoder', None, device, threads), info, quality, size,
                                   channels)
        k = rate_for(info, channels, quality, rate)
        backend = open_backend(info.encoders[k], 'encoder', k, device, threads)
        if info.dtype == 'rans':
            return RansEncoder(backend, info, k, zoo.rate_tables(info.manifest, k), size)
        return cls(backend, info, k, size)

    def preprocess(self, frame):
        return prepare(frame, self.info.multiple, self.size)

    def close(self):
        """Release the backend (a TensorRT engine's CUDA context, an ONNX Runtime session)."""
        self.backend.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def entropy_code(self, payload, mode='zlib'):
        """The ``entropy`` stage: (payload, dtype) to send (binary codes zlib-coded when that is shorter)."""
        return wire.entropy_code(payload, self.info.dtype, mode)

    def fetch(self, out):
        """Device output -> (payload bytes, code shape [C, h, w])."""
        code = self.backend.to_host(out)                         # uint8 (1, h, w * C / 8)
        if code.dtype != np.uint8:                               # engines without UINT8 I/O (TensorRT 8.2)
            code = code.astype(np.uint8)                         # return exact byte values as float
        h = code.shape[1]
        w = code.shape[2] * 8 // self.channels
        return code.tobytes(), (self.channels, h, w)


class RansEncoder(EdgeEncoder):
    """Encoder half of an entropy-coded model (``cae``): the network returns integer symbol indices (1, M, h, w)
    at one rate point; the ``entropy`` stage codes them with rANS under that rate point's integer tables."""

    def __init__(self, backend, info, rate, tables, size=None):
        EdgeEncoder.__init__(self, backend, info, info.channels, size)
        self.rate = rate
        self.tables = zoo.rans_tables(tables)

    @classmethod
    def for_engine(cls, backend, info, engine, channels, quality, rate, size):
        """An encoder file (.onnx / .trt / .pt) carries its rate point in its metadata, and its tables there or (an
        exported ONNX encoder) by digest, read from the manifest.json beside it."""
        meta = info.manifest
        if channels or quality is not None:
            raise UsageError('{} sets its rate with --quality (quality=), not --channels or --jpeg-quality'.format(
                info.name))
        if rate is not None and rate != meta.get('quality'):
            raise NanolinkError('{} encodes quality {}, not {}: build an engine from the {} encoder of that quality'
                                .format(engine, meta.get('quality'), rate, info.name))
        return cls(backend, info, meta['quality'], zoo.encoder_tables(meta, engine), size)

    def fetch(self, out):
        """Device output -> (symbol indices uint8 (C, h, w), shape [C, h, w])."""
        sym = self.backend.to_host(out)                          # uint8 (1, M, h, w)
        if sym.dtype != np.uint8:                                # float16 engines (TensorRT 8.2): exact integers
            sym = sym.astype(np.uint8)
        else:                                                    # a TensorRT backend reuses its host buffer: the
            sym = sym.copy()                                     # pipelined edge codes it while the next encodes
        _, c, h, w = sym.shape
        return sym.reshape(c, h, w), (c, h, w)

    def entropy_code(self, payload, mode='zlib'):
        """Symbols -> the "rans" payload (nanolink.common.wire): rate point, coded-channel bitmap, rANS stream."""
        if mode == 'none':
            raise UsageError('{} always entropy-codes its symbols (rANS): drop --entropy none'.format(self.info.name))
        stream, coded = self.tables.encode(payload)
        return wire.pack_rans(self.rate, coded, stream), 'rans'


class _JpegCodeBackend(object):
    """The encoder network followed by the device-to-host copy and JPEG coding of its 8-bit code image; all of
    it is the ``encode`` stage (``gpu_to_cpu`` is then only the bytes hand-over)."""

    def __init__(self, inner, quality):
        self.inner, self.quality = inner, quality
        self.kind, self.device, self.metadata = inner.kind + '+jpeg', inner.device, inner.metadata

    def forward(self, blob):
        code = self.inner.to_host(self.inner.forward(blob))         # (1, h, w, 3) BGR byte values
        if code.dtype != np.uint8:                                   # float16 engines (TensorRT 8.2)
            code = code.astype(np.uint8)
        from nanolink.common.classical import encode_jpeg
        return encode_jpeg(code[0], self.quality), code.shape[1:3]

    def to_host(self, out):
        return out

    def close(self):
        self.inner.close()


class JpegCodeEncoder(EdgeEncoder):
    """Encoder half of a model whose code is a small 8-bit image coded with JPEG (``ae``)."""

    def __init__(self, backend, info, quality=None, size=None, channels=None):
        self.quality = self.checked_quality(info, quality, channels)
        EdgeEncoder.__init__(self, _JpegCodeBackend(backend, self.quality), info, 3, size)

    @staticmethod
    def checked_quality(info, quality, channels):
        """The JPEG quality to send (the model's default when None); NanolinkError for --channels or a bad one."""
        if channels:
            raise UsageError('--channels (channels=) is for binary-code models; {} sets its rate with --jpeg-quality Q '
                             '(jpeg_quality=Q)'.format(
                info.name))
        quality = info.default_channels if quality is None else quality
        return cliutil.check_range('--jpeg-quality', quality, 1, 100)

    def fetch(self, out):
        buf, (h, w) = out
        return buf.tobytes(), (3, h, w)


class FrameJpegEncoder(EdgeEncoder):
    """Encoder half of a model whose code is the frame itself (``ae-full``: code scale 1, the encoder network is the
    identity): the padded BGR frame goes straight to OpenCV JPEG, the way ``--model jpeg`` sends it, without the
    float blob and the network that would turn it back into the same bytes (at 1008^2 that round trip cost 6 ms
    here, the JPEG 2.5 ms). The payload is the same JPEG file byte for byte (tested against the exported encoder)."""

    def __init__(self, info, quality=None, size=None, channels=None, device=None):
        from nanolink.common.classical import ClassicalBackend
        if device == 'cuda':
            raise NanolinkError('{} has no encoder network to run on CUDA: its edge work is a JPEG of the frame on the '
                                'CPU; drop --device cuda'.format(info.name))
        self.quality = JpegCodeEncoder.checked_quality(info, quality, channels)
        EdgeEncoder.__init__(self, ClassicalBackend('jpeg', self.quality), info, 3, size)

    def preprocess(self, frame):
        return pad(frame, self.info.multiple, self.size)

    def fetch(self, out):
        from nanolink.common.classical import jpeg_size
        return out.tobytes(), (3,) + jpeg_size(out)


class HostDecoder(object):
    """Decoder half: validated wire Frame -> BGR uint8 image at the frame's size."""

    def __init__(self, info, backend, variant=zoo.FAST):
        self.info, self.backend, self.variant = info, backend, variant
        self.stride, self.multiple, self.channels, self.dtype = info.stride, info.multiple, info.channels, info.dtype
        self.tables, self.inv_gain = {}, {}          # entropy-coded models: per rate point (wire.unpack decodes)
        if info.dtype == 'rans':
            for q in info.rate_points:
                t = zoo.rate_tables(info.manifest, q)
                self.tables[q] = zoo.rans_tables(t)
                self.inv_gain[q] = np.asarray(t['inv_gain'], dtype=np.float32).reshape(-1, 1, 1)

    @classmethod
    def open(cls, info, decoder='onnxruntime', device='cpu', threads=0, variant=zoo.FAST, trust=False):
        """The model's ``variant`` decoder ('fast', or one of its decoder_variants such as 'quality': the same
        bits, a heavier network) on ``decoder`` runtime (onnxruntime | torch)."""
        path = info.decoder_file(variant, decoder)
        if not path or not os.path.isfile(path):
            raise NanolinkError('model {} has no {} {} decoder file ({})'.format(info.name, variant, decoder,
                                                                             path or 'none'))
        return cls(info, open_backend(path, 'decoder', None, device, threads, trust), variant)

    def symbols(self, frame):
        c, h, w = frame.shape
        bits = wire.unpack_bits(frame.payload, frame.shape)
        sym = np.zeros((1, self.channels, h, w), dtype=np.float32)
        sym[0, :c] = bits * np.float32(2) - np.float32(1)       # {0, 1} -> {-1, +1}; unsent channels stay 0
        return sym

    def latents(self, frame):
        """The dequantised latents (1, M, h, w) float32 of a "rans" frame (symbols decoded by wire.unpack)."""
        y = self.tables[frame.rate].values(frame.symbols).astype(np.float32) * self.inv_gain[frame.rate]
        return y[None]

    def decode(self, frame):
        if self.dtype == 'rans':                                # cae: integer latents
            return self.backend.run(self.latents(frame))        # (1, 16h, 16w, 3) BGR uint8
        if self.dtype == 'jpeg':                                # ae: JPEG-coded 8-bit code image
            from nanolink.common.classical import decode_jpeg
            code = decode_jpeg(frame.payload, frame.shape, frame.stream)
            return self.backend.run(code[None].astype(np.float32))   # (1, 2h, 2w, 3) BGR uint8
        return self.backend.run(self.symbols(frame))            # (1, 4h, 4w, 3) BGR uint8

    def postprocess(self, image, frame):
        return finish(image, frame.size)


def load_decoders(names=None, decoder='onnxruntime', device='cpu', threads=0, extra_dirs=(), variant=zoo.FAST,
                  trust=False):
    """{name: {fingerprint: decoder}} for bundled models (all, or ``names``), extra model folders and the
    classical baselines (jpeg, raw; nanolink.common.classical).

    ``variant`` other than 'fast' (e.g. 'quality') picks that decoder for every model that ships it and the fast
    one for the others (each decoder's ``variant`` says which); it is an error when no model ships it."""
    from nanolink.common.classical import CLASSICAL, ClassicalDecoder
    infos = list(zoo.bundled_models().values())
    infos += [zoo.load_manifest(d) for d in extra_dirs]
    available = set(i.name for i in infos) | set(CLASSICAL)
    if names:
        unknown = set(names) - available
        if unknown:
            raise UsageError('no bundled model "{}"; {}'.format('", "'.join(sorted(unknown)), zoo.model_list()))
        infos = [i for i in infos if i.name in names]
    if not infos and not (names and set(names) & set(CLASSICAL)):
        raise NanolinkError('no decoder to load: the package has no bundled weights and no --model-dir was given')
    if variant != zoo.FAST and not any(variant in i.variants for i in infos):
        loaded = set(i.name for i in infos) | (set(names or CLASSICAL) & set(CLASSICAL))
        raise UsageError('--decoder-variant {}: none of the models loaded here ({}) ships a {} decoder; use '
                            '--decoder-variant {}'.format(variant, ', '.join(sorted(loaded)), variant, zoo.FAST))
    out = {}
    for info in infos:
        out.setdefault(info.name, {})[info.fingerprint] = HostDecoder.open(info, decoder, device, threads,
                                                                           info.variant_or_fast(variant), trust)
    for name in CLASSICAL:
        if not names or name in names:
            dec = ClassicalDecoder(name)
            out[name] = {dec.info.fingerprint: dec}
    return out
