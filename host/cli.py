"""host-receiver: receive frames from edge-senders, validate, decode, show / save them, time every stage.

    host-receiver --show
    host-receiver --bind tcp://*:5555 --save out/ --frames 200 --log host.jsonl
    host-receiver --bind tcp://127.0.0.1:* ...      # any free port; the first stdout line names it

The first line on stdout is ``listening on ENDPOINT``. Malformed messages are counted and logged (with the
sender's stream id when it can be read) and never stop the receiver. Exit status: 0 after --frames
decoded frames (or on Ctrl-C), 1 on a setup error or when no frame arrived for --timeout seconds,
2 for bad arguments.
"""
import argparse
import collections
import logging
import sys
import threading
import time

from dataclasses import dataclass, field
from typing import List, Optional

from nanolink.common import wire
from nanolink.common.codec import load_decoders
from nanolink.common.errors import NanolinkError
from nanolink.common import cli as cliutil
from nanolink.common import keys
from nanolink.common.transport import MULTIPART, Receiver
from nanolink.common.stages import (END_TO_END, HOST_STAGES, StageClock, StreamLogs, format_table, sample_window,
                                     summarise)
from nanolink.host.display import FrameSaver, Window

log = logging.getLogger('nanolink.host')


@dataclass
class HostConfig:
    bind: str = 'tcp://*:5555'          # endpoint to listen on
    show: bool = False                  # OpenCV window
    save: Optional[str] = None          # folder for decoded PNGs
    frames: Optional[int] = None        # exit 0 after this many decoded frames
    timeout: Optional[float] = None     # exit 1 when no frame arrives for this many seconds
    log: Optional[str] = None           # JSON-lines per-frame log
    decoder: str = 'onnxruntime'        # onnxruntime | torch
    device: str = 'cpu'                 # cpu | cuda
    models: List[str] = field(default_factory=list)      # restrict to these bundled models
    model_dirs: List[str] = field(default_factory=list)  # extra exported model folders
    threads: int = 0                    # decoder CPU threads (0: runtime default)
    latest: bool = False                # keep only the newest waiting frame (ZMQ_CONFLATE)
    curve_keys: Optional[str] = None    # CurveZMQ folder from nanolink-keys: host.key_secret + authorized/


class StreamStats(object):
    """Per-stream counters and sequence tracking."""

    def __init__(self):
        self.decoded = 0
        self.lost = 0
        self.reordered = 0
        self.last_seq = None
        self.bits = 0
        self.pixels = 0

    def update(self, seq):
        """A gap counts its frames as lost; a frame older than the newest is reordered and, having been
        counted lost when the gap opened, no longer lost (a repeat of the newest is reordered only)."""
        if self.last_seq is not None:
            if seq > self.last_seq + 1:
                self.lost += seq - self.last_seq - 1
            elif seq <= self.last_seq:
                self.reordered += 1
                if seq < self.last_seq and self.lost:
                    self.lost -= 1
        if self.last_seq is None or seq > self.last_seq:
            self.last_seq = seq


class RejectLog(object):
    """Counts rejected messages by reason; logs at most ``per_s`` lines a second, then says how many it held back."""

    def __init__(self, per_s=5):
        self.counts = collections.Counter()
        self.per_s, self._window, self._n, self._held = per_s, 0, 0, 0
        self._mismatch_seen = set()

    def add(self, reason, stream, fingerprint_mismatch=False):
        self.counts[reason.split(':')[0][:60]] += 1
        if fingerprint_mismatch:                  # one line per stream and model, not one per frame
            key = (stream, reason.split(' is not loaded')[0])
            if key in self._mismatch_seen:
                return
            self._mismatch_seen.add(key)
            log.warning('refusing stream %s: %s (further frames of it are counted, not logged)', stream, reason)
            return
        now = int(time.time())
        if now != self._window:
            if self._held:
                log.warning('... %d more rejected messages not shown', self._held)
            self._window, self._n, self._held = now, 0, 0
        if self._n < self.per_s:
            self._n += 1
            log.warning('rejected message from %s: %s', 'stream ' + stream if stream else 'unknown sender', reason)
        else:
            self._held += 1

    def flush(self):
        """Say how many lines were held back in the current second (called on exit)."""
        if self._held:
            log.warning('... %d more rejected messages not shown', self._held)
            self._held = 0

    @property
    def total(self):
        return sum(self.counts.values())


