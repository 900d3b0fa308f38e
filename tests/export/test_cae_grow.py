"""cae grown from a checkpoint (wider latents, more rate points) and how an exported cae is stored: the tables once,
in the manifest, named by digest in each encoder; the torch checkpoint's float16 weights; the trainer's bfloat16
optimiser moments."""
import json
import os
import shutil

import cv2
import numpy as np
import pytest
import torch

from nanolink.common import zoo
from nanolink.common.codec import EdgeEncoder
from nanolink.common.errors import NanolinkError
from nanolink.export import build_engine, context_model, model_io, onnx_export, train
from nanolink.export.models import build_model

onnx = pytest.importorskip('onnx')
SMALL = dict(enc_widths=(8, 8), dec_widths=(8, 8, 8), lambdas=(0.001, 0.004))


def _images(n, seed=0, shape=(96, 112)):
    rng = np.random.RandomState(seed)
    return [cv2.GaussianBlur(rng.randint(0, 255, shape + (3,)).astype(np.uint8), (5, 5), 2) for _ in range(n)]


def _batch(n=8, seed=1):
    return torch.from_numpy(np.stack(_images(n, seed, (64, 64)))).permute(0, 3, 1, 2).float() / 255


def test_widening_keeps_the_picture_and_adds_linear_only_channels():
    torch.manual_seed(0)
    old = build_model('cae', channels=8, body_channels=0, **SMALL)
    with torch.no_grad():                                    # a trained-looking model: every weight non-zero
        for p in old.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    state, config = old.state_dict(), {'lambdas': SMALL['lambdas']}
    new = build_model('cae', channels=12, body_channels=8, **SMALL)
    new.load_init(state, config, sample=_batch)
    x = _batch(2, seed=2)
    with torch.no_grad():
        for q in range(2):                                   # the decoder ignores the new channels at first
            g, ig = old.gains(torch.tensor([q]))
            y_old = torch.round(old.analysis(x) * g) * ig
            g, ig = new.gains(torch.tensor([q]))
            y_new = torch.round(new.analysis(x) * g) * ig
            assert torch.allclose(y_new[:, :8], y_old, atol=1e-5)
            assert torch.allclose(new.synthesis(y_new), old.synthesis(y_old), atol=1e-5)
    rows = new.encoder.linear.weight.detach().reshape(12, -1).double()
    old_rows = rows[:8]
    added = rows[8:]
    assert added.norm(dim=1).min() > 0                                         # informative, not zero
    q, _ = torch.linalg.qr(old_rows.T)
    assert (added - added @ q @ q.T).norm() / added.norm() > 0.999            # outside the old rows' span
    assert new.encoder.body[-1].out_channels == 8                             # the branch feeds the old 8 only
    for key, dim in (('decoder.body.0.weight', 1), ('decoder.linear.weight', 0)):
        w = new.state_dict()[key]
        assert torch.equal(w.narrow(dim, 0, 8), state[key]) and not w.narrow(dim, 8, 4).any()
    for key, value in state.items():                                          # every other old weight is kept
        if key.startswith('priors.') or key in ('gain', 'inv_gain'):
            assert torch.equal(new.state_dict()[key][..., :8] if key in ('gain', 'inv_gain')
                               else new.state_dict()[key][:8], value), key
        elif not key.startswith(('encoder.linear.', 'decoder.body.0.weight', 'decoder.linear.weight')):
            assert torch.equal(new.state_dict()[key], value), key
    # the new channels' priors were fitted to their latents: fewer bits than a fresh prior spends on them
    with torch.no_grad():
        fresh = build_model('cae', channels=12, body_channels=8, **SMALL).priors[1]
        g, _ = new.gains(torch.tensor([1]))
        y = new.analysis(_batch(8, seed=3)) * g
        noisy = torch.round(y)
        fitted_bits = -torch.log2(new.priors[1].likelihood(noisy)[:, 8:]).sum()
        fresh_bits = -torch.log2(fresh.likelihood(noisy)[:, 8:]).sum()
    assert fitted_bits < fresh_bits


def test_widening_refuses_what_it_cannot_grow():
    state = build_model('cae', channels=8, body_channels=0, **SMALL).state_dict()
    config = {'lambdas': SMALL['lambdas']}
    with pytest.raises(ValueError, match='body_channels=8'):          # the branch must feed the old channels exactly
        build_model('cae', channels=12, body_channels=0, **SMALL).load_init(state, config, sample=_batch)
    with pytest.raises(ValueError, match='needs training images'):
        build_model('cae', channels=12, body_channels=8, **SMALL).load_init(state, config)
    with pytest.raises(ValueError, match='body_channels must be'):
        build_model('cae', channels=8, body_channels=9, **SMALL)


