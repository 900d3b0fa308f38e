"""Frame sources for edge-sender, chosen by the ``--camera`` value (jetson-utils style URIs).

    0, 1, ...                      camera index (V4L2 on Linux: /dev/video0, ...)
    csi://N                        Jetson CSI camera N via GStreamer nvarguscamerasrc (JetPack's OpenCV)
    /dev/videoN, v4l2:///dev/videoN  a V4L2 device
    clip.mp4, file://clip.mp4      a video file (stops at its end; --loop rewinds)
    DIR                            a folder of images in sorted file-name order (--loop repeats)
    photo.png                      one image (--loop repeats it)
    synthetic, synthetic://WxH     a moving dead-leaves pattern with natural-image statistics

``read()`` returns ``(frame, t_capture)`` with a BGR uint8 frame and a Unix timestamp, or ``None`` at the
end of a finite source. Live cameras are read by a thread that keeps only the newest frame (low
latency, no growing queue); ``read`` waits for a frame newer than the last one at most ``timeout`` s.
"""
import logging
import os
import threading
import time
from urllib.parse import unquote

import cv2
import numpy as np

from nanolink.common.errors import NanolinkError, UsageError
from nanolink.common.imageproc import ImageTooLarge, opencv_path, parse_size, read_image

log = logging.getLogger('nanolink.edge')

IMAGE_EXTS = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff', '.ppm', '.pgm', '.webp')
CAMERA_TIMEOUT_S = 5.0

CSI_PIPELINE = ('nvarguscamerasrc sensor-id={sensor} ! video/x-raw(memory:NVMM), width={width}, height={height}, '
                'framerate={fps}/1 ! nvvidconv flip-method=0 ! video/x-raw, format=BGRx ! videoconvert ! '
                'video/x-raw, format=BGR ! appsink drop=true max-buffers=1')


def image_paths(folder):
    """Sorted paths of the images (IMAGE_EXTS, any case) directly in ``folder``; [] when it is not a folder."""
    if not os.path.isdir(folder):
        return []
    return sorted(os.path.join(folder, f) for f in os.listdir(folder)
                  if f.lower().endswith(IMAGE_EXTS) and os.path.isfile(os.path.join(folder, f)))


