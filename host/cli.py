"""host-receiver: receive frames from edge-senders, validate, decode, show / save them, time every stage.

    host-receiver --show
    host-receiver --bind tcp://*:5555 --save out/ --frames 200 --log host.jsonl
    host-receiver --bind tcp://127.0.0.1:* ...      # any free port; the first stdout line names it
    host-receiver --http 127.0.0.1:8080 --record out.mp4    # browser viewer at http://127.0.0.1:8080/, a video file

The first line on stdout is ``listening on ENDPOINT``; with --http the next is ``viewer on URL``. Malformed messages are counted and logged (with the
sender's stream id when it can be read) and never stop the receiver. Exit status: 0 after --frames
decoded frames (or on Ctrl-C), 1 on a setup error or when no frame was decoded for --timeout seconds
(the summary is printed first), 2 for bad arguments.

End-to-end latency compares the sender's capture time with this machine's clock; where the two clocks differ
(no NTP), frames "captured in the future" are counted per stream and left out of end_to_end rather than
shown as 0 ms, and one warning says how far ahead the sender's clock is.
"""
import argparse
import collections
import contextlib
import logging
import sys
import threading
import time

from dataclasses import dataclass, field
from typing import List, Optional, Tuple

from nanolink.common import wire
from nanolink.common.codec import HostDecoder, load_decoders
from nanolink.common.errors import NanolinkError, UsageError
from nanolink.common.imageproc import parse_size
from nanolink.common import cli as cliutil
from nanolink.common import keys
from nanolink.common.transport import MULTIPART, Receiver
from nanolink.common.stages import (END_TO_END, HOST_STAGES, StageClock, StreamLogs, format_table, sample_window,
                                     summarise)
from nanolink.host.display import FrameSaver, Window
from nanolink.host.live import LiveView
from nanolink.host.quality import QualityMonitor
from nanolink.host.record import Recorder
from nanolink.host.streams import RejectLog, StreamTable
from nanolink.host.web import WebViewer, check_token, parse_listen

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
    decoder_variant: str = 'fast'       # fast | quality (models that ship a quality decoder; the others: fast)
    device: str = 'cpu'                 # cpu | cuda
    models: List[str] = field(default_factory=list)      # restrict to these bundled models
    model_dirs: List[str] = field(default_factory=list)  # extra exported model folders
    threads: int = 0                    # decoder CPU threads (0: runtime default)
    latest: bool = False                # keep only the newest waiting frame (ZMQ_CONFLATE)
    curve_keys: Optional[str] = None    # CurveZMQ folder from nanolink-keys: host.key_secret + authorized/
    http: Optional[str] = None          # HOST:PORT of the browser viewer
    http_token: Optional[str] = None    # a token every viewer request must carry
    record: Optional[str] = None        # video file (or a path with {stream}) of the decoded frames
    record_fps: Optional[float] = None  # its frame rate (None: the stream's own, from capture times)
    record_fourcc: Optional[str] = None
    snapshot_dir: str = '.'             # where --show's s key writes PNGs
    max_streams: int = 64               # live streams at most; more are refused until one idles out
    stream_idle_s: float = 300.0        # a stream without frames this long is evicted (state released)
    max_size: Tuple[int, int] = (wire.MAX_FRAME_SIDE, wire.MAX_FRAME_SIDE)   # (W, H) decoded at most
    max_pixel_rate: float = 250e6       # decoded pixels a second per stream (4K at 30 fps is 249 M)


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
    p.add_argument('--decoder-variant', default='fast', choices=('fast', 'quality'),
                   help='fast: the decoder within the 2-core CPU budget; quality: the heavier decoder of models that '
                        'ship one (the bundled cae, ae and ae-full do; for GPU hosts, with --device cuda), reading the same '
                        'bits; other models keep their fast decoder, as the start-up log says (default: %(default)s)')
    p.add_argument('--model', action='append', default=[], metavar='NAME',
                   help='decode only this bundled model (repeatable; default: all bundled models)')
    p.add_argument('--model-dir', action='append', default=[], metavar='DIR',
                   help='also load an exported model folder (from nanolink-export; repeatable)')
    p.add_argument('--threads', type=int, default=0, help='decoder CPU threads (default: runtime default)')
    p.add_argument('--http', metavar='HOST:PORT', help='serve a browser viewer there: live video, counters, stage '
                   'latencies and a latency plot at /, counters at /stats.json (127.0.0.1 keeps it on this machine; '
                   'see --http-token for a network; port 0 picks a free one, printed as "viewer on URL")')
    p.add_argument('--http-token', metavar='TOKEN', help='require this token from the viewer\'s browsers: open '
                   'URL?token=TOKEN once (a cookie keeps it), or send "Authorization: Bearer TOKEN"; for a viewer '
                   'reached over a network')
    p.add_argument('--record', metavar='PATH', help='write the decoded stream to a video file (.mp4, .avi, .mkv); '
                   'a PATH with {stream} writes one file per stream')
    p.add_argument('--record-fps', type=float, metavar='F', help='frame rate written in --record files (default: '
                   'the stream\'s own, from its capture times)')
    p.add_argument('--record-fourcc', metavar='CODE', help='video codec of --record files (default: mp4v for .mp4, '
                   'MJPG for .avi, XVID for .mkv)')
    p.add_argument('--snapshot-dir', default='.', metavar='DIR',
                   help='where the s key of --show writes PNG snapshots (default: the current folder)')
    p.add_argument('--max-streams', type=int, default=64, metavar='N',
                   help='decode at most N streams at once; frames of more are refused (and counted) until one has '
                        'sent nothing for --stream-idle seconds (default: %(default)s)')
    p.add_argument('--stream-idle', type=float, default=300.0, metavar='S',
                   help='release a stream\'s state (log file, video file, window, viewer slot) after S seconds '
                        'without frames; its counts stay in the summary (default: %(default)s)')
    p.add_argument('--max-size', default='{0}x{0}'.format(wire.MAX_FRAME_SIDE), metavar='WxH',
                   help='refuse frames larger than W x H before decoding them (default: %(default)s)')
    p.add_argument('--max-pixel-rate', type=float, default=250.0, metavar='MPX',
                   help='decode at most MPX million pixels a second per stream, refusing frames beyond that before '
                        'decoding (default: %(default)s, 4K at 30 fps)')
    p.add_argument('--quiet', action='store_true', help='no status lines, only warnings and the summary')
    return p


