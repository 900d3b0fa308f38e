"""The host's receive loop: validate, decode, route each frame to its outputs, acknowledge it, time every stage.

    result = run(HostConfig(bind='tcp://*:5555', save='out/'), stop)      # what host-receiver runs

Messages in arrival order (decoded on nanolink.Receiver's decode threads, --decode-workers): receive ->
wire.unpack (validation, entropy decoding) -> checks (size, stream table, repeats) -> decoder -> postprocess -> outputs (PNG files, video, windows, browser viewer, quality monitor) ->
acknowledgement to its edge (after its PNG is written, with --save, so a host killed meanwhile has it sent again).
Streams are per (stream id, session): a restarted edge, or a twin with the same --stream-id, is counted and saved
apart as ``<stream>~2``, ``~3``... Repeats of frames already taken (an edge sending again after a reconnection)
are acknowledged and counted, not decoded twice.
"""
import collections
import contextlib
import logging
import threading
import time

from dataclasses import dataclass, field
from typing import List, Optional, Tuple

from nanolink.common import wire
from nanolink.common.errors import NanolinkError
from nanolink.common.stages import END_TO_END, StageClock, StreamLogs, sample_window
from nanolink.host.display import FrameSaver, Window
from nanolink.host.live import LiveView
from nanolink.host.pipeline import Receiver
from nanolink.host.quality import QualityMonitor
from nanolink.host.record import Recorder
from nanolink.host.web import WebViewer

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
    threads: int = 0                    # decoder CPU threads (0: one per usable physical core)
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
    trust_checkpoints: bool = False     # unpickle --model-dir .pt decoders on torch < 1.13
    decode_workers: int = 1             # decode threads beside the socket's (0: decode on the socket's thread)


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
    samples = collections.defaultdict(sample_window)
    with StreamLogs(cfg.log) as jlog:
        def evicted(name):                  # an idle stream's resources go; its counters stay
            jlog.close_stream(name)
            for o in (out.live, out.window):
                if o:
                    o.forget(name)
            if out.recorder:
                out.recorder.end(name)

        with Receiver(cfg.bind, cfg.models, cfg.decoder, cfg.device, cfg.threads, cfg.decoder_variant,
                      cfg.model_dirs, cfg.latest, cfg.curve_keys, cfg.max_streams, cfg.stream_idle_s, cfg.max_size,
                      cfg.max_pixel_rate, auto_ack=False, on_evict=evicted, stop=stop,
                      trust_checkpoints=cfg.trust_checkpoints, workers=cfg.decode_workers) as rx:
            return _loop(cfg, out, rx, jlog, samples, stop, on_listening, status_every_s, on_viewer)


