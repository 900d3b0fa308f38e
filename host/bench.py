"""latency-bench: per-stage latency of real edge and host processes over ZeroMQ, in the slides' columns.

    latency-bench --models cae,cae-bin --sizes 504,1008 --frames 200 --out bench/
    latency-bench --role host --bind tcp://*:5555 ...           # on the PC
    latency-bench --role edge --connect tcp://PC:5555 ...       # on the Nano, same --models/--sizes/--frames

For every model and square size asked, one edge-sender process streams --warmup + --frames frames of the
source (default: the bundled sample, looped, resized to size x size) as fast as it can to one
host-receiver process, reliably (no --latest, and the edge waits for a slower host rather than dropping
frames: --send-timeout 0): T_N is first capture to last decode of the N timed frames,
Avg = T_N / N. Baseline rows run in the same host-receiver, over the same transport and wire format:
``jpeg-qQ`` (OpenCV JPEG at the highest quality whose bytes do not exceed the model's message on the same
frames) and ``raw`` (the frame's bytes as they are). PSNR and bpp are measured on the source frames with
the same encoder and decoder the processes use. The slides' published rows are printed beside ours as a
reference, not re-measured. A micro-benchmark compares our wire payload and msgpack message against the
slides' approach (pickling the float32 feature tensor) at the largest size.

With --role edge|host the halves run on two machines: the host also answers clock requests (on the data
port + 1), and the edge estimates the clock offset from a few round trips (offset of the fastest ones) and
stamps capture times on the host's clock, so end-to-end latency means something across machines.

--out DIR writes latency.json ({"rows": [{model, size, frames, psnr, bpp, stages: {stage: {median_ms,
p5_ms, p95_ms}}, total_s, avg_ms}]} with the stage names of the wire logs), latency.csv and latency.png.
"""
import argparse
import os
import signal
import subprocess
import sys
import time

import numpy as np
import zmq

from nanolink.common import wire, zoo
from nanolink.codec import Codec
from nanolink.common import cli as cliutil
from nanolink.common.errors import NanolinkError, UsageError
from nanolink.common.imageproc import resize_to
from nanolink.common.metrics import psnr
from nanolink.common.transport import check_endpoint
from nanolink.common.stages import read_jsonl
from nanolink.edge.sources import open_source
from nanolink.host.bench_clock import ClockServer, clock_offset, time_endpoint
from nanolink.host.bench_report import (edge_rate, format_edge_rates, format_micro, format_rows, micro_benchmark,
                                         summarise_row, write_outputs)
from nanolink.host.bench_streams import format_streams, run_streams
from nanolink.host.compare import main as compare_main
from nanolink.host.launch import HostProcess, tail as _tail


def parse_list(text, option, cast=str):
    try:
        items = [cast(x.strip()) for x in text.split(',') if x.strip()]
    except ValueError:
        items = []
    if not items:
        raise UsageError('{} needs a comma-separated list, got "{}"'.format(option, text))
    return items


# ----------------------------------------------------------------------------------------------- the plan
class Row(object):
    """One benchmark row: what edge-sender runs (model and its options) at one size, and its codec for the quality
    measurement (the same encoder, wire message and decoder, in this process)."""

    def __init__(self, name, model, size, edge_args, codec, mode='pipelined'):
        self.name, self.model, self.size, self.edge_args, self.codec = name, model, size, edge_args, codec
        self.mode = mode                  # edge-sender's loop: pipelined, or sequential (--no-pipeline)
        self.psnr = self.bpp = None

    @property
    def stream(self):
        return '{}-{}{}'.format(self.name, self.size, '' if self.mode == 'pipelined' else '-seq')


def source_frames(source, size, n=6):
    """Up to n distinct frames of the source, resized to size x size as edge-sender --size does."""
    frames = []
    with open_source(source, loop=False, option='--source') as src:
        while len(frames) < n:
            item = src.read()
            if item is None:
                break
            frames.append(resize_to(item[0], (size, size)))
    if not frames:
        raise NanolinkError('--source {} gave no frames'.format(source))
    return frames