def build_parser():
    p = argparse.ArgumentParser(prog='host-receiver', description=__doc__.split('\n')[0],
                                epilog='Full reference: README.md, "CLI reference".')
    p.add_argument('--bind', default='tcp://*:5555', metavar='ENDPOINT',
                   help='where edge-senders connect (default: %(default)s; tcp://127.0.0.1:* picks a free port)')
    p.add_argument('--show', action='store_true', help='show decoded frames in a window (q quits)')
    p.add_argument('--save', metavar='DIR', help='write decoded frames to DIR/<stream>/<seq>.png')
    p.add_argument('--frames', type=int, metavar='N', help='exit 0 after N decoded frames')
    p.add_argument('--timeout', type=float, metavar='S', help='exit 1 if no frame arrives for S seconds')
    p.add_argument('--curve-keys', metavar='DIR', help='accept only CurveZMQ-authenticated edges whose public keys are '
                                                       'in DIR/authorized (keys from nanolink-keys)')
    p.add_argument('--latest', action='store_true', help='decode only the newest waiting frame (low latency, '
                                                          'drops frames when decoding is slower than the stream)')
    p.add_argument('--log', metavar='PATH', help='write one JSON line of stage timings per frame; a PATH with {stream} '
                                                 '(e.g. logs/{stream}.jsonl) writes one file per stream')
    p.add_argument('--decoder', default='onnxruntime', choices=('onnxruntime', 'torch'), help='decoder runtime')
    p.add_argument('--device', default='cpu', choices=('cpu', 'cuda'), help='where the decoder runs')
    p.add_argument('--model', action='append', default=[], metavar='NAME',
                   help='decode only this bundled model (repeatable; default: all bundled models)')
    p.add_argument('--model-dir', action='append', default=[], metavar='DIR',
                   help='also load an exported model folder (from nanolink-export; repeatable)')
    p.add_argument('--threads', type=int, default=0, help='decoder CPU threads (default: runtime default)')
    p.add_argument('--quiet', action='store_true', help='no status lines, only warnings and the summary')
    return p


def config_from_args(args):
    cliutil.check_at_least_one('--frames', args.frames)
    cliutil.check_positive('--timeout', args.timeout, ' seconds')
    return HostConfig(bind=args.bind, show=args.show, save=args.save, frames=args.frames, timeout=args.timeout,
                      log=args.log, decoder=args.decoder, device=args.device, models=args.model,
                      model_dirs=args.model_dir, threads=args.threads, latest=args.latest,
                      curve_keys=args.curve_keys)


def run(cfg, stop=None, on_listening=None, status_every_s=2.0):
    """Receive until cfg.frames are decoded, ``stop`` is set, or --timeout passes without a frame.

    Returns the summary dict; raises NanolinkError on a timeout.
    """
    saver = FrameSaver(cfg.save) if cfg.save else None
    try:
        return _run(cfg, saver, stop, on_listening, status_every_s)
    finally:
        if saver:
            saver.close()          # frames already received are written even after a timeout or Ctrl-C


