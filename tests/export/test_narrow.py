"""scripts/narrow_cae.py and nanolink-train --train-only decoder: a cheaper cae from a trained one. Units that never
fire are dropped without changing a symbol or a pixel; the decoder then trains with everything else frozen."""
import dataclasses
import os
import subprocess
import sys

import pytest

torch = pytest.importorskip('torch')

from nanolink.common.zoo import SAMPLE_DIR                 # noqa: E402
from nanolink.export import train                          # noqa: E402
from nanolink.export.models import build_model             # noqa: E402
from nanolink.export.model_io import load_checkpoint        # noqa: E402

SCRIPT = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                      'scripts', 'narrow_cae.py')
ARCH = dict(channels=24, body_channels=16, enc_widths=(16, 24), dec_widths=(24, 16, 16))


def _run(*args):
    return subprocess.run([sys.executable, SCRIPT] + list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, timeout=300)


def _trained_looking_cae_with_dead_units(path):
    """A small cae with random weights, 4 dead units in the encoder at H/8 and 4 in each of the decoder's unit sets
    at H/8 (both layers) and H/4, and context tables; saved as a checkpoint."""
    torch.manual_seed(4)
    m = build_model('cae', **ARCH)
    with torch.no_grad():
        for p in m.parameters():
            p.add_(torch.randn_like(p) * 0.05)
        m.encoder.body[2].bias[3:7] = -1e4                 # never fire (inputs are bounded)
        body = m.decoder.body
        body[4].bias[:4] = -1e4                            # convT (d16 -> d8): its first 4 units
        body[6].bias[4:8] = -1e4                           # conv (d8 -> d8): 4 others
        body[10].bias[8:12] = -1e4                         # depthwise at H/4: the d4 units 8..11
    context = {q: {'ks': 1, 'ka': 1, 'note': 'placeholder tables of quality {}'.format(q)} for q in m.config.rate_points}
    torch.save({'model': m.state_dict(), 'model_name': 'cae', 'model_config': dataclasses.asdict(m.config),
                'context': context}, path)
    return m


def test_dropping_units_that_never_fire_keeps_every_symbol_and_pixel(tmp_path):
    src, dst = str(tmp_path / 'cae.pt'), str(tmp_path / 'narrow.pt')
    _trained_looking_cae_with_dead_units(src)
    r = _run(src, '--enc-e8', '20', '--dec-widths', '24,12,12', '--data', SAMPLE_DIR, '--crops', '4', '--crop', '64',
             '--out', dst)
    assert r.returncode == 0, r.stderr
    assert '0 of the dropped units fired' in r.stdout
    a, _ = load_checkpoint(src)
    b, _ = load_checkpoint(dst)
    assert tuple(b.config.enc_widths) == (16, 20) and tuple(b.config.dec_widths) == (24, 12, 12)
    assert b.encoder.body[2].out_channels == 20 and b.decoder.body[10].out_channels == 12
    assert b.context == a.context                          # nanolink-fit-context's tables come along
    for key, value in a.state_dict().items():              # the rest copied: gains, priors, the linear paths
        if not key.startswith(('encoder.body.2.', 'encoder.body.4.', 'decoder.body.')):
            assert torch.equal(value, b.state_dict()[key]), key
    torch.manual_seed(5)
    x = torch.rand(2, 3, 64, 96)
    with torch.no_grad():
        ya, yb = a.analysis(x), b.analysis(x)
        assert (ya - yb).abs().max() < 1e-4                # the same latents ...
        for i in range(len(a.config.lambdas)):
            g, ig = a.gains(torch.tensor([i, i]))
            sym = torch.round(ya * g)
            assert torch.equal(sym, torch.round(yb * g))   # ... the same symbols at every rate point
            pa, pb = a.synthesis(sym * ig), b.synthesis(sym * ig)
            assert (pa - pb).abs().max() < 1e-4            # ... and the same picture
            assert (pa - pa.mean()).abs().max() > 1e-2


