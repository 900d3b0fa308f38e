import json
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest

pytest.importorskip('torch')

from nanolink.common.zoo import SAMPLE_DIR  # noqa: E402
from nanolink.export import evaluate      # noqa: E402


def test_bd_rate_of_a_curve_needing_10_percent_fewer_bits():
    anchor = [(0.25, 25.0), (0.5, 29.0), (1.0, 33.0), (1.5, 35.0)]
    better = [(b * 0.9, p) for b, p in anchor]
    assert evaluate.bd_rate(anchor, better) == pytest.approx(-10.0, abs=0.01)
    assert evaluate.bd_rate(anchor, [(1.0, 40.0), (2.0, 45.0)]) is None      # no PSNR overlap


def test_jpeg_at_the_same_bpp_is_interpolated_in_log_rate():
    curve = [{'bpp': 0.5, 'psnr': 29.0, 'ms_ssim': 0.94}, {'bpp': 0.25, 'psnr': 25.0, 'ms_ssim': None},
             {'bpp': 1.0, 'psnr': 33.0, 'ms_ssim': 0.98}]
    assert evaluate.at_bpp(curve, 0.5) == (29.0, 0.94)
    psnr, ms = evaluate.at_bpp(curve, 0.5 * 2 ** 0.25)           # a quarter of the way in log-rate
    assert psnr == pytest.approx(30.0) and ms == pytest.approx(0.95)
    assert evaluate.at_bpp(curve, 0.3)[1] is None                 # MS-SSIM missing at one end
    assert evaluate.at_bpp(curve, 0.2) is None and evaluate.at_bpp(curve, 1.2) is None


def test_codec_eval_on_two_small_images_matches_the_schema(tmp_path, sample_frame):
    imgs = tmp_path / 'imgs'
    imgs.mkdir()
    cv2.imwrite(str(imgs / 'a.png'), sample_frame[:200, :300])
    cv2.imwrite(str(imgs / 'b.png'), sample_frame[-150:, -170:])             # < 161 px: no MS-SSIM
    out = tmp_path / 'results.json'
    assert evaluate.main(['--images', str(imgs), '--model', 'cae-bin', '--baselines', 'jpeg,webp', '--out', str(out),
                          '--plot', str(tmp_path / 'rd.png')]) == 0
    res = json.load(open(str(out)))
    assert res['count'] == 2 and set(res['bd_rate_vs_jpeg']) == {'cae-bin'}
    cae_bin = [r for r in res['results'] if r['model'] == 'cae-bin']
    assert [r['rate_point'] for r in cae_bin] == [4, 8, 16]
    for r in res['results']:
        assert {'model', 'bpp', 'psnr', 'ms_ssim', 'per_image'} <= set(r)
        assert [p['image'] for p in r['per_image']] == ['a.png', 'b.png']
        assert r['per_image'][1]['ms_ssim'] is None and 0 < r['per_image'][0]['ms_ssim'] <= 1
        assert r['bpp'] == pytest.approx(np.mean([p['bpp'] for p in r['per_image']]))
    assert cae_bin[0]['bpp'] < cae_bin[1]['bpp'] < cae_bin[2]['bpp']
    assert cv2.imread(str(tmp_path / 'rd.png')) is not None


def test_bad_baseline_is_a_usage_error(tmp_path):
    with pytest.raises(SystemExit) as e:
        evaluate.main(['--images', str(tmp_path), '--baselines', 'png', '--out', str(tmp_path / 'r.json')])
    assert e.value.code == 2


def test_codec_eval_covers_ae_rate_points_and_bd_rate(tmp_path, sample_frame):
    imgs = tmp_path / 'imgs'
    imgs.mkdir()
    cv2.imwrite(str(imgs / 'a.png'), sample_frame[:200, :300])
    cv2.imwrite(str(imgs / 'b.png'), sample_frame[-211:, -193:])            # odd sides: padded, cropped back
    out = tmp_path / 'results.json'
    assert evaluate.main(['--images', str(imgs), '--model', 'ae', '--model', 'cae-bin', '--baselines', 'jpeg',
                          '--out', str(out)]) == 0
    res = json.load(open(str(out)))
    ae = [r for r in res['results'] if r['model'] == 'ae']
    assert [r['rate_point'] for r in ae] == [50, 75, 85, 95]
    assert ae[0]['bpp'] < ae[1]['bpp'] < ae[2]['bpp'] and ae[0]['psnr'] < ae[2]['psnr']
    assert set(res['bd_rate_vs_jpeg']) == {'ae', 'cae-bin'}
    jpeg = [r for r in res['results'] if r['model'] == 'jpeg']
    for r in ae:                                                            # JPEG at the same bpp, this run
        same = r['jpeg_same_bpp']
        lo = max(j['psnr'] for j in jpeg if j['bpp'] <= r['bpp'])
        hi = min(j['psnr'] for j in jpeg if j['bpp'] >= r['bpp'])
        assert lo <= same['psnr'] <= hi


