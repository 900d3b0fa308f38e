"""Torch <-> ONNX parity on real images, export and a few real training steps with resume."""
import json
import os
import re
import shutil
import subprocess
import sys

import cv2
import numpy as np
import pytest

torch = pytest.importorskip('torch')

from nanolink.common import wire, zoo                       # noqa: E402
from nanolink.common.zoo import bundled_model               # noqa: E402
from nanolink.common.backends import open_backend           # noqa: E402
from nanolink.export import model_io, onnx_export, train    # noqa: E402
from nanolink.export.models import build_model, budget       # noqa: E402



@pytest.fixture(scope='module')
def exported(tmp_path_factory):
    out = str(tmp_path_factory.mktemp('exported'))
    assert onnx_export.main(['--model', 'cae-bin', '--out', out]) == 0
    return out


def test_export_writes_manifest_and_keeps_the_fingerprint(exported):
    m = json.load(open(os.path.join(exported, 'manifest.json')))
    assert m['fingerprint'] == zoo.bundled_model('cae-bin').fingerprint
    assert all('enc' in f for f in m['files']['encoders'].values())
    assert m['onnx_opset'] <= 13


def test_torch_and_onnxruntime_encoders_agree_bit_for_bit(exported, sample_frame):
    info = zoo.load_manifest(exported)
    model, _ = model_io.load_checkpoint(info.torch)
    x = cv2.dnn.blobFromImage(sample_frame, 1 / 255.0, swapRB=True)
    with torch.no_grad():
        y = model.analysis(torch.from_numpy(x))[0].numpy()              # pre-binarisation code, (16, h, w)
    for k in info.rate_points:
        ort_bits = wire.unpack_bits(open_backend(info.encoders[k], 'encoder').run(x).tobytes(), (k,) + y.shape[1:])
        torch_bits = (y[:k] > 0).astype(np.uint8)
        differ = ort_bits != torch_bits
        # fp32 convolutions in two libraries round differently, so a code value within ~1e-7 of the threshold
        # may land on either side: any disagreement must be such a tie, and ties are rare.
        assert differ.mean() < 1e-4, (k, differ.sum())
        assert np.all(np.abs(y[:k][differ]) < 1e-4), (k, np.abs(y[:k][differ]).max())
        torch_packed = open_backend(info.torch, 'encoder', k).run(x).tobytes()
        assert torch_packed == wire.pack_bits(torch_bits)               # torch backend packs like the wire says


def test_torch_and_onnxruntime_decoders_agree(exported):
    info = zoo.load_manifest(exported)
    s = np.random.RandomState(0).choice([-1.0, 0.0, 1.0], size=(1, 16, 32, 48)).astype(np.float32)
    a = open_backend(info.decoder, 'decoder').run(s)
    b = open_backend(info.torch, 'decoder').run(s)
    assert a.shape == b.shape == (1, 128, 192, 3) and a.dtype == b.dtype == np.uint8
    diff = np.abs(a.astype(int) - b.astype(int))
    assert diff.max() <= 1 and (diff > 0).mean() < 1e-3          # only rounding ties at .5 may differ


@pytest.mark.parametrize('name', ['cae-bin', 'ae', 'ae-full'])
def test_display_decoders_are_the_trained_function_rounded_to_bytes(name):
    """The exported decoders fold BGR order, scale and rounding into their convolutions and shuffle pixels
    their own way (ae and ae-full also move their skip before the shuffle): the result must be the model's float
    output rounded to BGR bytes, borders included, at a size that is not a multiple of anything."""
    info = zoo.bundled_model(name)
    model, _ = model_io.load_checkpoint(info.torch)
    rng = np.random.RandomState(3)
    with torch.no_grad():
        if name == 'cae-bin':
            x = rng.choice([-1.0, 1.0], size=(1, 16, 21, 31)).astype(np.float32)
            x[:, 8:] = 0
            ref = model.decode_symbols(torch.from_numpy(x))
        else:               # ae-full's code is the padded frame: even sides (the wire refuses odd ones)
            x = rng.randint(0, 256, (1, 37, 53, 3) if name == 'ae' else (1, 38, 54, 3)).astype(np.float32)
            ref = model.synthesis(torch.from_numpy(x[..., ::-1].copy()).permute(0, 3, 1, 2) / 255.0)
    want = np.clip(np.floor(ref[0].numpy().transpose(1, 2, 0)[..., ::-1] * 255.0 + 0.5), 0, 255)
    for backend in (info.decoder, info.torch):
        got = open_backend(backend, 'decoder').run(x)[0].astype(int)
        assert got.shape == want.shape
        diff = np.abs(got - want)
        assert diff.max() <= 1 and (diff > 0).mean() < 1e-3, (backend, diff.max(), (diff > 0).mean())


