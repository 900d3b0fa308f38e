"""ae and ae-full in torch: shapes, budget, training through real JPEG, export parity with ONNX Runtime."""
import json
import os

import cv2
import numpy as np
import pytest

torch = pytest.importorskip('torch')

from nanolink.common.backends import open_backend     # noqa: E402
from nanolink.common.zoo import bundled_model           # noqa: E402
from nanolink.export import model_io, onnx_export, train    # noqa: E402
from nanolink.export.models import budget, build_model, jpeg_round_trip   # noqa: E402


@pytest.mark.parametrize('name, code_side, rates', [('ae', 2, [50, 75, 85, 95]), ('ae-full', 1, [10, 20, 30, 50])])
def test_shapes_rates_and_budget(name, code_side, rates):
    m = build_model(name).eval()
    x = torch.rand(2, 3, 64, 96)
    c = m.analysis(x)
    assert m.stride == code_side and c.shape == (2, 3, 64 // code_side, 96 // code_side)
    assert 0 <= c.min() and c.max() <= 1
    assert m.synthesis(c).shape == (2, 3, 64, 96)
    outs, health = m.rate_outputs(x[:1])
    assert sorted(outs) == rates and health['bpp'][rates[0]] < health['bpp'][rates[1]] < health['bpp'][rates[-1]]
    b = budget(m)
    assert b['encoder_mac_per_px'] <= 2500                    # the Nano's budget (issue 4)


def test_ae_full_code_is_the_frame_and_a_bad_scale_is_refused():
    m = build_model('ae-full').eval()
    x = torch.rand(1, 3, 32, 48)
    assert torch.equal(m.analysis(x), x) and not list(m.encoder.parameters())
    with pytest.raises(ValueError, match='code_scale must be 1 or 2'):
        build_model('ae', code_scale=4)


def test_jpeg_straight_through_passes_gradients():
    c = torch.rand(2, 3, 16, 16, requires_grad=True)
    y = c + (jpeg_round_trip(c, [50, 90]) - c).detach()
    y.sum().backward()
    assert torch.equal(c.grad, torch.ones_like(c))            # identity backward
    assert (y - c).abs().max() > 0                            # the real codec's error forward


@pytest.mark.parametrize('name, keys', [('ae', {'psnr_q50', 'psnr_q75', 'psnr_q95', 'bpp_q75', 'msssim_q75'}),
                                        ('ae-full', {'psnr_q10', 'psnr_q20', 'psnr_q50', 'bpp_q20', 'msssim_q20'})])
def test_training_logs_bpp_and_psnr_per_quality(tmp_path, sample_frame, name, keys):
    import cv2
    data, val = tmp_path / 'data', tmp_path / 'val'
    data.mkdir(); val.mkdir()
    cv2.imwrite(str(data / 'a.png'), sample_frame)
    cv2.imwrite(str(val / 'v.png'), sample_frame[:200, :240])
    out = str(tmp_path / 'run')
    assert train.main(['--model', name, '--data', str(data), '--val', str(val), '--out', out, '--steps', '2',
                       '--batch', '2', '--crop', '64', '--alpha', '0', '--val-every', '2', '--threads', '1']) == 0
    row = json.loads(open(os.path.join(out, 'val.jsonl')).readline())
    assert keys <= set(row)


@pytest.mark.parametrize('name, code_shape', [('ae', (1, 256, 384, 3)), ('ae-full', (1, 512, 768, 3))])
def test_bundled_export_parity(tmp_path, sample_frame, name, code_shape):
    """torch vs ONNX Runtime: the 8-bit code images and the decoded BGR bytes agree to within one level (rounding
    at .5)."""
    from nanolink.common.codec import prepare
    info = bundled_model(name)
    model, ident = model_io.load_checkpoint(info.torch)
    assert ident['fingerprint'] == info.fingerprint and ident['dtype'] == 'jpeg'
    x = prepare(sample_frame, info.multiple)[0]
    ort_code = open_backend(info.encoder, 'encoder').run(x)
    with torch.no_grad():
        t_code = model.encoder_module().eval()(torch.from_numpy(x)).numpy()
    assert ort_code.dtype == np.uint8 and ort_code.shape == t_code.shape == code_shape
    diff = np.abs(ort_code.astype(int) - t_code.astype(int))
    assert diff.max() <= 1 and (diff > 0).mean() < 1e-3
    code = ort_code.astype(np.float32)
    ort_img = open_backend(info.decoder, 'decoder').run(code)
    with torch.no_grad():
        t_img = model.decoder_module().eval()(torch.from_numpy(code)).numpy()
    assert ort_img.dtype == t_img.dtype == np.uint8 and ort_img.shape == t_img.shape == (1, 512, 768, 3)
    diff = np.abs(ort_img.astype(int) - t_img.astype(int))
    assert diff.max() <= 1 and (diff > 0).mean() < 1e-3
    f16 = os.path.join(os.path.dirname(info.encoder), info.manifest['files']['encoder_float16'])
    np.testing.assert_array_equal(open_backend(f16, 'encoder').run(x).astype(np.uint8), ort_code)


@pytest.mark.parametrize('name', ['ae', 'ae-full'])
def test_identity_from_manifest_matches_onnx_metadata_and_build_engine_picks_float16(capsys, name):
    onnx = pytest.importorskip('onnx')
    from nanolink.common.zoo import METADATA_KEY
    from nanolink.export import build_engine
    info = bundled_model(name)
    for path in (info.encoder, build_engine.bundled_encoder(name), info.decoder):
        meta = {p.key: p.value for p in onnx.load(path).metadata_props}[METADATA_KEY]
        assert json.loads(build_engine._metadata_from_manifest(path)) == json.loads(meta), path
    try:
        import tensorrt  # noqa: F401
        return
    except ImportError:
        pass
    assert build_engine.main(['--model', name, '--out', 'x.trt', '--shape', '1x3x720x1280', '--fp16']) == 1
    assert name + '-enc-float16.onnx --saveEngine=x.trt' in capsys.readouterr()[0]


def test_arch_overrides_train_export_and_decode_like_the_float_model(tmp_path, sample_frame):
    import cv2
    data = tmp_path / 'data'
    data.mkdir()
    cv2.imwrite(str(data / 'a.png'), sample_frame)
    out = str(tmp_path / 'run')
    assert train.main(['--model', 'ae', '--data', str(data), '--val', '', '--out', out, '--steps', '3', '--batch', '2',
                       '--crop', '64', '--alpha', '0', '--threads', '1', '--train-only', 'decoder',
                       '--arch', 'dec_width=8', '--arch', 'dec_layers=2']) == 0
    ck = torch.load(os.path.join(out, 'last.pt'), map_location='cpu', weights_only=False)
    assert ck['model_config']['dec_width'] == 8 and ck['model_config']['dec_layers'] == 2
    exported = str(tmp_path / 'exported')
    assert onnx_export.main(['--checkpoint', os.path.join(out, 'last.pt'), '--out', exported]) == 0
    m = json.load(open(os.path.join(exported, 'manifest.json')))
    assert m['architecture']['dec_layers'] == 2
    model, _ = model_io.load_checkpoint(os.path.join(out, 'last.pt'))
    code = np.random.RandomState(0).randint(0, 256, (1, 21, 34, 3)).astype(np.float32)
    with torch.no_grad():
        ref = model.synthesis(torch.from_numpy(code[..., ::-1].copy()).permute(0, 3, 1, 2) / 255.0)[0].numpy()
    want = np.clip(np.floor(ref.transpose(1, 2, 0)[..., ::-1] * 255 + 0.5), 0, 255)
    got = open_backend(os.path.join(exported, m['files']['decoder']), 'decoder').run(code)[0].astype(int)
    assert np.abs(got - want).max() <= 1


@pytest.mark.parametrize('arch, message', [('width=8', 'KEY one of'), ('dec_width=eight', 'dec_width must be int'),
                                           ('enc_widths=3;4', 'comma-separated integers')])
def test_bad_arch_override_names_the_keys(arch, message, capsys):
    with pytest.raises(SystemExit) as e:
        train.main(['--model', 'ae', '--data', 'nowhere', '--arch', arch])
    err = capsys.readouterr().err
    assert e.value.code == 2 and message in err and err.startswith('nanolink-train: error: --arch ')


@pytest.mark.parametrize('crop, words', [('200', 'a multiple of 16 for cae'), ('8', 'try --crop 16')])
def test_a_crop_the_model_cannot_take_is_an_argument_error(crop, words, capsys):
    with pytest.raises(SystemExit) as e:          # before loading any image: 'nowhere' is never read
        train.main(['--model', 'cae', '--data', 'nowhere', '--crop', crop])
    err = capsys.readouterr().err
    assert e.value.code == 2 and words in err and 'Traceback' not in err


def test_ceiling_script_decoder_beats_bilinear_on_the_sample():
    import re
    import subprocess
    import sys
    from nanolink.common.zoo import SAMPLE_DIR
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    script = os.path.join(root, 'scripts', 'ae_ceiling.py')
    r = subprocess.run([sys.executable, script, '--images', SAMPLE_DIR, '--decoder-variant', 'fast', 'quality'],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, timeout=300)
    assert r.returncode == 0, r.stderr
    dec = {v: float(re.search(r'decoder ae \w+ {} \(width \d+, \d+ middle layers\): ([\d.]+) dB'.format(v),
                              r.stdout).group(1)) for v in ('fast', 'quality')}
    bil = float(re.search(r'bilinear upsampling: ([\d.]+) dB', r.stdout).group(1))
    assert dec['quality'] > dec['fast'] > bil + 0.5, r.stdout
    r = subprocess.run([sys.executable, script, '--images', SAMPLE_DIR, '--decoder-variant', 'hq'],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, timeout=60)
    assert r.returncode == 2 and 'model ae has no "hq" decoder; its decoders: fast, quality' in r.stderr
    bad = subprocess.run([sys.executable, os.path.join(root, 'scripts', 'ae_ceiling.py'), '--images', root + '/nope'],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, timeout=60)
    assert bad.returncode == 2 and 'no PNG or JPEG images' in bad.stderr


def test_checkpoint_older_than_dec_layers_loads_as_one_middle_layer(tmp_path):
    import dataclasses
    old = build_model('ae', dec_width=8, dec_layers=1)
    cfg = dataclasses.asdict(old.config)
    del cfg['dec_layers']                                      # as written before the field existed
    path = str(tmp_path / 'old.pt')
    torch.save({'model': old.state_dict(), 'model_name': 'ae', 'model_config': cfg}, path)
    model, ident = model_io.load_checkpoint(path)
    assert model.config.dec_layers == 1 and ident['fingerprint'] == model_io.fingerprint(old.state_dict())


@pytest.mark.parametrize('extra, words', [
    (['--batch', '0'], '--batch must be at least 1, got 0'), (['--steps', '0'], '--steps must be at least 1'),
    (['--steps', '-1'], '--steps must be at least 1'), (['--lr', '-1'], '--lr must be a number > 0'),
    (['--lr', 'nan'], '--lr must be a number > 0'), (['--threads', '0'], '--threads must be in 1..'),
    (['--val-every', '0'], '--val-every must be at least 1'), (['--ckpt-every', '0'], '--ckpt-every must be'),
    (['--clip', '-1'], '--clip must be >= 0'), (['--min-scale', '0'], '--min-scale must be in (0, 1]'),
    (['--min-scale', '1.5'], '--min-scale must be in (0, 1]'), (['--alpha', '1.2'], '--alpha must be in 0..1'),
    (['--stochastic-frac', '-0.1'], '--stochastic-frac must be in 0..1'),
    (['--decay-from', '-1'], '--decay-from must be at least 0'), (['--crop', '0'], '--crop must be at least 1'),
    (['--schedule', 'linear'], '--schedule must be cosine or constant'),
    (['--train-only', 'encoder'], '--train-only must be'),
    (['--out', 'F'], '--out F is a file, not a folder'), (['--out', 'F/run'], 'is a file, not a folder'),
    (['--out', ''], '--out is empty'),
])
def test_train_refuses_each_bad_number_and_out_before_any_image(extra, words, tmp_path, capsys, monkeypatch):
    """Exit 2 and one line, with the images never listed (--data names no folder) and no run folder made."""
    monkeypatch.chdir(str(tmp_path))
    (tmp_path / 'F').write_text('a file')
    assert train.main(['--model', 'cae', '--data', 'nowhere', '--out', 'runs/a', '--crop', '64'] + extra) == 2
    err = capsys.readouterr().err
    assert err.startswith('nanolink-train: error: --') and words in err, err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / 'runs').exists()


