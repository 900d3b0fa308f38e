"""nanolink-compare: nanolink against what its users would pick instead, measured in one run on this machine.

    nanolink-compare --size 640x480 --frames 90 --out docs/compare

1. Codecs, on two clips made from the bundled photos (host/clips.py: a panning, shaking camera and a fixed one,
   both with sensor noise): each nanolink model at its default rate; JPEG at the same bytes, frame by frame;
   H.264 and H.265 (libx264 / libx265 through ffmpeg, -tune zerolatency, no B-frames, one slice, a keyframe
   every --gop frames) at the same Mbit/s. Per frame PSNR, Mbit/s at --fps, encode ms per frame on this CPU,
   frames the encoder holds, and what losing frame --lose costs: frames that show damage (1 dB or more below
   the intact decode) or stay frozen on screen until the stream recovers.
2. Links, on the moving clip: imagezmq + JPEG at nanolink's bytes (ImageSender / ImageHub, REQ/REP, as its
   README shows) against nanolink.Sender into host-receiver, frame after frame over loopback: latency and fps;
   then each receiver is killed and restarted mid-stream (imagezmq's REQ socket hangs; nanolink resends).

3. Bit rates a user can plan with: each rate point's Mbit/s at 640x480, 1280x720 and 1008x1008 at --fps, beside
   OpenCV JPEG's at the same PSNR (host/compare_rates.py).

--out DIR writes compare.json (every figure, per-frame PSNR included) and compare.txt (the printed tables).
"""
import argparse
import json
import logging
import os
import sys
import time

import cv2
import numpy as np

from nanolink.codec import Codec
from nanolink.common import cli as cliutil, zoo
from nanolink.common.classical import encode_jpeg
from nanolink.common.errors import NanolinkError, UsageError
from nanolink.common.imageproc import parse_size
from nanolink.common.metrics import psnr
from nanolink.host import clips, compare_links as links, compare_rates, videocodec
from nanolink.host.compare_links import jpeg_quality_at

PRESETS = ('ultrafast', 'superfast', 'veryfast', 'faster', 'fast', 'medium', 'slow', 'slower', 'veryslow')
PHOTOS = {'moving': 'kodim23.jpg', 'static': 'kodim21.jpg'}     # from the bundled sample
DAMAGE_DB = 1.0


def build_parser():
    p = argparse.ArgumentParser(prog='nanolink-compare', description=__doc__.split('\n')[0])
    p.add_argument('--models', default=zoo.DEFAULT_MODEL, help='nanolink models at their default rate, comma-'
                                                               'separated (default: %(default)s)')
    p.add_argument('--size', default='640x480', help='frame size WxH (default: %(default)s)')
    p.add_argument('--frames', type=int, default=90, help='frames per clip (default: %(default)s)')
    p.add_argument('--fps', type=float, default=30.0, help='frame rate the bit rates are planned at (default: 30)')
    p.add_argument('--gop', type=int, default=30, help='H.264 / H.265 keyframe interval (default: %(default)s)')
    p.add_argument('--preset', default='veryfast', choices=PRESETS, help='x264 / x265 preset (default: %(default)s)')
    p.add_argument('--lose', type=int, help='the frame lost on purpose (default: a third into the first GOP, or '
                                            'into the clip when that is shorter)')
    p.add_argument('--link-frames', type=int, default=60, help='frames sent over each link (default: %(default)s)')
    p.add_argument('--link-fps', type=float, default=10.0, help='pace of the latency runs (default: %(default)s)')
    p.add_argument('--no-links', action='store_true', help='skip the imagezmq / nanolink link runs')
    p.add_argument('--rate-sizes', default='640x480,1280x720,1008x1008',
                   help='frame sizes of the Mbit/s table, comma-separated; "none" skips it (default: %(default)s)')
    p.add_argument('--ffmpeg', help='ffmpeg executable (default: imageio-ffmpeg\'s, else the PATH\'s)')
    p.add_argument('--out', help='write compare.json and compare.txt here')
    return p


def loss_cost(source, intact, shown):
    """(frames damaged or frozen, their mean PSNR) of ``shown`` against the ``intact`` decode of ``source``."""
    bad = [i for i in range(len(source)) if psnr(source[i], shown[i]) < psnr(source[i], intact[i]) - DAMAGE_DB]
    return len(bad), (float(np.mean([psnr(source[i], shown[i]) for i in bad])) if bad else None)