def test_encoder_budget():
    b = budget(build_model('cae-bin'))
    assert b['encoder_mac_per_px'] <= 2500


def test_training_runs_checkpoints_and_resumes(tmp_path, capsys):
    data = tmp_path / 'data'
    data.mkdir()
    rng = np.random.RandomState(0)
    for i in range(3):
        cv2.imwrite(str(data / '{}.png'.format(i)), cv2.GaussianBlur(rng.randint(0, 255, (200, 220, 3)).astype(np.uint8), (5, 5), 2))
    out = str(tmp_path / 'run')
    args = ['--model', 'cae-bin', '--data', str(data), '--val', str(data), '--out', out, '--batch', '2', '--crop', '176',
            '--val-every', '2', '--ckpt-every', '2', '--threads', '1']
    assert train.main(args + ['--steps', '2']) == 0
    assert torch.load(os.path.join(out, 'last.pt'), weights_only=False)['step'] == 2
    assert train.main(args + ['--steps', '4']) == 0                  # resumes at step 2
    capsys.readouterr()
    assert train.main(args + ['--steps', '3']) == 0                  # already past: says so, trains nothing
    assert 'is at step 4, --steps 3: nothing to train' in capsys.readouterr().err
    rows = [json.loads(l) for l in open(os.path.join(out, 'val.jsonl'))]
    assert [r['step'] for r in rows] == [2, 4]
    assert {'psnr_k8', 'msssim_k8', 'flip_share', 'balance_min'} <= set(rows[-1])
    assert os.path.exists(os.path.join(out, 'curve.png'))


def test_build_engine_without_tensorrt_says_where_to_build(exported, capsys):
    from nanolink.export import build_engine
    pytest.importorskip('onnx')
    try:
        import tensorrt  # noqa: F401
        pytest.skip('TensorRT is installed: the no-TensorRT message cannot be shown')
    except ImportError:
        pass
    enc = os.path.join(exported, 'cae-bin-enc-k8.onnx')
    assert build_engine.main(['--onnx', enc, '--out', os.path.join(exported, 'cae.trt'), '--shape', '1x3x512x768',
                              '--fp16']) == 1
    out, err = capsys.readouterr()
    assert 'equivalent: trtexec --onnx=' in out and '--shapes=image:1x3x512x768 --fp16' in out
    assert 'TensorRT is not installed here' in err
    assert build_engine.main(['--onnx', enc, '--out', 'x.trt', '--shape', '3x512']) == 2
    assert '--shape must be NxCxHxW' in capsys.readouterr()[1]


