"""nanolink-demo: a two-process stream on this machine, with the latency table and picture quality.

    nanolink-demo                       # bundled model and sample, 100 frames, results in ./nanolink-demo/
    nanolink-demo --source clip.mp4 --frames 200 --jpeg-quality 85
    nanolink-demo --model cae --quality 5
    nanolink-demo --model cae-bin --channels 16

Starts ``host-receiver`` and ``edge-sender`` as two processes talking ZeroMQ over loopback, waits for
them, then prints the per-stage latency table (median and min-max of every stage, total time for N frames
and average ms per frame, as in the reference slides), the mean PSNR and MS-SSIM of the decoded frames
against the source frames, and the bits per pixel actually sent (message bytes), and writes
``side_by_side.png`` (source | decoded) and ``summary.json`` into the output folder.
"""
import argparse
import json
import os
import subprocess
import sys
import time

import cv2
import numpy as np

from nanolink.common import zoo
from nanolink.common import cli as cliutil
from nanolink.common.codec import rate_for, rate_label
from nanolink.common.errors import NanolinkError, UsageError
from nanolink.common.imageproc import parse_size
from nanolink.common.metrics import ms_ssim, psnr
from nanolink.common.stages import format_table, read_jsonl, summarise
from nanolink.edge.sources import open_source
from nanolink.host.launch import HostProcess, tail


def stream(args, out):
    """Run host-receiver and edge-sender; return (edge log rows, host log rows)."""
    py = [sys.executable, '-m']
    host_log, edge_log = os.path.join(out, 'host.jsonl'), os.path.join(out, 'edge.jsonl')
    host_err, edge_err = os.path.join(out, 'host.stderr.txt'), os.path.join(out, 'edge.stderr.txt')
    host_args = ['--frames', str(args.frames), '--save', os.path.join(out, 'frames'), '--log', host_log, '--timeout',
                 str(args.timeout), '--model', args.model, '--quiet']
    with HostProcess(host_args, stderr_path=host_err) as host:
        edge_cmd = py + ['nanolink.edge.cli', '--camera', args.source, '--loop', '--frames', str(args.frames),
                         '--connect', host.endpoint, '--log', edge_log, '--model', args.model, '--quiet']
        for option, value in (('--channels', args.channels), ('--jpeg-quality', args.jpeg_quality),
                              ('--quality', args.quality), ('--size', args.size), ('--fps', args.fps)):
            if value is not None:
                edge_cmd += [option, str(value)]
        print('demo: host-receiver {}\ndemo: edge-sender {}'.format(' '.join(host_args), ' '.join(edge_cmd[3:])),
              flush=True)                       # both run as python -m, the interpreter of this demo
        with open(edge_err, 'w') as eerr:
            rc_edge = subprocess.call(edge_cmd, stderr=eerr, timeout=args.timeout * 4 + 60)
        if rc_edge != 0:
            raise NanolinkError('edge-sender failed (exit {}):\n{}'.format(rc_edge, tail(edge_err)))
        rc_host = host.wait(args.timeout + 30)
        if rc_host != 0:
            raise NanolinkError('host-receiver failed (exit {}):\n{}'.format(rc_host, tail(host_err)))
    return read_jsonl(edge_log), read_jsonl(host_log)


def quality(args, out, host_rows):
    """Mean PSNR / MS-SSIM of saved decoded frames against the same source frames read again."""
    by_seq = {r['seq']: r for r in host_rows}
    psnrs, ssims, side = [], [], None
    with open_source(args.source, loop=True, option='--source') as src:
        for seq in range(args.frames):
            item = src.read()
            if item is None or seq not in by_seq:
                continue
            ref = item[0]
            if args.size:
                w, h = (int(v) for v in args.size.split('x'))
                ref = cv2.resize(ref, (w, h), interpolation=cv2.INTER_AREA)
            dec = cv2.imread(os.path.join(out, 'frames', by_seq[seq]['stream'], '{:08d}.png'.format(seq)))
            psnrs.append(psnr(ref, dec))
            if min(ref.shape[:2]) > 160:
                ssims.append(ms_ssim(cv2.cvtColor(ref, cv2.COLOR_BGR2RGB), cv2.cvtColor(dec, cv2.COLOR_BGR2RGB)))
            side = (ref, dec)
    if side is not None:
        cv2.imwrite(os.path.join(out, 'side_by_side.png'), np.hstack(side))
    return (float(np.mean(psnrs)) if psnrs else None, float(np.mean(ssims)) if ssims else None, len(psnrs))


