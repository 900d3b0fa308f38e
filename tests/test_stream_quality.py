"""scripts/stream_quality.py, which made README's through-the-CLIs row: real edge-sender and host-receiver
processes over loopback, and a table of what host-receiver saved against the source images."""
import os
import re
import subprocess
import sys

import cv2

from conftest import sample_images

SCRIPT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'scripts', 'stream_quality.py')


def _run(images, out, *args):
    r = subprocess.run([sys.executable, SCRIPT, '--images', str(images), '--out', str(out)] + list(args),
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    text = (out / 'stream-quality.txt').read_text()
    assert text == r.stdout.rstrip('\n') + '\n'
    rows = {}
    for line in text.splitlines():
        m = re.match(r'\| (nanolink|OpenCV JPEG)[^|]*\| ([\d.]+) \| ([\d.]+) \| ([\d.]+) \|', line)
        if m:
            rows[m.group(1)] = tuple(float(v) for v in m.groups()[1:])
    return text, rows


def test_stream_quality_measures_the_saved_frames_against_jpeg_of_no_more_bytes(tmp_path):
    images = tmp_path / 'imgs'
    images.mkdir()
    for p in sample_images()[:2]:
        cv2.imwrite(str(images / (os.path.basename(p)[:-4] + '.png')), cv2.imread(p)[:256, :384])
    text, rows = _run(images, tmp_path / 'fast', '--model', 'cae-bin')
    streams = os.listdir(str(tmp_path / 'fast' / 'frames'))
    assert '2 images from' in text and len(streams) == 1
    assert len(os.listdir(str(tmp_path / 'fast' / 'frames' / streams[0]))) == 2
    bpp, db, msssim = rows['nanolink']
    jbpp, jdb, _ = rows['OpenCV JPEG']
    assert 0.05 < bpp < 2.0 and 18.0 < db < 40.0 and 0.7 < msssim <= 1.0
    assert jbpp <= bpp or 'no OpenCV JPEG is as small' in text           # JPEG never gets more bytes silently
    text, rows = _run(images, tmp_path / 'quality', '--model', 'cae-bin', '--decoder-variant', 'quality')
    assert '--decoder-variant quality' in text.splitlines()[0]
    assert rows['nanolink'][0] == bpp                                     # the same messages ...
    assert rows['nanolink'][1] > db                                       # ... decoded better
