"""The bundled ae (8-bit code image at H/2, coded with JPEG) and ae-full (the frame itself as JPEG, a decoder that
removes JPEG's artifacts) through the real ONNX Runtime sessions and the real wire format."""
import cv2
import numpy as np
import pytest

from nanolink.common import metrics, wire, zoo
from nanolink.common.codec import EdgeEncoder, load_decoders

# ae decodes the sample photos at JPEG quality 75 to roughly 27-30 dB, ae-full at its default quality 20 to about
# 30 dB; the band catches a broken pipeline (colour swap, wrong stride, misaligned crop: < 18 dB) without pinning
# weights.
PSNR_BAND = (22.0, 45.0)
MODELS = ['ae', 'ae-full']


@pytest.fixture(scope='module')
def decoders():
    return load_decoders(MODELS)


def round_trip(frame, quality, decoders, model='ae'):
    enc = EdgeEncoder.open(model, quality=quality)
    blob, size = enc.preprocess(frame)
    payload, shape = enc.fetch(enc.backend.forward(blob))
    info = enc.info
    msg = wire.pack(wire.Frame(stream='t', seq=0, t_cap=1.0, model=model, fp=info.fingerprint, dtype='jpeg',
                               shape=shape, size=size, payload=payload, stages={}))
    f = wire.unpack(msg, decoders)
    dec = decoders[model][f.fp]
    return dec.postprocess(dec.decode(f), f), msg, payload, shape


@pytest.mark.parametrize('model, quality, code_shape', [('ae', 75, (3, 251, 372)), ('ae-full', 20, (3, 502, 744))])
def test_round_trip_in_band_with_odd_sizes(sample_frame, decoders, model, quality, code_shape):
    frame = sample_frame[:501, :743]                              # odd: padded to even, cropped back
    out, msg, payload, shape = round_trip(frame, quality, decoders, model)
    assert out.shape == frame.shape and shape == code_shape
    lo, hi = PSNR_BAND
    assert lo <= metrics.psnr(frame, out) <= hi
    assert payload[:2] == b'\xff\xd8'                             # the payload is a JPEG file


@pytest.mark.parametrize('model', MODELS)
def test_higher_quality_costs_more_bits_and_decodes_better(sample_frame, decoders, model):
    res = [round_trip(sample_frame, q, decoders, model) for q in zoo.bundled_model(model).rate_points]
    bpp = [len(r[1]) * 8.0 / (sample_frame.shape[0] * sample_frame.shape[1]) for r in res]
    p = [metrics.psnr(sample_frame, r[0]) for r in res]
    assert bpp == sorted(bpp) and p == sorted(p), (bpp, p)


@pytest.mark.parametrize('quality', [10, 20, 50])
def test_ae_full_beats_the_same_jpeg_bytes(sample_frame, decoders, quality):
    """ae-full's payload is exactly the JPEG of the frame: its decoder must show a better picture than OpenCV's
    JPEG decoder shows from the same bytes (about +0.9 dB at quality 20 on Kodak; the margin here is loose)."""
    out, msg, payload, shape = round_trip(sample_frame, quality, decoders, 'ae-full')
    plain = cv2.imdecode(np.frombuffer(payload, np.uint8), cv2.IMREAD_COLOR)
    assert plain.shape == sample_frame.shape
    gain = metrics.psnr(sample_frame, out) - metrics.psnr(sample_frame, plain)
    assert gain > 0.3, gain


@pytest.mark.parametrize('model', MODELS)
def test_encoder_is_deterministic(sample_frame, model):
    enc = EdgeEncoder.open(model)
    blob, _ = enc.preprocess(sample_frame)
    assert enc.fetch(enc.backend.forward(blob))[0] == enc.fetch(enc.backend.forward(blob.copy()))[0]


def test_code_image_is_a_small_picture_of_the_frame(sample_frame):
    """The code is an 8-bit image at half resolution that looks like the frame (the ComCNN idea)."""
    enc = EdgeEncoder.open('ae', quality=95)
    blob, _ = enc.preprocess(sample_frame)
    payload, shape = enc.fetch(enc.backend.forward(blob))
    code = cv2.imdecode(np.frombuffer(payload, np.uint8), cv2.IMREAD_COLOR)
    small = cv2.resize(sample_frame, (shape[2], shape[1]), interpolation=cv2.INTER_AREA)
    assert code.shape == small.shape and metrics.psnr(small, code) > 20


def test_bad_quality_and_channels_are_clear_errors():
    from nanolink.common.errors import NanolinkError
    with pytest.raises(NanolinkError, match='1..100'):
        EdgeEncoder.open('ae', quality=0)
    with pytest.raises(NanolinkError, match='--jpeg-quality'):
        EdgeEncoder.open('ae', channels=8)
    with pytest.raises(NanolinkError, match=r'--jpeg-quality \(jpeg_quality=\) is for'):
        EdgeEncoder.open('cae-bin', quality=50)


@pytest.mark.parametrize('model, stride', [('ae', 2), ('ae-full', 1)])
def test_manifest_describes_the_bundled_model(model, stride):
    info = zoo.bundled_model(model)
    assert info.dtype == 'jpeg' and info.stride == stride and len(info.fingerprint) == 16
    assert info.encoder.endswith(model + '-enc.onnx') and info.decoder.endswith(model + '-dec.onnx')
    assert info.default_channels in info.rate_points
    for key in ('architecture', 'training', 'metrics', 'files', 'io'):
        assert key in info.manifest, key


def test_ae_full_edge_jpegs_the_frame_directly_with_the_same_bytes_as_its_encoder_network(sample_frame):
    """The edge skips ae-full's identity network (float blob in, the same bytes out): the payload must be the very
    JPEG file that the exported encoder's output gives, padding included."""
    from nanolink.common.errors import NanolinkError
    frame = sample_frame[:501, :743]
    direct = EdgeEncoder.open('ae-full', quality=20)
    network = EdgeEncoder.open('ae-full', engine=zoo.bundled_model('ae-full').encoder, quality=20)
    assert direct.backend.kind == 'opencv-jpeg' and network.backend.kind == 'onnxruntime+jpeg'
    outs = []
    for enc in (direct, network):
        blob, size = enc.preprocess(frame)
        outs.append(enc.fetch(enc.backend.forward(blob)) + (size,))
    assert outs[0] == outs[1] and outs[0][1] == (3, 502, 744) and outs[0][2] == (501, 743)
    with pytest.raises(NanolinkError, match='no encoder network to run on CUDA'):
        EdgeEncoder.open('ae-full', device='cuda')