class Source(object):
    description = ''
    live = False            # a camera whose grab thread keeps only the newest frame

    def read(self):
        raise NotImplementedError

    def close(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


class ImageFolderSource(Source):
    """Images in order; a file OpenCV cannot decode is skipped with a warning (once), as long as some can."""

    def __init__(self, paths, loop, description, single=False):
        self.paths, self.loop, self.description, self.single = paths, loop, description, single
        self._i = 0
        self.skipped = set()

    def read(self):
        failed = 0
        while True:
            if self._i >= len(self.paths):
                if not self.loop:
                    return None
                self._i = 0
            path = self.paths[self._i]
            self._i += 1
            try:
                frame = read_image(path)
            except ImageTooLarge as e:
                if self.single:
                    raise
                frame, why = None, str(e)
            else:
                why = '{}: not an image OpenCV can decode'.format(path)
            if frame is not None:
                return frame, time.time()
            if path not in self.skipped:
                self.skipped.add(path)
                log.warning('skipping %s', why)
            failed += 1
            if failed >= len(self.paths):
                raise NanolinkError('{}: {} OpenCV can decode'.format(
                    self.description, 'not an image' if self.single else 'none of its images is one'))


class VideoFileSource(Source):
    def __init__(self, path, loop):
        self.path, self.loop = path, loop
        self.description = 'video file {}'.format(path)
        self.cap = self._open()
        self._frames = 0

    def _open(self):
        cap = cv2.VideoCapture(opencv_path(self.path))
        if not cap.isOpened():
            raise NanolinkError('cannot open video {}: OpenCV has no decoder for it (convert it to MP4/H.264 or '
                                'MJPEG, or pass a folder of images)'.format(self.path))
        return cap

    def read(self):
        ok, frame = self.cap.read()
        if not ok and self.loop and self._frames:
            self.cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
            ok, frame = self.cap.read()
            if not ok:                    # some files (one frame, some containers) do not seek: reopen
                self.cap.release()
                self.cap = self._open()
                ok, frame = self.cap.read()
        if not ok and not self._frames:
            raise NanolinkError('video {} has no frame OpenCV can decode (convert it to MP4/H.264 or MJPEG, or pass '
                                'a folder of images)'.format(self.path))
        if not ok:
            return None
        self._frames += 1
        return frame, time.time()

    def close(self):
        self.cap.release()


class LiveCameraSource(Source):
    """A camera read by a grab thread that keeps only the newest frame."""
    live = True

    def __init__(self, cap, description, timeout=CAMERA_TIMEOUT_S):
        self.cap, self.description, self.timeout = cap, description, timeout
        self._cond = threading.Condition()
        self._latest = None          # (frame, t_capture, counter)
        self._counter = 0
        self._last_read = 0
        self._error = None
        self._running = True
        self._thread = threading.Thread(target=self._grab, name='camera-grab', daemon=True)
        self._thread.start()

    def _grab(self):
        while self._running:
            ok, frame = self.cap.read()
            t = time.time()
            with self._cond:
                if not ok:
                    self._error = 'the camera stopped delivering frames ({})'.format(self.description)
                    self._cond.notify_all()
                    return
                self._counter += 1
                self._latest = (frame, t, self._counter)
                self._cond.notify_all()

    def read(self):
        deadline = time.time() + self.timeout
        with self._cond:
            while self._latest is None or self._latest[2] == self._last_read:
                if self._error:
                    raise NanolinkError(self._error)
                left = deadline - time.time()
                if left <= 0:
                    raise NanolinkError('no frame from {} for {:.0f} s: check the camera and its cable'.format(
                        self.description, self.timeout))
                self._cond.wait(left)
            frame, t, self._last_read = self._latest
        return frame, t

    def close(self):
        self._running = False
        self._thread.join(timeout=5.0)
        if self._thread.is_alive():             # still inside cap.read(): releasing now would free what it reads
            log.warning('%s: the camera did not return a frame within 5 s of closing; left open', self.description)
            return
        self.cap.release()


class SyntheticSource(Source):
    """A camera panning over a dead-leaves scene (occluding discs with power-law sizes, 1/f texture, a
    little lens blur): edges, flat regions and texture at every scale, like natural images."""

    def __init__(self, width=768, height=512, seed=0, loop=True):
        self.width, self.height = width, height
        self.description = 'synthetic {}x{}'.format(width, height)
        rng = np.random.RandomState(seed)
        self.margin = max(32, min(width, height) // 6)
        H, W = height + 2 * self.margin, width + 2 * self.margin
        canvas = np.zeros((H, W, 3), np.uint8)
        canvas[:] = rng.randint(40, 200, 3)
        rmin, rmax = 2.0, min(H, W) / 5.0
        n = int(3 * H * W / (rmin * rmax * np.pi)) + 200
        u = rng.rand(n)
        radii = rmin * rmax / (rmax - u * (rmax - rmin))          # density ~ r^-2... r^-3 (dead leaves)
        for r in sorted(radii, reverse=True)[: 6000]:
            base = rng.randint(0, 256)
            colour = np.clip(base + rng.randint(-50, 51, 3), 0, 255)
            cv2.circle(canvas, (rng.randint(0, W), rng.randint(0, H)), int(r), tuple(int(c) for c in colour), -1,
                       lineType=cv2.LINE_AA)
        fy, fx = np.meshgrid(np.fft.fftfreq(H), np.fft.fftfreq(W), indexing='ij')
        f = np.sqrt(fx ** 2 + fy ** 2)
        f[0, 0] = 1.0
        noise = np.real(np.fft.ifft2(np.fft.fft2(rng.randn(H, W)) / f))
        noise = noise / (noise.std() + 1e-9) * 6.0
        img = canvas.astype(np.float32) + noise[..., None].astype(np.float32)
        self.canvas = cv2.GaussianBlur(np.clip(img, 0, 255).astype(np.uint8), (0, 0), 0.7)
        self._t = 0

    def read(self):
        m = self.margin
        a = 2 * np.pi * self._t / 240.0
        x = int(round(m + m * 0.9 * np.sin(a)))
        y = int(round(m + m * 0.9 * np.sin(2 * a + 0.5)))
        self._t += 1
        return self.canvas[y:y + self.height, x:x + self.width].copy(), time.time()


def _gstreamer_available():
    for line in cv2.getBuildInformation().splitlines():
        if line.strip().startswith('GStreamer:'):
            return 'YES' in line
    return False


def open_source(spec, loop=False, csi_size=(1280, 720), csi_fps=30, option='--camera'):
    """Open the ``--camera`` value; a NanolinkError says what is missing and what to do, naming ``option`` (the
    calling tool's own option for it: latency-bench and nanolink-demo take it as --source)."""
    spec = str(spec)
    if spec == 'synthetic' or spec.startswith('synthetic://'):
        w, h = parse_size(spec[len('synthetic://'):], option + ' synthetic://') if spec.startswith('synthetic://') else (768, 512)
        return SyntheticSource(w, h)
    if spec.startswith('csi://'):
        sensor = spec[len('csi://'):]
        if not sensor.isdigit():
            raise UsageError('{} {}: a CSI camera is csi://N with N a sensor number, e.g. csi://0'.format(option, spec))
        if not _gstreamer_available():
            raise NanolinkError('{} {}: this OpenCV was built without GStreamer (pip wheels are): on a Jetson '
                                'use JetPack\'s OpenCV (apt python3-opencv) and do not pip-install opencv; see '
                                'deploy/jetson/README.md'.format(option, spec))
        pipeline = CSI_PIPELINE.format(sensor=int(sensor), width=csi_size[0], height=csi_size[1], fps=csi_fps)
        cap = cv2.VideoCapture(pipeline, cv2.CAP_GSTREAMER)
        if not cap.isOpened():
            raise NanolinkError('cannot open CSI camera {}: is it connected and is nvargus-daemon running '
                                '(sudo systemctl restart nvargus-daemon)?'.format(sensor))
        return LiveCameraSource(cap, 'CSI camera {}'.format(sensor))
    if spec.startswith('v4l2://'):
        spec = spec[len('v4l2://'):]
    if spec.isdigit() or spec.startswith('/dev/video'):
        device = '/dev/video' + spec if spec.isdigit() else spec
        if os.name == 'posix' and not os.path.exists(device):
            raise NanolinkError('{} {}: no camera at {} (plug one in, check ls /dev/video*), or stream a '
                                'file, a folder of images or "synthetic" instead'.format(option, spec, device))
        cap = cv2.VideoCapture(int(spec) if spec.isdigit() else device, cv2.CAP_V4L2 if os.name == 'posix' else 0)
        if not cap.isOpened():
            raise NanolinkError('cannot open camera {}: it exists but OpenCV could not open it (in use by another '
                                'program? permission: add yourself to the video group)'.format(device))
        cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)
        return LiveCameraSource(cap, 'camera {}'.format(device))
    if spec.startswith('file://'):
        spec = unquote(spec[len('file://'):])          # file:///tmp/my%20clip.mp4 -> /tmp/my clip.mp4
    if os.path.isdir(spec):
        paths = image_paths(spec)
        if not paths:
            raise NanolinkError('{} {}: the folder has no images ({})'.format(option, spec, ', '.join(IMAGE_EXTS)))
        return ImageFolderSource(paths, loop, 'image folder {} ({} images)'.format(spec, len(paths)))
    if os.path.isfile(spec):
        if spec.lower().endswith(IMAGE_EXTS):
            return ImageFolderSource([spec], loop, 'image {}'.format(spec), single=True)
        return VideoFileSource(spec, loop)
    raise NanolinkError('{0} {1}: no such camera, file or folder{2}. {0} takes a camera index (0), csi://0, '
                        '/dev/video0, v4l2:///dev/video0, a video file, a folder of images or synthetic'.format(
                            option, spec, ' (network streams such as rtsp:// or http:// are not supported)'
                            if '://' in spec else ''))