def message_quality(codec, frames):
    """(mean PSNR dB or None when lossless, mean bpp of the wire messages) of frames through the codec."""
    ps, bpps = [], []
    for f in frames:
        msg = codec.encode(f)
        ps.append(psnr(f, codec.decode(msg)))
        bpps.append(len(msg) * 8.0 / (f.shape[0] * f.shape[1]))
    p = float(np.mean(ps))
    return (None if np.isinf(p) else p), float(np.mean(bpps))


def jpeg_quality_for(frames, bpp):
    """Highest OpenCV JPEG quality whose mean message bpp over frames is at most bpp (at least 1)."""
    best = 1
    for q in range(1, 101):
        if message_quality(Codec('jpeg', jpeg_quality=q), frames[:3])[1] <= bpp:
            best = q
        else:
            break
    return best


def plan(args):
    rows = []
    for size in args.sizes:
        frames = source_frames(args.source, size)
        model_bpp = None
        for model in args.models:
            info = zoo.bundled_model(model)
            if info.dtype == 'jpeg':                  # ae: its rate is the JPEG quality of the code image
                opts, rate = {'jpeg_quality': info.default_channels}, ['--jpeg-quality', str(info.default_channels)]
            elif info.dtype == 'rans':                # cae: its quality level
                q = args.quality or info.default_channels
                opts, rate = {'quality': q}, ['--quality', str(q)]
            else:
                k = args.channels or info.default_channels
                opts, rate = {'channels': k}, ['--channels', str(k)]
            codec = Codec(model, decoder=args.decoder, device=args.device, threads=args.threads,
                          decoder_variant=info.variant_or_fast(args.decoder_variant), **opts)   # as host-receiver
            for mode in args.edge_modes:
                row = Row(model, model, size, ['--model', model] + rate + args.edge_backend, codec, mode)
                row.psnr, row.bpp = message_quality(codec, frames)
                model_bpp = row.bpp if model_bpp is None else model_bpp
                rows.append(row)
        if 'jpeg' in args.baselines:
            q = jpeg_quality_for(frames, model_bpp) if model_bpp else args.jpeg_quality
            row = Row('jpeg-q{}'.format(q), 'jpeg', size, ['--model', 'jpeg', '--jpeg-quality', str(q)],
                      Codec('jpeg', jpeg_quality=q))
            row.psnr, row.bpp = message_quality(row.codec, frames)
            rows.append(row)
        if 'raw' in args.baselines:
            row = Row('raw', 'raw', size, ['--model', 'raw'], Codec('raw'))
            row.psnr, row.bpp = message_quality(row.codec, frames)
            rows.append(row)
    return rows


# --------------------------------------------------------------------------------------------- processes
def start_host_with_clock(args, out, frames_total, context):
    """--role host: host-receiver and the clock on its port + 1. A random port (--bind ...:*) whose next port is
    taken is given up for another (a few draws); a port the user named is not."""
    draws = 5 if args.bind.endswith(':*') else 1
    for draw in range(draws):
        launched = start_host(args, out, frames_total)
        try:
            return launched, ClockServer(time_endpoint(launched.endpoint), context)
        except NanolinkError:
            launched.kill()
            if draw == draws - 1:
                raise


def start_host(args, out, frames_total=None):
    """host-receiver as a subprocess; frames_total None: it runs until SIGINT."""
    cmd = ['--log', os.path.join(out, 'host.jsonl'), '--decoder', args.decoder, '--decoder-variant',
           args.decoder_variant, '--device', args.device, '--quiet', '--decode-workers', str(args.decode_workers)]
    if frames_total:
        cmd += ['--frames', str(frames_total), '--timeout', str(args.timeout)]
    for m in sorted(set(args.models) | set(b for b in args.baselines)):
        cmd += ['--model', m]
    if args.threads:
        cmd += ['--threads', str(args.threads)]
    return HostProcess(cmd, bind=args.bind, stderr_path=os.path.join(out, 'host.stderr.txt'))