def test_narrowing_live_units_changes_the_picture_and_says_by_how_much(tmp_path):
    src, dst = str(tmp_path / 'cae.pt'), str(tmp_path / 'narrow.pt')
    _trained_looking_cae_with_dead_units(src)
    r = _run(src, '--dec-widths', '16,8,8', '--data', SAMPLE_DIR, '--crops', '4', '--crop', '64', '--out', dst)
    assert r.returncode == 0, r.stderr
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith('quality ')]
    assert len(lines) == 6 and all(ln.endswith('0 of {} symbols differ'.format(4 * 24 * 4 * 4)) for ln in lines)
    a, _ = load_checkpoint(src)
    b, _ = load_checkpoint(dst)
    y = torch.round(torch.randn(1, 24, 3, 4) * 3)
    with torch.no_grad():
        assert (a.synthesis(y) - b.synthesis(y)).abs().max() > 1e-4      # live units went: a different decoder


@pytest.mark.parametrize('args, words', [
    ([], 'give --dec-widths, --enc-e8 or both'),
    (['--dec-widths', '24,16,20'], 'at most the current 24,16,16'),
    (['--dec-widths', '24,16'], 'must be 3 widths'),
    (['--enc-e8', '24'], 'below the current 24'),
    (['--enc-e8', '20', '--crop', '72'], 'a multiple of 16'),
    (['--enc-e8', '20', '--crops', '0'], '--crops must be at least 1'),
])
def test_narrowing_refuses_what_it_cannot_do(tmp_path, args, words):
    src = str(tmp_path / 'cae.pt')
    _trained_looking_cae_with_dead_units(src)
    r = _run(src, '--data', SAMPLE_DIR, '--crops', '2', '--crop', '64', *args, '--out', str(tmp_path / 'x.pt'))
    assert r.returncode == 2 and words in r.stderr, r.stderr
    assert 'Traceback' not in r.stderr
    assert not os.path.exists(str(tmp_path / 'x.pt'))


def test_narrowing_into_a_missing_folder_says_so_before_any_work(tmp_path):
    src = str(tmp_path / 'cae.pt')
    _trained_looking_cae_with_dead_units(src)
    r = _run(src, '--enc-e8', '20', '--data', SAMPLE_DIR, '--out', str(tmp_path / 'no' / 'such' / 'x.pt'))
    assert r.returncode == 2 and 'its folder does not exist' in r.stderr and 'Traceback' not in r.stderr


def test_train_only_decoder_moves_the_decoder_alone(tmp_path):
    """--train-only decoder (a narrowed decoder's fine-tune): the encoder, gains and priors stay bit for bit, so the
    bits on the wire do not change, and they get no gradients (no backward pass through the encoder)."""
    init = str(tmp_path / 'cae.pt')
    a = _trained_looking_cae_with_dead_units(init)
    run = str(tmp_path / 'run')
    assert train.main(['--model', 'cae', '--init', init, '--arch', 'channels=24', '--arch', 'body_channels=16',
                       '--arch', 'enc_widths=16,24', '--arch', 'dec_widths=24,16,16', '--train-only', 'decoder',
                       '--data', SAMPLE_DIR, '--out', run, '--steps', '3', '--batch', '2', '--crop', '64',
                       '--lr', '1e-3', '--val-every', '1000', '--ckpt-every', '3']) in (0, None)
    b, _ = load_checkpoint(os.path.join(run, 'last.pt'))
    moved = [k for k, v in a.state_dict().items() if not torch.equal(v, b.state_dict()[k])]
    assert moved and all(k.startswith('decoder.') for k in moved), moved
    model = build_model('cae', **ARCH)
    params = train.trainable(model, 'decoder')
    assert {id(p) for p in params} == {id(p) for p in model.decoder.parameters()}
    assert not any(p.requires_grad for n, p in model.named_parameters() if not n.startswith('decoder.'))


def test_a_narrowed_checkpoint_trains_on_and_resumes_without_repeating_its_widths(tmp_path):
    """nanolink-train takes the architecture of the checkpoint it starts from (--init, then the run's last.pt), and
    --arch overrides it: the bundled cae is narrower than the Config's defaults."""
    src, dst = str(tmp_path / 'cae.pt'), str(tmp_path / 'narrow.pt')
    _trained_looking_cae_with_dead_units(src)
    assert _run(src, '--enc-e8', '20', '--dec-widths', '24,12,12', '--data', SAMPLE_DIR, '--crops', '2', '--crop',
                '64', '--out', dst).returncode == 0
    run = str(tmp_path / 'run')
    common = ['--model', 'cae', '--train-only', 'decoder', '--data', SAMPLE_DIR, '--out', run, '--batch', '1',
              '--crop', '64', '--val-every', '1000', '--ckpt-every', '2']
    assert train.main(common + ['--init', dst, '--steps', '2']) in (0, None)
    assert train.main(common + ['--steps', '4']) in (0, None)                 # resumes from last.pt, no --arch
    ck = torch.load(os.path.join(run, 'last.pt'), weights_only=True)
    assert ck['step'] == 4
    assert tuple(ck['model_config']['enc_widths']) == (16, 20)
    assert tuple(ck['model_config']['dec_widths']) == (24, 12, 12)
    assert ck['model_config']['channels'] == 24