def _loop(cfg, out, rx, jlog, samples, stop, on_listening, status_every_s, on_viewer):
    for name, fp, variant in rx.models():
        log.info('model %s (fingerprint %s): %s decoder on %s %s', name, fp, variant, cfg.decoder, cfg.device)
    streams, rejects = rx.streams, rx.rejects
    t_status, n_status = time.time(), 0

    def totals():
        accepted, closed = rx.connection_counts()
        return {'received': rx.received, 'decoded': rx.decoded, 'rejected': rejects.total,
                'reject_reasons': dict(rejects.counts), 'connections': {'accepted': accepted, 'closed': closed},
                'quality_skipped': out.quality.skipped}

    if out.live:
        rx.on_reject = lambda stream: stream and out.live.update_stream(stream, streams.get(stream).as_dict())
        out.live.update_totals(totals())
    if on_listening:
        on_listening(rx.endpoint)
    if out.web and on_viewer:
        on_viewer(out.web.url)
    last_frame_t = time.time()             # of the last decoded frame: --timeout counts from there
    received_at_decode, timed_out = 0, None
    t0 = None
    while not stop.is_set() and (cfg.frames is None or rx.decoded < cfg.frames):
        if out.live:                       # the viewer's totals, as of the previous message
            out.live.update_totals(totals())
        for q in out.quality.results():
            _quality_result(q, streams.all().get(q['stream']), out, jlog)
        out.poll_window(stop)
        if cfg.timeout and time.time() - last_frame_t > cfg.timeout:
            timed_out = _timeout_message(cfg.timeout, rx.decoded, rx.received - received_at_decode, rejects,
                                         rx.endpoint)
            break
        if out.saver:                      # frames whose PNG is written: acknowledged now
            for done in out.saver.written():
                rx.ack_ids(*done)
        f = rx.recv(0.05 if out.saver and out.saver.busy else 0.2)
        if f is None:
            continue
        frame, st, bgr, clock = f.message, f.stats, f.image, StageClock()
        clock.ms.update(f.timings)
        now = time.time()
        last_frame_t, received_at_decode = now, rx.received
        st.latest.update({'model': frame.model, 'decoder': f.decoder, 'width': frame.size[1],
                          'height': frame.size[0], 'bpp': f.bpp, 'bytes': f.bytes,
                          'end_to_end_ms': _end_to_end_ms(frame, now), 'sender_stages': frame.stages})
        with clock('display'):
            if frame.ref_error:
                out.quality.refuse(frame)
            if frame.ref is not None:
                out.quality.submit(frame, bgr)
            if out.saver:                  # acknowledged once written (above)
                out.saver.save(frame.stream, frame.seq, bgr, done=(f.peer, frame.session, frame.seq))
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
        t0 = t0 or t_done
        st.latest.update({'stages': dict(clock.ms), 'end_to_end_ms': e2e})
        if out.live:
            out.live.publish(frame.stream, bgr, st.as_dict(), t_done, e2e)
        rec = {'seq': frame.seq, 'stream': frame.stream, 'session': '{:016x}'.format(frame.session),
               'bytes': f.bytes, 'width': frame.size[1], 'height': frame.size[0], 'model': frame.model,
               'decoder': f.decoder, 't_cap': frame.t_cap, 't_done': t_done, 'stages': clock.ms,
               'sender_stages': frame.stages}
        if frame.ref is not None:
            rec['ref_bytes'] = len(frame.ref)
        jlog.write(rec)
        if not out.saver:                  # decoded and logged: taken (a host killed from here on has it)
            rx.ack(f)
        for k, v in clock.ms.items():
            samples[k].append(v)
        for k, v in frame.stages.items():
            samples[k].append(v)
        if status_every_s and t_done - t_status >= status_every_s:
            log.info('%d frames decoded, %.1f fps, %d rejected, decode %.1f ms', rx.decoded,
                     (rx.decoded - n_status) / (t_done - t_status), rejects.total, clock.ms['decode'])
            t_status, n_status = t_done, rx.decoded
    out.quality.close(wait=True)           # score the references already received
    for q in out.quality.results():
        _quality_result(q, streams.all().get(q['stream']), out, jlog)
    if out.saver:                          # write what is queued, then acknowledge it before the socket closes
        out.saver.drain()
        for done in out.saver.written():
            rx.ack_ids(*done)
    rejects.flush()
    accepted, closed = rx.connection_counts()
    return {'received': rx.received, 'decoded': rx.decoded, 'rejected': rejects.total, 'in_flight': rx.in_flight,
            'reject_reasons': dict(rejects.counts), 'streams': streams.all(), 'streams_refused': streams.refused,
            'max_streams': cfg.max_streams, 'stages': samples, 'elapsed_s': (time.time() - t0) if t0 else 0.0,
            'connections': {'accepted': accepted, 'closed': closed, 'refused': rx.link.handshakes_refused},
            'quality': dict(out.quality.streams), 'quality_skipped': out.quality.skipped, 'timed_out': timed_out,
            'recorded': out.recorder.files if out.recorder else [],     # filled when the recorder closes, below
            'record_refused': out.recorder.refused if out.recorder else []}


def _end_to_end_ms(frame, t_now):
    """Capture to now in ms, or None when the capture time is after now (the sender's clock is ahead)."""
    ms = (t_now - frame.t_cap) * 1000.0
    return ms if ms >= 0 else None


def _timeout_message(timeout, decoded, rejected_since, rejects, endpoint):
    if rejected_since:
        top = ', '.join('{} ({})'.format(rejects.examples.get(r, r), n) for r, n in rejects.counts.most_common(2))
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
