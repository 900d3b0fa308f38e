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
import sys

from nanolink.common import wire, zoo
from nanolink.common.checks import DECODER_RUNTIMES
from nanolink.common.errors import NanolinkError, UsageError
from nanolink.common.imageproc import parse_size
from nanolink.common import cli as cliutil
from nanolink.common.stages import END_TO_END, HOST_STAGES, format_table, summarise
from nanolink.host.pipeline import MAX_WORKERS
from nanolink.host.receiver import HostConfig, run
from nanolink.host.web import check_token, parse_listen



def build_parser():
    p = argparse.ArgumentParser(prog='host-receiver', description=__doc__.split('\n')[0],
                                epilog='Full reference: docs/cli.md.')
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
    p.add_argument('--decoder', default='onnxruntime', choices=DECODER_RUNTIMES, help='decoder runtime')
    p.add_argument('--device', default='cpu', choices=('cpu', 'cuda'), help='where the decoder runs')
    p.add_argument('--decoder-variant', default='fast', choices=('fast', 'quality'),
                   help='fast: the decoder within the 2-core CPU budget; quality: the heavier decoder of models that '
                        'ship one (all the bundled models do: cae, cae-bin, ae, ae-full; for GPU hosts, with --device '
                        'cuda), reading the same bits; other models keep their fast decoder, as the start-up log says (default: %(default)s)')
    p.add_argument('--model', action='append', default=[], metavar='NAME',
                   help='decode only this model (repeatable; default: all of them): ' + zoo.model_list())
    p.add_argument('--model-dir', action='append', default=[], metavar='DIR',
                   help='also load an exported model folder (from nanolink-export; repeatable)')
    p.add_argument('--threads', type=int, default=0,
                   help='decoder CPU threads (default 0: one per physical core this process may use)')
    p.add_argument('--decode-workers', type=int, default=1, metavar='N',
                   help='frames decoded at once, each on its own thread, while this thread receives and unpacks the '
                        'next (default: %(default)s; more for several streams on a many-core PC, with --threads '
                        'lowered to match; 0: receive and decode on one thread; --latest always uses 0)')
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
    p.add_argument('--trust-checkpoints', action='store_true',
                   help='with --decoder torch and a --model-dir on torch older than 1.13: load its .pt files though '
                        'that torch can only unpickle them, which may run code')
    p.add_argument('--quiet', action='store_true', help='no status lines, only warnings and the summary')
    return p


def config_from_args(args):
    cliutil.check_at_least_one('--frames', args.frames)
    cliutil.check_positive('--timeout', args.timeout, ' seconds')
    cliutil.check_positive('--record-fps', args.record_fps)
    cliutil.check_range('--threads', args.threads, 0, cliutil.MAX_THREADS)
    cliutil.check_range('--decode-workers', args.decode_workers, 0, MAX_WORKERS)
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
                      max_pixel_rate=args.max_pixel_rate * 1e6, trust_checkpoints=args.trust_checkpoints,
                      decode_workers=args.decode_workers)


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
    lines = ['host-receiver: {} decoded, {} rejected of {} received{}'.format(
        result['decoded'], result['rejected'], result['received'],
        ', {} still decoding when it stopped (not acknowledged: their edges send them again)'.format(
            result['in_flight']) if result.get('in_flight') else ''),
        '  connections: {accepted} accepted, {closed} closed (edges stopping, network errors, or a message over the '
        '32 MiB socket limit, which ZeroMQ drops unseen)'.format(**result['connections'])]
    if result['connections']['refused']:
        lines.append('  {} CurveZMQ handshakes refused (keys not in --curve-keys/authorized, or not CurveZMQ at '
                     'all)'.format(result['connections']['refused']))
    for name, st in sorted(result['streams'].items()):
        lines.append('  stream {}: {} frames, {} lost, {} reordered, {} rejected, {:.3f} bpp{}{}'.format(
            name, st.decoded, st.lost, st.reordered, st.rejected, st.bits / float(max(st.pixels, 1)),
            ', {} repeats (sent again by the edge, taken once)'.format(st.repeats) if st.repeats else '',
            ', {} seq jumps'.format(st.jumps) if st.jumps else ''))
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