def config_from_args(args):
    cliutil.check_at_least_one('--frames', args.frames)
    cliutil.check_positive('--timeout', args.timeout, ' seconds')
    cliutil.check_positive('--record-fps', args.record_fps)
    cliutil.check_range('--threads', args.threads, 0, cliutil.MAX_THREADS)
    cliutil.check_at_least_one('--max-streams', args.max_streams)
    cliutil.check_positive('--stream-idle', args.stream_idle, ' seconds')
    cliutil.check_positive('--max-pixel-rate', args.max_pixel_rate, ' million pixels a second')
    max_size = parse_size(args.max_size, '--max-size')          # (W, H), each 8..4096 (the wire's limit)
    if args.http:
        parse_listen(args.http)
        check_token(args.http_token)
    elif args.http_token:
        raise UsageError('--http-token is for the browser viewer: add --http HOST:PORT')
    if args.record:
        from nanolink.host.record import fourcc_for
        fourcc_for(args.record, args.record_fourcc)
    return HostConfig(bind=args.bind, show=args.show, save=args.save, frames=args.frames, timeout=args.timeout,
                      log=args.log, decoder=args.decoder, decoder_variant=args.decoder_variant, device=args.device,
                      models=args.model, model_dirs=args.model_dir, threads=args.threads, latest=args.latest,
                      curve_keys=args.curve_keys, http=args.http, http_token=args.http_token, record=args.record,
                      record_fps=args.record_fps,
                      record_fourcc=args.record_fourcc, snapshot_dir=args.snapshot_dir, max_streams=args.max_streams,
                      stream_idle_s=args.stream_idle, max_size=max_size,
                      max_pixel_rate=args.max_pixel_rate * 1e6)


def run(cfg, stop=None, on_listening=None, status_every_s=2.0, on_viewer=None):
    """Receive until cfg.frames are decoded, ``stop`` is set, or --timeout passes without a frame.

    on_listening(endpoint) and on_viewer(url) are called once the socket and the web viewer listen.
    Returns the summary dict; its ``timed_out`` is the message when --timeout passed without a decoded frame
    (else None). Frames already received are saved and
    recorded even after a timeout or Ctrl-C.
    """
    with contextlib.ExitStack() as outputs:
        out = _Outputs(cfg, outputs)
        return _run(cfg, out, stop, on_listening, status_every_s, on_viewer)


