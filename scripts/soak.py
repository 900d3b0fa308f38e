"""Soak: stream N frames through real edge-sender and host-receiver processes; report memory growth and loss.

    python scripts/soak.py --frames 10000 [--size 256x192] [--out soak]

Samples each process's resident memory (VmRSS from /proc, Linux) once a second (--interval). Growth is measured from
the first sample after ``--warmup`` frames (allocator and ONNX Runtime warm-up) to the end. Lost frames =
frames the edge logged as sent minus frames the host decoded; frames the edge dropped itself (reliable
mode: the host took nothing for 1 s, e.g. on a starved CPU) are counted apart. When the edge is done the
host is stopped with SIGINT once its log stops growing. Writes OUT/soak.txt and OUT/soak.json.
"""
import argparse
import json
import os
import signal
import subprocess
import sys
import time

from nanolink.host.launch import HostProcess


def rss_mb(pid):
    with open('/proc/{}/status'.format(pid)) as f:
        for line in f:
            if line.startswith('VmRSS:'):
                return int(line.split()[1]) / 1024.0
    raise OSError('no VmRSS in /proc/{}/status (the process has exited)'.format(pid))


def count_lines(path):
    if not os.path.exists(path):
        return 0
    with open(path) as f:
        return sum(1 for _ in f)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--frames', type=int, default=10000)
    p.add_argument('--size', default='256x192', help='synthetic frame size')
    p.add_argument('--warmup', type=int, default=500)
    p.add_argument('--out', default='soak')
    p.add_argument('--interval', type=float, default=1.0, help='seconds between memory samples')
    args = p.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    hlog, elog = os.path.join(args.out, 'host.jsonl'), os.path.join(args.out, 'edge.jsonl')
    launched = HostProcess(['--log', hlog, '--quiet'])
    host, endpoint = launched.proc, launched.endpoint
    edge = subprocess.Popen([sys.executable, '-m', 'nanolink.edge.cli', '--camera', 'synthetic://' + args.size,
                             '--frames', str(args.frames), '--connect', endpoint, '--log', elog, '--quiet'],
                            stderr=subprocess.PIPE, universal_newlines=True)
    t0, samples, t_idle, last_n = time.time(), [], None, -1
    while host.poll() is None:
        n = count_lines(hlog)
        try:
            samples.append((time.time() - t0, n, rss_mb(edge.pid) if edge.poll() is None else None, rss_mb(host.pid)))
        except (IOError, OSError):
            pass
        if edge.poll() is not None:               # the edge is done: stop the host once it has caught up
            if n != last_n:
                t_idle, last_n = time.time(), n
            elif time.time() - t_idle > 3.0:
                host.send_signal(signal.SIGINT)  # graceful: flushes its log, prints its summary, exits 0
                host.wait(30)
                break
        time.sleep(args.interval)
    edge_err = edge.communicate(timeout=60)[1]
    host_err = host.communicate()[1]
    sent = sum(1 for line in open(elog) if json.loads(line)['sent'])
    decoded = count_lines(hlog)
    after = [s for s in samples if s[1] >= args.warmup]
    first, last_h = after[0], after[-1]
    edge_after = [s for s in after if s[2] is not None]
    lines = ['command: python scripts/soak.py --frames {} --size {} --warmup {}'.format(args.frames, args.size, args.warmup),
             'frames: {} captured, {} sent by the edge ({} dropped by it: the host took none for 1 s), {} decoded by '
             'the host, {} lost in transit; exit codes edge {} host {}'.format(
                 args.frames, sent, args.frames - sent, decoded, sent - decoded, edge.returncode, host.returncode),
             'duration: {:.0f} s ({:.0f} frames/s)'.format(samples[-1][0], decoded / max(samples[-1][0], 1e-9)),
             'host RSS: {:.1f} MB after {} frames -> {:.1f} MB at the end: growth {:+.1f} MB'.format(
                 first[3], first[1], last_h[3], last_h[3] - first[3])]
    if len(edge_after) >= 2:
        lines.append('edge RSS: {:.1f} MB after {} frames -> {:.1f} MB at its last sample ({} frames): growth {:+.1f} MB'.format(
            edge_after[0][2], edge_after[0][1], edge_after[-1][2], edge_after[-1][1], edge_after[-1][2] - edge_after[0][2]))
    text = '\n'.join(lines)
    print(text)
    with open(os.path.join(args.out, 'soak.txt'), 'w') as f:
        f.write(text + '\n')
    summary = {'frames': args.frames, 'sent': sent, 'dropped_by_edge': args.frames - sent, 'decoded': decoded,
               'lost': sent - decoded,
               'exit_codes': {'edge': edge.returncode, 'host': host.returncode},
               'host_rss_growth_mb': last_h[3] - first[3],
               'edge_rss_growth_mb': (edge_after[-1][2] - edge_after[0][2]) if len(edge_after) >= 2 else None,
               'duration_s': samples[-1][0]}
    with open(os.path.join(args.out, 'soak.json'), 'w') as f:
        json.dump(summary, f, indent=2)
    if edge.returncode or host.returncode:
        print(edge_err[-2000:] + host_err[-2000:], file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
