"""ae in torch: shapes, budget, training through real JPEG, export parity with ONNX Runtime."""
import json
import os

import numpy as np
import pytest

torch = pytest.importorskip('torch')

from nanolink.common.backends import open_backend     # noqa: E402
from nanolink.common.zoo import bundled_model           # noqa: E402
from nanolink.export import onnx_export, train          # noqa: E402
from nanolink.export.models import budget, build_model, jpeg_round_trip   # noqa: E402


def test_shapes_rates_and_budget():
    m = build_model('ae').eval()
    x = torch.rand(2, 3, 64, 96)
    c = m.analysis(x)
    assert c.shape == (2, 3, 32, 48) and 0 <= c.min() and c.max() <= 1
    assert m.synthesis(c).shape == (2, 3, 64, 96)
    outs, health = m.rate_outputs(x[:1])
    assert sorted(outs) == [50, 75, 85, 95] and health['bpp'][50] < health['bpp'][75] < health['bpp'][95]
    b = budget(m)
    assert b['encoder_mac_per_px'] <= 2500                    # the Nano's budget (issue 4)


def test_jpeg_straight_through_passes_gradients():
    c = torch.rand(2, 3, 16, 16, requires_grad=True)
    y = c + (jpeg_round_trip(c, [50, 90]) - c).detach()
    y.sum().backward()
    assert torch.equal(c.grad, torch.ones_like(c))            # identity backward
    assert (y - c).abs().max() > 0                            # the real codec's error forward


def test_training_ae_logs_bpp_and_psnr_per_quality(tmp_path, sample_frame):
    import cv2
    data, val = tmp_path / 'data', tmp_path / 'val'
    data.mkdir(); val.mkdir()
    cv2.imwrite(str(data / 'a.png'), sample_frame)
    cv2.imwrite(str(val / 'v.png'), sample_frame[:200, :240])
    out = str(tmp_path / 'run')
    assert train.main(['--model', 'ae', '--data', str(data), '--val', str(val), '--out', out, '--steps', '2',
                       '--batch', '2', '--crop', '64', '--alpha', '0', '--val-every', '2', '--threads', '1']) == 0
    row = json.loads(open(os.path.join(out, 'val.jsonl')).readline())
    assert {'psnr_q50', 'psnr_q75', 'psnr_q95', 'bpp_q75', 'msssim_q75'} <= set(row)


def test_bundled_ae_export_parity(tmp_path, sample_frame):
    """torch vs ONNX Runtime: the 8-bit code images agree to within one level (rounding at .5), the decoders
    to 1e-4."""
    from nanolink.common.imageproc import prepare
    info = bundled_model('ae')
    model, ident = onnx_export.load_checkpoint(info.torch)
    assert ident['fingerprint'] == info.fingerprint and ident['dtype'] == 'jpeg'
    x = prepare(sample_frame, info.multiple)[0]
    ort_code = open_backend(info.encoder, 'encoder').run(x)
    with torch.no_grad():
        t_code = model.encoder_module().eval()(torch.from_numpy(x)).numpy()
    assert ort_code.dtype == np.uint8 and ort_code.shape == t_code.shape == (1, 256, 384, 3)
    diff = np.abs(ort_code.astype(int) - t_code.astype(int))
    assert diff.max() <= 1 and (diff > 0).mean() < 1e-3
    code = ort_code.astype(np.float32)
    ort_img = open_backend(info.decoder, 'decoder').run(code)
    with torch.no_grad():
        t_img = model.decoder_module().eval()(torch.from_numpy(code)).numpy()
    np.testing.assert_allclose(ort_img, t_img, atol=1e-4)
    f16 = os.path.join(os.path.dirname(info.encoder), info.manifest['files']['encoder_float16'])
    np.testing.assert_array_equal(open_backend(f16, 'encoder').run(x).astype(np.uint8), ort_code)


def test_ae_identity_from_manifest_matches_onnx_metadata_and_build_engine_picks_float16(capsys):
    onnx = pytest.importorskip('onnx')
    from nanolink.common.zoo import METADATA_KEY
    from nanolink.export import build_engine
    info = bundled_model('ae')
    for path in (info.encoder, build_engine.bundled_encoder('ae'), info.decoder):
        meta = {p.key: p.value for p in onnx.load(path).metadata_props}[METADATA_KEY]
        assert json.loads(build_engine._metadata_from_manifest(path)) == json.loads(meta), path
    try:
        import tensorrt  # noqa: F401
        return
    except ImportError:
        pass
    assert build_engine.main(['--model', 'ae', '--out', 'x.trt', '--shape', '1x3x720x1280', '--fp16']) == 1
    assert 'ae-enc-float16.onnx --saveEngine=x.trt' in capsys.readouterr()[0]
