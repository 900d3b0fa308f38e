"""A nanolink codec without sockets: frames to wire messages and back, in one process.

    codec = nanolink.open_codec('cae', quality=3)
    data = codec.encode(frame_bgr)          # bytes: one wire message (nanolink.common.wire), as a Sender sends it
    image = codec.decode(data)              # (H, W, 3) BGR uint8 at the frame's size

For files, tests, your own transport, or measuring a model on your images.
"""
import time

from nanolink.common import wire, zoo
from nanolink.common.classical import CLASSICAL, ClassicalEncoder
from nanolink.common.codec import EdgeEncoder, load_decoders, unsendable
from nanolink.common.checks import check_decoder, check_rate
from nanolink.common.imageproc import check_size


class Codec(object):
    """Encoder and decoder of one model at one rate point. model: a bundled model or jpeg / raw; quality: cae's rate
    point 1..6; channels: cae-bin's; jpeg_quality: ae / ae-full / jpeg's; size: (width, height) or 'WxH' to resize to
    first; decoder, device, threads, decoder_variant: as for nanolink.Receiver. A bad argument is a UsageError."""

    def __init__(self, model=None, quality=None, channels=None, jpeg_quality=None, size=None, decoder='onnxruntime',
                 device='cpu', threads=0, decoder_variant='fast'):
        model = model or zoo.DEFAULT_MODEL
        quality, channels, jpeg_quality = check_rate(model, None, quality, channels, jpeg_quality)   # as Sender's,
        size = check_size(size)                                            # before anything is loaded
        check_decoder(decoder, device, threads)
        if model in CLASSICAL:
            self.encoder = ClassicalEncoder(model, 75 if jpeg_quality is None else jpeg_quality, size)
        else:
            self.encoder = EdgeEncoder.open(model, None, channels, 'cpu', size, threads, jpeg_quality, quality)
        self.info = self.encoder.info
        try:
            self.decoders = load_decoders([model], decoder, device, threads, variant=decoder_variant)
        except BaseException:
            self.encoder.close()
            raise
        self.seq = 0

    def encode(self, frame):
        """BGR (or grey / BGRA) uint8 frame -> wire message bytes; UsageError for what is not such a frame,
        NanolinkError for one over the wire's limits."""
        enc = self.encoder
        blob, size = enc.preprocess(frame)
        payload, shape = enc.fetch(enc.backend.forward(blob))
        payload, dtype = enc.entropy_code(payload)
        try:
            data = wire.pack(wire.Frame(stream='codec', seq=self.seq, t_cap=time.time(), model=self.info.name,
                                        fp=self.info.fingerprint, dtype=dtype, shape=shape, size=size,
                                        payload=payload, stages={}))
        except wire.WireError as e:
            raise unsendable(e, size, self.info.name)
        self.seq += 1
        return data

    def decode(self, data):
        """Wire message bytes -> BGR uint8 image; nanolink.common.wire.WireError for a message it cannot take."""
        frame = wire.unpack(data, self.decoders)
        dec = self.decoders[frame.model][frame.fp]
        return dec.postprocess(dec.decode(frame), frame)

    def close(self):
        self.encoder.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


def open_codec(model=None, **options):
    """Codec(model, **options): see Codec."""
    return Codec(model, **options)
