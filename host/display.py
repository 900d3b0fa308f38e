"""Where decoded frames go: an OpenCV window (--show) and PNG files (--save)."""
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
    """One OpenCV window per stream with an FPS / latency / bpp overlay. Press q to quit."""

    def __init__(self, title='nanolink'):
        if not gui_backends():
            raise NanolinkError('--show: this OpenCV has no GUI (opencv-python-headless?): pip install '
                                'opencv-python, or use --save DIR to write frames instead')
        if sys.platform.startswith('linux') and not (os.environ.get('DISPLAY') or os.environ.get('WAYLAND_DISPLAY')):
            raise NanolinkError('--show: no display ($DISPLAY is not set): run on the desktop, use ssh -X, or '
                                'use --save DIR to write frames instead')
        self.title = title

    def show(self, stream, image, overlay):
        """Draw overlay lines on a copy of image and show it; returns False when the user pressed q."""
        img = image.copy()
        for i, text in enumerate(overlay):
            y = 22 + 22 * i
            cv2.putText(img, text, (9, y + 1), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 0), 3, cv2.LINE_AA)
            cv2.putText(img, text, (8, y), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 255), 1, cv2.LINE_AA)
        cv2.imshow('{} - {}'.format(self.title, stream), img)
        return (cv2.waitKey(1) & 0xFF) != ord('q')

    def close(self):
        cv2.destroyAllWindows()


class FrameSaver(object):
    """Writes DIR/<stream>/<seq, 8 digits>.png (files sort in sequence order) on a writer thread.

    PNG encoding takes tens of milliseconds, so ``save`` only queues the frame (the receive loop keeps
    decoding); when ``max_pending`` frames wait, ``save`` blocks until the writer catches up (no frame is
    dropped and memory stays bounded). ``close`` writes everything still queued.
    """

    def __init__(self, folder, max_pending=32):
        self.folder = folder
        try:
            os.makedirs(folder, exist_ok=True)
        except OSError as e:
            raise NanolinkError('--save {}: cannot create the folder ({})'.format(folder, e.strerror))
        self._queue = queue.Queue(max_pending)
        self._error = None
        self._thread = threading.Thread(target=self._write_loop, name='png-writer', daemon=True)
        self._thread.start()

    def path(self, stream, seq):
        return os.path.join(self.folder, stream, '{:08d}.png'.format(seq))

    def save(self, stream, seq, image):
        if self._error:
            raise NanolinkError(self._error)
        self._queue.put((self.path(stream, seq), image))

    def _write_loop(self):
        while True:
            item = self._queue.get()
            if item is None:
                return
            path, image = item
            d = os.path.dirname(path)
            if not os.path.isdir(d):
                os.makedirs(d, exist_ok=True)
            if not cv2.imwrite(path, image, [cv2.IMWRITE_PNG_COMPRESSION, 1]):
                self._error = '--save: cannot write {} (disk full? permissions?)'.format(path)

    def close(self):
        """Write every queued frame, then stop the writer."""
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()
        if self._error:
            raise NanolinkError(self._error)
