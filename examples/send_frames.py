"""Send frames from your own capture loop (a camera, GStreamer, ROS, a simulator) with nanolink.Sender.

    python examples/send_frames.py --connect tcp://127.0.0.1:5555 --frames 50

Here the "camera" is a moving test pattern; replace make_frame with your own BGR uint8 frames.
"""
import argparse
import time

import numpy as np

import nanolink


def make_frame(i, w=640, h=480):
    """A frame of your own: any (H, W, 3) BGR uint8 array."""
    y, x = np.mgrid[0:h, 0:w]
    r = ((x + 4 * i) % 256).astype(np.uint8)
    g = ((y + 2 * i) % 256).astype(np.uint8)
    b = (((x // 40 + y // 40 + i // 5) % 2) * 255).astype(np.uint8)
    return np.dstack([b, g, r])


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--connect', default='tcp://127.0.0.1:5555')
    p.add_argument('--frames', type=int, default=50)
    p.add_argument('--model', default='cae')
    p.add_argument('--fps', type=float, default=10.0)
    args = p.parse_args()
    with nanolink.Sender(args.connect, model=args.model, stream_id='my-camera') as tx:
        for i in range(args.frames):
            info = tx.send(make_frame(i))
            print('frame {}: {} bytes, encode {:.1f} ms{}'.format(info.seq, info.bytes, info.stages['encode'],
                                                                 '' if info.delivered else ' (dropped)'))
            time.sleep(1.0 / args.fps)
    print('all {} frames acknowledged by the host'.format(args.frames) if tx.link.undelivered == 0 else
          '{} frames were not acknowledged'.format(tx.link.undelivered))
    return 0 if tx.link.undelivered == 0 else 1


if __name__ == '__main__':
    raise SystemExit(main())
