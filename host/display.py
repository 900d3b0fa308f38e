"""Where decoded frames go: an OpenCV window (--show) and PNG files (--save). Video files: record.py; the
browser: web.py."""
import collections
import os
import queue
import sys
import threading

import cv2

from nanolink.common.errors import NanolinkError


def gui_backends():
    """Names of OpenCV's GUI backends in this build ([] for opencv-python-headless)."""
    found, in_gui = [], False
    for line in cv2.getBuildInformation().splitlines():
        s = line.strip()
        if s.startswith('GUI:'):
            in_gui = True
            if 'NONE' in s:
                return []
            continue
        if in_gui:
            if not line.startswith('    ') or not s:
                break
            name, _, val = s.partition(':')
            if 'font' in name.lower() or 'vtk' in name.lower():
                continue
            if val.strip().upper().startswith(('YES', 'UI')) or 'ver' in val:
                found.append(name.strip())
    return found


class Window(object):
    """One OpenCV window per stream with an overlay (stream, FPS, bpp, latency, quality).

    Keys (in any of the windows): q or Esc quits, s saves a snapshot of every window's current frame (without
    the overlay) as PNG, space pauses / resumes the display (frames are still received, decoded, counted,
    saved, recorded and served; only the windows hold still).
    """

    def __init__(self, title='nanolink', snapshot_dir='.'):
        if not gui_backends():
            raise NanolinkError('--show: this OpenCV has no GUI (opencv-python-headless?): pip install '
                                'opencv-python, or use --save DIR to write frames instead')
        if sys.platform.startswith('linux') and not (os.environ.get('DISPLAY') or os.environ.get('WAYLAND_DISPLAY')):
            raise NanolinkError('--show: no display ($DISPLAY is not set): run on the desktop, use ssh -X, or '
                                'use --save DIR to write frames instead')
        self.title, self.snapshot_dir = title, snapshot_dir
        self.paused = False
        self._shown = {}           # stream -> (seq, image without overlay)

    def name(self, stream):
        return '{} - {}'.format(self.title, stream)

    def show(self, stream, seq, image, overlay):
        """Draw overlay lines on a copy of image and show it (unless paused)."""
        if self.paused:
            return
        self._shown[stream] = (seq, image)
        img = image.copy()
        for i, text in enumerate(overlay):
            y = 22 + 22 * i
            cv2.putText(img, text, (9, y + 1), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 0), 3, cv2.LINE_AA)
            cv2.putText(img, text, (8, y), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 255), 1, cv2.LINE_AA)
        cv2.imshow(self.name(stream), img)

    def poll(self):
        """Handle window events and keys; returns 'quit', 'snapshot', 'pause', 'resume' or None."""
        key = cv2.waitKey(1)
        if key < 0:
            return None
        key &= 0xFF
        if key in (ord('q'), 27):
            return 'quit'
        if key == ord('s'):
            return 'snapshot'
        if key == ord(' '):
            self.paused = not self.paused
            if self.paused:
                for stream, (seq, image) in self._shown.items():      # say so on the held frame
                    img = image.copy()
                    cv2.putText(img, 'PAUSED (space resumes)', (8, img.shape[0] - 12), cv2.FONT_HERSHEY_SIMPLEX,
                                0.6, (0, 255, 255), 2, cv2.LINE_AA)
                    cv2.imshow(self.name(stream), img)
            return 'pause' if self.paused else 'resume'
        return None

    def snapshot(self):
        """Write each window's current frame to snapshot_dir/<stream>-<seq>.png; returns the paths."""
        try:
            os.makedirs(self.snapshot_dir, exist_ok=True)
        except OSError as e:
            raise NanolinkError('snapshot: cannot create {} ({})'.format(self.snapshot_dir, e.strerror))
        paths = []
        for stream, (seq, image) in sorted(self._shown.items()):
            path = os.path.join(self.snapshot_dir, '{}-{:08d}.png'.format(stream, seq))
            ok, png = cv2.imencode('.png', image)
            try:                                # written whole, then renamed: a watcher never sees half a PNG
                if not ok:
                    raise OSError('PNG encoding failed')
                with open(path + '.part', 'wb') as f:
                    f.write(png.tobytes())
                os.replace(path + '.part', path)
            except OSError as e:
                raise NanolinkError('snapshot: cannot write {} ({}; disk full? permissions?)'.format(
                    path, getattr(e, 'strerror', None) or e))
            paths.append(path)
        return paths

    def forget(self, stream):
        """Close an evicted stream's window."""
        if self._shown.pop(stream, None) is not None:
            cv2.destroyWindow(self.name(stream))

    def close(self):
        cv2.destroyAllWindows()