def test_codec_eval_runs_a_decoder_variant_on_the_same_bits(tmp_path, sample_frame):
    imgs = tmp_path / 'imgs'
    imgs.mkdir()
    cv2.imwrite(str(imgs / 'a.png'), sample_frame[:256, :384])
    out = tmp_path / 'results.json'
    assert evaluate.main(['--images', str(imgs), '--model', 'cae-bin', '--model', 'cae-bin:quality', '--model', 'ae',
                          '--model', 'ae:quality', '--model', 'ae-full', '--model', 'ae-full:quality',
                          '--baselines', 'jpeg', '--out', str(out)]) == 0
    res = json.load(open(str(out)))
    for name, rates in (('cae-bin', 3), ('ae', 4), ('ae-full', 4)):
        fast = [r for r in res['results'] if r['model'] == name]
        quality = [r for r in res['results'] if r['model'] == name + ':quality']
        assert [r['decoder'] for r in fast + quality] == ['fast'] * rates + ['quality'] * rates
        for f, q in zip(fast, quality):
            assert f['rate_point'] == q['rate_point'] and f['bpp'] == q['bpp']       # the same wire messages
            assert q['psnr'] > f['psnr']
    assert set(res['bd_rate_vs_jpeg']) == {'cae-bin', 'cae-bin:quality', 'ae', 'ae:quality', 'ae-full', 'ae-full:quality'}
    with pytest.raises(SystemExit) as e:
        evaluate.main(['--images', str(imgs), '--model', 'cae-bin:hq', '--out', str(out)])
    assert e.value.code == 2


@pytest.mark.parametrize('extra, words', [
    (['--out', 'no/such/dir/r.json'], 'does not exist; create it first'),
    (['--out', '.'], 'is a folder'), (['--out', ''], '--out is empty'),
    (['--out', 'r.json', '--plot', 'rd.bogus'], 'must end in .png or .pdf or .svg'),
    (['--out', 'r.json', '--model', 'ae:'], 'no decoder variant after ":"'),
])
def test_outputs_and_models_are_checked_before_any_work(tmp_path, extra, words, capsys, monkeypatch):
    """An output that cannot be written is refused at once (exit 2), not after the whole evaluation."""
    monkeypatch.chdir(str(tmp_path))
    with pytest.raises(SystemExit) as e:
        evaluate.main(['--images', str(tmp_path / 'none-needed'), '--baselines', 'jpeg'] + extra)
    assert e.value.code == 2 and words in capsys.readouterr().err


def test_repeated_models_and_baselines_are_evaluated_once(tmp_path, sample_frame):
    imgs = tmp_path / 'imgs'
    imgs.mkdir()
    cv2.imwrite(str(imgs / 'a.png'), sample_frame[:64, :96])                 # small: no MS-SSIM at all
    out = tmp_path / 'r.json'
    assert evaluate.main(['--images', str(imgs), '--model', 'ae', '--model', 'ae', '--baselines', ' jpeg , jpeg ',
                          '--out', str(out), '--plot', str(tmp_path / 'rd.png')]) == 0
    res = json.load(open(str(out)))
    assert sorted(set(r['model'] for r in res['results'])) == ['ae', 'jpeg']
    assert len([r for r in res['results'] if r['model'] == 'ae']) == 4
    assert cv2.imread(str(tmp_path / 'rd.png')) is not None


