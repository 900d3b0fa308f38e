"""The bundled model through the real ONNX Runtime sessions and the real wire format."""
import pytest

from nanolink.common import metrics, wire, zoo
from nanolink.common.codec import EdgeEncoder, load_decoders

# The bundled cae-bin decodes the sample photos at 8 channels (0.5 bpp) to about 24-26 dB; these bands
# catch a broken pipeline (wrong bit order, colour swap, misaligned crop: < 15 dB) without pinning weights.
PSNR_BAND = {4: (20.0, 40.0), 8: (21.0, 40.0), 16: (22.0, 45.0)}


@pytest.fixture(scope='module')
def decoders():
    return load_decoders(['cae-bin'])


def round_trip(frame, k, decoders):
    enc = EdgeEncoder.open('cae-bin', channels=k)
    blob, size = enc.preprocess(frame)
    payload, shape = enc.fetch(enc.backend.forward(blob))
    msg = wire.pack(wire.Frame(stream='t', seq=0, t_cap=1.0, model='cae-bin', fp=enc.info.fingerprint, shape=shape,
                               size=size, payload=payload, stages={}))
    f = wire.unpack(msg, decoders)
    dec = decoders['cae-bin'][f.fp]
    return dec.postprocess(dec.decode(f), f), msg, payload, shape


@pytest.mark.parametrize('k', sorted(PSNR_BAND))
def test_compress_wire_decompress_psnr_in_band(sample_frame, decoders, k):
    frame = sample_frame[:501, :743]                              # not a multiple of 8: padded, cropped back
    out, msg, payload, shape = round_trip(frame, k, decoders)
    assert out.shape == frame.shape
    lo, hi = PSNR_BAND[k]
    assert lo <= metrics.psnr(frame, out) <= hi
    assert shape == (k, 504 // 4, 744 // 4)
    assert len(payload) == k * shape[1] * shape[2] // 8
    assert len(msg) * 8.0 / (501 * 743) < k / 16.0 + 0.012       # header overhead about 0.01 bpp


def test_more_channels_decode_better(sample_frame, decoders):
    p = [metrics.psnr(sample_frame, round_trip(sample_frame, k, decoders)[0]) for k in (4, 8, 16)]
    assert p[0] < p[1] < p[2]


def test_encoder_is_deterministic(sample_frame):
    enc = EdgeEncoder.open('cae-bin')
    blob, _ = enc.preprocess(sample_frame)
    assert enc.fetch(enc.backend.forward(blob))[0] == enc.fetch(enc.backend.forward(blob.copy()))[0]


def test_truncated_progressive_code_decodes(sample_frame, decoders):
    """A 16-channel code cut to its first 8 channels decodes like the 8-channel encoder's code."""
    full = EdgeEncoder.open('cae-bin', channels=16)
    half = EdgeEncoder.open('cae-bin', channels=8)
    blob, size = full.preprocess(sample_frame)
    p16, s16 = full.fetch(full.backend.forward(blob))
    p8, s8 = half.fetch(half.backend.forward(blob))
    bits16 = wire.unpack_bits(p16, s16)
    assert wire.pack_bits(bits16[:8]) == p8


def test_manifest_describes_the_bundled_files():
    info = zoo.bundled_model('cae-bin')
    assert len(info.fingerprint) == 16 and info.rate_points == (4, 8, 16)
    assert all(k in info.encoders for k in info.rate_points)
    m = info.manifest
    for key in ('architecture', 'training', 'metrics', 'files', 'io'):
        assert key in m, key
