import json
import os

import cv2

from conftest import cli
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
    assert 20 < s['psnr'] < 60 and 0.5 < s['ms_ssim'] <= 1 and 0.2 < s['bpp'] < 0.505   # zlib: below 0.5
    side = cv2.imread(str(out / 'side_by_side.png'))
    assert side.shape == (512, 2 * 768, 3)
    assert len(os.listdir(str(out / 'frames' / 'edge'))) == 20
