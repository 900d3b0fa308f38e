import cv2
import numpy as np
import pytest

from nanolink.common import codec, imageproc, metrics
from nanolink.common.errors import NanolinkError


def test_ms_ssim_matches_pytorch_msssim(sample_frame):
    torch = pytest.importorskip('torch')
    pms = pytest.importorskip('pytorch_msssim')
    ref = cv2.cvtColor(sample_frame[:301, :403], cv2.COLOR_BGR2RGB)      # odd sizes exercise the padding
    jpg = cv2.imdecode(cv2.imencode('.jpg', ref, [cv2.IMWRITE_JPEG_QUALITY, 15])[1], cv2.IMREAD_COLOR)
    t = lambda a: torch.from_numpy(a).permute(2, 0, 1)[None].double()
    expected = pms.ms_ssim(t(ref), t(jpg), data_range=255).item()
    assert metrics.ms_ssim(ref, jpg) == pytest.approx(expected, abs=1e-5)
    assert metrics.ms_ssim(ref, ref) == pytest.approx(1.0)


def test_psnr_of_known_error():
    a = np.full((10, 10, 3), 100, np.uint8)
    b = a.copy()
    b[0, 0, 0] = 110                       # MSE = 100 / 300
    assert metrics.psnr(a, b) == pytest.approx(10 * np.log10(255 ** 2 / (100 / 300.)))
    assert metrics.psnr(a, a) == float('inf')


@pytest.mark.parametrize('h, w', [(512, 768), (497, 641), (8, 8), (1, 3)])
def test_prepare_pads_to_the_multiple_and_finish_crops_back(h, w):
    rng = np.random.RandomState(1)
    frame = rng.randint(0, 256, (h, w, 3)).astype(np.uint8)
    blob, size = codec.prepare(frame, 8)
    assert size == (h, w) and blob.shape[2] % 8 == 0 and blob.shape[3] % 8 == 0 and blob.dtype == np.float32
    padded = np.floor(blob[0, ::-1].transpose(1, 2, 0) * 255 + 0.5).astype(np.uint8)[None]   # as a decoder returns it
    assert np.array_equal(padded[0, h:], np.repeat(padded[0, h - 1:h], padded.shape[1] - h, 0))   # edge rows repeated
    assert np.array_equal(codec.finish(padded, size), frame)    # RGB [0,1] -> bytes is exact; crop restores it


def test_finish_rejects_float_decoder_output_with_the_fix():
    with pytest.raises(NanolinkError, match='nanolink-export'):
        codec.finish(np.zeros((1, 3, 16, 16), np.float32), (16, 16))


def test_prepare_resizes_to_size_and_handles_grey_frames():
    blob, size = codec.prepare(np.zeros((100, 200), np.uint8), 8, size=(64, 40))
    assert size == (40, 64) and blob.shape == (1, 3, 40, 64)


@pytest.mark.parametrize('text', ['1008', 'axb', '4x4', '10x0'])
def test_bad_size_is_a_clear_error(text):
    with pytest.raises(NanolinkError, match='--size'):
        imageproc.parse_size(text)