def frozen_at(decoded, k):
    """What a viewer of independently coded frames sees when frame k never came: frame k-1 stays on screen."""
    return decoded[:k] + [decoded[k - 1]] + decoded[k + 1:]


def nanolink_codec(model, frames, lose):
    codec = Codec(model)
    msgs, ms = [], []
    for f in frames:
        t0 = time.perf_counter()
        msgs.append(codec.encode(f))
        ms.append(1000.0 * (time.perf_counter() - t0))
    decoded = [codec.decode(m) for m in msgs]
    damaged, damaged_psnr = loss_cost(frames, decoded, frozen_at(decoded, lose))
    codec.close()
    return {'bytes': [len(m) for m in msgs], 'psnr': [psnr(f, d) for f, d in zip(frames, decoded)],
            'encode_ms': float(np.median(ms[1:] or ms)), 'frames_held': 0,
            'held_from': 'one message per frame, sent as soon as it is coded', 'lost_frame_costs': damaged,
            'lost_psnr': damaged_psnr}


def video_codec(ffmpeg, codec, frames, mbps, args, lose):
    size = (frames[0].shape[1], frames[0].shape[0])
    kbps = mbps * 1000.0
    for _ in range(4):          # rate control misses short clips' targets: scale the asked rate until within 5 %
        data, wall = videocodec.encode(ffmpeg, frames, codec, kbps, args.fps, args.gop, args.preset)
        got = len(data) * 8.0 / len(frames) * args.fps / 1e3
        if abs(got / (mbps * 1000.0) - 1) <= 0.05:
            break
        kbps *= mbps * 1000.0 / got
    decoded = videocodec.decode(ffmpeg, data, codec, size)
    if len(decoded) != len(frames):
        raise NanolinkError('{}: ffmpeg decoded {} of {} frames'.format(codec, len(decoded), len(frames)))
    held, settings = videocodec.frames_held(data, codec)
    outputs = videocodec.decode(ffmpeg, videocodec.drop_frame(data, codec, lose), codec, size)
    shown, not_output = videocodec.shown_after_loss(outputs, len(frames), lose)
    damaged, damaged_psnr = loss_cost(frames, decoded, shown)
    return {'mbps': len(data) * 8.0 / len(frames) * args.fps / 1e6, 'asked_mbps': mbps, 'psnr': [psnr(f, d) for f, d in
                                                                             zip(frames, decoded)],
            'encode_ms': 1000.0 * wall / len(frames), 'frames_held': held, 'held_from': settings,
            'lost_frame_costs': damaged, 'lost_psnr': damaged_psnr, 'frames_not_output': not_output}


def jpeg_row(frames, budget, lose, fps):
    """OpenCV JPEG of each frame at the highest quality within that frame's bytes of nanolink (its message, header
    included, against the bare JPEG file)."""
    qs = [jpeg_quality_at(f, b) for f, b in zip(frames, budget)]
    ms, files = [], []
    for f, q in zip(frames, qs):
        t0 = time.perf_counter()
        files.append(encode_jpeg(f, q))
        ms.append(1000.0 * (time.perf_counter() - t0))
    decoded = [cv2.imdecode(j, cv2.IMREAD_COLOR) for j in files]
    damaged, damaged_psnr = loss_cost(frames, decoded, frozen_at(decoded, lose))
    return {'mbps': float(np.mean([len(j) for j in files])) * 8 * fps / 1e6, 'qualities': qs,
            'psnr': [psnr(f, d) for f, d in zip(frames, decoded)], 'encode_ms': float(np.median(ms)),
            'frames_held': 0, 'held_from': 'one image per frame', 'lost_frame_costs': damaged,
            'lost_psnr': damaged_psnr}


def codec_rows(args, ffmpeg, kind, frames, lose):
    rows = []
    for model in args.models:
        ours = nanolink_codec(model, frames, lose)
        ours['mbps'] = float(np.mean(ours['bytes'])) * 8 * args.fps / 1e6
        rows.append(dict(ours, name='nanolink ' + model, kind=kind))
        rows.append(dict(jpeg_row(frames, ours['bytes'], lose, args.fps), name='JPEG at {}\'s bytes'.format(model),
                         kind=kind))
        for codec in ('h264', 'h265'):
            row = video_codec(ffmpeg, codec, frames, ours['mbps'], args, lose)
            rows.append(dict(row, name='{} at {}\'s Mbit/s'.format(codec.upper(), model), kind=kind))
    return rows


