"""How much picture can k numbers per block carry? The linear (PCA) ceiling of a latent width, unquantised.

    python scripts/probe_block_pca.py --data ../shared/data/train [--block 16] [--k 160 184 224 256]

An uncentred PCA of the block x block x 3 pixel blocks of the first 150 training images (shuffled with seed 0), then
each of the next 50 rebuilt from its top k components, rounded to 8 bits: the mean PSNR over those images (flat
images that rebuild exactly are left out). cae codes 160 latents per 16 x 16 block; its decoder given the
unquantised latents reaches about the same as k = 160 here (docs/quality.md), so this says what a wider latent would
allow. BSDS500's JPEG sources have little energy in their highest frequencies, so large k reads high.
"""
import argparse
import glob
import os

import cv2
import numpy as np


def blocks(img, b):
    h, w = img.shape[0] // b * b, img.shape[1] // b * b
    return img[:h, :w].reshape(h // b, b, w // b, b, 3).transpose(0, 2, 1, 3, 4).reshape(-1, b * b * 3)


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--data', required=True, help='training images (never the test set)')
    p.add_argument('--block', type=int, default=16)
    p.add_argument('--k', type=int, nargs='+', default=[160, 184, 224, 256])
    args = p.parse_args()
    paths = sorted(f for f in glob.glob(os.path.join(args.data, '**', '*'), recursive=True)
                   if f.lower().endswith(('.png', '.jpg', '.jpeg', '.tif', '.tiff', '.bmp')))
    np.random.RandomState(0).shuffle(paths)
    images = [i.astype(np.float64) for i in (cv2.imread(f) for f in paths[:200]) if i is not None]
    x = np.concatenate([blocks(i, args.block) for i in images[:150]])
    _, vecs = np.linalg.eigh(x.T @ x / len(x))
    vecs = vecs[:, ::-1]
    dims = args.block * args.block * 3
    for k in args.k:
        v = vecs[:, :k]
        psnrs = []
        for img in images[150:]:
            b = blocks(img, args.block)
            mse = ((np.clip(np.round(b @ v @ v.T), 0, 255) - b) ** 2).mean()
            if mse > 0:
                psnrs.append(10 * np.log10(255 ** 2 / mse))
        print('{} x {} blocks, {} of {} components ({:.2f} per pixel): {:.2f} dB over {} held-out images'.format(
            args.block, args.block, k, dims, k / float(args.block ** 2), np.mean(psnrs), len(psnrs)))


if __name__ == '__main__':
    main()