class _Outputs(object):
    """Where decoded frames go besides the log: PNG files, a video file, windows, the browser viewer, the
    quality monitor. Each is optional; each is closed (its queue written out) when the run ends."""

    def __init__(self, cfg, stack):
        self.saver = self.recorder = self.window = self.web = self.live = None
        if cfg.save:
            self.saver = FrameSaver(cfg.save)
            stack.callback(self.saver.close)
        if cfg.record:
            self.recorder = Recorder(cfg.record, cfg.record_fps, cfg.record_fourcc)
            stack.callback(self.recorder.close)
        self.quality = QualityMonitor()
        stack.callback(self.quality.close, False)
        if cfg.http:
            self.live = LiveView()
            self.web = stack.enter_context(WebViewer(cfg.http, self.live, cfg.http_token))
        if cfg.show:
            self.window = Window(snapshot_dir=cfg.snapshot_dir)
            stack.callback(self.window.close)

    def poll_window(self, stop):
        """Keys of the --show windows: q quits, s snapshots, space pauses."""
        if not self.window:
            return
        action = self.window.poll()
        if action == 'quit':
            stop.set()
        elif action == 'snapshot':
            try:
                for path in self.window.snapshot():
                    log.info('snapshot: %s', path)
            except NanolinkError as e:
                log.warning('%s', e)
        elif action in ('pause', 'resume'):
            log.info('display %s', 'paused (space resumes)' if action == 'pause' else 'resumed')


def _overlay(frame, st):
    e2e = st.latest['end_to_end_ms']
    lines = ['{}  #{}'.format(frame.stream, frame.seq), '{:.1f} fps'.format(st.fps),
             'latency ' + ('- (clocks differ)' if e2e is None else '{:.0f} ms'.format(e2e)),
             '{:.3f} bpp'.format(st.latest['bpp'])]
    q = st.latest.get('quality', {}).get('last')
    if q:
        lines.append('PSNR {:.2f} dB{} (#{})'.format(q['psnr'], '' if q['ms_ssim'] is None else
                                                     ', MS-SSIM {:.4f}'.format(q['ms_ssim']), q['seq']))
    return lines


