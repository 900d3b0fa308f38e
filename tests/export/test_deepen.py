"""scripts/deepen_decoder.py: a deeper or wider decoder that starts out decoding exactly like the trained one."""
import dataclasses
import os
import subprocess
import sys

import pytest

torch = pytest.importorskip('torch')

from nanolink.export.models import build_model          # noqa: E402
from nanolink.export.model_io import load_checkpoint        # noqa: E402

SCRIPT = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                      'scripts', 'deepen_decoder.py')


def _run(*args):
    return subprocess.run([sys.executable, SCRIPT] + list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, timeout=120)


@pytest.mark.parametrize('name, arch, add, width', [
    ('cae-bin', {'dec_width': 16}, 2, None),
    ('ae', {'dec_width': 8}, 2, None),
    ('ae', {'dec_width': 8}, 1, 12),          # deeper and wider
    ('cae-bin', {'dec_width': 16}, 0, 24),        # wider only
])
def test_deepened_decoder_decodes_like_the_original(tmp_path, name, arch, add, width):
    torch.manual_seed(1)
    old = build_model(name, **arch)
    with torch.no_grad():
        for p in old.parameters():            # trained-looking weights: no zero layers, biases included
            p.add_(torch.randn_like(p) * 0.05)
    src, dst = str(tmp_path / 'old.pt'), str(tmp_path / 'deep.pt')
    torch.save({'model': old.state_dict(), 'model_name': name, 'model_config': dataclasses.asdict(old.config)}, src)
    r = _run(src, '--add', str(add), '--out', dst, *(['--width', str(width)] if width else []))
    assert r.returncode == 0, r.stderr
    a, _ = load_checkpoint(src)
    b, ident = load_checkpoint(dst)
    assert b.config.dec_layers == a.config.dec_layers + add
    assert b.config.dec_width == (width or a.config.dec_width)
    assert len(list(b.decoder.parameters())) == len(list(a.decoder.parameters())) + 2 * add
    if width:
        first = next(m for m in b.decoder.children() if isinstance(m, torch.nn.Conv2d))
        assert first.weight[arch['dec_width']:].abs().sum() > 0      # the new units are live, not dead zeros
    x = torch.rand(1, 3, 32, 48)
    with torch.no_grad():
        if name == 'cae-bin':
            s = torch.sign(torch.randn(1, a.config.channels, 8, 12))
            s[:, 5:] = 0                                               # a truncated code
            assert torch.equal(a.encode_bits(x), b.encode_bits(x))
            ya, yb = a.decode_symbols(s), b.decode_symbols(s)
        else:
            c = a.analysis(x)
            assert torch.equal(c, b.analysis(x))
            ya, yb = a.synthesis(c), b.synthesis(c)
    assert (ya - yb).abs().max() < 1e-5
    assert (ya - ya.mean()).abs().max() > 1e-2                         # not a constant picture


def test_deepen_refuses_zero_layers(tmp_path):
    m = build_model('cae-bin', dec_width=16)
    src = str(tmp_path / 'old.pt')
    torch.save({'model': m.state_dict(), 'model_name': 'cae-bin', 'model_config': dataclasses.asdict(m.config)}, src)
    r = _run(src, '--add', '0', '--out', str(tmp_path / 'x.pt'))
    assert r.returncode == 2 and '--add must be at least 1' in r.stderr
    assert not os.path.exists(str(tmp_path / 'x.pt'))
    r = _run(src, '--add', '1', '--width', '8', '--out', str(tmp_path / 'x.pt'))
    assert r.returncode == 2 and '--width must be at least the current decoder width 16' in r.stderr
    assert not os.path.exists(str(tmp_path / 'x.pt'))


