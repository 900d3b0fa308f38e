"""host-receiver --record PATH: decoded streams as video files (OpenCV VideoWriter), on a writer thread.

    --record out.mp4              one stream: out.mp4; further streams: out.<stream>.mp4
    --record 'rec/{stream}.mp4'   one file per stream
    --record out.avi              MJPG in AVI; .mp4 uses mp4v, .mkv XVID; --record-fourcc overrides

The frame rate written in the file is --record-fps, or else the stream's own rate estimated from the capture
times of its first frames (so playback runs at the speed of the camera, not of the receiver). A stream whose
frame size changes continues in a new file, ``<name>.part2.mp4`` and so on, since a video file has one size.
Frames are queued to the writer (bounded: the receive loop waits rather than dropping a frame) and all
queued frames are written at exit. The codec is tried once at start (an error there, before any frame); a stream
whose frame size that codec refuses (e.g. 1x1) is not recorded -- a warning says so, the summary lists it, and
receiving, showing and saving go on. OpenCV's video encoders keep even sizes: an odd width or height loses its last
column or row in the file (a warning says so; --save keeps every pixel).
"""
import logging
import os
import tempfile

import cv2

from nanolink.common.errors import NanolinkError, UsageError
from nanolink.host.display import QueuedWriter

log = logging.getLogger('nanolink.host')
FOURCC = {'.mp4': 'mp4v', '.m4v': 'mp4v', '.mov': 'mp4v', '.avi': 'MJPG', '.mkv': 'XVID'}
ESTIMATE_FRAMES = 10        # frames whose capture times set the frame rate when --record-fps is not given


def fourcc_for(path, fourcc=None):
    ext = os.path.splitext(path)[1].lower()
    code = fourcc or FOURCC.get(ext)
    if code is None:
        raise UsageError('--record {}: unknown video extension "{}"; use .mp4, .avi or .mkv, or give '
                         '--record-fourcc'.format(path, ext))
    if len(code) != 4:
        raise UsageError('--record-fourcc must be 4 characters (e.g. mp4v, MJPG, avc1), got "{}"'.format(code))
    return code


def writable_fps(fps):
    """fps rounded to 1/100. OpenCV hands fps to FFmpeg as a decimal fraction (to 1/1000) and MPEG-4 refuses a
    time base denominator over 65535: 123.457 fps (123457/1000) is refused, so an estimated rate such as
    1 / 0.0081 s would make the encoder refuse the whole stream; 123.46 (6173/50) is taken."""
    return round(fps, 2)


