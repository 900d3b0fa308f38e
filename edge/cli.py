"""edge-sender: capture frames, encode them with a learned encoder, send them to a host-receiver.

    edge-sender --camera csi://0 --engine cae.trt --connect tcp://192.168.1.10:5555
    edge-sender --camera clip.mp4 --model cae --frames 200 --log edge.jsonl
    edge-sender --camera synthetic --fps 30
    edge-sender --camera 0 --reference-every 30     # a JPEG q95 of every 30th frame: the host's live PSNR

Exit status: 0 when the source ended or --frames were sent (or on Ctrl-C), 1 when something is missing
(camera, file, TensorRT, ...: one line says what and what to do) or when no host-receiver ever took the
stream (its frames were queued, then discarded), 2 for bad arguments.
"""
import argparse
import dataclasses
import logging
import math
import sys
import threading
import time

from dataclasses import dataclass
from typing import Optional, Tuple

from nanolink.common import wire, zoo
from nanolink.common.classical import CLASSICAL
from nanolink.common.checks import check_int, check_number
from nanolink.common.errors import NanolinkError, UsageError
from nanolink.common import cli as cliutil
from nanolink.common.imageproc import parse_size
from nanolink.edge.pipeline import ENTROPY, MAX_BUFFER_FRAMES, MAX_CLOCK_OFFSET_S, MAX_SEND_TIMEOUT_MS, Sender
from nanolink.common.stages import (EDGE_STAGES, StreamLogs, format_table, sample_window,
                                     summarise)
from nanolink.edge import rate as ratefit
from nanolink.edge.sources import open_source
from nanolink.edge.pipeline import run_frames

log = logging.getLogger('nanolink.edge')


@dataclass
class EdgeConfig:
    camera: str                              # --camera value (see nanolink.edge.sources)
    engine: Optional[str] = None             # .onnx / .pt / .trt encoder file; None: bundled --model
    model: Optional[str] = None              # bundled model (default cae); with an engine, checked against its own
    channels: Optional[int] = None           # rate point of binary codes (channels sent); None: model default
    quality: Optional[int] = None            # rate point of entropy-coded models (cae: 1..6); None: model default
    connect: str = 'tcp://127.0.0.1:5555'    # host-receiver endpoint
    size: Optional[Tuple[int, int]] = None   # (width, height) to resize frames to
    frames: Optional[int] = None             # stop after this many frames
    fps: Optional[float] = None              # pace sending at this rate
    loop: bool = False                       # repeat files / folders
    log: Optional[str] = None                # JSON-lines per-frame log
    stream_id: str = 'edge'                  # names this stream at the host
    device: Optional[str] = None             # cpu or cuda; None: GPU for TensorRT engines, else CPU
    threads: int = 0                         # encoder threads (0: one per usable physical core)
    hwm: int = 64                            # latest mode: the socket's queue
    buffer_frames: int = 256                 # acknowledged mode: frames kept until the host acknowledges them
    buffer_mb: float = 64.0                  # ... and at most this many MB of them
    send_timeout_ms: int = 1000              # with the buffer full, then a frame is dropped; -1: wait (benchmarks)
    latest: bool = False                     # keep only the newest unsent frame (ZMQ_CONFLATE)
    curve_keys: Optional[str] = None         # CurveZMQ folder from nanolink-keys (uses <stream_id>.key_secret)
    jpeg_quality: Optional[int] = None       # ae (default: its manifest's) and the jpeg baseline (default 75)
    entropy: str = 'zlib'                    # lossless coding of binary codes: zlib or none
    clock_offset: float = 0.0                # seconds added to capture times (host clock; latency-bench)
    reference_every: int = 0                 # send a reference JPEG of every N-th source frame (0: never)
    reference_quality: int = 95              # its JPEG quality
    trust_checkpoint: bool = False           # unpickle an --engine .pt on torch < 1.13
    max_mbps: Optional[float] = None         # pick the model's best rate point under this bit rate (edge/rate.py)
    pipeline: bool = True                    # capture, encode and the CPU stages on three threads (edge/pipeline.py)


