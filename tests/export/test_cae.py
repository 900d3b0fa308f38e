"""cae, the entropy-coded Lossy CAE: its exported graphs (TensorRT 8.2 operators, MAC budget), its integer tables,
deterministic symbols, a real compress -> wire -> decompress round trip at every rate point, and training."""
import json
import os
import re
import time

import cv2
import numpy as np
import pytest
import torch

from nanolink.common import wire, zoo
from nanolink.common.codec import EdgeEncoder, HostDecoder
from nanolink.common.metrics import psnr
from nanolink.common.rans import PROB_SCALE
from nanolink.export import context_model, entropy_model, model_io, onnx_export, train
from nanolink.export.budget import ENCODER_MAC_PER_PX, onnx_macs
from nanolink.export.models import build_model
from nanolink.export.models.cae import EntropyCAE

onnx = pytest.importorskip('onnx')
OPERATORS = os.path.join(os.path.dirname(os.path.dirname(__file__)), 'data', 'onnx-tensorrt-8.2-GA-operators.md')

TINY = dict(channels=8, body_channels=0, enc_widths=(8, 8), dec_widths=(8, 8, 8))   # a cae that trains in seconds


def tensorrt82_operators():
    """Operators marked supported ("Y") in onnx-tensorrt's docs/operators.md on branch 8.2-GA (vendored)."""
    ops = set()
    for line in open(OPERATORS):
        m = re.match(r'\|\s*(\w+)\s*\|\s*Y', line)
        if m:
            ops.add(m.group(1))
    return ops


@pytest.fixture(scope='module')
def info():
    return zoo.bundled_model('cae')


def test_the_vendored_operator_list_is_tensorrt_82s():
    ops = tensorrt82_operators()
    assert 'TensorRT 8.2 supports operators up to Opset 13' in open(OPERATORS).read()
    assert {'Round', 'Floor', 'Sqrt', 'Div', 'Clip', 'DepthToSpace', 'Conv', 'ConvTranspose'} <= ops
    assert 'Reciprocal' not in ops and len(ops) > 100


def test_encoders_use_only_tensorrt_82_operators_and_fit_the_mac_budget(info):
    ops = tensorrt82_operators()
    files = info.manifest['files']
    assert sorted(files['encoders']) == sorted(files['encoders_float16']) == [str(q) for q in info.rate_points]
    for key in ('encoders', 'encoders_float16'):
        for q, fn in files[key].items():
            path = os.path.join(os.path.dirname(info.decoder), fn)
            m = onnx.load(path)
            used = {n.op_type for n in m.graph.node}
            assert used <= ops, (fn, used - ops)
            assert 'Reciprocal' not in used and m.opset_import[0].version <= 13
            out_type = m.graph.output[0].type.tensor_type.elem_type
            if key == 'encoders_float16':        # what TensorRT 8.2 builds: no UINT8 anywhere
                assert out_type == onnx.TensorProto.FLOAT16
                assert onnx.TensorProto.UINT8 not in {a.i for n in m.graph.node for a in n.attribute if n.op_type == 'Cast'}
            else:
                assert out_type == onnx.TensorProto.UINT8
            assert onnx_macs(path, (1, 3, 256, 384)) / (256 * 384) <= ENCODER_MAC_PER_PX


def test_manifest_tables_are_valid_integer_cdfs(info):
    rates = info.manifest['entropy']['rates']
    assert sorted(rates, key=int) == [str(q) for q in info.rate_points] and info.manifest['entropy']['prob_bits'] == 15
    for q, t in rates.items():
        assert len(t['lo']) == len(t['freqs']) == len(t['inv_gain']) == info.channels
        for f in t['freqs']:
            assert 1 <= len(f) <= 256 and (len(f) == 1 or (min(f) >= 1 and sum(f) == PROB_SCALE))
        tables = zoo.rans_tables(t)                    # the shipped model codes with context tables
        assert tables.context and tables.ks * tables.ka == len(tables.nsym) // info.channels > 1
        for c in np.nonzero(~tables.constant)[0]:
            k = tables.ks * tables.ka
            for j in range(c * k, (c + 1) * k):
                f = tables.freq[tables.offset[j]:tables.offset[j] + tables.nsym[j]]
                assert f.min() >= 1 and f.sum() == PROB_SCALE