def _run(cfg, saver, stop, on_listening, status_every_s):
    stop = stop or threading.Event()
    decoders = load_decoders(cfg.models, cfg.decoder, cfg.device, cfg.threads, cfg.model_dirs)
    window = Window() if cfg.show else None
    streams = collections.defaultdict(StreamStats)
    rejects = RejectLog()
    samples = collections.defaultdict(sample_window)
    decoded, received = 0, 0
    t_status, n_status = time.time(), 0
    curve = keys.host_options(cfg.curve_keys) if cfg.curve_keys else None
    with Receiver(cfg.bind, latest=cfg.latest, curve=curve) as rx, StreamLogs(cfg.log) as jlog:
        if on_listening:
            on_listening(rx.endpoint)
        last_frame_t = time.time()
        t0 = None
        while not stop.is_set() and (cfg.frames is None or decoded < cfg.frames):
            if not rx.wait(0.2):
                if cfg.timeout and time.time() - last_frame_t > cfg.timeout:
                    raise NanolinkError('no frame for {:g} s (decoded {} so far): is edge-sender running and '
                                        'connecting to {}?'.format(cfg.timeout, decoded, rx.endpoint))
                continue
            clock = StageClock()
            with clock('receive'):
                data = rx.recv_ready()
            received += 1
            last_frame_t = time.time()
            if data is MULTIPART:
                rejects.add('multipart message: a nanolink frame is one ZeroMQ frame', None)
                continue
            with clock('deserialise'):
                try:
                    frame = wire.unpack(data, decoders)
                except wire.WireError as e:
                    frame, err = None, e
            if frame is None:
                rejects.add(err.reason, err.stream, fingerprint_mismatch=err.fingerprint_mismatch)
                continue
            dec = decoders[frame.model][frame.fp]
            with clock('decode'):
                try:
                    image = dec.decode(frame)
                except wire.WireError as e:       # a payload the codec cannot decode (e.g. a broken JPEG)
                    image, err = None, e
            if image is None:
                rejects.add(err.reason, err.stream or frame.stream)
                continue
            with clock('postprocess'):
                bgr = dec.postprocess(image, frame)
            st = streams[frame.stream]
            st.update(frame.seq)
            st.decoded += 1
            st.bits += len(data) * 8
            st.pixels += frame.size[0] * frame.size[1]
            with clock('display'):
                if saver:
                    saver.save(frame.stream, frame.seq, bgr)
                if window:
                    e2e = (time.time() - frame.t_cap) * 1000.0
                    if not window.show(frame.stream, bgr, [
                            '{}  #{}'.format(frame.stream, frame.seq),
                            '{:.1f} fps'.format(n_status and (decoded - n_status) / max(time.time() - t_status, 1e-6)),
                            'latency {:.0f} ms'.format(e2e),
                            '{:.3f} bpp'.format(len(data) * 8.0 / (frame.size[0] * frame.size[1]))]):
                        stop.set()
            clock.ms[END_TO_END] = max(0.0, (time.time() - frame.t_cap) * 1000.0)
            decoded += 1
            t0 = t0 or time.time()
            jlog.write({'seq': frame.seq, 'stream': frame.stream, 'bytes': len(data), 'width': frame.size[1],
                        'height': frame.size[0], 'model': frame.model, 't_cap': frame.t_cap, 't_done': time.time(),
                        'stages': clock.ms, 'sender_stages': frame.stages})
            for k, v in clock.ms.items():
                samples[k].append(v)
            for k, v in frame.stages.items():
                samples[k].append(v)
            now = time.time()
            if status_every_s and now - t_status >= status_every_s:
                log.info('%d frames decoded, %.1f fps, %d rejected, decode %.1f ms', decoded,
                         (decoded - n_status) / (now - t_status), rejects.total, clock.ms['decode'])
                t_status, n_status = now, decoded
        if window:
            window.close()
        rejects.flush()
        accepted, closed = rx.connection_counts()
    return {'received': received, 'decoded': decoded, 'rejected': rejects.total, 'reject_reasons': dict(rejects.counts),
            'streams': streams, 'stages': samples, 'elapsed_s': (time.time() - t0) if t0 else 0.0,
            'connections': {'accepted': accepted, 'closed': closed}}


def main(argv=None):
    args = build_parser().parse_args(argv)
    stop = cliutil.setup('host-receiver', args.quiet)

    def listening(endpoint):
        print('listening on {}'.format(endpoint), flush=True)

    try:
        result = run(config_from_args(args), stop, listening, 0 if args.quiet else 2.0)
    except NanolinkError as e:
        print('host-receiver: error: {}'.format(e), file=sys.stderr)
        return 1
    lines = ['host-receiver: {} decoded, {} rejected of {} received'.format(
        result['decoded'], result['rejected'], result['received']),
        '  connections: {accepted} accepted, {closed} closed (edges stopping, network errors, or a message over the '
        '32 MiB socket limit, which ZeroMQ drops unseen)'.format(**result['connections'])]
    for name, st in sorted(result['streams'].items()):
        lines.append('  stream {}: {} frames, {} lost, {} reordered, {:.3f} bpp'.format(
            name, st.decoded, st.lost, st.reordered, st.bits / float(max(st.pixels, 1))))
    stage_rows = summarise({k: v for k, v in result['stages'].items() if k in HOST_STAGES + (END_TO_END,)})
    lines.append(format_table(stage_rows))
    print('\n'.join(lines), file=sys.stderr)
    return 0


if __name__ == '__main__':
    sys.exit(main())