def build_parser():
    p = argparse.ArgumentParser(prog='edge-sender', description=__doc__.split('\n')[0],
                                epilog='Full reference: docs/cli.md.')
    p.add_argument('--camera', required=True, metavar='SRC',
                   help='0 | csi://N | /dev/videoN | v4l2:///dev/videoN | video file | file://URI | image folder | '
                        'synthetic[://WxH]')
    p.add_argument('--engine', metavar='PATH', help='encoder file: .trt/.engine (TensorRT), .onnx (ONNX Runtime), '
                                                    '.pt (torch); default: the bundled --model')
    p.add_argument('--model', help='model used without --engine (default: {}; jpeg and raw are classical baselines over the '
                                   'same transport); with --engine, the model the engine must hold: {}'.format(
                                       zoo.DEFAULT_MODEL, zoo.model_list()))
    p.add_argument('--jpeg-quality', type=int, metavar='Q', help='JPEG quality 1..100 of the code image of ae / '
                                                               'ae-full (default: the model\'s) or of --model jpeg '
                                                               '(default 75)')
    p.add_argument('--quality', type=int, metavar='Q', help='rate point of cae, 1 (fewest bytes) .. 6 (best picture), '
                                                            'as in CompressAI (another export: its manifest\'s '
                                                            'rate_points); default: the model\'s (3)')
    p.add_argument('--max-mbps', type=float, metavar='MBPS',
                   help='pick the best rate point of the bundled model that fits MBPS megabits a second at the frame '
                        'size sent and --fps (else 30), from its measured bits per pixel; exits 2 when none fits, '
                        'warns when the scene needs more than planned')
    p.add_argument('--entropy', choices=ENTROPY, default='zlib',
                   help='lossless coding of binary codes (cae-bin) before sending (default: %(default)s; sent only '
                        'when shorter); cae always codes its symbols with rANS')
    p.add_argument('--channels', type=int, metavar='K', help='binary channels sent (rate point: bpp = K/16); '
                                                             'default: the model\'s default (8 = 0.5 bpp)')
    p.add_argument('--connect', default='tcp://127.0.0.1:5555', metavar='tcp://HOST:PORT',
                   help='host-receiver endpoint (default: %(default)s)')
    p.add_argument('--size', metavar='WxH', help='resize frames to W x H first (default: keep the source size; '
                                                 'padding to the model multiple is cropped off on the host)')
    p.add_argument('--frames', type=int, metavar='N', help='stop after N frames')
    p.add_argument('--fps', type=float, metavar='F', help='send at most F frames per second')
    p.add_argument('--loop', action='store_true', help='repeat a video file or image folder')
    p.add_argument('--curve-keys', metavar='DIR', help='encrypt and authenticate with CurveZMQ keys from nanolink-keys '
                                                       '(DIR/<stream-id>.key_secret and DIR/host.key)')
    p.add_argument('--latest', action='store_true', help='keep only the newest unsent frame (low latency, drops '
                                                          'frames when the link or host is slow)')
    p.add_argument('--log', metavar='PATH', help='write one JSON line of stage timings per frame')
    p.add_argument('--stream-id', default='edge', metavar='NAME', help='stream name (default: %(default)s)')
    p.add_argument('--device', choices=('cpu', 'cuda'),
                   help='where the encoder runs (default: the GPU for .trt/.engine, else the CPU)')
    p.add_argument('--threads', type=int, default=0, help='encoder CPU threads, 0..{} (default 0: one per physical '
                                                          'core this process may use)'.format(cliutil.MAX_THREADS))
    p.add_argument('--no-pipeline', action='store_true',
                   help='run the stages one after the other on one thread (default: capture, encode and entropy / '
                        'send overlap on three threads, so the frame rate is set by the slowest stage, not their sum)')
    p.add_argument('--quiet', action='store_true', help='no status lines, only errors and the summary')
    p.add_argument('--trust-checkpoint', action='store_true',
                   help='with an --engine .pt on torch older than 1.13 (JetPack 4.6): load it though that torch can '
                        'only unpickle it, which may run code (newer torch loads weights only, safely)')
    p.add_argument('--send-timeout', type=int, default=1000, metavar='MS',
                   help='with the buffer full (the host away or slow), wait this long for it, then drop the frame '
                        '(counted and named in the summary; default: %(default)s); 0: wait as long as it takes (no '
                        'frame dropped; the camera loop stalls instead, and at exit the sender waits until the host '
                        'has acknowledged every frame; after Ctrl-C, those no host takes within 2 s are dropped '
                        'and counted)')
    p.add_argument('--buffer', type=int, default=256, metavar='FRAMES',
                   help='frames kept until the host acknowledges them, and sent again after a reconnection (host '
                        'restarts, network drops lose nothing while they fit; default: %(default)s, 25 s at 10 fps)')
    p.add_argument('--buffer-mb', type=float, default=64.0, metavar='MB',
                   help='... and at most this many megabytes of them (default: %(default)s)')
    p.add_argument('--reference-every', type=int, default=0, metavar='N',
                   help='every N frames, also send a high-quality JPEG of the source frame, so the host measures '
                        'live PSNR / MS-SSIM of what it decodes (default: never; costs one JPEG encode and its bytes '
                        'every N frames, shown as stage "reference")')
    p.add_argument('--reference-quality', type=int, default=95, metavar='Q',
                   help='JPEG quality 1..100 of the reference frames (default: %(default)s)')
    p.add_argument('--clock-offset', type=float, default=0.0, metavar='S',
                   help='add S seconds to capture times so the host measures end-to-end latency on its own clock '
                        '(latency-bench --role edge estimates it)')
    return p


