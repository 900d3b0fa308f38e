"""nanolink-compare against imagezmq and H.264 / H.265 (real ffmpeg, real imagezmq hub process, real host-receiver),
and the pieces it measures with: the clips, one slice per frame, a lost frame, the frames an encoder holds."""
import json

import cv2
import numpy as np
import pytest

from conftest import cli, sample_images
from nanolink.common.metrics import psnr
from nanolink.host import clips, videocodec

imageio_ffmpeg = pytest.importorskip('imageio_ffmpeg', reason='the H.264 / H.265 rows need ffmpeg: pip install '
                                                              'imageio-ffmpeg (the bench extra)')


@pytest.fixture(scope='module')
def clip():
    return clips.make_clip(cv2.imread(sample_images()[0]), 'moving', (160, 128), 12, seed=3)


def test_clips_move_or_stay_and_are_reproducible():
    photo = cv2.imread(sample_images()[1])
    moving = clips.make_clip(photo, 'moving', (96, 64), 6)
    static = clips.make_clip(photo, 'static', (96, 64), 6)
    assert all(f.shape == (64, 96, 3) and f.dtype == np.uint8 for f in moving + static)
    assert psnr(static[0], static[5]) > 38          # only sensor noise and flicker between frames
    assert psnr(moving[0], moving[5]) < 30          # the camera moved
    assert all(np.array_equal(a, b) for a, b in zip(moving, clips.make_clip(photo, 'moving', (96, 64), 6)))
    with pytest.raises(ValueError, match='kind must be one of moving, static'):
        clips.make_clip(photo, 'zoom', (96, 64), 2)


@pytest.mark.parametrize('codec', ['h264', 'h265'])
def test_low_latency_video_codecs_hold_no_frame_and_a_lost_one_damages_the_rest_of_its_gop(clip, codec):
    ffmpeg = videocodec.find_ffmpeg()
    data, _ = videocodec.encode(ffmpeg, clip, codec, 400, 30, gop=6)
    assert len(videocodec.frame_units(data, codec)) == len(clip)          # one slice per frame
    held, settings = videocodec.frames_held(data, codec)
    assert held == 0 and 'bframes=0' in settings
    intact = videocodec.decode(ffmpeg, data, codec, (160, 128))
    assert len(intact) == len(clip) and np.mean([psnr(a, b) for a, b in zip(clip, intact)]) > 25
    lossy = videocodec.drop_frame(data, codec, 2)
    assert len(lossy) < len(data) and len(videocodec.frame_units(lossy, codec)) == len(clip) - 1
    shown, frozen = videocodec.shown_after_loss(videocodec.decode(ffmpeg, lossy, codec, (160, 128)), len(clip), 2)
    assert len(shown) == len(clip) and 1 <= frozen <= 4                   # at most until the keyframe at 6
    for i in range(6, len(clip)):                                           # from the next keyframe on: intact
        assert np.array_equal(shown[i], intact[i])
    assert any(psnr(clip[i], shown[i]) < psnr(clip[i], intact[i]) - 1 for i in range(2, 6))


def test_frames_held_reads_b_frames_and_frame_threads_from_the_stream(clip):
    ffmpeg = videocodec.find_ffmpeg()
    import subprocess
    import tempfile
    with tempfile.TemporaryFile() as raw:                   # a default (not zerolatency) x264: B-frames, lookahead
        for f in clip:
            raw.write(f.tobytes())
        raw.seek(0)
        out = subprocess.run([ffmpeg, '-loglevel', 'error', '-f', 'rawvideo', '-pix_fmt', 'bgr24', '-s', '160x128',
                              '-i', '-', '-c:v', 'libx264', '-preset', 'veryfast', '-pix_fmt', 'yuv420p', '-f', 'h264',
                              '-'], stdin=raw, stdout=subprocess.PIPE, check=True).stdout
    held, settings = videocodec.frames_held(out, 'h264')
    assert held >= 3 and 'bframes=3' in settings


def test_find_ffmpeg_refuses_a_path_that_is_not_one(tmp_path):
    from nanolink.common.errors import UsageError
    with pytest.raises(UsageError, match='not an executable file'):
        videocodec.find_ffmpeg(str(tmp_path / 'nope'))


