"""Decoder variants: a heavier decoder of the same bits, exported into a model folder (nanolink-export
--decoder-variant), loaded by the host (HostDecoder.open(variant=...)) and refused when its encoder differs."""
import dataclasses
import json
import os
import shutil
import time

import numpy as np
import pytest

torch = pytest.importorskip('torch')

from nanolink.common import wire, zoo                       # noqa: E402
from nanolink.common.codec import EdgeEncoder, HostDecoder  # noqa: E402
from nanolink.common.errors import NanolinkError            # noqa: E402
from nanolink.export import model_io, onnx_export           # noqa: E402
from nanolink.export.models import build_model              # noqa: E402


def _deeper_cae(base_pt, encoder_noise=0.0):
    """The bundled cae-bin with one more (random) middle decoder layer; the encoder copied, or perturbed."""
    base, _ = model_io.load_checkpoint(base_pt)
    cfg = dataclasses.replace(base.config, dec_layers=base.config.dec_layers + 1)
    torch.manual_seed(0)
    deep = build_model('cae-bin', **dataclasses.asdict(cfg))
    deep.encoder.load_state_dict(base.encoder.state_dict())
    if encoder_noise:
        with torch.no_grad():
            next(deep.encoder.parameters()).add_(encoder_noise)
    deep.eval()
    return deep


@pytest.fixture
def model_dir(tmp_path):
    out = str(tmp_path / 'cae-bin')
    shutil.copytree(os.path.dirname(zoo.bundled_model('cae-bin').decoder), out)
    with open(os.path.join(out, 'manifest.json')) as f:
        m = json.load(f)
    for v in m.pop('decoder_variants', {}).values():        # start from the fast decoder only
        for fn in v['files'].values():
            os.remove(os.path.join(out, fn))
    with open(os.path.join(out, 'manifest.json'), 'w') as f:
        json.dump(m, f)
    return out


def _message(info, enc, frame):
    blob, size = enc.preprocess(frame)
    payload, shape = enc.fetch(enc.backend.forward(blob))
    payload, dtype = wire.entropy_code(payload, info.dtype, 'zlib')
    return wire.pack(wire.Frame(stream='t', seq=0, t_cap=time.time(), model=info.name, fp=info.fingerprint,
                                dtype=dtype, shape=shape, size=size, payload=payload, stages={}))


def test_variant_decodes_the_fast_models_wire_messages(model_dir, tmp_path, sample_frame):
    ck = str(tmp_path / 'deep.pt')
    deep = _deeper_cae(os.path.join(model_dir, 'cae-bin.pt'))
    model_io.save_checkpoint(deep, ck)
    assert onnx_export.main(['--checkpoint', ck, '--decoder-variant', 'hq', '--out', model_dir]) == 0
    info = zoo.load_manifest(model_dir)
    base = zoo.bundled_model('cae-bin')
    assert info.fingerprint == base.fingerprint                # frames keep the model's fingerprint
    entry = info.manifest['decoder_variants']['hq']
    assert entry['reads_fingerprint'] == base.fingerprint
    assert entry['weights_fingerprint'] == model_io.identity(deep)['fingerprint'] != base.fingerprint
    assert entry['architecture']['dec_layers'] == base.manifest['architecture'].get('dec_layers', 1) + 1
    meta = json.loads(__import__('onnx').load(info.decoder_file('hq')).metadata_props[0].value)
    assert meta['fingerprint'] == base.fingerprint and meta['decoder_variant'] == 'hq'

    enc = EdgeEncoder.open('cae-bin', channels=8)               # the bundled encoder: the edge does not change
    frame = sample_frame[:128, :192]
    fast = HostDecoder.open(info)
    hq = HostDecoder.open(info, variant='hq')
    hq_torch = HostDecoder.open(info, 'torch', variant='hq')
    f = wire.unpack(_message(info, enc, frame), {'cae-bin': {info.fingerprint: hq}})
    a = hq.postprocess(hq.decode(f), f)
    b = hq_torch.postprocess(hq_torch.decode(f), f)
    c = fast.postprocess(fast.decode(f), f)
    assert a.shape == c.shape == frame.shape
    assert np.abs(a.astype(int) - b.astype(int)).max() <= 1    # ONNX and torch run the same variant
    with torch.no_grad():                                    # ... which is the checkpoint's decoder
        ref = deep.decoder_module()(torch.from_numpy(hq.symbols(f))).numpy()[0][:128, :192]
    assert np.abs(a.astype(int) - ref.astype(int)).max() <= 1
    assert np.abs(a.astype(int) - c.astype(int)).mean() > 1   # a different network than the fast one
    with pytest.raises(NanolinkError, match='no "best" decoder; its decoders: fast, hq'):
        HostDecoder.open(info, variant='best')