MIN_FPS = 0.001                 # one frame every 1000 s


def config_from_args(args):
    """EdgeConfig from parsed arguments; UsageError (exit 2) for a value out of range or options that clash."""
    cliutil.check_at_least_one('--frames', args.frames)
    cliutil.check_positive('--fps', args.fps)
    if args.fps is not None and not (math.isfinite(args.fps) and args.fps >= MIN_FPS):
        raise UsageError('--fps must be a finite number of frames per second, at least {:g}, got {}'.format(
            MIN_FPS, args.fps))
    cliutil.check_at_least_one('--channels', args.channels)
    cliutil.check_range('--threads', args.threads, 0, cliutil.MAX_THREADS)
    if not 0 <= args.send_timeout <= MAX_SEND_TIMEOUT_MS:
        raise UsageError('--send-timeout must be in 0..{} ms (0: wait for the host), got {}'.format(
            MAX_SEND_TIMEOUT_MS, args.send_timeout))
    cliutil.check_range('--jpeg-quality', args.jpeg_quality, 1, 100)
    check_int('--buffer', args.buffer, 1, MAX_BUFFER_FRAMES)                  # as Sender(buffer_frames=) is
    check_number('--buffer-mb', args.buffer_mb, 0, unit=' MB', above=True)      # as Sender(buffer_mb=) is
    if args.latest and (args.buffer != 256 or args.buffer_mb != 64.0):
        raise UsageError('--latest sends the newest frame only, without acknowledgements: it keeps no --buffer')
    if args.reference_every < 0:
        raise UsageError('--reference-every must be >= 0 frames (0: no references), got {}'.format(
            args.reference_every))
    cliutil.check_range('--reference-quality', args.reference_quality, 1, 100)
    if not (math.isfinite(args.clock_offset) and abs(args.clock_offset) <= MAX_CLOCK_OFFSET_S):
        raise UsageError('--clock-offset must be a number of seconds within +-{:g} (the difference between the host\'s '
                         'and this machine\'s clocks; latency-bench --role edge measures it), got {}'.format(
                             MAX_CLOCK_OFFSET_S, args.clock_offset))
    if args.model in CLASSICAL:
        if args.quality is not None:
            raise UsageError('--model {} is a classical baseline: it takes no --quality'.format(args.model))
        if args.engine or args.channels:
            raise UsageError('--model {} is a classical baseline: it takes no --engine or --channels'.format(args.model))
        if args.device == 'cuda':
            raise UsageError('--model {} is a classical baseline coded on the CPU: drop --device cuda'.format(args.model))
        if args.model == 'raw' and args.jpeg_quality is not None:
            raise UsageError('--model raw sends raw pixels: it takes no --jpeg-quality')
    if args.max_mbps is not None:
        if not (math.isfinite(args.max_mbps) and args.max_mbps > 0):
            raise UsageError('--max-mbps must be a positive number of megabits a second, got {}'.format(args.max_mbps))
        given = [o for o, v in (('--quality', args.quality), ('--jpeg-quality', args.jpeg_quality),
                                ('--channels', args.channels), ('--engine', args.engine)) if v is not None]
        if given or args.model in CLASSICAL:
            raise UsageError('--max-mbps picks the rate point of a bundled learned model itself: drop {}'.format(
                ' and '.join(given) if given else '--model ' + args.model))
    try:
        wire.check_stream_id(args.stream_id)
    except wire.WireError as e:
        raise UsageError('--stream-id: ' + e.reason)
    return EdgeConfig(max_mbps=args.max_mbps, camera=args.camera, engine=args.engine, model=args.model, channels=args.channels,
                      quality=args.quality,
                      connect=args.connect, size=parse_size(args.size) if args.size else None, frames=args.frames,
                      fps=args.fps, loop=args.loop, log=args.log, stream_id=args.stream_id,
                      device=args.device, threads=args.threads, latest=args.latest,
                      curve_keys=args.curve_keys, jpeg_quality=args.jpeg_quality, clock_offset=args.clock_offset,
                      entropy=args.entropy, send_timeout_ms=args.send_timeout or -1, buffer_frames=args.buffer,
                      buffer_mb=args.buffer_mb, trust_checkpoint=args.trust_checkpoint,
                      reference_every=args.reference_every, reference_quality=args.reference_quality,
                      pipeline=not args.no_pipeline)


