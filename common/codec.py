"""The two halves of a learned codec, as the edge and the host use them.

    enc = EdgeEncoder.open(model='cae')                     # or engine='cae-enc-k8.onnx'
    blob, size = enc.preprocess(frame)                      # preprocess
    out = enc.backend.forward(blob)                         # encode (synchronised)
    payload, shape = enc.fetch(out)                         # gpu_to_cpu
    ...wire...
    dec = HostDecoder(info, backend)
    image = dec.decode(frame)                               # decode
    bgr = dec.postprocess(image, frame)                     # postprocess
"""
import os

import numpy as np

from nanolink.common import imageproc, wire, zoo
from nanolink.common.backends import open_backend
from nanolink.common.errors import NanolinkError


class EdgeEncoder(object):
    """Encoder half: BGR frame -> packed payload bytes of ``channels`` binary channels."""

    def __init__(self, backend, info, channels, size=None):
        self.backend, self.info, self.channels, self.size = backend, info, channels, size

    @classmethod
    def open(cls, model='cae', engine=None, channels=None, device=None, size=None, threads=0):
        """From a bundled model name (picking its encoder for ``channels``) or an engine file."""
        if engine:
            backend = open_backend(engine, 'encoder', channels, device, threads)
            info = zoo.info_from_metadata(backend.metadata, engine)
            if channels and channels != info.default_channels:
                raise NanolinkError('{} encodes {} channels, not {}: export or build an encoder for that rate'.format(
                    engine, info.default_channels, channels))
            return cls(backend, info, info.default_channels, size)
        info = zoo.bundled_model(model)
        k = channels or info.default_channels
        if k not in info.encoders:
            raise NanolinkError('--channels {}: model {} has encoders for {} channels'.format(
                k, model, ', '.join(str(c) for c in sorted(info.encoders))))
        return cls(open_backend(info.encoders[k], 'encoder', k, device, threads), info, k, size)

    def preprocess(self, frame):
        return imageproc.prepare(frame, self.info.multiple, self.size)

    def fetch(self, out):
        """Device output -> (payload bytes, code shape [C, h, w])."""
        code = self.backend.to_host(out)                         # uint8 (1, h, w * C / 8)
        if code.dtype != np.uint8:                               # engines without UINT8 I/O (TensorRT 8.2)
            code = code.astype(np.uint8)                         # return exact byte values as float
        h = code.shape[1]
        w = code.shape[2] * 8 // self.channels
        return code.tobytes(), (self.channels, h, w)


class HostDecoder(object):
    """Decoder half: validated wire Frame -> BGR uint8 image at the frame's size."""

    def __init__(self, info, backend):
        self.info, self.backend = info, backend
        self.stride, self.multiple, self.channels, self.dtype = info.stride, info.multiple, info.channels, info.dtype

    @classmethod
    def open(cls, info, decoder='onnxruntime', device='cpu', threads=0):
        path = info.decoder if decoder == 'onnxruntime' else info.torch
        if not path or not os.path.isfile(path):
            raise NanolinkError('model {} has no {} decoder file ({})'.format(info.name, decoder, path or 'none'))
        return cls(info, open_backend(path, 'decoder', None, device, threads))

    def symbols(self, frame):
        c, h, w = frame.shape
        bits = wire.unpack_bits(frame.payload, frame.shape)
        sym = np.zeros((1, self.channels, h, w), dtype=np.float32)
        sym[0, :c] = bits * np.float32(2) - np.float32(1)       # {0, 1} -> {-1, +1}; unsent channels stay 0
        return sym

    def decode(self, frame):
        return self.backend.run(self.symbols(frame))            # (1, 3, 4h, 4w) float32

    def postprocess(self, image, frame):
        return imageproc.finish(image, frame.size)


def load_decoders(names=None, decoder='onnxruntime', device='cpu', threads=0, extra_dirs=()):
    """{name: {fingerprint: decoder}} for bundled models (all, or ``names``), extra model folders and the
    classical baselines (jpeg, raw; nanolink.common.classical)."""
    from nanolink.common.classical import CLASSICAL, ClassicalDecoder
    infos = list(zoo.bundled_models().values())
    infos += [zoo.load_manifest(d) for d in extra_dirs]
    available = set(i.name for i in infos) | set(CLASSICAL)
    if names:
        unknown = set(names) - available
        if unknown:
            raise NanolinkError('unknown model(s) {}; available: {}'.format(
                ', '.join(sorted(unknown)), ', '.join(sorted(available))))
        infos = [i for i in infos if i.name in names]
    if not infos and not (names and set(names) & set(CLASSICAL)):
        raise NanolinkError('no decoder to load: the package has no bundled weights and no --model-dir was given')
    out = {}
    for info in infos:
        out.setdefault(info.name, {})[info.fingerprint] = HostDecoder.open(info, decoder, device, threads)
    for name in CLASSICAL:
        if not names or name in names:
            dec = ClassicalDecoder(name)
            out[name] = {dec.info.fingerprint: dec}
    return out