def _run(cfg, out, stop, on_listening, status_every_s, on_viewer):
    stop = stop or threading.Event()
    decoders = load_decoders(cfg.models, cfg.decoder, cfg.device, cfg.threads, cfg.model_dirs, cfg.decoder_variant)
    for name, by_fp in sorted(decoders.items()):
        for fp, dec in sorted(by_fp.items()):
            if isinstance(dec, HostDecoder):       # learned models (jpeg and raw have one decoder)
                log.info('model %s (fingerprint %s): %s decoder on %s %s', name, fp, dec.variant, cfg.decoder,
                         cfg.device)
    rejects = RejectLog()
    samples = collections.defaultdict(sample_window)
    decoded, received = 0, 0
    t_status, n_status = time.time(), 0
    curve = keys.host_options(cfg.curve_keys) if cfg.curve_keys else None
    with Receiver(cfg.bind, latest=cfg.latest, curve=curve) as rx, StreamLogs(cfg.log) as jlog:
        def evicted(name):                  # an idle stream's resources go; its counters stay
            jlog.close_stream(name)
            for o in (out.live, out.window):
                if o:
                    o.forget(name)
            if out.recorder:
                out.recorder.end(name)

        streams = StreamTable(cfg.max_streams, cfg.stream_idle_s, cfg.max_pixel_rate, evicted)

        def totals():
            accepted, closed = rx.connection_counts()
            return {'received': received, 'decoded': decoded, 'rejected': rejects.total,
                    'reject_reasons': dict(rejects.counts), 'connections': {'accepted': accepted, 'closed': closed},
                    'quality_skipped': out.quality.skipped}

        def reject(reason, stream, mismatch=False):
            rejects.add(reason, stream, fingerprint_mismatch=mismatch)
            st = streams.get(stream)        # only live streams (they delivered a frame): a flood of made-up ids
            if st is not None:              # must not grow memory (they are counted in the totals and reasons)
                st.received += 1
                st.rejected += 1
                if out.live:
                    out.live.update_stream(stream, st.as_dict())

        if out.live:
            out.live.update_totals(totals())
        if on_listening:
            on_listening(rx.endpoint)
        if out.web and on_viewer:
            on_viewer(out.web.url)
        last_frame_t = time.time()         # of the last decoded frame: --timeout counts from there
        received_at_decode, timed_out = 0, None
        t0 = None
        while not stop.is_set() and (cfg.frames is None or decoded < cfg.frames):
            if out.live:                       # the viewer's totals, as of the previous message
                out.live.update_totals(totals())
            for q in out.quality.results():
                _quality_result(q, streams.all().get(q['stream']), out, jlog)
            out.poll_window(stop)
            if cfg.timeout and time.time() - last_frame_t > cfg.timeout:
                timed_out = _timeout_message(cfg.timeout, decoded, received - received_at_decode, rejects,
                                             rx.endpoint)
                break
            if not rx.wait(0.2):
                continue
            clock = StageClock()
            with clock('receive'):
                data = rx.recv_ready()
            received += 1
            if data is MULTIPART:
                reject('multipart message: a nanolink frame is one ZeroMQ frame', None)
                continue
            with clock('deserialise'):
                try:
                    frame = wire.unpack(data, decoders)
                except wire.WireError as e:
                    frame, err = None, e
            if frame is None:
                reject(err.reason, err.stream, err.fingerprint_mismatch)
                continue
            h, w = frame.size
            if w > cfg.max_size[0] or h > cfg.max_size[1]:
                reject('frame of {}x{} is over --max-size {}x{}'.format(w, h, *cfg.max_size), frame.stream)
                continue
            st, why = streams.admit(frame.stream, time.time(), w * h)
            if why:
                reject(why, frame.stream)
                continue
            dec = decoders[frame.model][frame.fp]
            with clock('decode'):
                try:
                    image = dec.decode(frame)
                except wire.WireError as e:       # a payload the codec cannot decode (e.g. a broken JPEG)
                    image, err = None, e
            if image is None:
                reject(err.reason, err.stream or frame.stream)
                continue
            with clock('postprocess'):
                bgr = dec.postprocess(image, frame)
            st.received += 1
            now = time.time()
            bpp = st.decoded_frame(frame, len(data), now)
            last_frame_t, received_at_decode = now, received
            st.latest.update({'model': frame.model, 'decoder': dec.variant, 'width': frame.size[1],
                              'height': frame.size[0], 'bpp': bpp, 'bytes': len(data),
                              'end_to_end_ms': _end_to_end_ms(frame, now), 'sender_stages': frame.stages})
            with clock('display'):
                if frame.ref_error:
                    out.quality.refuse(frame)
                if frame.ref is not None:
                    out.quality.submit(frame, bgr)
                if out.saver:
                    out.saver.save(frame.stream, frame.seq, bgr)
                if out.recorder:
                    out.recorder.add(frame.stream, frame.t_cap, bgr)
                if out.window:
                    out.window.show(frame.stream, frame.seq, bgr, _overlay(frame, st))
            t_done = time.time()
            e2e = _end_to_end_ms(frame, t_done)
            if e2e is None:
                st.clock_ahead += 1
                if st.clock_ahead == 1:
                    log.warning('stream %s: its capture times are %.3f s ahead of this host\'s clock, so the two '
                                'clocks differ; end_to_end is left out for such frames (sync the clocks with NTP / '
                                'chrony, or give edge-sender --clock-offset; latency-bench --role edge measures it)',
                                frame.stream, frame.t_cap - t_done)
            else:
                clock.ms[END_TO_END] = e2e
            decoded += 1
            t0 = t0 or t_done
            st.latest.update({'stages': dict(clock.ms), 'end_to_end_ms': e2e})
            if out.live:
                out.live.publish(frame.stream, bgr, st.as_dict(), t_done, e2e)
            rec = {'seq': frame.seq, 'stream': frame.stream, 'bytes': len(data), 'width': frame.size[1],
                   'height': frame.size[0], 'model': frame.model, 'decoder': dec.variant, 't_cap': frame.t_cap,
                   't_done': t_done,
                   'stages': clock.ms, 'sender_stages': frame.stages}
            if frame.ref is not None:
                rec['ref_bytes'] = len(frame.ref)
            jlog.write(rec)
            for k, v in clock.ms.items():
                samples[k].append(v)
            for k, v in frame.stages.items():
                samples[k].append(v)
            if status_every_s and t_done - t_status >= status_every_s:
                log.info('%d frames decoded, %.1f fps, %d rejected, decode %.1f ms', decoded,
                         (decoded - n_status) / (t_done - t_status), rejects.total, clock.ms['decode'])
                t_status, n_status = t_done, decoded
        out.quality.close(wait=True)           # score the references already received
        for q in out.quality.results():
            _quality_result(q, streams.all().get(q['stream']), out, jlog)
        rejects.flush()
        accepted, closed = rx.connection_counts()
    return {'received': received, 'decoded': decoded, 'rejected': rejects.total, 'reject_reasons': dict(rejects.counts),
            'streams': streams.all(), 'streams_refused': streams.refused, 'max_streams': cfg.max_streams,
            'stages': samples, 'elapsed_s': (time.time() - t0) if t0 else 0.0,
            'connections': {'accepted': accepted, 'closed': closed}, 'quality': dict(out.quality.streams),
            'quality_skipped': out.quality.skipped, 'timed_out': timed_out,
            'recorded': out.recorder.files if out.recorder else [],     # filled when the recorder closes, below
            'record_refused': out.recorder.refused if out.recorder else []}


