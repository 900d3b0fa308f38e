import os

import cv2
import numpy as np
import pytest

from nanolink.common.errors import NanolinkError
from nanolink.edge.sources import open_source


def test_image_folder_in_sorted_order_and_loop(tmp_path):
    for name, v in (('b.png', 20), ('a.png', 10), ('c.png', 30)):
        cv2.imwrite(str(tmp_path / name), np.full((16, 16, 3), v, np.uint8))
    (tmp_path / 'notes.txt').write_text('not an image')
    with open_source(str(tmp_path)) as s:
        assert [s.read()[0][0, 0, 0] for _ in range(3)] == [10, 20, 30]
        assert s.read() is None
    with open_source(str(tmp_path), loop=True) as s:
        assert [s.read()[0][0, 0, 0] for _ in range(4)] == [10, 20, 30, 10]


def test_video_file_reads_every_frame_then_ends(video_file):
    with open_source(video_file) as s:
        frames = []
        while True:
            item = s.read()
            if item is None:
                break
            frames.append(item[0])
    assert len(frames) == 24 and frames[0].shape == (512, 768, 3)
    with open_source('file://' + video_file, loop=True) as s:
        assert sum(s.read() is not None for _ in range(30)) == 30


def test_synthetic_moves_and_looks_natural():
    with open_source('synthetic://320x240') as s:
        a, t = s.read()[0], s.read()[1]
        b = s.read()[0]
    assert a.shape == (240, 320, 3) and t > 0
    assert not np.array_equal(a, b)                                 # it moves
    grey = cv2.cvtColor(a, cv2.COLOR_BGR2GRAY).astype(np.float64)
    assert grey.std() > 20                                          # not flat
    f = np.abs(np.fft.fftshift(np.fft.fft2(grey - grey.mean())))
    cy, cx = np.array(f.shape) // 2
    low, high = f[cy - 8:cy + 8, cx - 8:cx + 8].mean(), f[:16, :16].mean()
    assert low > 20 * high                                          # energy falls with frequency, like photos


@pytest.mark.parametrize('spec, words', [
    ('9', 'no camera at /dev/video9'),
    ('/dev/video9', 'no camera at /dev/video9'),
    ('v4l2:///dev/video9', 'no camera at /dev/video9'),
    ('csi://x', 'csi://N'),
    ('no/such/clip.mp4', 'no such camera, file or folder'),
])
def test_missing_sources_say_what_to_do(spec, words):
    with pytest.raises(NanolinkError) as e:
        open_source(spec)
    assert words in str(e.value)


def test_csi_without_gstreamer_points_to_jetpack_opencv():
    if 'GStreamer:                   YES' in cv2.getBuildInformation():
        pytest.skip('this OpenCV has GStreamer; the no-GStreamer message cannot be shown')
    with pytest.raises(NanolinkError, match="JetPack's OpenCV"):
        open_source('csi://0')


def test_empty_folder_and_undecodable_video(tmp_path):
    with pytest.raises(NanolinkError, match='has no images'):
        open_source(str(tmp_path))
    bad = tmp_path / 'bad.mp4'
    bad.write_bytes(os.urandom(2000))
    with pytest.raises(NanolinkError, match='cannot open video'):
        open_source(str(bad))


def test_docker_edge_clip_is_a_video_the_edge_reads(tmp_path):
    """docker/make_clip.py (run in Dockerfile.edge on Python 3.6) writes the edge container's camera."""
    import subprocess
    import sys
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    out = str(tmp_path / 'data' / 'clip.avi')
    subprocess.run([sys.executable, os.path.join(root, 'docker', 'make_clip.py'), out, '--frames', '12',
                    '--size', '160x120'], check=True, timeout=120)
    frames = []
    with open_source(out) as s:
        for _ in range(20):
            item = s.read()
            if item is None:
                break
            frames.append(item[0])
    assert len(frames) == 12 and frames[0].shape == (120, 160, 3)
    assert np.abs(frames[1].astype(int) - frames[0].astype(int)).mean() > 1        # it pans: frames differ