def run_edge(args, out, row, endpoint, offset):
    cmd = [sys.executable, '-m', 'nanolink.edge.cli', '--camera', args.source, '--loop', '--size',
           '{0}x{0}'.format(row.size), '--frames', str(args.frames + args.warmup), '--connect', endpoint,
           '--stream-id', row.stream, '--log', os.path.join(out, 'edge-{}.jsonl'.format(row.stream)), '--quiet',
           '--clock-offset={!r}'.format(offset), '--send-timeout', '0'] + row.edge_args   # '=': negative offsets
    if row.mode == 'sequential':
        cmd.append('--no-pipeline')
    # --send-timeout 0: the edge waits for a slower host instead of dropping frames, so T_N counts every frame
    if args.fps:
        cmd += ['--fps', str(args.fps)]
    if args.threads:
        cmd += ['--threads', str(args.threads)]
    with open(os.path.join(out, 'edge-{}.stderr.txt'.format(row.stream)), 'w') as err:
        rc = subprocess.call(cmd, stderr=err, timeout=args.timeout * 4 + 600)
    if rc != 0:
        raise NanolinkError('edge-sender for {} failed (exit {}):\n{}'.format(row.stream, rc, _tail(err.name)))


def wait_drained(log_path, stream, n, timeout_s):
    """Wait until the host has logged n frames of stream (or timeout_s passes without progress), so one row's
    backlog never runs into the next row's timings. Returns the count seen."""
    key = '"stream":"{}"'.format(stream)
    seen, t_progress = -1, time.time()
    while time.time() - t_progress < timeout_s:
        with open(log_path) as f:
            count = sum(1 for line in f if key in line)
        if count >= n:
            return count
        if count != seen:
            seen, t_progress = count, time.time()
        time.sleep(0.05)
    return seen


# ---------------------------------------------------------------------------------------------- results
def build_parser():
    p = argparse.ArgumentParser(prog='latency-bench', description=__doc__.split('\n')[0])
    p.add_argument('--models', default=zoo.DEFAULT_MODEL, help='comma-separated models (default: %(default)s, as edge-sender): ' + zoo.model_list())
    p.add_argument('--sizes', default='504,1008', help='comma-separated square frame sides (default: %(default)s)')
    p.add_argument('--frames', type=int, default=200, help='timed frames per row, T_N (default: %(default)s)')
    p.add_argument('--warmup', type=int, default=10, help='untimed frames first (default: %(default)s)')
    p.add_argument('--edge-modes', default='pipelined,sequential',
                   help='edge-sender loops to run each model row with: pipelined (its default), sequential '
                        '(--no-pipeline), or both, to see the gain (default: %(default)s; baselines: pipelined)')
    p.add_argument('--compare', action='store_true',
                   help='also run nanolink-compare for the first model (JPEG, H.264 / H.265 and imagezmq on this '
                        'machine; needs pip install ".[bench]") and print its tables after these')
    p.add_argument('--compare-size', default='640x480', help='--compare: the clips\' frame size (default: %(default)s)')
    p.add_argument('--compare-frames', type=int, default=60, help='--compare: frames per clip (default: 60)')
    p.add_argument('--compare-rate-sizes', default='640x480,1280x720,1008x1008',
                   help='--compare: frame sizes of its Mbit/s table (default: %(default)s)')
    p.add_argument('--streams', help='also stream N edges into one host at once for each N of this comma-separated '
                                     'list (e.g. 1,2,4; first model, first size) and print its decoded fps')
    p.add_argument('--decode-workers', type=int, default=1, help='host-receiver --decode-workers (default: 1)')
    p.add_argument('--baselines', default='jpeg,raw', help='jpeg,raw or none (default: %(default)s)')
    p.add_argument('--jpeg-quality', type=int, default=75, help='JPEG quality when no model row sets it')
    p.add_argument('--channels', type=int, help='rate point of binary-code models (default: each model\'s default; '
                                                'ae uses its default JPEG quality)')
    p.add_argument('--quality', type=int, help='rate point 1..6 of cae (default: the model\'s)')
    p.add_argument('--source', default=zoo.SAMPLE_DIR, help='frames to stream (default: the bundled sample)')
    p.add_argument('--engine-device', choices=('cpu', 'cuda'), help='edge-sender --device (default: cpu)')
    p.add_argument('--decoder', default='onnxruntime', choices=('onnxruntime', 'torch'), help='host decoder backend')
    p.add_argument('--device', default='cpu', choices=('cpu', 'cuda'), help='host decoder device')
    p.add_argument('--decoder-variant', default='fast', choices=('fast', 'quality'),
                   help='host decoder of models that ship a quality one, as host-receiver (default: %(default)s)')
    p.add_argument('--threads', type=int, default=0,
                   help='encoder/decoder threads (default 0: one per physical core this process may use)')
    p.add_argument('--role', default='both', choices=('both', 'edge', 'host'),
                   help='both on this machine, or one half for a two-machine run')
    p.add_argument('--bind', default='tcp://127.0.0.1:*', help='--role both/host: host endpoint (default: %(default)s)')
    p.add_argument('--connect', help='--role edge: the host\'s endpoint, tcp://HOST:PORT')
    p.add_argument('--fps', type=float, help='pace each edge-sender at F frames/s, so end_to_end is latency without '
                                            'queueing (default: as fast as it goes, as the slides\' T_N)')
    p.add_argument('--timeout', type=float, default=60.0, help='seconds without a frame before giving up')
    p.add_argument('--out', help='write latency.json, latency.csv and latency.png here')
    return p