def format_codecs(rows, args, lose):
    lines = ['codecs at {}x{}, {} frames per clip, {:g} fps; H.26x: {} preset, -tune zerolatency, GOP {}; frame {} '
             'lost on purpose'.format(args.size[0], args.size[1], args.frames, args.fps, args.preset, args.gop, lose),
             'clip | codec | Mbit/s | PSNR mean (min) dB | encode ms/frame | frames held | one lost frame costs']
    for r in rows:
        p = np.array(r['psnr'])
        cost = '{} frame{}'.format(r['lost_frame_costs'], '' if r['lost_frame_costs'] == 1 else 's')
        if r.get('frames_not_output'):
            cost += ' ({} frozen)'.format(r['frames_not_output'])
        if r['lost_psnr'] is not None:
            cost += ', at {:.1f} dB'.format(r['lost_psnr'])
        miss = r.get('asked_mbps') and abs(r['mbps'] / r['asked_mbps'] - 1) > 0.05
        lines.append('{} | {} | {:.2f}{} | {:.2f} ({:.2f}) | {} | {} | {}'.format(
            r['kind'], r['name'], r['mbps'], ' (asked {:.2f}: its rate control missed)'.format(r['asked_mbps'])
            if miss else '', p.mean(), p.min(), '-' if r['encode_ms'] is None else
            '{:.1f}'.format(r['encode_ms']), r['frames_held'], cost))
    lines.append('encode ms: nanolink.Codec.encode (ONNX Runtime, this CPU); H.26x: the whole ffmpeg encode / frames. '
                 'Frames held: declared by the encoder in its stream ({}).'.format(
                     '; '.join(sorted(set(r['held_from'] for r in rows if r['name'].startswith('H26'))))))
    return '\n'.join(lines)


