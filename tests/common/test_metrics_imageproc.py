import cv2
import numpy as np
import pytest

from nanolink.common import codec, imageproc, metrics
from nanolink.common.errors import NanolinkError, UsageError


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


@pytest.mark.parametrize('size, expected', [((8, 8), (8, 8)), ((4096, 4096), (4096, 4096)), ('640x480', (640, 480)),
                                            (np.array([96, 64]), (96, 64)), ([96, 64], (96, 64)), (None, None)])
def test_check_size_takes_a_pair_or_the_clis_text(size, expected):
    got = imageproc.check_size(size)
    assert got == expected and (got is None or all(type(v) is int for v in got))


@pytest.mark.parametrize('size, words', [((7, 8), 'size=(7, 8): width and height must be between 8 and 4096'),
                                         ((8, 4097), 'size=(8, 4097): width and height must be between 8 and 4096'),
                                         ('4097x8', 'size 4097x8: width and height must be between 8 and 4096'),
                                         ((True, 8), 'size must be (width, height) in pixels'),
                                         ((96, 64, 3), 'size must be (width, height) in pixels'),
                                         (96.0, 'size must be (width, height) in pixels')])
def test_check_size_refuses_what_parse_size_refuses_naming_the_argument(size, words):
    with pytest.raises(UsageError) as e:
        imageproc.check_size(size)
    assert str(e.value).startswith(words)
    with pytest.raises(UsageError, match='--max-size 9x4097: width and height must be between 8 and 4096'):
        imageproc.parse_size('9x4097', '--max-size')          # the CLIs' parser: the same bounds