def test_context_tables_cut_the_bytes_of_a_photo_they_were_not_fitted_on(info, sample_frame):
    """The context tables were counted on the training images; on the sample photo (not among them) every rate
    point's stream is exact and at least 5 % shorter than the factorized prior's for the same symbols (measured:
    about 12 %)."""
    from nanolink.common.rans import RansTables
    for q in info.rate_points:
        enc = EdgeEncoder.open('cae', rate=q)
        blob, _ = enc.preprocess(sample_frame)
        sym, (c, h, w) = enc.fetch(enc.backend.forward(blob))
        t = zoo.rate_tables(info.manifest, q)
        ctx, plain = zoo.rans_tables(t), RansTables(t['lo'], t['freqs'])
        s1, m1 = ctx.encode(sym)
        s0, m0 = plain.encode(sym.reshape(c, -1))
        assert np.array_equal(ctx.decode(s1, m1, h * w, w), sym.reshape(c, -1))
        assert np.array_equal(plain.decode(s0, m0, h * w), sym.reshape(c, -1))
        assert len(s1) <= 0.95 * len(s0), (q, len(s1), len(s0))


def test_symbols_are_deterministic_and_the_same_in_torch_and_onnxruntime(info, sample_frame):
    model, _ = model_io.load_checkpoint(info.torch)
    enc = EdgeEncoder.open('cae', rate=3)
    blob, _ = enc.preprocess(sample_frame)
    a, _ = enc.fetch(enc.backend.forward(blob))
    b, _ = enc.fetch(enc.backend.forward(blob))
    assert np.array_equal(a, b)                                    # the same frame, the same symbols
    with torch.no_grad():
        t = model.encoder_module(3)(torch.from_numpy(blob)).numpy()[0].reshape(a.shape)
    assert (t != a).mean() < 1e-3                                  # fp32 in two libraries: only rounding ties differ
    f16 = EdgeEncoder.open('cae', engine=os.path.join(os.path.dirname(info.decoder),
                                                      info.manifest['files']['encoders_float16']['3']))
    c, _ = f16.fetch(f16.backend.forward(blob))
    assert np.array_equal(c, a)                                    # the TensorRT 8.2 file: the same integers


def test_compress_wire_decompress_round_trip_at_every_rate_point(info, sample_frame):
    dec = HostDecoder.open(info)
    decoders = {'cae': {info.fingerprint: dec}}
    h, w = sample_frame.shape[:2]
    rows = []
    for q in info.rate_points:
        enc = EdgeEncoder.open('cae', rate=q)
        blob, size = enc.preprocess(sample_frame)
        sym, shape = enc.fetch(enc.backend.forward(blob))
        payload, dtype = enc.entropy_code(sym)
        msg = wire.pack(wire.Frame(stream='t', seq=0, t_cap=time.time(), model='cae', fp=info.fingerprint,
                                   dtype=dtype, shape=shape, size=size, payload=payload, stages={}))
        f = wire.unpack(msg, decoders)
        assert f.rate == q and np.array_equal(f.symbols.reshape(sym.shape), sym)   # lossless on the wire
        out = dec.postprocess(dec.decode(f), f)
        assert out.shape == sample_frame.shape and out.dtype == np.uint8
        rows.append((len(msg) * 8.0 / (h * w), psnr(sample_frame, out)))
    bpps, psnrs = zip(*rows)
    assert list(bpps) == sorted(bpps) and bpps[0] < 0.6 and bpps[-1] > 0.6       # rates rise with the quality
    assert psnrs[-1] > psnrs[0] + 1.0 and min(psnrs) > 22.0, rows               # and the picture with them
    # the bundled weights (216 channels, step 92000) on the first sample photo: 24.3 / 26.0 / 28.1 / 30.4 / 32.6 /
    # 34.4 dB at 0.20 / 0.36 / 0.61 / 0.96 / 1.37 / 1.78 bpp; +-1.5 dB catches a broken pipeline, not retraining noise
    expected = {1: 24.3, 2: 26.0, 3: 28.1, 4: 30.4, 5: 32.6, 6: 34.4}
    assert sorted(info.rate_points) == sorted(expected), 'measure the new bundle\'s rate points and update these'
    for q, (bpp, p) in zip(info.rate_points, rows):
        assert abs(p - expected[q]) < 1.5, (q, bpp, p)


