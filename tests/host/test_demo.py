import json
import os

import cv2
import pytest

from conftest import CAE_QUALITIES, cli
from nanolink.common.stages import EDGE_STAGES, HOST_STAGES


def test_demo_end_to_end(tmp_path):
    out = tmp_path / 'demo'
    r = cli('nanolink.host.demo', '--frames', 20, '--out', out, timeout=300)
    assert r.returncode == 0, r.stderr + r.stdout
    for stage in EDGE_STAGES + HOST_STAGES + ('end_to_end',):
        assert '\n' + stage in r.stdout, stage
    assert 'T_20 = ' in r.stdout and 'ms/frame' in r.stdout and 'PSNR' in r.stdout and 'MS-SSIM' in r.stdout
    s = json.load(open(str(out / 'summary.json')))
    assert s['frames_decoded'] == 20 and s['quality_frames'] == 20
    assert 20 < s['psnr'] < 60 and 0.5 < s['ms_ssim'] <= 1 and 0.2 < s['bpp'] < 0.8   # cae quality 3: ~0.58
    side = cv2.imread(str(out / 'side_by_side.png'))
    assert side.shape == (512, 2 * 768, 3)
    assert len(os.listdir(str(out / 'frames' / 'edge'))) == 20


def test_demo_on_frames_too_small_for_ms_ssim_writes_strict_json(tmp_path, sample_frame):
    src = tmp_path / 'src'
    src.mkdir()
    cv2.imwrite(str(src / 'a.png'), sample_frame[:64, :96])
    r = cli('nanolink.host.demo', '--source', src, '--frames', 2, '--out', tmp_path / 'demo', timeout=300)
    assert r.returncode == 0, r.stderr + r.stdout
    assert 'MS-SSIM n/a (frames of 160 px or less on a side)' in r.stdout
    text = open(str(tmp_path / 'demo' / 'summary.json')).read()
    s = json.loads(text, parse_constant=lambda c: pytest.fail('not strict JSON: ' + c))
    assert s['ms_ssim'] is None and s['psnr'] > 20


def test_demo_refuses_values_the_edge_would_refuse(tmp_path):
    for args, words in ((['--channels', '0', '--model', 'cae-bin'], '--channels must be at least 1'),
                        (['--jpeg-quality', '0', '--model', 'ae'], '--jpeg-quality must be in 1..100'),
                        (['--quality', '9'], '--quality must be in ' + CAE_QUALITIES),
                        (['--fps', '0'], '--fps must be > 0'),
                        (['--model', 'jpeg'], 'a bundled learned model: one of ae, ae-full, cae, cae-bin'),
                        (['--channels', '8', '--model', 'ae'], 'ae sets its rate with --jpeg-quality'),
                        (['--channels', '8'], 'cae sets its rate with --quality ' + CAE_QUALITIES),
                        (['--model', 'cae-bin', '--channels', '5'], 'has encoders for 4, 8, 16 channels'),
                        (['--size', '0x0'], 'width and height must be between 8 and 4096')):
        r = cli('nanolink.host.demo', '--out', tmp_path / 'd', *args)
        assert r.returncode == 2 and words in r.stderr, r.stderr
    (tmp_path / 'file').write_text('x')
    r = cli('nanolink.host.demo', '--out', tmp_path / 'file' / 'sub', '--frames', 1)
    assert r.returncode == 1 and 'cannot create the folder' in r.stderr and 'Traceback' not in r.stderr


def test_demo_with_a_source_that_does_not_exist_says_so_in_one_line_and_makes_nothing(tmp_path):
    r = cli('nanolink.host.demo', '--source', tmp_path / 'nowhere', '--out', tmp_path / 'd', cwd=str(tmp_path))
    assert r.returncode == 1 and r.stderr.startswith('nanolink-demo: error: --source ') and 'no such camera, file or ' \
        'folder' in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and sorted(p.name for p in tmp_path.iterdir()) == []