def _end_to_end_ms(frame, t_now):
    """Capture to now in ms, or None when the capture time is after now (the sender's clock is ahead)."""
    ms = (t_now - frame.t_cap) * 1000.0
    return ms if ms >= 0 else None


def _timeout_message(timeout, decoded, rejected_since, rejects, endpoint):
    if rejected_since:
        top = ', '.join('{} ({})'.format(r, n) for r, n in rejects.counts.most_common(2))
        return ('no frame decoded for {:g} s: {} messages arrived and were rejected (mostly: {}); see the warnings '
                'above'.format(timeout, rejected_since, top))
    return 'no frame for {:g} s (decoded {} so far): is edge-sender running and connecting to {}?'.format(
        timeout, decoded, endpoint.replace('0.0.0.0', "this machine's address"))


def _quality_result(q, st, out, jlog):
    """A finished quality score: into the stream's figures, the log (an "event": "quality" line) and the viewer."""
    psnr = q['psnr']
    if st is not None:
        st.latest['quality'] = out.quality.streams[q['stream']].as_dict()
    log.info('stream %s frame %d vs its reference: PSNR %.2f dB%s', q['stream'], q['seq'], psnr,
             '' if q['ms_ssim'] is None else ', MS-SSIM {:.4f}'.format(q['ms_ssim']))
    jlog.write({'event': 'quality', 'stream': q['stream'], 'seq': q['seq'], 't': time.time(), 'psnr': psnr,
                'ms_ssim': q['ms_ssim']})
    if out.live and st is not None:
        out.live.update_stream(q['stream'], st.as_dict())


def main(argv=None):
    args = build_parser().parse_args(argv)
    stop = cliutil.setup('host-receiver', args.quiet)

    def listening(endpoint):
        print('listening on {}'.format(endpoint), flush=True)

    def viewer(url):
        print('viewer on {}'.format(url), flush=True)

    try:
        result = run(config_from_args(args), stop, listening, 0 if args.quiet else 2.0, viewer)
    except NanolinkError as e:
        return cliutil.fail('host-receiver', e)
    lines = ['host-receiver: {} decoded, {} rejected of {} received'.format(
        result['decoded'], result['rejected'], result['received']),
        '  connections: {accepted} accepted, {closed} closed (edges stopping, network errors, or a message over the '
        '32 MiB socket limit, which ZeroMQ drops unseen)'.format(**result['connections'])]
    for name, st in sorted(result['streams'].items()):
        lines.append('  stream {}: {} frames, {} lost, {} reordered, {} rejected, {:.3f} bpp'.format(
            name, st.decoded, st.lost, st.reordered, st.rejected, st.bits / float(max(st.pixels, 1))))
        q = result['quality'].get(name)
        if q and q.n:
            d = q.as_dict()
            lines.append('    quality vs {} reference frames: PSNR {:.2f} dB{}'.format(
                q.n, d['mean_psnr'], '' if d['mean_ms_ssim'] is None else
                ', MS-SSIM {:.4f}'.format(d['mean_ms_ssim'])))
    if result['streams_refused']:
        lines.append('  {} frames of new streams refused: --max-streams {} streams were live'.format(
            result['streams_refused'], result['max_streams']))
    if result['quality_skipped']:
        lines.append('  {} reference frames not scored (the quality monitor was busy): use a larger '
                     '--reference-every'.format(result['quality_skipped']))
    for path, n, fps in result['recorded']:
        lines.append('  recorded {} ({} frames at {:.2f} fps)'.format(path, n, fps))
    for path, (w, h), n in result['record_refused']:
        lines.append('  not recorded: {} ({} frames of {}x{}: the video encoder refused that size)'.format(path, n, w, h))
    ahead = sum(st.clock_ahead for st in result['streams'].values())
    if ahead:
        lines.append('  {} frames had capture times ahead of this host\'s clock: left out of end_to_end (sync the '
                     'clocks, or edge-sender --clock-offset)'.format(ahead))
    stage_rows = summarise({k: v for k, v in result['stages'].items() if k in HOST_STAGES + (END_TO_END,)})
    lines.append(format_table(stage_rows))
    print('\n'.join(lines), file=sys.stderr)
    if result['timed_out']:
        return cliutil.fail('host-receiver', NanolinkError(result['timed_out']))
    return 0


if __name__ == '__main__':
    sys.exit(main())
