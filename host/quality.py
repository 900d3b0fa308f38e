"""Live quality monitor: PSNR and MS-SSIM of decoded frames against the sender's reference frames.

``edge-sender --reference-every N`` puts a high-quality JPEG of every N-th source frame into its message
(wire field ``ref``). The host hands the decoded frame and that JPEG to this monitor, which scores them on
a worker thread (MS-SSIM of a 1008x1008 frame takes ~0.7 s of CPU here, too long for the receive loop).
When the worker is still busy with an earlier pair, the new one is skipped and counted, never queued
without bound. The receive loop collects finished scores with ``results()`` and logs them.

The reference is itself a JPEG (quality 95 by default, ~40+ dB from the camera frame), so the scores
measure the codec against that, not against the raw sensor image; they are comparable over time and
between models, which is what a monitor is for.
"""
import collections
import logging
import queue
import threading
import time

from nanolink.common import metrics, wire
from nanolink.common.classical import decode_jpeg

log = logging.getLogger('nanolink.host')


class StreamQuality(object):
    """Running quality figures of one stream."""

    def __init__(self):
        self.n, self.psnr_sum, self.ms_ssim_sum, self.ms_ssim_n = 0, 0.0, 0.0, 0
        self.last = None          # the latest result dict

    def add(self, result):
        self.n += 1
        self.psnr_sum += result['psnr']
        if result['ms_ssim'] is not None:
            self.ms_ssim_sum += result['ms_ssim']
            self.ms_ssim_n += 1
        self.last = result

    def as_dict(self):
        return {'n': self.n, 'mean_psnr': self.psnr_sum / self.n if self.n else None,
                'mean_ms_ssim': self.ms_ssim_sum / self.ms_ssim_n if self.ms_ssim_n else None,
                'last': self.last}


class QualityMonitor(object):
    """Scores (decoded frame, reference JPEG) pairs on one worker thread."""

    def __init__(self, pending=2):
        self._in = queue.Queue(pending)
        self._out = queue.Queue()
        self.skipped = 0                                  # pairs dropped because the worker was busy
        self.rejected = 0                                 # references that were not a valid JPEG of the frame
        self.streams = collections.defaultdict(StreamQuality)
        self._thread = threading.Thread(target=self._work, name='quality-monitor', daemon=True)
        self._thread.start()

    def refuse(self, frame):
        """A reference that wire.unpack dropped (frame.ref_error): counted and logged like a bad one here."""
        self.rejected += 1
        log.warning('stream %s frame %d: reference frame ignored: %s', frame.stream, frame.seq, frame.ref_error)

    def submit(self, frame, decoded_bgr):
        """Queue a frame that carried a reference; returns False when it was skipped (worker busy)."""
        try:
            self._in.put_nowait((frame.stream, frame.seq, frame.size, frame.ref, decoded_bgr))
            return True
        except queue.Full:
            self.skipped += 1
            return False

    def _work(self):
        while True:
            item = self._in.get()
            if item is None:
                return
            stream, seq, size, ref, decoded = item
            t0 = time.perf_counter()
            try:
                ref_img = decode_jpeg(ref, (3,) + tuple(size), stream)
            except wire.WireError as e:
                self._out.put({'stream': stream, 'seq': seq, 'error': e.reason})
                continue
            ms_ssim = metrics.ms_ssim(ref_img, decoded) if min(size) > 160 else None
            psnr = min(metrics.psnr(ref_img, decoded), 100.0)     # identical frames: 100 dB (JSON has no inf)
            self._out.put({'stream': stream, 'seq': seq, 'psnr': psnr, 'ms_ssim': ms_ssim,
                           'ms': (time.perf_counter() - t0) * 1000.0})

    def results(self):
        """Scores finished since the last call (each also added to ``streams``); bad references are counted and
        logged here."""
        out = []
        while True:
            try:
                r = self._out.get_nowait()
            except queue.Empty:
                return out
            if 'error' in r:
                self.rejected += 1
                log.warning('stream %s frame %d: reference frame ignored: %s', r['stream'], r['seq'], r['error'])
                continue
            self.streams[r['stream']].add(r)
            out.append(r)

    def close(self, wait=True):
        """Stop the worker; with wait, the pairs already queued are scored first (collect them with results())."""
        if self._thread.is_alive():
            if not wait:
                while True:
                    try:
                        self._in.get_nowait()
                    except queue.Empty:
                        break
            self._in.put(None)
            self._thread.join()
