"""Test video for nanolink-compare, made from still photos (no video ships with nanolink, and nothing is
downloaded): what a camera on a robot sees, in two kinds.

- ``moving``: the camera pans across the scene (a smooth path plus hand-held shake and a slight roll), with
  sensor noise in every frame -- every pixel changes every frame, the hard case for a video codec.
- ``static``: a fixed camera on the same scene, sensor noise and a faint flicker of the lights only -- the easy
  case for a video codec, which sends the unchanged background once.

Noise: Gaussian, sigma 2 grey levels per channel, new every frame (a small sensor in good light). Frames are BGR
uint8, ``size`` = (width, height), seeded so two runs make the same clip.
"""
import cv2
import numpy as np

KINDS = ('moving', 'static')
NOISE_SIGMA = 2.0


def make_clip(photo, kind, size, frames, fps=30.0, seed=0):
    """A list of ``frames`` BGR frames of ``kind`` (moving | static) at size (W, H) from one BGR photo."""
    if kind not in KINDS:
        raise ValueError('kind must be one of {}, got {}'.format(', '.join(KINDS), kind))
    w, h = size
    scale = 1.6 * max(w / float(photo.shape[1]), h / float(photo.shape[0]))     # room to pan in
    scene = cv2.resize(photo, (int(round(photo.shape[1] * scale)), int(round(photo.shape[0] * scale))),
                       interpolation=cv2.INTER_CUBIC if scale > 1 else cv2.INTER_AREA)
    sh, sw = scene.shape[:2]
    rng = np.random.RandomState(seed)
    out = []
    for i in range(frames):
        t = i / fps
        if kind == 'moving':
            u = i / max(frames - 1, 1)                                  # 0 .. 1 along the pan
            cx = w / 2.0 + u * (sw - w) + 3.0 * np.sin(2 * np.pi * 1.3 * t) + rng.normal(0, 0.7)
            cy = h / 2.0 + 0.5 * (sh - h) * (0.5 + 0.4 * np.sin(2 * np.pi * 0.4 * t)) + \
                2.0 * np.sin(2 * np.pi * 1.7 * t + 1.0) + rng.normal(0, 0.7)
            angle = 0.8 * np.sin(2 * np.pi * 0.5 * t)
            gain = 1.0
        else:
            cx, cy, angle = sw / 2.0, sh / 2.0, 0.0
            gain = 1.0 + 0.01 * np.sin(2 * np.pi * 2.0 * t)                # 1 % flicker
        m = cv2.getRotationMatrix2D((cx, cy), angle, 1.0)
        m[0, 2] += w / 2.0 - cx
        m[1, 2] += h / 2.0 - cy
        frame = cv2.warpAffine(scene, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        noisy = frame.astype(np.float32) * gain + rng.normal(0, NOISE_SIGMA, frame.shape).astype(np.float32)
        out.append(np.clip(np.round(noisy), 0, 255).astype(np.uint8))
    return out