def link_rows(args, frames, out):
    """Both links unpaced (fps: as fast as each goes), paced at --link-fps (latency without a queue), and
    unpaced again with the receiver killed (SIGKILL) and restarted a third of the way in."""
    model = args.models[0]
    fast = links.nanolink_run(frames, model, out, 'fast')
    qs = [jpeg_quality_at(f, b) for f, b in zip(frames, fast['bytes'])]
    res = {'nanolink': {'model': model, 'fast': links.summary(fast),
                        'paced': links.summary(links.nanolink_run(frames, model, out, 'paced', args.link_fps)),
                        'restart': links.nanolink_run(frames, model, out, 'restart', restart_after=len(frames) // 3)},
           'imagezmq': {'qualities': qs, 'fast': links.summary(links.imagezmq_run(frames, qs)),
                        'paced': links.summary(links.imagezmq_run(frames, qs, args.link_fps)),
                        'restart': links.imagezmq_run(frames, qs, restart_after=len(frames) // 3)}}
    return res


def format_links(res, n, link_fps):
    a, b = res['nanolink'], res['imagezmq']
    lines = ['links over loopback, {} frames of the moving clip in a user\'s send loop: unpaced (fps), then paced at {:g} '
             'fps (latency: capture to decoded, no queue)'.format(n, link_fps),
             'link | bytes/frame | fps unpaced | latency median (p95) ms at {:g} fps | receiver killed and restarted '
             'mid-stream'.format(link_fps)]
    ra = a['restart']
    lines.append('nanolink {} (acknowledged) | {:.0f} | {:.1f} | {:.1f} ({:.1f}) | {} of {} frames decoded, {} lost; '
                 'frames again {:.1f} s after the restart'.format(
                     a['model'], a['fast']['bytes_mean'], a['fast']['fps'], a['paced']['latency_median_ms'],
                     a['paced']['latency_p95_ms'], ra['decoded'], ra['sent'], ra['lost'],
                     ra['after_restart_s'] if ra['after_restart_s'] is not None else float('nan')))
    rb = b['restart']
    lines.append('imagezmq + JPEG at those bytes (REQ/REP) | {:.0f} | {:.1f} | {:.1f} ({:.1f}) | {}'.format(
        b['fast']['bytes_mean'], b['fast']['fps'], b['paced']['latency_median_ms'], b['paced']['latency_p95_ms'],
        'HUNG: {} frames answered, then none in {:.0f} s after the restart (ImageSender blocks in send_jpg)'.format(
            rb['sent'], rb['waited_s']) if rb['hung'] else 'went on: {} frames after the restart'.format(
            rb['after_restart'])))
    return '\n'.join(lines)


def lost_frame(frames, gop, lose=None):
    """The frame the lost-frame test drops: --lose, or a third into the first GOP (or into the clip when the clip
    is shorter than a GOP); UsageError unless it lies inside the clip (not its first or last frame)."""
    lose = max(1, min(gop, frames) // 3) if lose is None else lose
    if not 1 <= lose < frames - 1:
        raise UsageError('--lose must be in 1..{} (a frame inside the clip), got {}'.format(frames - 2, lose))
    return lose


def main(argv=None):
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format='nanolink-compare: %(message)s')   # Ctrl-C: KeyboardInterrupt
    try:
        return _main(args, argv)
    except KeyboardInterrupt:
        print('nanolink-compare: interrupted: nothing written', file=sys.stderr)
        return 130


def _main(args, argv):
    try:
        args.models = [m.strip() for m in args.models.split(',') if m.strip()]
        if not args.models:
            raise UsageError('--models needs at least one bundled model, e.g. --models {}'.format(zoo.DEFAULT_MODEL))
        for m in args.models:
            zoo.bundled_model(m)
        args.size = parse_size(args.size)
        cliutil.check_range('--frames', args.frames, 8, 10000)
        cliutil.check_range('--fps', args.fps, 0.1, 1000)
        cliutil.check_range('--link-fps', args.link_fps, 0.1, 1000)
        cliutil.check_range('--link-frames', args.link_frames, 3, 10000)
        cliutil.check_range('--gop', args.gop, 2, 10000)
        try:
            args.rate_sizes = [] if args.rate_sizes == 'none' else [parse_size(x) for x in args.rate_sizes.split(',')]
        except UsageError as e:
            raise UsageError('--rate-sizes: {}'.format(str(e).replace('--size ', '')))
        lose = lost_frame(args.frames, args.gop, args.lose)
        ffmpeg = videocodec.find_ffmpeg(args.ffmpeg)
        if not args.no_links:
            try:
                import imagezmq  # noqa: F401
            except ImportError:
                raise NanolinkError('the link comparison needs imagezmq: pip install imagezmq (or --no-links)')
        out = args.out or os.path.join(os.getcwd(), 'nanolink-compare-logs')
        os.makedirs(out, exist_ok=True)
        clip = {kind: clips.make_clip(cv2.imread(os.path.join(zoo.SAMPLE_DIR, PHOTOS[kind])), kind, args.size,
                                      args.frames, args.fps) for kind in clips.KINDS}
        rows = []
        for kind in clips.KINDS:
            rows += codec_rows(args, ffmpeg, kind, clip[kind], lose)
        text = [format_codecs(rows, args, lose)]
        rates = []
        if args.rate_sizes:
            photos = [cv2.imread(os.path.join(zoo.SAMPLE_DIR, f)) for f in sorted(os.listdir(zoo.SAMPLE_DIR))
                      if f.endswith('.jpg')]
            rates = compare_rates.rate_rows(args.models, photos, args.fps, args.rate_sizes)
            text.append(compare_rates.format_rates(rates, args.fps, len(photos)))
        res = None
        if not args.no_links:
            res = link_rows(args, clip['moving'][:args.link_frames], out)
            text.append(format_links(res, min(args.link_frames, args.frames), args.link_fps))
        text = '\n\n'.join(text)
        print(text)
        if args.out:
            with open(os.path.join(args.out, 'compare.json'), 'w') as f:
                json.dump({'command': 'nanolink-compare ' + ' '.join(sys.argv[1:] if argv is None else argv),
                           'cores': os.cpu_count(), 'codecs': rows, 'links': res, 'rates': rates, 'clips': PHOTOS}, f, indent=1)
            with open(os.path.join(args.out, 'compare.txt'), 'w') as f:
                f.write(text + '\n')
            print('wrote {0}/compare.json, {0}/compare.txt'.format(args.out))
        return 0
    except NanolinkError as e:
        return cliutil.fail('nanolink-compare', e)


if __name__ == '__main__':
    sys.exit(main())
