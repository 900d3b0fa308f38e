"""latency-bench --streams 1,2,4: how many frames a second one host-receiver decodes when N edge-senders stream
into it at once (real processes on this machine, the edges unpaced and waiting for the host: --send-timeout 0).

Decoded fps is the host's: timed frames over the time from the first timed frame decoded to the last, all streams
together, after each stream's --warmup frames. On one machine the edges' encoders share its cores with the host.
"""
import os
import signal
import subprocess
import sys

import numpy as np

from nanolink.common.errors import NanolinkError
from nanolink.common.stages import read_jsonl
from nanolink.host.launch import HostProcess, tail


def run_streams(args, out, counts):
    """[{streams, decoded_fps, per_stream_fps, decode_ms}] for each N in counts, first model at the first size."""
    model, size = args.models[0], args.sizes[0]
    rows = []
    for n in counts:
        log_path = os.path.join(out, 'streams-{}-host.jsonl'.format(n))
        if os.path.exists(log_path):
            os.remove(log_path)
        host = HostProcess(['--log', log_path, '--quiet', '--model', model, '--decoder', args.decoder, '--device',
                            args.device, '--decode-workers', str(args.decode_workers)] + (['--threads', str(args.threads)] if args.threads else []),
                           bind=args.bind, stderr_path=os.path.join(out, 'streams-{}-host.stderr.txt'.format(n)))
        edges = []
        try:
            for i in range(n):
                err = open(os.path.join(out, 'streams-{}-edge{}.stderr.txt'.format(n, i)), 'w')
                cmd = [sys.executable, '-m', 'nanolink.edge.cli', '--camera', args.source, '--loop', '--size',
                       '{0}x{0}'.format(size), '--frames', str(args.frames + args.warmup), '--connect', host.endpoint,
                       '--stream-id', 's{}'.format(i), '--model', model, '--send-timeout', '0', '--quiet'] + \
                    args.edge_backend
                edges.append((subprocess.Popen(cmd, stderr=err), err))
            for p, err in edges:
                rc = p.wait(args.timeout * 4 + 600)
                err.close()
                if rc != 0:
                    raise NanolinkError('edge-sender {} of {} failed (exit {}):\n{}'.format(
                        edges.index((p, err)), n, rc, tail(err.name)))
            host.proc.send_signal(signal.SIGINT)      # the edges waited for every acknowledgement: all decoded
            if host.wait(60) != 0:
                raise NanolinkError('host-receiver failed:\n' + tail(host.stderr_path))
        finally:
            for p, err in edges:
                if p.poll() is None:
                    p.kill()
                    p.wait()
            host.kill()
        timed = [r for r in read_jsonl(log_path) if r['seq'] >= args.warmup]
        if len(timed) < 2:
            raise NanolinkError('{} streams: the host logged {} timed frames'.format(n, len(timed)))
        t = sorted(r['t_done'] for r in timed)
        fps = (len(timed) - 1) / (t[-1] - t[0]) if t[-1] > t[0] else float('inf')
        rows.append({'streams': n, 'model': model, 'size': size, 'frames': len(timed), 'decoded_fps': fps,
                     'per_stream_fps': fps / n, 'decode_ms': float(np.median([r['stages']['decode'] for r in timed]))})
    return rows


def format_streams(rows):
    lines = ['one host-receiver, N edge-senders at once: decoded frames a second (all streams), median decode ms',
             'streams | model, size | decoded fps | per stream | decode ms | vs 1 stream']
    base = rows[0]['decoded_fps'] if rows else 1.0
    for r in rows:
        lines.append('{} | {}, {}² | {:.1f} | {:.1f} | {:.1f} | x{:.2f}'.format(
            r['streams'], r['model'], r['size'], r['decoded_fps'], r['per_stream_fps'], r['decode_ms'],
            r['decoded_fps'] / base))
    return '\n'.join(lines)