def test_variant_with_other_encoder_weights_is_refused(model_dir, tmp_path, capsys):
    ck = str(tmp_path / 'other.pt')
    model_io.save_checkpoint(_deeper_cae(os.path.join(model_dir, 'cae-bin.pt'), encoder_noise=1e-3), ck)
    before = open(os.path.join(model_dir, 'manifest.json')).read()
    assert onnx_export.main(['--checkpoint', ck, '--decoder-variant', 'quality', '--out', model_dir]) == 1
    err = capsys.readouterr()[1]
    assert 'encoder weights differ' in err and '--train-only decoder' in err
    assert open(os.path.join(model_dir, 'manifest.json')).read() == before
    assert not os.path.exists(os.path.join(model_dir, 'cae-bin-dec-quality.onnx'))
    assert onnx_export.main(['--checkpoint', ck, '--decoder-variant', 'fast', '--out', model_dir]) == 2
    assert 'other than "fast"' in capsys.readouterr()[1]
    os.remove(os.path.join(model_dir, 'cae-bin.pt'))
    assert onnx_export.main(['--checkpoint', ck, '--decoder-variant', 'quality', '--out', model_dir]) == 1
    assert 'no torch checkpoint to compare encoder weights with' in capsys.readouterr()[1]


@pytest.mark.parametrize('name', ['cae-bin', 'ae'])
def test_bundled_quality_decoder_was_trained_on_the_bundled_encoder(name):
    info = zoo.bundled_model(name)
    entry = info.manifest['decoder_variants']['quality']
    quality, ident = model_io.load_checkpoint(info.decoder_file('quality', 'torch'))
    base, base_ident = model_io.load_checkpoint(info.torch)
    assert base_ident['fingerprint'] == info.fingerprint == entry['reads_fingerprint']
    assert ident['fingerprint'] == entry['weights_fingerprint'] != info.fingerprint
    assert model_io.fingerprint(quality.encoder.state_dict()) == model_io.fingerprint(base.encoder.state_dict())
    assert quality.config.dec_layers == entry['architecture']['dec_layers'] > base.config.dec_layers
    meta = json.loads(__import__('onnx').load(info.decoder_file('quality')).metadata_props[0].value)
    assert meta['fingerprint'] == info.fingerprint and meta['weights_fingerprint'] == ident['fingerprint']


def test_bundled_cae_quality_decoder_is_the_fast_decoder_plus_a_post_filter(sample_frame):
    """The bundled cae's quality decoder: a post-filter trained alone on the bundled fast decoder and encoder
    (--train-only post), stored as the filter on cae.pt and an ONNX graph reading the fast decoder's weights file;
    it decodes the bundled edge's messages (ONNX = torch) into a better picture than the fast decoder's."""
    import onnx
    from nanolink.common import metrics
    info = zoo.bundled_model('cae')
    entry = info.manifest['decoder_variants']['quality']
    quality, ident = model_io.load_checkpoint(info.decoder_file('quality', 'torch'))
    base, base_ident = model_io.load_checkpoint(info.torch)
    assert base_ident['fingerprint'] == info.fingerprint == entry['reads_fingerprint']
    assert ident['fingerprint'] == entry['weights_fingerprint'] != info.fingerprint
    for k, v in base.state_dict().items():                   # everything but the filter is the fast model's
        assert torch.equal(v, quality.state_dict()[k]), k
    assert list(quality.config.post) == entry['architecture']['post'] and quality.config.post[0] > 0
    delta = model_io.torch_load(info.decoder_file('quality', 'torch'))
    assert delta['base'] == os.path.basename(info.torch)
    ext = {e.value for t in onnx.load(info.decoder_file('quality'), load_external_data=False).graph.initializer
           for e in t.external_data if e.key == 'location'}
    assert ext == {info.manifest['files']['decoder_weights']}
    frame = sample_frame[:256, :384]
    a, c = _bundled_cae_message_decoded(info, 'quality', frame, quality=3)
    assert metrics.psnr(frame, a) > metrics.psnr(frame, c) + 0.1