def test_compare_cli_measures_every_row_and_both_links(tmp_path):
    pytest.importorskip('imagezmq', reason='the link rows need imagezmq: pip install imagezmq (the bench extra)')
    out = tmp_path / 'cmp'
    r = cli('nanolink.host.compare', '--models', 'ae', '--size', '160x128', '--frames', 12, '--gop', 6, '--link-frames', 9,
            '--link-fps', 20, '--rate-sizes', '96x64,128x96', '--out', out, timeout=600)
    assert r.returncode == 0, r.stderr
    doc = json.load(open(str(out / 'compare.json')))
    names = [(row['kind'], row['name']) for row in doc['codecs']]
    for kind in ('moving', 'static'):
        assert [n for k, n in names if k == kind] == ['nanolink ae', "JPEG at ae's bytes", "H264 at ae's Mbit/s",
                                                       "H265 at ae's Mbit/s"]
    for row in doc['codecs']:
        assert len(row['psnr']) == 12 and row['mbps'] > 0 and row['frames_held'] == 0
    ours = [row for row in doc['codecs'] if row['name'] == 'nanolink ae' and row['kind'] == 'moving'][0]
    h264 = [row for row in doc['codecs'] if row['name'].startswith('H264') and row['kind'] == 'moving'][0]
    assert ours['lost_frame_costs'] == 1 and h264['lost_frame_costs'] >= 2     # frame 2 lost: 2..5 until the GOP
    assert abs(h264['mbps'] - ours['mbps']) / ours['mbps'] < 0.5                # the same bit rate, roughly
    links = doc['links']
    assert links['nanolink']['restart']['lost'] == 0 and links['nanolink']['restart']['decoded'] == 9
    assert links['imagezmq']['restart']['sent'] >= 3 and links['nanolink']['fast']['fps'] > 0
    assert links['imagezmq']['paced']['latency_median_ms'] > 0
    rates = doc['rates']
    assert [(r['size'], r['rate']) for r in rates] == [([w, h], q) for w, h in ((96, 64), (128, 96))
                                                        for q in (50, 75, 85, 95)]
    for size in ([96, 64], [128, 96]):
        mine = [r for r in rates if r['size'] == size]
        assert [r['mbps'] for r in mine] == sorted(r['mbps'] for r in mine)     # more quality, more bits
        assert all(r['jpeg_mbps'] is None or r['jpeg_mbps'] > 0 for r in mine)
    text = (out / 'compare.txt').read_text()
    assert 'Mbit/s at 30 fps on the 6 bundled photos' in text
    assert 'imagezmq + JPEG at those bytes (REQ/REP)' in text and ('HUNG' in text or 'went on' in text)
    assert 'Traceback' not in r.stderr


def test_the_default_lost_frame_lies_inside_a_clip_shorter_than_a_gop():
    from nanolink.common.errors import UsageError
    from nanolink.host.compare import lost_frame
    assert lost_frame(90, 30) == 10 and lost_frame(12, 6) == 2
    assert lost_frame(10, 30) == 3 and lost_frame(8, 10000) == 2          # --frames 10 with the default --gop 30
    with pytest.raises(UsageError, match='--lose must be in 1..8'):
        lost_frame(10, 30, 9)                                              # an explicit --lose is kept as given


@pytest.mark.parametrize('args, words', [
    (['--frames', '3'], '--frames must be in 8..10000'),
    (['--lose', '0'], '--lose must be in 1..'),
    (['--models', 'nope'], 'no bundled model "nope"'),
    (['--ffmpeg', '/nonexistent'], 'not an executable file'),
    (['--link-frames', '0'], '--link-frames must be in 3..10000'),
    (['--link-fps', '1e-9'], '--link-fps must be in 0.1..1000'),
    (['--link-fps', 'inf'], '--link-fps must be in 0.1..1000'),
    (['--models', ''], '--models needs at least one bundled model'),
    (['--rate-sizes', 'garbage'], '--rate-sizes: must look like'),
    (['--preset', 'nosuch'], "invalid choice: 'nosuch'"),
])
def test_compare_bad_arguments(args, words):
    r = cli('nanolink.host.compare', *args)
    assert r.returncode == 2 and words in r.stderr and 'Traceback' not in r.stderr, r.stderr
