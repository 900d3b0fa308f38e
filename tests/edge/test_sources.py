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
    import shutil
    spaced = os.path.join(os.path.dirname(video_file), 'my clip.avi')
    shutil.copy(video_file, spaced)
    with open_source('file://' + spaced.replace(' ', '%20')) as s:      # a file:// URI is percent-decoded
        assert s.read() is not None
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
    assert words in str(e.value) and str(e.value).startswith('--camera ')
    with pytest.raises(NanolinkError) as e:                     # latency-bench and nanolink-demo call it --source
        open_source(spec, option='--source')
    assert words in str(e.value) and '--camera' not in str(e.value)


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


def test_a_folder_skips_images_opencv_cannot_decode_and_says_so(tmp_path, caplog):
    for name, v in (('a.png', 10), ('c.png', 30)):
        cv2.imwrite(str(tmp_path / name), np.full((16, 16, 3), v, np.uint8))
    (tmp_path / 'b.png').write_text('not a png')                    # a corrupt file between two good ones
    (tmp_path / 'd.jpg').write_bytes(b'')                            # an empty one at the end
    os.mkdir(str(tmp_path / 'e.jpg'))                                # a folder with an image name: not listed
    with open_source(str(tmp_path), loop=True) as s:
        assert [s.read()[0][0, 0, 0] for _ in range(5)] == [10, 30, 10, 30, 10]
    warned = [r.getMessage() for r in caplog.records if 'skipping' in r.getMessage()]
    assert len(warned) == 2 and 'b.png' in warned[0] and 'd.jpg' in warned[1]     # once per file, not per loop
    bad_only = tmp_path / 'bad'
    bad_only.mkdir()
    (bad_only / 'x.png').write_text('no')
    with open_source(str(bad_only)) as s:
        with pytest.raises(NanolinkError, match='none of its images is one OpenCV can decode'):
            s.read()


def _write_video(path, frames, size=(64, 48)):
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*'MJPG'), 10.0, size)
    assert w.isOpened()
    for i in range(frames):
        w.write(np.full((size[1], size[0], 3), 40 * (i + 1), np.uint8))
    w.release()


def test_loop_of_a_one_frame_video_repeats_it(tmp_path):
    _write_video(tmp_path / 'one.avi', 1)
    with open_source(str(tmp_path / 'one.avi'), loop=True) as s:
        frames = [s.read() for _ in range(4)]
    assert all(f is not None and f[0].shape == (48, 64, 3) for f in frames)
    with open_source(str(tmp_path / 'one.avi')) as s:                # without --loop: one frame, then the end
        assert s.read() is not None and s.read() is None


def test_a_video_without_frames_is_an_error_not_an_empty_stream(tmp_path):
    _write_video(tmp_path / 'empty.avi', 0)
    try:
        src = open_source(str(tmp_path / 'empty.avi'))
    except NanolinkError as e:                                       # some OpenCV builds refuse to open it at all
        assert 'cannot open video' in str(e)
        return
    with src:
        with pytest.raises(NanolinkError, match='has no frame OpenCV can decode'):
            src.read()


def test_non_ascii_file_names_under_the_c_locale(tmp_path, host_process):
    """A Nano's systemd service or container may run Python 3.6 under the C locale, where OpenCV crashed (SIGSEGV)
    on non-ASCII paths. A real edge-sender in that locale streams such a folder and video to a real host."""
    import subprocess
    import sys
    folder = tmp_path / 'dossier été'
    folder.mkdir()
    cv2.imencode('.png', np.full((32, 48, 3), 90, np.uint8))[1].tofile(str(folder / 'ünïcødé_日本.png'))
    _write_video(tmp_path / 'vidéo 1.avi', 3)
    env = dict(os.environ, LC_ALL='C', LANG='C')
    env.pop('PYTHONUTF8', None)
    for src, n in ((folder, 2), (tmp_path / 'vidéo 1.avi', 3)):
        h = host_process('--model', 'raw', '--frames', n, '--timeout', 60)
        r = subprocess.run([sys.executable, '-X', 'utf8=0', '-m', 'nanolink.edge.cli', '--camera',
                            os.fsencode(str(src)), '--frames', str(n), '--loop', '--model', 'raw', '--connect',
                            h.endpoint, '--quiet'],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, timeout=60)
        assert r.returncode == 0, r.stderr.decode('utf-8', 'replace')
        rc, err = h.wait(60)
        assert rc == 0 and '{} decoded'.format(n) in err, err