def test_a_grown_model_trains_from_init_and_keeps_its_moments_in_bfloat16(tmp_path):
    """nanolink-train --init grows rate points and channels at once; its checkpoint resumes; the optimiser's
    moments are stored as bfloat16 (the weights as float32) and come back as float32."""
    data = tmp_path / 'data'
    data.mkdir()
    for i, im in enumerate(_images(3)):
        cv2.imwrite(str(data / '{}.png'.format(i)), im)
    base = build_model('cae', channels=8, body_channels=0, **SMALL)
    init = str(tmp_path / 'base.pt')
    model_io.save_checkpoint(base, init)
    out = str(tmp_path / 'run')
    args = ['--model', 'cae', '--data', str(data), '--out', out, '--batch', '2', '--crop', '64', '--threads', '1',
            '--ckpt-every', '2', '--init', init, '--arch', 'channels=12', '--arch', 'body_channels=8',
            '--arch', 'enc_widths=8,8', '--arch', 'dec_widths=8,8,8', '--arch', 'lambdas=0.001,0.004,0.016']
    assert train.main(args + ['--steps', '2']) == 0
    ck = torch.load(os.path.join(out, 'last.pt'), weights_only=True)
    assert ck['model']['gain'].shape == (3, 12) and ck['model']['encoder.linear.weight'].shape[0] == 12
    moments = [v for slots in ck['opt']['state'].values() for k, v in slots.items() if k != 'step']
    assert moments and all(v.dtype == torch.bfloat16 for v in moments)
    assert all(v.dtype == torch.float32 for v in ck['model'].values())
    assert train.main(args + ['--steps', '3']) == 0                          # resumes (bfloat16 moments back in)
    assert torch.load(os.path.join(out, 'last.pt'), weights_only=True)['step'] == 3
    model, ident = model_io.load_checkpoint(os.path.join(out, 'last.pt'))
    assert ident['channels'] == 12 and ident['rate_points'] == [1, 2, 3]


@pytest.fixture(scope='module')
def exported(tmp_path_factory):
    """A small widened cae with context tables, exported as nanolink-export writes the bundle."""
    tmp = tmp_path_factory.mktemp('exported')
    torch.manual_seed(0)
    model = build_model('cae', channels=12, body_channels=8, **SMALL)
    with torch.no_grad():
        model.data_init(_batch(16))
    model.context = context_model.fit(model, _images(2), ks=2, ka=2)
    out = str(tmp / 'cae')
    onnx_export.export(model, out, with_float16=True)
    return out


def test_encoders_name_their_tables_by_digest_and_the_manifest_holds_them_once(exported):
    m = zoo.load_manifest(exported)
    folder = exported
    for key in ('encoders', 'encoders_float16'):
        for q, fn in m.manifest['files'][key].items():
            model = onnx.load(os.path.join(folder, fn), load_external_data=False)
            meta = json.loads({p.key: p.value for p in model.metadata_props}[zoo.METADATA_KEY])
            assert 'tables' not in meta and meta['quality'] == int(q)
            assert meta['tables_digest'] == zoo.tables_digest(m.manifest['entropy']['rates'][q])
            used = {n.op_type for n in model.graph.node}
            assert {'Slice', 'Concat'} <= used          # the linear-only channels join the branch's
    # what an engine's sidecar gets: the tables whole, as the manifest-only path (no onnx on a Jetson) gives them
    path = os.path.join(folder, m.manifest['files']['encoders_float16']['2'])
    side = json.loads(build_engine.sidecar_metadata(path))
    assert side == json.loads(build_engine._metadata_from_manifest(path))
    assert side['tables']['context'] == m.manifest['entropy']['rates']['2']['context']
    ctx = m.manifest['entropy']['rates']['2']['context']              # the default rule: this position's channels
    assert ctx['mix'] == context_model.MIX and len(ctx['thresholds']) == 12 * (ctx['ka'] - 1)


def test_fit_context_with_mix_0_fits_the_first_rule():
    torch.manual_seed(0)
    model = build_model('cae', channels=8, body_channels=0, **SMALL)
    with torch.no_grad():
        model.data_init(_batch(16))
    first = context_model.fit(model, _images(2), ks=2, ka=3, mix=0)
    assert all('mix' not in c and len(c['thresholds']) == c['ka'] - 1 for c in first.values())


def test_an_exported_encoder_codes_with_the_manifests_tables_and_says_when_they_are_missing(exported, tmp_path):
    m = zoo.load_manifest(exported)
    fn = m.manifest['files']['encoders']['2']
    enc = EdgeEncoder.open(engine=os.path.join(exported, fn))
    assert enc.rate == 2
    frame = _images(1, seed=5, shape=(64, 80))[0]
    blob, _ = enc.preprocess(frame)
    sym, shape = enc.fetch(enc.backend.forward(blob))
    payload, dtype = enc.entropy_code(sym)
    assert dtype == 'rans' and payload[0] == 2
    # the encoder file and its weights copied without manifest.json: one clear error naming the fix
    lone = tmp_path / 'lone'
    lone.mkdir()
    for name in (fn, m.manifest['files']['encoder_weights']):
        shutil.copy(os.path.join(exported, name), str(lone / name))
    with pytest.raises(NanolinkError, match='manifest.json beside it, which is missing: keep the manifest.json'):
        EdgeEncoder.open(engine=str(lone / fn))
    # ... or with a manifest whose tables are not the ones it was exported with
    manifest = json.load(open(os.path.join(exported, 'manifest.json')))
    manifest['entropy']['rates']['2']['freqs'][0] = list(reversed(manifest['entropy']['rates']['2']['freqs'][0]))
    json.dump(manifest, open(str(lone / 'manifest.json'), 'w'))
    with pytest.raises(NanolinkError, match='holds other rANS tables'):
        EdgeEncoder.open(engine=str(lone / fn))


def test_the_torch_checkpoint_stores_float16_weights_without_changing_the_model(exported):
    m = zoo.load_manifest(exported)
    ck = torch.load(m.torch, weights_only=True)
    net = {k: v for k, v in ck['model'].items() if k.startswith(('encoder.', 'decoder.'))}
    assert net and all(v.dtype == torch.float16 for v in net.values())
    assert any(v.dtype == torch.float32 for k, v in ck['model'].items() if k.startswith('priors.'))
    model, ident = model_io.load_checkpoint(m.torch)
    assert ident['fingerprint'] == m.fingerprint                          # the same weights as the ONNX files
    assert all(v.dtype == torch.float32 for v in model.state_dict().values())