def test_exact_points_are_left_out_of_bd_rate_and_make_jpeg_at_the_same_bpp_infinite():
    anchor = [(0.25, 25.0), (0.5, 29.0), (1.0, 33.0), (1.5, 35.0)]
    better = [(b * 0.9, p) for b, p in anchor]
    for exact in (float('inf'), None):                  # in memory, and as results.json has it (null)
        assert evaluate.bd_rate(anchor + [(2.0, exact)], better) == pytest.approx(-10.0, abs=0.01)
        assert evaluate.bd_rate([(1.0, exact), (2.0, exact)], better) is None
    curve = [{'bpp': 1.0, 'psnr': 40.0, 'ms_ssim': None}, {'bpp': 2.0, 'psnr': float('inf'), 'ms_ssim': None}]
    assert evaluate.at_bpp(curve, 1.5)[0] == float('inf') and evaluate.at_bpp(curve, 1.0)[0] == 40.0


def test_flat_images_give_strict_json_with_null_for_an_exact_match(tmp_path, capsys):
    """A flat image comes back exactly from JPEG, WebP (and near it from ae): an infinite PSNR is written as null,
    never as Infinity, which strict JSON parsers refuse; the table and the plot still come out."""
    imgs = tmp_path / 'imgs'
    imgs.mkdir()
    cv2.imwrite(str(imgs / 'a.png'), np.full((64, 96, 3), 128, np.uint8))
    cv2.imwrite(str(imgs / 'b.png'), np.full((48, 64, 3), 30, np.uint8))
    out, rd = tmp_path / 'results.json', tmp_path / 'rd.png'
    assert evaluate.main(['--images', str(imgs), '--model', 'ae', '--baselines', 'jpeg,webp', '--out', str(out),
                          '--plot', str(rd)]) == 0
    text = out.read_text()

    def refuse(constant):
        raise ValueError('not strict JSON: ' + constant)
    res = json.loads(text, parse_constant=refuse)
    jpeg = [r for r in res['results'] if r['model'] == 'jpeg']
    assert jpeg and all(r['psnr'] is None and r['per_image'][0]['psnr'] is None for r in jpeg)   # a.png: exact
    for r in res['results']:                                        # the schema is the same, with null in it
        assert {'model', 'bpp', 'psnr', 'ms_ssim', 'per_image'} <= set(r) and r['bpp'] > 0
    assert set(res['bd_rate_vs_jpeg']) == {'ae'}
    assert 'BD-rate of ae vs JPEG' in capsys.readouterr().out and cv2.imread(str(rd)) is not None


@pytest.mark.parametrize('spec, words', [('jpeg', 'jpeg is a baseline, not a model'),
                                         ('raw', 'no bundled model "raw"')])
def test_a_model_that_is_not_one_gets_a_true_list(tmp_path, capsys, spec, words):
    with pytest.raises(SystemExit) as e:
        evaluate.main(['--images', str(tmp_path), '--model', spec, '--out', str(tmp_path / 'r.json')])
    err = capsys.readouterr().err
    assert e.value.code == 2 and words in err and 'the baselines go in --baselines: jpeg, webp' in err
    assert 'jpeg, raw' not in err                                   # edge-sender's baselines, not codec-eval's


def test_images_folder_is_checked_before_torch_is_needed(tmp_path):
    """Without torch (here: torch blocked from importing), a missing --images is named, not 'install torch'."""
    run = lambda images: subprocess.run(
        [sys.executable, '-c', "import sys; sys.modules['torch'] = None; from nanolink.export.evaluate import main; "
         "sys.exit(main())", '--images', images, '--out', 'r.json'], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        universal_newlines=True, timeout=120, cwd=str(tmp_path))
    r = run('nowhere')
    assert r.returncode == 1 and r.stderr == 'codec-eval: error: --images nowhere: no such folder; give a folder of ' \
                                             'images\n', r.stderr
    r = run(SAMPLE_DIR)                                             # good arguments: then it says what to install
    assert r.returncode == 1 and 'pip install "nanolink[train]"' in r.stderr and len(r.stderr.splitlines()) == 1
    assert not (tmp_path / 'r.json').exists()


def test_an_unreadable_image_stops_it_in_one_line(tmp_path, capsys):
    (tmp_path / 'imgs').mkdir()
    (tmp_path / 'imgs' / 'a.png').write_bytes(b'not a png')
    assert evaluate.main(['--images', str(tmp_path / 'imgs'), '--out', str(tmp_path / 'r.json')]) == 1
    err = capsys.readouterr().err
    assert err.startswith('codec-eval: error: cannot read ') and 'a.png' in err and len(err.splitlines()) == 1