def estimate_fps(times):
    """Frames per second from capture times (median interval), within 1..240; 25 with fewer than 2 times."""
    if len(times) < 2:
        return 25.0
    gaps = sorted(b - a for a, b in zip(times, times[1:]) if b > a)
    if not gaps:
        return 25.0
    return min(240.0, max(1.0, 1.0 / gaps[len(gaps) // 2]))


class _Track(object):
    """One stream's current file."""

    def __init__(self, stream, base):
        self.stream, self.base, self.part, self.writer, self.size, self.path = stream, base, 1, None, None, None
        self.pending, self.times, self.frames = [], [], 0
        self.refused = False        # the codec would not open a file of this stream's frame size


class Recorder(QueuedWriter):
    def __init__(self, path, fps=None, fourcc=None, max_pending=64):
        self.path, self.fps = path, fps
        self.fourcc = fourcc_for(path, fourcc)
        d = os.path.dirname(path.replace('{stream}', 'x'))
        try:
            if d:
                os.makedirs(d, exist_ok=True)
        except OSError as e:
            raise NanolinkError('--record {}: cannot create the folder ({})'.format(path, e.strerror))
        self._probe(d)
        self.files = []                 # (path, frames written, fps) of finished files, for the summary
        self.refused = []               # (path, (w, h), frames) of streams the codec refused, for the summary
        self._tracks = {}
        self._first = None
        QueuedWriter.__init__(self, max_pending, 'recorder')

    def _probe(self, folder):
        """Open (and delete) a small video file with this codec, so a missing encoder is an error at start."""
        fd, probe = tempfile.mkstemp(suffix=os.path.splitext(self.path)[1], dir=folder or None)
        os.close(fd)
        try:
            w = cv2.VideoWriter(probe, cv2.VideoWriter_fourcc(*self.fourcc), 25.0, (64, 64))
            ok = w.isOpened()
            w.release()
        finally:
            os.remove(probe)
        if not ok:
            raise NanolinkError('--record {}: OpenCV cannot write {} video here (no encoder for that codec?): try '
                                '--record out.avi (MJPG)'.format(self.path, self.fourcc))

    def add(self, stream, t_cap, image):
        """Queue a decoded BGR frame of ``stream`` captured at t_cap."""
        self.put((stream, t_cap, image))

    def end(self, stream):
        """Finish the stream's file (it went idle and was evicted); if it comes back it continues in a new part."""
        self.put((stream, None, None))

    def _base(self, stream):
        if '{stream}' in self.path:
            return self.path.replace('{stream}', stream)
        if self._first is None:
            self._first = stream
        if stream == self._first:
            return self.path
        root, ext = os.path.splitext(self.path)
        return '{}.{}{}'.format(root, stream, ext)

    def finish(self):
        for track in self._tracks.values():
            self._guarded(self._finish, track)

    def write(self, item):
        stream, t_cap, image = item
        if image is None:                       # end(stream)
            track = self._tracks.get(stream)
            if track is not None and (track.writer is not None or track.pending):
                self._finish(track)
                track.part += 1
            return
        track = self._tracks.get(stream)
        if track is None:
            track = self._tracks[stream] = _Track(stream, self._base(stream))
        size = (image.shape[1], image.shape[0])
        if track.refused and size == track.size:
            track.frames += 1                   # counted for the summary, not written
            return
        if track.size is not None and size != track.size:
            self._finish(track)
            track.part += 1
            log.warning('--record: stream %s changed size to %dx%d, continuing in a new file', stream, *size)
        track.size = size
        if track.writer is None:
            track.pending.append(image)
            track.times.append(t_cap)
            if self.fps or len(track.pending) >= ESTIMATE_FRAMES:
                self._open(track)
            return
        track.writer.write(image)
        track.frames += 1

    def _open(self, track):
        root, ext = os.path.splitext(track.base)
        track.path = track.base if track.part == 1 else '{}.part{}{}'.format(root, track.part, ext)
        fps = writable_fps(self.fps or estimate_fps(track.times))
        w = cv2.VideoWriter(track.path, cv2.VideoWriter_fourcc(*self.fourcc), fps, track.size)
        if not w.isOpened():
            log.warning('--record: not recording stream %s to %s: the %s encoder refuses %dx%d frames (decoding, '
                        'showing and --save go on)', track.stream, track.path, self.fourcc,
                        *track.size)
            track.refused, track.frames = True, len(track.pending)
            track.pending, track.times = [], []
            return
        if track.size[0] % 2 or track.size[1] % 2:
            log.warning('--record: %s gets %dx%d frames; video encoders keep even sizes, so the file may lose the '
                        'last odd column / row (--save keeps every pixel)', track.path, *track.size)
        track.writer, track.fps = w, fps
        for image in track.pending:
            w.write(image)
        track.frames += len(track.pending)
        track.pending, track.times = [], []

    def _finish(self, track):
        if track.writer is None and track.pending:
            self._open(track)
        if track.refused:
            self.refused.append((track.path, track.size, track.frames))
        elif track.writer is not None:
            track.writer.release()
            self.files.append((track.path, track.frames, track.fps))
            log.info('--record: wrote %s (%d frames at %.2f fps)', track.path, track.frames, track.fps)
        track.writer, track.frames, track.size, track.refused = None, 0, None, False
