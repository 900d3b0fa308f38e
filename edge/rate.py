"""edge-sender --max-mbps: pick the best rate point of a bundled model that fits a bit rate, and watch it.

The choice is made before the first frame, from the bits per pixel each rate point averaged on the 24 Kodak
photos (the model's manifest, ``metrics.kodak.rate_points``) plus the wire message's own bytes, at the frame size
sent and the frame rate asked (--fps, else 30). Real scenes vary around that average -- a flat wall needs less, a
tree full of leaves more -- so the sender also measures the rate of what it actually sends (``RateWatch``) and
warns, once, naming the --quality that would fit, when the measured rate runs over the cap.
"""
import logging

from nanolink.common.errors import UsageError

log = logging.getLogger('nanolink.edge')

HEADER_BYTES = 200          # a wire message around its payload (msgpack keys, stage times): ~150-190 B measured
DEFAULT_FPS = 30.0          # the frame rate planned for when --fps is not given
OPTION = {'rans': '--quality', 'jpeg': '--jpeg-quality', 'bits': '--channels'}


def rate_points(info):
    """[(rate point, Kodak bpp)] of a bundled model, fewest bits first; UsageError when its manifest has none."""
    table = info.manifest.get('metrics', {}).get('kodak', {}).get('rate_points', {})
    points = []
    for key, m in table.items():
        bpp = m.get('bpp', m.get('bpp_code'))
        if bpp is not None and int(key) in info.rate_points:
            points.append((int(key), float(bpp)))
    if not points:
        raise UsageError('--max-mbps: model {} has no measured bits per pixel per rate point in its manifest: '
                         'choose its rate yourself'.format(info.name))
    return sorted(points, key=lambda p: p[1])


def mbps(bpp, width, height, fps):
    """Mbit/s of frames of width x height at bpp, fps frames a second, wire messages included."""
    return (bpp * width * height + 8 * HEADER_BYTES) * fps / 1e6


def pick(info, max_mbps, width, height, fps=None):
    """(rate point, its planned Mbit/s, the next rate point down or None): the best one of ``info`` at or under max_mbps for width x height at fps
    (None: DEFAULT_FPS). UsageError, with the lowest rate point's need and what to change, when none fits."""
    fps = fps or DEFAULT_FPS
    points = rate_points(info)
    fits = [(r, mbps(b, width, height, fps)) for r, b in points if mbps(b, width, height, fps) <= max_mbps]
    if not fits:
        low, bpp = points[0]
        raise UsageError('--max-mbps {:g}: even {} {} of {} needs about {:.2f} Mbit/s at {}x{}, {:g} fps: raise '
                         '--max-mbps, or lower --fps or --size'.format(max_mbps, OPTION[info.dtype], low, info.name,
                                                                         mbps(bpp, width, height, fps), width, height,
                                                                         fps))
    rate, need = fits[-1]
    return rate, need, (fits[-2][0] if len(fits) > 1 else None)


class RateWatch(object):
    """The measured Mbit/s of the messages sent, over the last ``window`` frames at ``fps``; warns once when it is
    over ``max_mbps`` by more than 10 % (the planned rate is an average over other pictures)."""

    def __init__(self, max_mbps, fps, option, rate, lower=None, window=30):
        self.max_mbps, self.fps, self.option, self.rate, self.window = max_mbps, fps or DEFAULT_FPS, option, rate, window
        self.lower = lower                  # the next rate point down, None at the lowest
        self.recent, self.total_bytes, self.frames, self.warned = [], 0, 0, False

    def add(self, nbytes):
        self.recent = (self.recent + [nbytes])[-self.window:]
        self.total_bytes += nbytes
        self.frames += 1
        if not self.warned and len(self.recent) == self.window and self.measured(self.recent) > 1.1 * self.max_mbps:
            self.warned = True
            log.warning('the last %d frames averaged %.2f Mbit/s at %g fps, over --max-mbps %g: these pictures need '
                        'more bits than the average photo; %s', self.window, self.measured(self.recent), self.fps,
                        self.max_mbps, 'use {} {}'.format(self.option, self.lower) if self.lower is not None
                        else 'lower --size or --fps')

    def measured(self, sizes=None):
        sizes = self.recent if sizes is None else sizes
        return 8.0 * sum(sizes) / max(len(sizes), 1) * self.fps / 1e6

    def summary(self):
        return 'rate: {:.2f} Mbit/s at {:g} fps measured over all {} frames sent ({} {}; --max-mbps {:g})'.format(
            8.0 * self.total_bytes / max(self.frames, 1) * self.fps / 1e6, self.fps, self.frames, self.option,
            self.rate, self.max_mbps)