def test_a_wider_cae_decoder_reads_the_bundled_cae_messages(tmp_path, sample_frame):
    """cae's quality decoder path: scripts/deepen_decoder.py --dec-widths on the bundled checkpoint (the encoder,
    gains and priors untouched), exported as a variant, decodes the bundled edge's rANS messages (ONNX = torch =
    the checkpoint, and the same picture as the fast decoder before any training)."""
    import subprocess
    import sys
    out = str(tmp_path / 'cae')
    shutil.copytree(os.path.dirname(zoo.bundled_model('cae').decoder), out)
    ck = str(tmp_path / 'wide.pt')
    script = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), 'scripts',
                          'deepen_decoder.py')
    r = subprocess.run([sys.executable, script, os.path.join(out, 'cae.pt'), '--dec-widths', '112,72,64', '--out', ck],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert onnx_export.main(['--checkpoint', ck, '--decoder-variant', 'hq', '--out', out]) == 0
    info = zoo.load_manifest(out)
    assert info.fingerprint == zoo.bundled_model('cae').fingerprint
    assert info.manifest['decoder_variants']['hq']['architecture']['dec_widths'] == [112, 72, 64]
    a, c = _bundled_cae_message_decoded(info, 'hq', sample_frame[:128, :192], quality=2)
    assert np.abs(a.astype(int) - c.astype(int)).max() <= 1        # widened, not yet trained: the same picture


def _bundled_cae_message_decoded(info, variant, frame, quality):
    """The bundled cae edge's message of frame, decoded by info's variant (ONNX Runtime, checked against its torch
    checkpoint to within 1) and by its fast decoder -> (variant's picture, fast picture)."""
    import nanolink
    with nanolink.open_codec('cae', quality=quality) as codec:
        data = codec.encode(frame)
    v, v_torch = HostDecoder.open(info, variant=variant), HostDecoder.open(info, 'torch', variant=variant)
    f = wire.unpack(data, {'cae': {info.fingerprint: v}})
    a, b, c = [d.postprocess(d.decode(f), f) for d in (v, v_torch, HostDecoder.open(info))]
    assert a.shape == c.shape == frame.shape
    assert np.abs(a.astype(int) - b.astype(int)).max() <= 1
    return a, c


def test_a_post_filter_quality_decoder_trains_on_the_bundled_cae_and_reads_its_messages(tmp_path, sample_frame):
    """cae's quality decoder: nanolink-train --init the bundled checkpoint --arch post=W,B --train-only post (the
    post-filter starts at zero, so step 0 decodes exactly like the fast decoder), exported with nanolink-export
    --decoder-variant, decodes the bundled edge's rANS messages (ONNX = torch, a changed picture once trained) and
    shares the fast decoder's weights: the folder grows by the filter, and the fast decoder decodes as before."""
    import onnx
    from nanolink.common.zoo import SAMPLE_DIR
    from nanolink.export import train
    out = str(tmp_path / 'cae')
    shutil.copytree(os.path.dirname(zoo.bundled_model('cae').decoder), out)
    for fn in os.listdir(out):                               # the fast decoder alone, as nanolink-export writes it
        if '-quality' in fn or fn == 'cae-dec.weights':
            os.remove(os.path.join(out, fn))
    with open(os.path.join(out, 'manifest.json')) as f:
        m = json.load(f)
    m.pop('decoder_variants', None)
    m['files'].pop('decoder_weights', None)
    with open(os.path.join(out, 'manifest.json'), 'w') as f:
        json.dump(m, f)
    onnx.save(onnx.load(zoo.bundled_model('cae').decoder), os.path.join(out, 'cae-dec.onnx'))     # weights inline
    size = sum(os.path.getsize(os.path.join(out, fn)) for fn in os.listdir(out))
    base, _ = model_io.load_checkpoint(os.path.join(out, 'cae.pt'))
    fresh = build_model('cae', **dict(dataclasses.asdict(base.config), post=(8, 1)))
    fresh.load_init(base.state_dict(), dataclasses.asdict(base.config))
    fresh.eval()
    torch.manual_seed(0)
    y = torch.randn(1, base.config.channels, 4, 6) * 4
    with torch.no_grad():                                    # untrained: the very same bytes
        assert torch.equal(fresh.decoder_module()(y), base.decoder_module()(y))
    run = str(tmp_path / 'run')
    assert train.main(['--model', 'cae', '--init', os.path.join(out, 'cae.pt'), '--arch', 'post=8,1',
                       '--train-only', 'post', '--data', SAMPLE_DIR, '--out', run, '--steps', '3', '--batch', '1',
                       '--crop', '64', '--lr', '1e-3', '--val-every', '1000', '--ckpt-every', '3']) in (0, None)
    trained, _ = model_io.load_checkpoint(os.path.join(run, 'last.pt'))
    for k, v in base.state_dict().items():                   # --train-only post moved nothing else
        assert torch.equal(v, trained.state_dict()[k]), k
    assert onnx_export.main(['--checkpoint', os.path.join(run, 'last.pt'), '--decoder-variant', 'quality',
                             '--out', out]) == 0
    info = zoo.load_manifest(out)
    assert info.fingerprint == zoo.bundled_model('cae').fingerprint             # the same bits
    entry = info.manifest['decoder_variants']['quality']
    assert entry['architecture']['post'] == [8, 1]
    a, c = _bundled_cae_message_decoded(info, 'quality', sample_frame[:128, :192], quality=3)
    assert np.abs(a.astype(int) - c.astype(int)).mean() > 0.1       # the trained filter changes it (here ~2)
    fast = HostDecoder.open(zoo.bundled_model('cae'))
    f = wire.unpack(nanolink_encode(sample_frame[:128, :192]), {'cae': {info.fingerprint: fast}})
    assert np.array_equal(fast.postprocess(fast.decode(f), f), c)   # the fast decoder decodes as it did
    # shared: the variant's ONNX points into the fast decoder's weights file, its torch file holds the filter
    assert info.manifest['files']['decoder_weights'] == 'cae-dec.weights'
    ext = [t for t in onnx.load(info.decoder_file('quality'), load_external_data=False).graph.initializer
           if t.data_location == onnx.TensorProto.EXTERNAL]
    assert ext and {e.value for t in ext for e in t.external_data if e.key == 'location'} == {'cae-dec.weights'}
    assert str(len(ext)) in entry['shares']
    delta = model_io.torch_load(info.decoder_file('quality', 'torch'))
    assert delta['base'] == 'cae.pt' and all(k.startswith('decoder.post.') for k in delta['model'])
    grown = sum(os.path.getsize(os.path.join(out, fn)) for fn in os.listdir(out)) - size
    post_bytes = sum(v.numel() * 4 for k, v in trained.state_dict().items() if k.startswith('decoder.post.'))
    assert 0 < grown < 2 * post_bytes + 64 * 1024           # the filter twice (ONNX, torch) + graphs and manifest


def nanolink_encode(frame):
    import nanolink
    with nanolink.open_codec('cae', quality=3) as codec:
        return codec.encode(frame)


def test_a_post_filter_checkpoint_refuses_a_changed_base(tmp_path):
    """The variant's torch file adds a post-filter to NAME.pt beside it: if that file changed since, loading
    says what to do rather than decoding with a filter trained for another decoder."""
    out = str(tmp_path / 'cae')
    shutil.copytree(os.path.dirname(zoo.bundled_model('cae').decoder), out)
    base, _ = model_io.load_checkpoint(os.path.join(out, 'cae.pt'))
    model = build_model('cae', **dict(dataclasses.asdict(base.config), post=(8, 1)))
    model.load_init(base.state_dict(), dataclasses.asdict(base.config))
    torch.manual_seed(0)
    with torch.no_grad():                                    # a filter that does something, as if trained
        for p in model.decoder.post.parameters():
            p.normal_(0, 0.01)
    ck = str(tmp_path / 'post.pt')
    model_io.save_checkpoint(model, ck)
    assert onnx_export.main(['--checkpoint', ck, '--decoder-variant', 'hq', '--out', out]) == 0
    info = zoo.load_manifest(out)
    assert model_io.torch_load(info.decoder_file('hq', 'torch'))['base'] == 'cae.pt'
    loaded, ident = model_io.load_checkpoint(info.decoder_file('hq', 'torch'))      # base + filter
    assert ident['fingerprint'] == info.manifest['decoder_variants']['hq']['weights_fingerprint']
    from nanolink.common.zoo import SAMPLE_DIR                # ... which nanolink-train --init continues from
    from nanolink.export import train
    run = str(tmp_path / 'run')
    assert train.main(['--model', 'cae', '--init', info.decoder_file('hq', 'torch'), '--arch', 'post=8,1',
                       '--train-only', 'post', '--data', SAMPLE_DIR, '--out', run, '--steps', '1', '--batch', '1',
                       '--crop', '64', '--val-every', '1000', '--ckpt-every', '1']) in (0, None)
    cont, _ = model_io.load_checkpoint(os.path.join(run, 'last.pt'))
    assert torch.equal(cont.gain, base.gain) and torch.equal(cont.decoder.linear.weight, base.decoder.linear.weight)
    with torch.no_grad():
        next(base.decoder.parameters()).add_(1e-2)
    model_io.save_checkpoint(base, info.torch)
    with pytest.raises(NanolinkError, match='restore cae.pt, or export the variant again from its training'):
        model_io.load_checkpoint(info.decoder_file('hq', 'torch'))
    os.remove(info.torch)
    with pytest.raises(NanolinkError, match='holds only the weights it adds to cae.pt, which must lie beside it'):
        model_io.load_checkpoint(info.decoder_file('hq', 'torch'))


def test_sharing_weights_with_an_unrelated_graph_is_refused_and_writes_nothing(tmp_path):
    from nanolink.export.onnx_graph import share_by_value
    a, b = str(tmp_path / 'a.onnx'), str(tmp_path / 'b.onnx')
    shutil.copy(zoo.bundled_model('cae-bin').decoder, a)
    shutil.copy(zoo.bundled_model('ae').decoder, b)
    before = {p: open(p, 'rb').read() for p in (a, b)}
    with pytest.raises(NanolinkError, match='holds none of the weights of'):
        share_by_value(a, [b], 'a.weights')
    assert {p: open(p, 'rb').read() for p in (a, b)} == before and sorted(os.listdir(str(tmp_path))) == [
        'a.onnx', 'b.onnx']


def test_train_only_post_needs_a_post_filter(tmp_path, capsys):
    from nanolink.common.zoo import SAMPLE_DIR
    from nanolink.export import train
    with pytest.raises(SystemExit) as e:
        train.main(['--model', 'cae', '--train-only', 'post', '--data', SAMPLE_DIR, '--out', str(tmp_path / 'r'),
                    '--steps', '1', '--batch', '1', '--crop', '64'])
    assert e.value.code == 2
    assert '--arch post=' in capsys.readouterr()[1]