def main(argv=None):
    p = build_parser()
    args = p.parse_args(argv)
    try:
        args.models = parse_list(args.models, '--models')
        args.sizes = parse_list(args.sizes, '--sizes', int)
        args.baselines = [] if args.baselines == 'none' else parse_list(args.baselines, '--baselines')
        args.edge_modes = parse_list(args.edge_modes, '--edge-modes')
        args.streams = parse_list(args.streams, '--streams', int) if args.streams is not None else []
        if any(not 1 <= n <= 64 for n in args.streams) or len(set(args.streams)) < len(args.streams):
            raise UsageError('--streams: each count must be in 1..64, each once')
        if args.compare and args.role != 'both':
            raise UsageError('--compare runs on this machine: use it with --role both')
        if args.streams and args.role != 'both':
            raise UsageError('--streams runs the edges on this machine: use it with --role both')
        if set(args.edge_modes) - {'pipelined', 'sequential'} or len(set(args.edge_modes)) < len(args.edge_modes):
            raise UsageError('--edge-modes: use pipelined, sequential or both, comma-separated, each once')
        bad = set(args.baselines) - {'jpeg', 'raw'}
        if bad:
            raise UsageError('--baselines: unknown {}; use jpeg, raw or none'.format(', '.join(sorted(bad))))
        cliutil.check_at_least_one('--frames', args.frames)
        cliutil.check_at_least('--warmup', args.warmup, 0)
        cliutil.check_positive('--fps', args.fps)
        cliutil.check_positive('--timeout', args.timeout, ' seconds')
        cliutil.check_range('--jpeg-quality', args.jpeg_quality, 1, 100)
        cliutil.check_at_least_one('--channels', args.channels)
        cliutil.check_range('--threads', args.threads, 0, cliutil.MAX_THREADS)
        cliutil.check_range('--decode-workers', args.decode_workers, 0, 64)
        for s in args.sizes:
            if not 16 <= s <= wire.MAX_FRAME_SIDE:
                raise UsageError('--sizes: {} is out of range: frame sides are 16..{}'.format(s, wire.MAX_FRAME_SIDE))
        for m in args.models:
            zoo.bundled_model(m)              # a size that is not the model's multiple is padded by the edge
        if args.role == 'edge' and not args.connect:
            raise UsageError('--role edge needs --connect tcp://HOST:PORT (the host\'s latency-bench --role host)')
        for option, endpoint in (('--bind', args.bind), ('--connect', args.connect)):
            if endpoint:
                check_endpoint(endpoint, option, 'tcp://127.0.0.1:5555', any_port=option == '--bind')
                port = endpoint.rsplit(':', 1)[1]
                if args.role != 'both' and port.isdigit() and int(port) >= 65535:
                    raise UsageError('{} {}: a two-machine run needs a port below 65535 (the clock listens on the '
                                     'next one)'.format(option, endpoint))
        if args.out:
            try:
                import matplotlib  # noqa: F401
            except ImportError:
                raise NanolinkError('--out draws latency.png with matplotlib: pip install matplotlib')
            cliutil.check_output_folder('--out', args.out)     # made by run(), once the plan stands
        args.edge_backend = ['--device', args.engine_device] if args.engine_device else []
        return run(args)
    except NanolinkError as e:
        return cliutil.fail('latency-bench', e)