def run(cfg, stop=None, status_every_s=2.0):
    """Stream until the source ends, cfg.frames are sent or ``stop`` (a threading.Event) is set.

    Returns the summary dict {'frames', 'dropped', 'bytes', 'stages': {stage: [ms, ...]}}.
    """
    stop = stop or threading.Event()
    watch = None
    if cfg.max_mbps:
        cfg, watch = _fit_rate(cfg)
    with Sender(cfg.connect, cfg.model, cfg.engine, cfg.quality, cfg.channels, cfg.jpeg_quality, cfg.stream_id,
                cfg.size, cfg.device, cfg.threads, cfg.latest, cfg.curve_keys, cfg.send_timeout_ms, cfg.buffer_frames,
                cfg.buffer_mb, cfg.entropy, cfg.clock_offset, cfg.reference_quality, stop=stop,
                trust_checkpoint=cfg.trust_checkpoint) as tx:
        result = _stream(cfg, tx, stop, status_every_s, watch)
    link = tx.link                      # its counts are final once the sender has closed
    result.update(dropped=link.dropped, dropped_seqs=link.dropped_seqs, resent=link.resent,
                  host_seen=link.handshakes > 0, undelivered=link.undelivered, refused=link.refused,
                  refusals=dict(link.refusals), refused_seqs=link.refused_seqs)
    return result


def _fit_rate(cfg):
    """--max-mbps: cfg with the rate point that fits (its frame size: --size, else the source's first frame), and
    the RateWatch that measures what is sent."""
    info = zoo.bundled_model(cfg.model or zoo.DEFAULT_MODEL)
    if cfg.size:
        width, height = cfg.size
    else:
        with open_source(cfg.camera, cfg.loop) as source:
            item = source.read()
        if item is None:
            raise NanolinkError('--max-mbps: {} gave no frame to size the rate for'.format(cfg.camera))
        height, width = item[0].shape[:2]
    rate, need, lower = ratefit.pick(info, cfg.max_mbps, width, height, cfg.fps)
    option = ratefit.OPTION[info.dtype]
    log.info('--max-mbps %g: %s %d of %s, planned %.2f Mbit/s at %dx%d, %g fps (its average bits per pixel on '
             'photos; the rate sent is measured)', cfg.max_mbps, option, rate, info.name, need, width, height,
             cfg.fps or ratefit.DEFAULT_FPS)
    field = {'--quality': 'quality', '--jpeg-quality': 'jpeg_quality', '--channels': 'channels'}[option]
    return (dataclasses.replace(cfg, **{field: rate}),
            ratefit.RateWatch(cfg.max_mbps, cfg.fps, option, rate, lower))