def test_fingerprint_covers_the_tables(monkeypatch):
    torch.manual_seed(0)
    model = build_model('cae', **TINY)
    weights_only = model_io.fingerprint(model.state_dict())
    fp = model_io.model_fingerprint(model)
    assert fp != weights_only
    monkeypatch.setattr(entropy_model, 'TAIL_MASS', 1e-3)         # other tables from the very same weights
    fp2 = model_io.model_fingerprint(model)
    assert fp2 != fp
    rng = np.random.RandomState(0)
    images = [cv2.GaussianBlur(rng.randint(0, 255, (64, 80, 3)).astype(np.uint8), (5, 5), 2) for _ in range(2)]
    model.context = context_model.fit(model, images, ks=2, ka=2)   # context tables: yet another fingerprint
    assert model_io.model_fingerprint(model) not in (fp, fp2)


def test_a_checkpoint_forks_new_rate_points_from_its_last_two():
    torch.manual_seed(0)
    small = TINY
    old = build_model('cae', lambdas=(0.001, 0.004), **small)
    with torch.no_grad():
        old.gain.add_(torch.randn_like(old.gain) * 0.1)           # per-channel gains that differ
        old.inv_gain.add_(torch.randn_like(old.inv_gain) * 0.1)
    state, config = old.state_dict(), {'lambdas': (0.001, 0.004)}
    new = build_model('cae', lambdas=(0.001, 0.004, 0.016), **small)
    new.load_init(state, config)
    g, ig = old.gain.detach(), old.inv_gain.detach()
    assert torch.equal(new.gain[:2], g) and torch.equal(new.inv_gain[:2], ig)
    assert torch.allclose(new.gain[2], 2 * g[1] - g[0]) and torch.allclose(new.inv_gain[2], 2 * ig[1] - ig[0])
    for key, value in state.items():                               # everything else is the checkpoint's
        if not key.startswith(('gain', 'inv_gain', 'priors.2.')):
            assert torch.equal(new.state_dict()[key], value), key
    # the new prior is the last one's density, stretched by the gain ratio s: cdf_new(v) = cdf_last(v / s)
    s = (new.gain[2] - g[1]).exp().detach()
    v = torch.linspace(-20, 20, 41).repeat(8, 1, 1)
    with torch.no_grad():
        assert torch.allclose(new.priors[2].logits_cdf(v), old.priors[1].logits_cdf(v / s.view(-1, 1, 1)),
                              atol=1e-4)
    same = build_model('cae', lambdas=(0.001, 0.004), **small)
    same.load_init(state, config)                                  # as many points: a plain load
    assert torch.equal(same.gain, g)
    for lambdas in [(0.002, 0.004, 0.016), (0.001,)]:              # not a continuation of the checkpoint's
        with pytest.raises(ValueError, match='must start with'):
            build_model('cae', lambdas=lambdas, **small).load_init(state, config)


def test_fit_context_on_a_missing_checkpoint_is_one_line(tmp_path, capsys):
    assert context_model.main([str(tmp_path / 'nope.pt'), '--data', str(tmp_path), '--out', str(tmp_path / 'x.pt')]) == 1
    err = capsys.readouterr().err
    assert 'no such checkpoint' in err and len(err.strip().splitlines()) == 1 and 'Traceback' not in err


@pytest.mark.parametrize('extra, words', [(['--out', 'D'], '--out D is a folder'),
                                           (['--out', 'no/x.pt'], 'does not exist; create it first'),
                                           (['--out', 'x.pt', '--limit', '-1'], '--limit must be >= 0')])
def test_fit_context_checks_its_arguments_before_the_fit(tmp_path, capsys, monkeypatch, extra, words):
    """Exit 2 at once (argparse's own refusal or cliutil.fail), before the checkpoint, the images and the fit."""
    monkeypatch.chdir(str(tmp_path))
    (tmp_path / 'D').mkdir()
    try:
        status = context_model.main([zoo.bundled_model('cae').torch, '--data', 'nowhere'] + extra)
    except SystemExit as e:
        status = e.code
    err = capsys.readouterr().err
    assert status == 2 and 'nanolink-fit-context: error: ' in err and words in err and 'Traceback' not in err