def test_train_init_of_another_model_says_which_model_it_holds(tmp_path):
    src = str(tmp_path / 'cae.pt')
    _trained_looking_cae_with_dead_units(src)
    with pytest.raises(SystemExit) as e:
        train.main(['--model', 'cae-bin', '--init', src, '--data', SAMPLE_DIR, '--out', str(tmp_path / 'r'),
                    '--steps', '1', '--batch', '1', '--crop', '192'])
    assert 'it holds a cae model, not a cae-bin model' in str(e.value) and 'pass --model cae' in str(e.value)


def _train(tmp_path, *args):
    return train.main(['--model', 'cae', '--data', SAMPLE_DIR, '--out', str(tmp_path / 'run'), '--batch', '1',
                       '--crop', '64', '--val-every', '1000', '--ckpt-every', '1', '--steps', '1'] + list(args))


def test_init_takes_the_tensors_architecture_but_not_how_the_old_run_trained(tmp_path):
    """A single-rate fork's train_rates, or an old checkpoint's table_cover=False, describe how that run trained and
    exported, not its tensors: a new run from it takes them from its own --arch (true/false, empty tuples)."""
    m = build_model('cae', **dict(ARCH, train_rates=(6,), table_cover=False))
    src = str(tmp_path / 'fork.pt')
    torch.save({'model': m.state_dict(), 'model_name': 'cae', 'model_config': dataclasses.asdict(m.config)}, src)
    assert _train(tmp_path, '--init', src) in (0, None)
    cfg = torch.load(str(tmp_path / 'run' / 'last.pt'), weights_only=True)['model_config']
    assert tuple(cfg['dec_widths']) == (24, 16, 16) and cfg['train_rates'] == () and cfg['table_cover'] is True
    assert train.arch_overrides('cae', ['table_cover=false', 'train_rates=', 'quant=noise']) == {
        'table_cover': False, 'train_rates': (), 'quant': 'noise'}
    with pytest.raises(SystemExit):
        train.arch_overrides('cae', ['table_cover=maybe'])


def test_init_that_does_not_fit_the_arch_is_one_line_and_a_post_filter_can_be_left_out(tmp_path, capsys):
    src = str(tmp_path / 'cae.pt')
    m = build_model('cae', **dict(ARCH, post=(8, 1)))
    torch.save({'model': m.state_dict(), 'model_name': 'cae', 'model_config': dataclasses.asdict(m.config)}, src)
    with pytest.raises(SystemExit) as e:                       # widths are the checkpoint's: --arch cannot change them
        _train(tmp_path, '--init', src, '--arch', 'dec_widths=24,8,16')
    assert 'does not fit the model --arch asks for' in str(e.value) and 'decoder.body' in str(e.value)
    assert _train(tmp_path, '--init', src, '--arch', 'post=0,0') in (0, None)   # the main model, filter left out
    ck = torch.load(str(tmp_path / 'run' / 'last.pt'), weights_only=True)
    assert tuple(ck['model_config']['post']) == (0, 0) and not any(k.startswith('decoder.post.') for k in ck['model'])
    with pytest.raises(SystemExit) as e:                       # ... and the run resumes as it is, not as --arch says
        _train(tmp_path, '--arch', 'post=8,1', '--steps', '2')
    assert 'resume without --arch' in str(e.value)
    bad = tmp_path / 'garbage.pt'
    bad.write_bytes(b'\x80\x02not a checkpoint at all')
    with pytest.raises(SystemExit) as e:
        _train(tmp_path, '--init', str(bad), '--out', str(tmp_path / 'other'))
    assert 'cannot start from (--init)' in str(e.value)