def test_float16_code_export_for_tensorrt_82_gives_the_same_payload(tmp_path, sample_frame):
    from nanolink.common.codec import EdgeEncoder
    out = str(tmp_path / 'f16')
    assert onnx_export.main(['--model', 'cae-bin', '--out', out, '--code-dtype', 'float16']) == 0
    info = zoo.load_manifest(out)
    assert info.encoders[8].endswith('cae-bin-enc-k8-float16.onnx')
    assert info.manifest['io']['encoder']['output_dtype'] == 'float16'
    ref = EdgeEncoder.open('cae-bin', channels=8)
    f16 = EdgeEncoder.open(engine=info.encoders[8])
    blob, _ = ref.preprocess(sample_frame)
    code = f16.backend.run(blob)
    assert code.dtype == np.float16 and code.nbytes == 2 * 8 * (512 // 4) * (768 // 4) // 8
    assert f16.fetch(code) == ref.fetch(ref.backend.forward(blob))


def test_build_engine_from_bundled_model_picks_the_float16_encoder(capsys):
    from nanolink.export import build_engine
    try:
        import tensorrt  # noqa: F401
        pytest.skip('TensorRT is installed: the no-TensorRT message cannot be shown')
    except ImportError:
        pass
    assert build_engine.main(['--model', 'cae-bin', '--out', 'never.trt', '--shape', '1x3x720x1280', '--fp16']) == 1
    out, err = capsys.readouterr()
    assert 'cae-bin-enc-k8-float16.onnx --saveEngine=never.trt --shapes=image:1x3x720x1280 --fp16' in out
    assert 'TensorRT is not installed here' in err
    assert build_engine.main(['--model', 'cae-bin', '--channels', '5', '--out', 'x.trt', '--shape', '1x3x64x64']) == 2
    assert 'the bundled cae-bin encoders have k in 4, 8, 16' in capsys.readouterr()[1]


@pytest.mark.parametrize('k', [4, 8, 16])
def test_identity_from_manifest_matches_onnx_metadata(k):
    """Without onnx/onnxruntime (JetPack), build-engine reads the identity from manifest.json: same JSON."""
    onnx = pytest.importorskip('onnx')
    from nanolink.export import build_engine
    from nanolink.common.zoo import METADATA_KEY
    for path in (build_engine.bundled_encoder('cae-bin', k), bundled_model('cae-bin').encoders[k]):
        meta = {p.key: p.value for p in onnx.load(path).metadata_props}[METADATA_KEY]
        assert json.loads(build_engine._metadata_from_manifest(path)) == json.loads(meta)


def test_bundled_float16_encoders_send_the_same_bytes(sample_frame):
    """The TensorRT 8.2 encoders (float16 code) give exactly the uint8 encoders' bytes in ONNX Runtime."""
    import onnxruntime as ort
    from nanolink.export import build_engine
    from nanolink.common.codec import prepare
    info = bundled_model('cae-bin')
    x = prepare(sample_frame, info.multiple)[0]
    for k in info.rate_points:
        outs = []
        for path in (info.encoders[k], build_engine.bundled_encoder('cae-bin', k)):
            sess = ort.InferenceSession(path, providers=['CPUExecutionProvider'])
            outs.append(sess.run(None, {'image': x})[0])
        assert outs[1].dtype == np.float16 and outs[0].dtype == np.uint8
        np.testing.assert_array_equal(outs[1].astype(np.uint8), outs[0])


def test_build_engine_via_torch2trt_without_it_says_what_to_install(capsys):
    from nanolink.export import build_engine
    try:
        import torch2trt  # noqa: F401
        pytest.skip('torch2trt is installed here')
    except ImportError:
        pass
    assert build_engine.main(['--via', 'torch2trt', '--model', 'cae-bin', '--out', 'x.trt', '--shape', '1x3x64x64']) == 1
    assert 'needs torch and torch2trt' in capsys.readouterr()[1]


def test_budget_counts_macs_from_onnx_like_the_torch_model(tmp_path, capsys):
    """MACs counted from the ONNX graphs agree with the torch definition; the script writes its JSON."""
    pytest.importorskip('onnx')
    from nanolink.export import budget as budget_script
    info = bundled_model('cae-bin')
    model, _ = model_io.load_checkpoint(info.torch)
    torch_counts = budget(model, 64)
    px = 64 * 64
    dec = budget_script.onnx_macs(info.decoder, (1, 16, 16, 16)) / px
    assert dec == pytest.approx(torch_counts['decoder_mac_per_px'])
    enc16 = budget_script.onnx_macs(info.encoders[16], (1, 3, 64, 64)) / px
    pack = 16 * 2 / 16                    # the in-graph packing conv: 16 -> 2 byte planes at H/4
    assert enc16 == pytest.approx(torch_counts['encoder_mac_per_px'] + pack)
    out = str(tmp_path / 'budget.json')
    assert budget_script.main(['--model', 'cae-bin', '--size', '64', '--runs', '1', '--out', out]) == 0
    report = json.load(open(out))
    assert [(n['role'], n.get('variant'), n['k']) for n in report['networks']] == [
        ('encoder', None, 4), ('encoder', None, 8), ('encoder', None, 16), ('decoder', 'fast', 16),
        ('decoder', 'quality', 16)]
    assert report['networks'][-1]['mac_per_px'] > 2.5 * report['networks'][-2]['mac_per_px']
    text = capsys.readouterr()[0]
    assert 'cae-bin-enc-k8.onnx' in text and 'for GPU hosts: no CPU budget' in text
    with pytest.raises(SystemExit):
        budget_script.main(['--size', '60'])


def test_budget_times_every_row_in_rounds(tmp_path, capsys):
    """Rounds: each gives every registered row a turn (untimed calls, then its share of the runs), so a spell of a
    slower machine falls on all rows alike; --rounds 1 is the old one block per row. The cae run fills every row
    (encoders, decoders, rANS, baselines)."""
    pytest.importorskip('onnx')
    from nanolink.export.budget import Timings
    for rounds, order in ((2, 'a' + 'a' + 'b' + 'b' + 'a' + 'aa' + 'b' + 'bb'), (1, 'a' + 'aaa' + 'b' + 'bbb')):
        calls, t = [], Timings()
        a, b = t.add(lambda: calls.append('a')), t.add(lambda: calls.append('b'))
        t.run(3, warmup=1, rounds=rounds)                   # 2 rounds: turns of 1 and 2 timed calls
        assert ''.join(calls) == order
        assert set(a) == set(b) == {'median_ms', 'p5_ms', 'p95_ms'}
    from nanolink.export import budget as budget_script
    out = str(tmp_path / 'budget.json')
    assert budget_script.main(['--model', 'cae', '--size', '64', '--runs', '2', '--out', out]) == 0
    report = json.load(open(out))
    text = capsys.readouterr()[0]
    assert report['rounds'] == 2 and '2 runs in 2 rounds' in text
    jpeg = {b['network'].split()[2]: b['cpu']['median_ms'] for b in report['baselines'][:2]}    # encode, decode
    enc, dec = report['networks'][0], report['networks'][6]
    for row, base in ((enc, jpeg['encode']), (dec, jpeg['decode'])):   # each row's multiple of the same run's JPEG
        shown = re.search(re.escape(row['network']) + r'\s+\d+\s+[\d.]+\s+[\d.]+-[\d.]+\s+([\d.]+)x', text)
        assert shown and float(shown.group(1)) == pytest.approx(row['ort_cpu']['median_ms'] / base, abs=0.051)
    coder = re.search(r'edge\s+[\d.]+ ms \([\d.]+-[\d.]+; ([\d.]+)x\), host\s+[\d.]+ ms \(([\d.]+)x\)', text)
    e = report['entropy'][0]
    assert coder and float(coder.group(1)) == pytest.approx(e['edge']['median_ms'] / jpeg['encode'], abs=0.051)
    assert float(coder.group(2)) == pytest.approx(e['host']['median_ms'] / jpeg['decode'], abs=0.051)
    timed = [n['ort_cpu'] for n in report['networks']] + [b['cpu'] for b in report['baselines']] + \
        [e[side] for e in report['entropy'] for side in ('edge', 'host')]
    assert len(timed) == 6 + 2 + 3 + 12 and all(t['median_ms'] > 0 for t in timed)
    assert budget_script.main(['--model', 'cae', '--size', '64', '--runs', '2', '--rounds', '1']) == 0
    assert '2 runs each row in one block' in capsys.readouterr()[0]


def test_build_engine_refuses_a_decoder_and_names_the_fix(capsys):
    from nanolink.export import build_engine
    info = zoo.bundled_model('cae-bin')
    assert build_engine.main(['--onnx', info.decoder, '--out', 'never.trt', '--shape', '1x16x64x64']) == 1
    err = capsys.readouterr()[1]
    assert 'is a decoder' in err and 'ONNX Runtime' in err and '--model NAME' in err
    assert not os.path.exists('never.trt')


def test_identity_from_manifest_needs_the_file_listed_there(tmp_path):
    import json as _json
    import shutil
    from nanolink.common.errors import NanolinkError
    from nanolink.export import build_engine
    info = zoo.bundled_model('cae-bin')
    shutil.copy(os.path.join(os.path.dirname(info.decoder), 'manifest.json'), str(tmp_path))
    stray = str(tmp_path / 'other.onnx')
    shutil.copy(info.encoders[8], stray)
    with pytest.raises(NanolinkError, match='not listed in the manifest.json beside it'):
        build_engine._metadata_from_manifest(stray)
    listed = str(tmp_path / os.path.basename(info.encoders[8]))
    shutil.copy(info.encoders[8], listed)
    assert _json.loads(build_engine._metadata_from_manifest(listed))['code_channels'] == 8
    build_engine.refuse_decoder(listed)                       # an encoder passes
    with pytest.raises(NanolinkError, match='no nanolink metadata|cannot read'):
        build_engine._metadata_from_manifest(str(tmp_path / 'sub' / 'x.onnx'))


def test_a_pt_file_that_would_run_code_is_refused_in_one_line(tmp_path):
    """torch.load(weights_only=True) for every .pt: a pickle carrying code is refused, not run (the edge's --engine
    and the host's --model-dir load .pt files from users)."""
    import pickle
    marker = tmp_path / 'ran'

    class Evil(object):
        def __reduce__(self):
            return (open, (str(marker), 'w'))
    with open(str(tmp_path / 'evil.pt'), 'wb') as f:
        pickle.dump({'model': Evil()}, f)
    from conftest import cli
    r = cli('nanolink.edge.cli', '--camera', 'synthetic', '--engine', tmp_path / 'evil.pt', '--frames', 1)
    assert r.returncode == 1 and 'not a nanolink checkpoint' in r.stderr and 'Traceback' not in r.stderr
    assert not marker.exists()


@pytest.mark.parametrize('reader', ['onnx', 'onnxruntime'])
def test_build_engine_refuses_a_file_that_is_not_onnx_in_one_line(tmp_path, reader):
    """Junk given as --onnx is parsed (by onnx, or by onnxruntime where onnx is missing) before TensorRT is needed:
    one line naming the file and what to give instead, exit 1, no protobuf traceback, no engine file."""
    (tmp_path / 'bad.onnx').write_text('this is not a model\n')
    block = "sys.modules['onnx'] = None; " if reader == 'onnxruntime' else ''
    r = subprocess.run([sys.executable, '-c', 'import sys; {}from nanolink.export.build_engine import main; '
                        'sys.exit(main())'.format(block), '--onnx', 'bad.onnx', '--out', 'x.trt', '--shape',
                        '1x3x64x64'], stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True,
                       timeout=120, cwd=str(tmp_path))
    assert r.returncode == 1 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert r.stderr.startswith('nanolink-build-engine: error: bad.onnx is not an ONNX model')
    assert 'nanolink-export' in r.stderr and '--model NAME' in r.stderr
    assert not os.path.exists(str(tmp_path / 'x.trt'))


def test_build_engine_refuses_a_corrupt_manifest_beside_the_onnx_in_one_line(tmp_path, capsys):
    from nanolink.export import build_engine
    enc = str(tmp_path / 'cae-bin-enc-k8.onnx')
    shutil.copy(zoo.bundled_model('cae-bin').encoders[8], enc)
    (tmp_path / 'manifest.json').write_text('{"name": "cae-bin", trunc')
    assert build_engine.main(['--onnx', enc, '--out', str(tmp_path / 'x.trt'), '--shape', '1x3x64x64']) == 1
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and 'manifest.json is not a manifest nanolink-export wrote' in err


@pytest.mark.parametrize('out, words', [('F', '--out F is a file, not a folder'),
                                        ('F/sub', 'is a file, not a folder')])
def test_export_refuses_an_out_that_is_a_file_before_loading(tmp_path, capsys, monkeypatch, out, words):
    monkeypatch.chdir(str(tmp_path))
    (tmp_path / 'F').write_text('not a folder')
    assert onnx_export.main(['--model', 'cae', '--out', out]) == 2
    err = capsys.readouterr().err
    assert err.startswith('nanolink-export: error: ') and words in err and len(err.strip().splitlines()) == 1
    assert (tmp_path / 'F').read_text() == 'not a folder'


@pytest.mark.parametrize('value, words', [('not json {', 'is not a JSON object (Expecting value'),
                                          ('[1, 2]', 'is not a JSON object (list)')])
def test_an_onnx_encoder_whose_nanolink_metadata_is_not_an_object_is_refused_in_one_line(tmp_path, capsys, value,
                                                                                        words):
    onnx = pytest.importorskip('onnx')
    from nanolink.export import build_engine
    m = onnx.load(zoo.bundled_model('cae-bin').encoders[8])
    [prop] = [p for p in m.metadata_props if p.key == zoo.METADATA_KEY]
    prop.value = value
    enc = str(tmp_path / 'enc.onnx')
    onnx.save(m, enc)
    assert build_engine.main(['--onnx', enc, '--out', str(tmp_path / 'x.trt'), '--shape', '1x3x64x64']) == 1
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and words in err and 'export it again' in err, err
