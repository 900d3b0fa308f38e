"""The training images of nanolink-train (and of the tools that fit on them: nanolink-fit-context,
scripts/narrow_cae.py): a folder searched recursively, each image read as RGB, and random crops of them."""
import os

import cv2
import numpy as np

from nanolink.common.errors import NanolinkError

IMAGE_EXTS = ('.png', '.jpg', '.jpeg', '.tif', '.tiff', '.bmp', '.ppm', '.webp')


def list_images(folder, option='--data'):
    """The image files under folder (searched recursively), sorted; a NanolinkError naming ``option`` (the calling
    tool's option that gave the folder) when it is missing or holds none. Each tool prints it with its own name."""
    if not os.path.isdir(folder):
        raise NanolinkError('{} {}: no such folder; give a folder of images (PNG, JPEG, TIFF, ...; searched '
                            'recursively)'.format(option, folder))
    paths = []
    for root, _, files in os.walk(folder):
        paths += [os.path.join(root, f) for f in files if f.lower().endswith(IMAGE_EXTS)]
    if not paths:
        raise NanolinkError('{} {}: no images in it ({})'.format(option, folder, ', '.join(IMAGE_EXTS)))
    return sorted(paths)


def load_rgb(path):
    img = cv2.imread(path, cv2.IMREAD_COLOR)
    if img is None:
        raise NanolinkError('cannot read image {}: not an image OpenCV can decode; move it out of the folder'.format(
            path))
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


class CropSampler:
    """Random crops with random downscale and flips from images held in memory."""

    def __init__(self, images, crop, min_scale, rng):
        self.images = [im for im in images if min(im.shape[:2]) >= crop]
        if not self.images:
            raise NanolinkError('no training image is at least {0}x{0} pixels: add larger images or lower --crop'
                                .format(crop))
        self.crop, self.min_scale, self.rng = crop, min_scale, rng

    def sample(self):
        im = self.images[self.rng.randrange(len(self.images))]
        h, w = im.shape[:2]
        max_side = min(h, w)
        scale = self.rng.uniform(self.min_scale, 1.0)
        side = min(max_side, int(round(self.crop / scale)))
        y, x = self.rng.randrange(h - side + 1), self.rng.randrange(w - side + 1)
        patch = im[y:y + side, x:x + side]
        if side != self.crop:
            patch = cv2.resize(patch, (self.crop, self.crop), interpolation=cv2.INTER_AREA)
        if self.rng.random() < 0.5:
            patch = patch[:, ::-1]
        if self.rng.random() < 0.5:
            patch = patch[::-1]
        return np.ascontiguousarray(patch)

    def batch(self, n):
        import torch
        arr = np.stack([self.sample() for _ in range(n)])           # (B, S, S, 3) uint8
        return torch.from_numpy(arr).permute(0, 3, 1, 2).float() / 255.0
