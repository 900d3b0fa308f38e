"""host/record.py's Recorder on real video files: the frame rate estimated from capture times must be one the
encoder takes (an arbitrary 1 / median gap, such as 123.456789 fps, made mp4v refuse the stream)."""
import cv2
import numpy as np
import pytest

from nanolink.host.record import Recorder, estimate_fps, writable_fps


def frames_in(path):
    cap = cv2.VideoCapture(str(path))
    n = 0
    while cap.read()[0]:
        n += 1
    cap.release()
    return n


@pytest.mark.parametrize('fps', [123.456789, 97.1234567, 201.3333333, 239.987654, 7.7777777])
def test_a_stream_at_an_estimated_odd_rate_is_recorded(tmp_path, fps):
    rec = Recorder(str(tmp_path / '{stream}.mp4'))
    rng = np.random.RandomState(0)
    for i in range(12):
        rec.add('cam', 1000.0 + i / fps, rng.randint(0, 256, (64, 96, 3), dtype=np.uint8))
    rec.close()
    assert rec.refused == []
    assert [(p, n) for p, n, _ in rec.files] == [(str(tmp_path / 'cam.mp4'), 12)]
    assert rec.files[0][2] == pytest.approx(fps, abs=0.006)
    assert frames_in(tmp_path / 'cam.mp4') == 12


def test_writable_fps_keeps_the_rate_to_a_hundredth():
    for fps in (1.0, 25.0, 29.97, 123.456789, 240.0):
        assert abs(writable_fps(fps) - fps) <= 0.005
    assert estimate_fps([0.0, 0.1, 0.2, 0.3]) == pytest.approx(10.0)