def _stream(cfg, tx, stop, status_every_s, watch=None):
    info, enc = tx.info, tx.encoder
    samples = {k: sample_window() for k in EDGE_STAGES}
    status = {'t': time.time(), 'n': 0}
    with open_source(cfg.camera, cfg.loop) as source, StreamLogs(cfg.log) as jlog:
        log.info('streaming %s -> %s with %s (%s, %s, fingerprint %s) on %s, %s%s', source.description,
                 cfg.connect, info.name, enc.backend.kind, tx.rate, info.fingerprint,
                 enc.backend.device, '' if cfg.frames is None else '{} frames, '.format(cfg.frames),
                 'pipelined' if cfg.pipeline else 'sequential (--no-pipeline)')
        log.info('session %016x, %s', tx.session, tx.link.describe())
        told = set()

        def on_refused(seq, reason):         # on the link's I/O thread: each reason once, the rest in the summary
            if reason not in told and len(told) < tx.link.MAX_REASONS:
                told.add(reason)
                log.warning('host-receiver refused frame %d: %s (frames refused for this reason are counted, and '
                            'listed when edge-sender ends)', seq, reason)
        tx.link.on_refused = on_refused

        def on_sent(sent, t_cap):            # in frame order, on the CPU stage's thread when pipelined
            if not sent.delivered and cfg.send_timeout_ms < 0:
                log.warning('frame %d not sent: stopped while waiting for the host at %s', sent.seq, cfg.connect)
            elif not sent.delivered and (tx.link.dropped <= 10 or tx.link.dropped % 100 == 0):
                log.warning('frame %d dropped: %s (is host-receiver running at %s?)', sent.seq, 'the buffer of {} '
                            'frames stayed full for {} ms'.format(cfg.buffer_frames, cfg.send_timeout_ms)
                            if not cfg.latest else 'the socket refused it', cfg.connect)
            rec = {'seq': sent.seq, 'stream': cfg.stream_id, 'bytes': sent.bytes, 'width': sent.size[1],
                   'height': sent.size[0], 't_cap': t_cap, 'sent': sent.delivered, 'stages': sent.stages}
            if sent.ref_bytes:
                rec['ref_bytes'] = sent.ref_bytes
            jlog.write(rec)
            if watch is not None:
                watch.add(sent.bytes - sent.ref_bytes)
            for k, v in sent.stages.items():
                samples[k].append(v)
            now = time.time()
            if status_every_s and now - status['t'] >= status_every_s:
                log.info('%d frames, %.1f fps, %.3f bpp, encode %.1f ms', tx.seq, (tx.seq - status['n']) /
                         (now - status['t']), (sent.bytes - sent.ref_bytes) * 8.0 / (sent.size[0] * sent.size[1]),
                         sent.stages['encode'])
                status.update(t=now, n=tx.seq)

        n, elapsed = run_frames(tx, source, on_sent, stop, cfg.frames, cfg.fps, cfg.reference_every, cfg.pipeline,
                                source.live)
        if cfg.frames is None or n < cfg.frames:
            log.info('%s after %d frames', 'stopped' if stop.is_set() else 'end of ' + source.description, n)
        if watch is not None:
            log.info(watch.summary())
    if n != tx.seq:                          # run_frames raises before this could happen: a bug if it does
        raise NanolinkError('{} frames captured but {} sent: please report this'.format(n, tx.seq))
    return {'frames': tx.seq, 'bytes': tx.bytes, 'elapsed_s': elapsed, 'stages': samples, 'session': tx.session}


def _ranges(seqs):
    """[3, 4, 5, 9] -> '3-5, 9'."""
    out, start, prev = [], None, None
    for s in sorted(seqs) + [None]:
        if start is not None and (s is None or s != prev + 1):
            out.append(str(start) if start == prev else '{}-{}'.format(start, prev))
            start = None
        if s is not None and start is None:
            start = s
        prev = s
    return ', '.join(out)


def main(argv=None):
    args = build_parser().parse_args(argv)
    stop = cliutil.setup('edge-sender', args.quiet)
    try:
        cfg = config_from_args(args)
        result = run(cfg, stop, 0 if args.quiet else 2.0)
    except NanolinkError as e:
        return cliutil.fail('edge-sender', e)
    n = result['frames']
    print(format_table(summarise(result['stages']), 'edge-sender: {} frames in {:.2f} s ({:.1f} ms/frame), {} '
                       'dropped, {} sent again (after a reconnection or an acknowledgement that did not come)'.format(
                           n, result['elapsed_s'], 1000.0 * result['elapsed_s'] / max(n, 1), result['dropped'],
                           result['resent'])), file=sys.stderr)
    if result['dropped_seqs']:
        print('edge-sender: dropped frames (seq): {}'.format(_ranges(result['dropped_seqs'])), file=sys.stderr)
    lost = result['undelivered']
    refused = result['refused']
    if n and not result['host_seen']:
        print('edge-sender: error: no host-receiver answered at {}: none of the {} frame{} reached one (is '
              'host-receiver running and listening there? --curve-keys on both sides or on neither?)'.format(
                  args.connect, n, '' if n == 1 else 's'), file=sys.stderr)
        return 1
    if refused:
        print('edge-sender: error: host-receiver at {} took {} of the {} frames but did not decode them ({}): {}'.format(
            args.connect, refused, n, _ranges(result['refused_seqs']), '; '.join(
                '{} ({})'.format(r, k) for r, k in sorted(result['refusals'].items(), key=lambda i: -i[1]))),
            file=sys.stderr)
    if lost:
        print('edge-sender: error: the host at {} went away and did not come back: {} frame{} never acknowledged '
              '(they may not have arrived)'.format(args.connect, lost, ' was' if lost == 1 else 's were'),
              file=sys.stderr)
    return 1 if refused or lost else 0


if __name__ == '__main__':
    sys.exit(main())