def test_fit_context_names_its_own_option_and_itself_for_bad_images(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(str(tmp_path))
    cae = zoo.bundled_model('cae').torch
    assert context_model.main([cae, '--data', 'nowhere', '--out', 'x.pt']) == 1
    err = capsys.readouterr().err
    assert err.startswith('nanolink-fit-context: error: --data nowhere: no such folder') and 'nanolink-train' not in err
    (tmp_path / 'imgs').mkdir()
    (tmp_path / 'imgs' / 'a.jpg').write_bytes(b'not a jpeg')
    assert context_model.main([cae, '--data', 'imgs', '--out', 'x.pt']) == 1
    err = capsys.readouterr().err
    assert err.startswith('nanolink-fit-context: error: cannot read image ') and len(err.strip().splitlines()) == 1
    assert not (tmp_path / 'x.pt').exists()


def test_quantize_pmf_keeps_every_symbol_and_sums_exactly():
    for p in ([1.0], [1e-12, 1 - 1e-12], [0.5, 0.5], list(np.random.RandomState(0).dirichlet(np.ones(256) * 0.05))):
        f = entropy_model.quantize_pmf(p)
        assert f.sum() == PROB_SCALE and f.min() >= 1 and len(f) == len(p)
    with pytest.raises(ValueError):
        entropy_model.quantize_pmf(np.ones(257))


def test_training_a_small_cae_checkpoints_resumes_and_logs_bpp(tmp_path):
    data = tmp_path / 'data'
    data.mkdir()
    rng = np.random.RandomState(0)
    for i in range(3):
        cv2.imwrite(str(data / '{}.png'.format(i)), cv2.GaussianBlur(rng.randint(0, 255, (96, 112, 3)).astype(np.uint8),
                                                                    (5, 5), 2))
    out = str(tmp_path / 'run')
    args = ['--model', 'cae', '--data', str(data), '--val', str(data), '--out', out, '--batch', '2', '--crop', '64',
            '--val-every', '2', '--ckpt-every', '2', '--threads', '1', '--clip', '1', '--schedule', 'constant',
            '--arch', 'channels=8', '--arch', 'body_channels=6', '--arch', 'enc_widths=8,8',
            '--arch', 'dec_widths=8,8,8']
    assert train.main(args + ['--steps', '2']) == 0
    ck = torch.load(os.path.join(out, 'last.pt'), weights_only=False)
    assert ck['step'] == 2 and {'model', 'opt', 'py_rng', 'torch_rng'} <= set(ck)
    assert train.main(args + ['--steps', '4']) == 0                  # resumes at step 2
    rows = [json.loads(l) for l in open(os.path.join(out, 'val.jsonl'))]
    assert [r['step'] for r in rows] == [2, 4]
    n = len(EntropyCAE.Config().lambdas)
    assert {'psnr_q1', 'bpp_q1', 'psnr_q{}'.format(n), 'bpp_q{}'.format(n)} <= set(rows[-1]) and rows[-1]['bpp_q1'] > 0
    exported = str(tmp_path / 'exported')
    assert onnx_export.main(['--checkpoint', os.path.join(out, 'last.pt'), '--out', exported]) == 0
    m = zoo.load_manifest(exported)
    assert m.dtype == 'rans' and m.channels == 8 and sorted(m.encoders) == list(range(1, n + 1))
    assert 'context' not in m.manifest['entropy']['rates']['3']
    # context tables fitted on the training folder, into a checkpoint that nanolink-export takes
    with_ctx = str(tmp_path / 'ctx.pt')
    assert context_model.main([os.path.join(out, 'last.pt'), '--data', str(data), '--out', with_ctx,
                               '--ks', '3', '--ka', '2']) == 0
    assert onnx_export.main(['--checkpoint', with_ctx, '--out', exported]) == 0
    m2 = zoo.load_manifest(exported)
    assert m2.fingerprint != m.fingerprint
    model, _ = model_io.load_checkpoint(with_ctx)
    img = cv2.cvtColor(cv2.imread(str(data / '0.png')), cv2.COLOR_BGR2RGB)[:96, :112]
    for q in m2.rate_points:
        tables = zoo.rans_tables(zoo.rate_tables(m2.manifest, q))
        assert tables.context and tables.ks == 3
        sym = context_model.symbols_of(model, torch.from_numpy(img.copy()).permute(2, 0, 1)[None].float() / 255,
                                       q - 1)
        stream, coded = tables.encode(sym)
        assert np.array_equal(tables.decode(stream, coded, sym[0].size, sym.shape[2]), sym.reshape(8, -1))
    with pytest.raises(SystemExit) as e:                                               # over 256 tables a channel
        context_model.main([os.path.join(out, 'last.pt'), '--data', str(data), '--out', with_ctx, '--ks', '20',
                            '--ka', '20'])
    assert e.value.code == 2


def test_build_engine_picks_the_float16_encoder_of_a_quality(capsys):
    from nanolink.export import build_engine
    try:
        import tensorrt  # noqa: F401
        pytest.skip('TensorRT is installed: the no-TensorRT message cannot be shown')
    except ImportError:
        pass
    assert build_engine.main(['--model', 'cae', '--quality', '2', '--out', 'never.trt', '--shape', '1x3x720x1280',
                              '--fp16']) == 1
    out, err = capsys.readouterr()
    assert 'cae-enc-q2-float16.onnx --saveEngine=never.trt --shapes=image:1x3x720x1280 --fp16' in out
    assert 'TensorRT is not installed here' in err
    top = len(zoo.bundled_model('cae').rate_points)
    for bad, words in ((['--quality', '9'], '--quality must be in 1..{}'.format(top)),
                       (['--channels', '8'], 'takes --quality'),
                       (['--shape', '1x3x504x504'], 'build for 1x3x512x512')):
        args = ['--model', 'cae', '--out', 'x.trt', '--shape', '1x3x64x64'] + bad
        assert build_engine.main(args) == 2
        assert words in capsys.readouterr()[1]


@pytest.mark.parametrize('q', [1, 3, 5])
def test_an_engine_file_carries_its_quality_and_tables(info, q, tmp_path, sample_frame):
    """What nanolink-build-engine writes to <engine>.json without onnx on the Jetson (from manifest.json) is the
    ONNX file's own metadata, with the tables it names by digest read from the manifest: the edge then codes an
    engine's symbols with the right tables."""
    from nanolink.export import build_engine
    path = build_engine.bundled_encoder('cae', None, q)
    meta = build_engine.sidecar_metadata(path)                  # the ONNX file's identity, its tables made whole
    assert json.loads(build_engine._metadata_from_manifest(path)) == json.loads(meta)
    ident = json.loads(meta)
    assert ident['quality'] == q and ident['tables']['freqs'] == info.manifest['entropy']['rates'][str(q)]['freqs']
    assert ident['tables']['context'] == info.manifest['entropy']['rates'][str(q)]['context']
    enc = EdgeEncoder.open(engine=path)                     # an encoder file, as --engine gives it
    assert enc.rate == q and enc.info.name == 'cae'
    blob, _ = enc.preprocess(sample_frame)
    payload, dtype = enc.entropy_code(enc.fetch(enc.backend.forward(blob))[0])
    assert dtype == 'rans' and payload[0] == q
    with pytest.raises(Exception, match='encodes quality {}, not'.format(q)):
        EdgeEncoder.open(engine=path, rate=q % len(info.rate_points) + 1)


def test_every_encoder_points_into_one_shared_weights_file(info):
    """The rate points differ only in their gain and clip constants: the convolutions are stored once."""
    folder = os.path.dirname(info.decoder)
    shared = info.manifest['files']['encoder_weights']
    for key in ('encoders', 'encoders_float16'):
        for fn in info.manifest['files'][key].values():
            m = onnx.load(os.path.join(folder, fn), load_external_data=False)
            locations = {e.value for t in m.graph.initializer for e in t.external_data if e.key == 'location'}
            meta = sum(len(p.value) for p in m.metadata_props)          # the rate point's tables ride along
            assert locations == {shared} and os.path.getsize(os.path.join(folder, fn)) - meta < 100000, fn
    assert os.path.getsize(os.path.join(folder, shared)) > 1000000


def test_latents_past_the_reach_of_a_byte_symbol_cost_in_training():
    """A table holds 256 symbols and clips the rest; training charges every scaled latent beyond +-SYMBOL_REACH
    its excess, so the gains keep each channel inside its table (none past it: no charge)."""
    from nanolink.export.models.cae import SYMBOL_REACH
    torch.manual_seed(0)
    model = build_model('cae', lambdas=(0.001, 0.004), **TINY)
    x = torch.rand(2, 3, 32, 32)
    _, extra = model.train_loss(x, 0.0)
    assert extra['over'] == 0.0
    with torch.no_grad():
        model.gain[:, 0] += 8.0                                 # channel 0 scaled e^8 times: far past the reach
        y = model.analysis(x) * model.gain[0].exp().view(1, -1, 1, 1)
    assert y[:, 0].abs().max() > SYMBOL_REACH
    loss, extra = model.train_loss(x, 0.0)
    assert extra['over'] > 0
    loss.backward()
    assert model.gain.grad[:, 0].min() > 0                     # the gradient pulls that channel's gains down


def test_export_warns_about_a_channel_whose_table_clips_its_latents():
    from nanolink.export.entropy_model import clip_warnings
    torch.manual_seed(0)
    model = build_model('cae', lambdas=(0.001, 0.004), **TINY)
    assert clip_warnings(model) == []
    with torch.no_grad():
        model.priors[1].matrices[0][3].fill_(-12.0)            # channel 3's density at quality 2: spread far past 256
    lines = clip_warnings(model)
    assert len(lines) == 1 and lines[0].startswith("rate point 2: channel 3's table clips")


def test_a_table_wider_than_256_symbols_keeps_the_values_it_must_cover():
    """Where a channel's density spreads over more than 256 integers, its table keeps the 256-wide window of most
    probability among those holding ``cover`` (a flat white area's symbol, say), not the window around the mode."""
    torch.manual_seed(0)
    prior = entropy_model.FactorizedPrior(2)
    with torch.no_grad():
        prior.matrices[0].fill_(-3.5)                           # wide densities: hundreds of integers
        prior.biases[0][:, 0, 0].fill_(2.0)                     # ... centred off zero
    free = entropy_model.integer_tables(prior)
    assert all(len(f) == 256 for f in free['freqs'])
    top = free['lo'][0] + 255 + 20                              # 20 past the free window's top
    t = entropy_model.integer_tables(prior, cover=(np.array([top - 200, 0]), np.array([top, 0])))
    assert t['lo'][0] <= top - 200 and t['lo'][0] + len(t['freqs'][0]) - 1 >= top
    assert t['lo'][1] == free['lo'][1]                         # channel 1's cover was inside already
    p, _ = prior.pmf()
    mass = lambda lo: p[0, lo + 256:lo + 256 + 256].sum()         # noqa: E731  pmf index of integer v is v + 256
    assert all(mass(t['lo'][0]) >= mass(lo) - 1e-12 for lo in range(top - 255, top - 200 + 1))


def test_every_rate_points_table_holds_flat_saturated_areas():
    """Whatever the learned density says, a flat black, white or primary-colour area is never clipped (a white sky
    clipped by the block-mean channel's table cost 13 dB on one Kodak image at q6)."""
    from nanolink.export.models.cae import FLAT_CORNERS
    torch.manual_seed(0)
    model = build_model('cae', lambdas=(0.001, 0.004), **TINY)
    with torch.no_grad():
        model.data_init(torch.rand(4, 3, 64, 64))
        model.gain[1] += 3.5                                    # quality 2: flat areas reach +-120
        for m in model.priors[1].matrices[0]:
            m.fill_(-2.0)                                       # and a density spread over more than 256 integers,
        model.priors[1].biases[-1].fill_(2.0)                   # its mode low: a window around it ends below 120
    free = entropy_model.integer_tables(model.priors[1])
    with torch.no_grad():
        corners = torch.round(model.analysis(FLAT_CORNERS.expand(-1, -1, 48, 48))[:, :, 1, 1] *
                              model.gain[1].exp()).numpy()
    assert (corners > np.array(free['lo']) + 255).any()         # the density's own table would clip one
    for i in range(2):
        t = model.tables(i)
        lo = np.array(t['lo'])
        hi = lo + np.array([len(f) for f in t['freqs']]) - 1
        with torch.no_grad():
            flat = model.analysis(FLAT_CORNERS.expand(-1, -1, 48, 48))[:, :, 1, 1]
            sym = torch.round(flat * model.gain[i].exp()).numpy()
        if i == 1:
            assert (hi - lo + 1).max() == 256                   # the density alone would need more
        assert ((sym >= lo) & (sym <= hi)).all(), i