def test_widened_cae_decoder_decodes_like_the_original_and_keeps_the_bits(tmp_path):
    """The warm start of cae's quality decoder: wider at H/16, H/8 and H/4, the same picture from the same symbols,
    the encoder, gains and priors untouched (so the bits on the wire and the fingerprint's inputs do not change)."""
    torch.manual_seed(2)
    old = build_model('cae', dec_widths=(24, 16, 48))
    with torch.no_grad():
        for p in old.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    src, dst = str(tmp_path / 'old.pt'), str(tmp_path / 'wide.pt')
    torch.save({'model': old.state_dict(), 'model_name': 'cae', 'model_config': dataclasses.asdict(old.config)}, src)
    r = _run(src, '--dec-widths', '40,24,56', '--out', dst)
    assert r.returncode == 0, r.stderr
    a, _ = load_checkpoint(src)
    b, _ = load_checkpoint(dst)
    assert tuple(b.config.dec_widths) == (40, 24, 56)
    for key, value in a.state_dict().items():
        if not key.startswith('decoder.body.'):
            assert torch.equal(value, b.state_dict()[key]), key
    first = b.decoder.body[0]
    assert first.weight[24:].abs().sum() > 0                              # the new units are live
    y = torch.round(torch.randn(1, a.config.channels, 3, 4) * 3)
    with torch.no_grad():
        ya, yb = a.synthesis(y), b.synthesis(y)
    assert (ya - yb).abs().max() < 1e-5 and (ya - ya.mean()).abs().max() > 1e-2
    for bad, words in ((['--dec-widths', '24,16'], 'must be 3 widths'), (['--dec-widths', '24,8,48'], 'at least'),
                       (['--add', '1'], '--dec-widths / --dec-res are for cae')):
        r = _run(src, *bad, '--out', str(tmp_path / 'x.pt'))
        assert r.returncode == 2 and words in r.stderr, (bad, r.stderr)
    assert not os.path.exists(str(tmp_path / 'x.pt'))


def test_residual_blocks_added_to_a_cae_decoder_start_as_the_identity(tmp_path):
    """The warm start of a deeper cae quality decoder: residual blocks at H/16 and H/8 (and wider layers) that
    leave the picture as it was; a second deepening keeps the first one's blocks where they were."""
    torch.manual_seed(3)
    old = build_model('cae', dec_widths=(24, 16, 48))
    with torch.no_grad():
        for p in old.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    src, mid, dst = (str(tmp_path / n) for n in ('old.pt', 'res.pt', 'res2.pt'))
    torch.save({'model': old.state_dict(), 'model_name': 'cae', 'model_config': dataclasses.asdict(old.config)}, src)
    r = _run(src, '--dec-res', '2,1', '--out', mid)
    assert r.returncode == 0, r.stderr
    a, _ = load_checkpoint(src)
    b, _ = load_checkpoint(mid)
    assert tuple(b.config.dec_res) == (2, 1)
    assert len(list(b.decoder.parameters())) == len(list(a.decoder.parameters())) + 3 * 4
    with torch.no_grad():                                             # train the blocks a little: not identities
        for name, p in b.named_parameters():
            if 'conv2' in name:
                p.add_(torch.randn_like(p) * 0.05)
    torch.save({'model': b.state_dict(), 'model_name': 'cae', 'model_config': dataclasses.asdict(b.config)}, mid)
    r = _run(mid, '--dec-res', '3,2', '--dec-widths', '32,16,48', '--out', dst)
    assert r.returncode == 0, r.stderr
    c, _ = load_checkpoint(dst)
    y = torch.round(torch.randn(1, a.config.channels, 3, 4) * 3)
    with torch.no_grad():
        ya, yb, yc = a.synthesis(y), b.synthesis(y), c.synthesis(y)
    assert (ya - yb).abs().max() > 1e-3                               # the trained blocks do change the picture
    assert (yb - yc).abs().max() < 1e-5                               # ... and the deeper, wider copy keeps it
    for bad, words in ((['--dec-res', '1'], 'must be 2 counts'), (['--dec-res', '1,1'], 'at least the current 2,1')):
        r = _run(mid, *bad, '--out', str(tmp_path / 'x.pt'))
        assert r.returncode == 2 and words in r.stderr, (bad, r.stderr)