class QueuedWriter(object):
    """A writer thread behind a bounded queue, for outputs too slow for the receive loop (PNG, video files).

    ``put`` only queues (and blocks when ``max_pending`` items wait: nothing is dropped and memory stays
    bounded); the thread calls ``write(item)`` for each, then ``finish()`` once at the end. Any error raised there
    (a NanolinkError, an OSError of a full disk, a cv2.error) stops the writer; it is kept and raised again as a
    NanolinkError by the next ``put`` (which never waits on a writer that has stopped) or by ``close``, which
    writes everything still queued first.
    """

    def __init__(self, max_pending, name):
        self._queue = queue.Queue(max_pending)
        self._error = None
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    def put(self, item):
        while True:
            if self._error:
                raise NanolinkError(self._error)
            if not self._thread.is_alive():
                raise NanolinkError('{} stopped'.format(self._thread.name))
            try:
                self._queue.put(item, timeout=0.5)
                return
            except queue.Full:
                continue

    def write(self, item):
        raise NotImplementedError

    def finish(self):
        """Called on the writer thread after the last item."""

    def _loop(self):
        while True:
            item = self._queue.get()
            if item is None:
                self._queue.task_done()
                break
            if self._error is None:             # after an error the rest is drained, not written
                self._guarded(self.write, item)
            self._queue.task_done()
        self._guarded(self.finish)

    def _guarded(self, fn, *args):
        try:
            fn(*args)
        except NanolinkError as e:
            self._error = self._error or str(e)
        except (OSError, cv2.error, ValueError, MemoryError) as e:
            self._error = self._error or '{}: {}: {}'.format(self._thread.name, type(e).__name__, e)

    def close(self):
        """Write every queued item, finish, and stop the thread."""
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()
        if self._error:
            raise NanolinkError(self._error)


class FrameSaver(QueuedWriter):
    """Writes DIR/<stream>/<seq, 8 digits>.png (files sort in sequence order) on a writer thread.

    PNG encoding takes tens of milliseconds, so ``save`` only queues the frame (the receive loop keeps
    decoding); when ``max_pending`` frames wait, ``save`` blocks until the writer catches up (no frame is
    dropped and memory stays bounded). ``close`` writes everything still queued.
    """

    def __init__(self, folder, max_pending=32):
        self.folder = folder
        self._done = collections.deque()        # appended by the writer thread, read by the receive loop
        self._idle = threading.Event()
        try:
            os.makedirs(folder, exist_ok=True)
        except OSError as e:
            raise NanolinkError('--save {}: cannot create the folder ({})'.format(folder, e.strerror))
        QueuedWriter.__init__(self, max_pending, 'png-writer')

    def path(self, stream, seq):
        return os.path.join(self.folder, stream, '{:08d}.png'.format(seq))

    def save(self, stream, seq, image, done=None):
        """Queue a frame; ``done`` comes back from ``written`` once its file is on disk."""
        self.put((self.path(stream, seq), image, done))

    def written(self):
        """The ``done`` values of the frames written since the last call, in order."""
        out = []
        while self._done:
            out.append(self._done.popleft())
        return out

    @property
    def busy(self):
        """Frames queued and not yet written."""
        return self._queue.unfinished_tasks > 0

    def drain(self):
        """Wait until every queued frame is written (or the writer stopped)."""
        while self._thread.is_alive() and self._queue.unfinished_tasks:
            self._idle.wait(0.1)

    def write(self, item):
        path, image, done = item
        d = os.path.dirname(path)
        if not os.path.isdir(d):
            os.makedirs(d, exist_ok=True)
        if not cv2.imwrite(path, image, [cv2.IMWRITE_PNG_COMPRESSION, 1]):
            raise NanolinkError('--save: cannot write {} (disk full? permissions?)'.format(path))
        if done is not None:
            self._done.append(done)