def test_train_names_a_missing_or_unreadable_image_folder_as_itself(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(str(tmp_path))
    assert train.main(['--model', 'cae', '--data', 'nowhere', '--out', 'runs/a', '--crop', '64']) == 1
    err = capsys.readouterr().err
    assert err.startswith('nanolink-train: error: --data nowhere: no such folder') and not (tmp_path / 'runs').exists()
    (tmp_path / 'data').mkdir()
    cv2.imwrite(str(tmp_path / 'data' / 'a.png'), np.full((80, 80, 3), 99, np.uint8))
    (tmp_path / 'data' / 'b.png').write_bytes(b'not a png')
    assert train.main(['--model', 'cae', '--data', 'data', '--val', 'none', '--out', 'runs/a', '--crop', '64']) == 1
    assert '--val none: no such folder' in capsys.readouterr().err and not (tmp_path / 'runs').exists()
    assert train.main(['--model', 'cae', '--data', 'data', '--out', 'runs/a', '--crop', '64', '--steps', '1']) == 1
    err = capsys.readouterr().err
    assert err.startswith('nanolink-train: error: cannot read image ') and 'b.png' in err
    assert len(err.strip().splitlines()) == 1
    (tmp_path / 'data' / 'b.png').unlink()
    (tmp_path / 'val').mkdir()
    (tmp_path / 'val' / 'v.png').write_bytes(b'not a png either')
    assert train.main(['--model', 'cae', '--data', 'data', '--val', 'val', '--out', 'runs/a', '--crop', '64',
                       '--steps', '1']) == 1
    assert 'v.png' in capsys.readouterr().err and not (tmp_path / 'runs').exists()   # read before OUT is made
    with pytest.raises(SystemExit) as e:                     # a post-filter asked of a model that has none
        train.main(['--model', 'cae', '--data', 'data', '--out', 'runs/a', '--crop', '64', '--train-only', 'post'])
    assert e.value.code == 2 and '--train-only post needs a model with a post-filter' in capsys.readouterr().err
    assert not (tmp_path / 'runs').exists()
