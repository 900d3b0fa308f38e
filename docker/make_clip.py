"""Write a short MJPG video from nanolink's bundled sample images (the edge container's "camera").

    python make_clip.py /data/clip.avi [--frames 120] [--size 640x480]

Each sample image is shown for a slow pan, so consecutive frames differ like video does.
"""
import argparse
import os
import sys

import cv2

from nanolink.common.zoo import SAMPLE_DIR


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('out')
    p.add_argument('--frames', type=int, default=120)
    p.add_argument('--size', default='640x480', help='WxH (default: %(default)s)')
    args = p.parse_args(argv)
    w, h = (int(v) for v in args.size.split('x'))
    images = [cv2.imread(os.path.join(SAMPLE_DIR, f)) for f in sorted(os.listdir(SAMPLE_DIR)) if f.endswith('.jpg')]
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    writer = cv2.VideoWriter(args.out, cv2.VideoWriter_fourcc(*'MJPG'), 15, (w, h))
    if not writer.isOpened():
        sys.exit('cannot write {}: OpenCV has no MJPG writer'.format(args.out))
    per_image = max(1, args.frames // len(images))
    for i in range(args.frames):
        img = images[(i // per_image) % len(images)]
        t = (i % per_image) / float(per_image)
        scale = max(w / float(img.shape[1]), h / float(img.shape[0])) * 1.25
        big = cv2.resize(img, (int(img.shape[1] * scale + 0.5), int(img.shape[0] * scale + 0.5)))
        x0 = int((big.shape[1] - w) * t)
        y0 = (big.shape[0] - h) // 2
        writer.write(big[y0:y0 + h, x0:x0 + w])
    writer.release()
    print('wrote {} frames to {}'.format(args.frames, args.out))


if __name__ == '__main__':
    main()
