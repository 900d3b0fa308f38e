"""Run your own function on every decoded frame with nanolink.Receiver (a detector, a ROS publisher, ...).

    python examples/receive_and_process.py --bind tcp://*:5555 --frames 50

Here the "perception" is the mean brightness and the fraction of edge pixels of each frame.
"""
import argparse
import time

import cv2

import nanolink


def process(image):
    """Your code: image is (H, W, 3) BGR uint8."""
    grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    return float(grey.mean()), float((cv2.Canny(grey, 100, 200) > 0).mean())


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--bind', default='tcp://*:5555')
    p.add_argument('--frames', type=int, default=50)
    p.add_argument('--timeout', type=float, default=30.0, help='give up after this long without a frame')
    args = p.parse_args()
    with nanolink.Receiver(args.bind) as rx:
        print('listening on {}'.format(rx.endpoint), flush=True)
        for n in range(args.frames):
            f = rx.recv(timeout=args.timeout)
            if f is None:
                print('no frame for {} s'.format(args.timeout))
                return 1
            brightness, edges = process(f.image)
            latency = (time.time() - f.t_cap) * 1000
            print('{} #{}: {}x{}, {:.3f} bpp, {:.0f} ms after capture, brightness {:.1f}, edges {:.3f}'.format(
                f.stream, f.seq, f.image.shape[1], f.image.shape[0], f.bpp, latency, brightness, edges), flush=True)
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