def run(args):
    rows = plan(args)                        # opens --source and the models: a bad one leaves no folder behind
    out = args.out or os.path.join(os.getcwd(), 'latency-bench-logs')
    try:
        os.makedirs(out, exist_ok=True)
    except OSError as e:
        raise NanolinkError('{}: cannot create the folder ({}); pick another with --out DIR'.format(
            out, e.strerror or e))
    print('latency-bench: {} rows x {} frames (+{} warm-up): {}'.format(
        len(rows), args.frames, args.warmup, ', '.join(r.stream for r in rows)), flush=True)
    if args.role == 'edge':
        offset, half_rtt = clock_offset(time_endpoint(args.connect))
        print('clock offset to the host: {:+.2f} ms (+/- {:.2f} ms: half a round trip, the error bound)'.format(
            offset * 1000, half_rtt * 1000), flush=True)
        for row in rows:
            run_edge(args, out, row, args.connect, offset)
        print('latency-bench: sent {} rows; the table is printed by the host\'s latency-bench'.format(len(rows)))
        return 0
    total = len(rows) * (args.frames + args.warmup)
    ctx = zmq.Context()
    if args.role == 'host':
        launched, clock = start_host_with_clock(args, out, total, ctx)
    else:
        launched, clock = start_host(args, out), None
    host, endpoint, err_path = launched.proc, launched.endpoint, launched.stderr_path
    try:
        if args.role == 'host':
            print('listening on {} (clock on {})'.format(endpoint, clock.endpoint), flush=True)
            rc = host.wait()
        else:
            for row in rows:
                run_edge(args, out, row, endpoint, 0.0)
                wait_drained(os.path.join(out, 'host.jsonl'), row.stream, args.frames + args.warmup, args.timeout)
            host.send_signal(signal.SIGINT)           # graceful: flushes its log, prints its summary, exits 0
            try:
                rc = host.wait(30)
            except subprocess.TimeoutExpired:
                raise NanolinkError('host-receiver did not stop on SIGINT:\n' + _tail(err_path))
        if rc != 0:
            raise NanolinkError('host-receiver failed (exit {}):\n{}'.format(rc, _tail(err_path)))
    finally:
        launched.kill()
        if clock:
            clock.close()
        ctx.term()
    host_rows = read_jsonl(os.path.join(out, 'host.jsonl'))
    results = [summarise_row(r, host_rows, args.frames, args.warmup) for r in rows]
    for row, result in zip(rows, results):          # --role host: the edges' logs are on their machines
        edge_log = os.path.join(out, 'edge-{}.jsonl'.format(row.stream))
        result['edge'] = edge_rate(read_jsonl(edge_log), args.warmup) if os.path.exists(edge_log) else None
    micro = micro_benchmark(max(args.sizes))
    title = ('latency-bench: {} timed frames per row after {} warm-up, reliable mode, {}, edge {} / host {} {}; '
             'median (p5-p95) ms'.format(args.frames, args.warmup, 'paced at {:g} fps'.format(args.fps) if args.fps
                                         else 'unpaced', args.engine_device or 'cpu', args.decoder, args.device))
    if args.decoder_variant != zoo.FAST:
        title += '; {} decoder where a model ships one'.format(args.decoder_variant)
    print(format_rows(results, title))
    print()
    print(format_edge_rates(results))
    print()
    streams = run_streams(args, out, args.streams) if args.streams else []
    if streams:
        print(format_streams(streams))
        print()
    print(format_micro(micro))
    if args.compare:                          # nanolink against its alternatives, in this same run
        print(flush=True)
        rc = compare_main(['--models', args.models[0], '--size', args.compare_size, '--frames',
                           str(args.compare_frames), '--link-frames', str(args.compare_frames), '--rate-sizes',
                           args.compare_rate_sizes, '--out', os.path.join(out, 'compare')])
        if rc != 0:
            raise NanolinkError('the comparison (nanolink-compare) failed with exit {}'.format(rc))
    if args.out:
        meta = {'command': 'latency-bench ' + ' '.join(sys.argv[1:]) if sys.argv else '', 'role': args.role,
                'fps': args.fps,
                'warmup': args.warmup, 'cores': os.cpu_count(), 'decoder': args.decoder, 'device': args.device,
                'decoder_variant': args.decoder_variant}
        write_outputs(args.out, results, micro, dict(meta, streams=streams))
        print('wrote {0}/latency.json, {0}/latency.csv, {0}/latency.png'.format(args.out))
    return 0


if __name__ == '__main__':
    sys.exit(main())