def report(args, edge_rows, host_rows, q):
    samples = {}
    for r in edge_rows:
        for k, v in r['stages'].items():
            samples.setdefault(k, []).append(v)
    for r in host_rows:
        for k, v in r['stages'].items():
            samples.setdefault(k, []).append(v)
    stages = summarise(samples)
    n = len(host_rows)
    total_s = max(r['t_done'] for r in host_rows) - min(r['t_cap'] for r in edge_rows)
    bpp = float(np.mean([r['bytes'] * 8.0 / (r['width'] * r['height']) for r in host_rows]))
    info = zoo.bundled_model(args.model)
    w, h = host_rows[0]['width'], host_rows[0]['height']
    rate = rate_label(info, rate_for(info, args.channels, args.jpeg_quality, args.quality))
    summary = {'model': args.model, 'fingerprint': info.fingerprint, 'rate': rate,
               'source': args.source, 'frames_sent': len(edge_rows), 'frames_decoded': n, 'width': w, 'height': h,
               'total_s': total_s, 'avg_ms': 1000.0 * total_s / max(n, 1), 'bpp': bpp,
               'psnr': q[0], 'ms_ssim': q[1], 'quality_frames': q[2], 'stages': stages}
    title = ('nanolink demo: {} frames {}x{} from {}, model {} ({}, fingerprint {}), onnxruntime cpu'
             .format(n, w, h, args.source, args.model, rate, info.fingerprint))
    text = [format_table(stages, title), '',
            'T_{} = {:.3f} s   avg {:.1f} ms/frame ({:.1f} fps), first capture to last decoded frame'.format(
                n, total_s, summary['avg_ms'], n / total_s if total_s else 0.0),
            'quality: PSNR {}, MS-SSIM {} over {} frames at {:.3f} bpp (wire message bytes)'.format(
                'n/a' if q[0] is None else '{:.2f} dB'.format(q[0]),
                'n/a (frames of 160 px or less on a side)' if q[1] is None else '{:.4f}'.format(q[1]), q[2], bpp)]
    return summary, '\n'.join(text)


def check_args(args):
    """Refuse values the edge or host would refuse, before starting them (UsageError, exit 2)."""
    cliutil.check_at_least_one('--frames', args.frames)
    learned = sorted(zoo.bundled_models())
    if args.model not in learned:
        raise UsageError('--model {}: the demo streams a bundled learned model: one of {} (latency-bench compares '
                         'them with JPEG and raw)'.format(args.model, ', '.join(learned)))
    info = zoo.bundled_model(args.model)
    cliutil.check_at_least_one('--channels', args.channels)
    rate_for(info, args.channels, args.jpeg_quality, args.quality)   # the edge's own check of the rate options
    if args.size:
        parse_size(args.size)
    cliutil.check_positive('--fps', args.fps)
    cliutil.check_positive('--timeout', args.timeout, ' seconds')


def _check_source(spec):
    """A file, folder or synthetic --source is opened here first, so that a bad one is one line before any process
    starts or folder is made; cameras are left to edge-sender (one may not open twice)."""
    spec = str(spec)
    if spec.startswith(('csi://', 'v4l2://', '/dev/video')) or spec.isdigit():
        return
    with open_source(spec, option='--source'):
        pass


def main(argv=None):
    p = argparse.ArgumentParser(prog='nanolink-demo', description=__doc__.split('\n')[0])
    p.add_argument('--source', default=zoo.SAMPLE_DIR, help='what edge-sender streams (default: the bundled sample)')
    p.add_argument('--frames', type=int, default=100, help='frames to stream (default: %(default)s)')
    p.add_argument('--model', default=zoo.DEFAULT_MODEL, help='bundled model (default: %(default)s)')
    p.add_argument('--channels', type=int, help='cae-bin rate point: binary channels sent (default: the model default)')
    p.add_argument('--jpeg-quality', type=int, help='ae / ae-full rate: JPEG quality of the code image (default: the model\'s)')
    p.add_argument('--quality', type=int, help='cae rate point 1..6 (default: the model\'s)')
    p.add_argument('--size', metavar='WxH', help='resize frames on the edge first')
    p.add_argument('--fps', type=float, help='pace the sender (default: as fast as it goes)')
    p.add_argument('--out', default='nanolink-demo', help='output folder (default: %(default)s)')
    p.add_argument('--timeout', type=float, default=30.0, help='give up after this many seconds without a frame')
    args = p.parse_args(argv)
    try:
        check_args(args)
    except UsageError as e:
        p.error(str(e))
    try:
        _check_source(args.source)
        try:
            os.makedirs(args.out, exist_ok=True)
        except OSError as e:
            raise NanolinkError('--out {}: cannot create the folder ({}); pick another with --out DIR'.format(
                args.out, e.strerror or e))
        t0 = time.time()
        edge_rows, host_rows = stream(args, args.out)
        if not host_rows:
            raise NanolinkError('no frame was decoded; see {}'.format(args.out))
        q = quality(args, args.out, host_rows)
        summary, text = report(args, edge_rows, host_rows, q)
        with open(os.path.join(args.out, 'summary.json'), 'w') as f:
            json.dump(summary, f, indent=2)
    except NanolinkError as e:
        return cliutil.fail('nanolink-demo', e)
    print(text)
    print('wrote {0}/side_by_side.png (source | decoded), {0}/summary.json, logs and frames in {0}/ '
          '({1:.1f} s in all)'.format(args.out, time.time() - t0))
    return 0


if __name__ == '__main__':
    sys.exit(main())
