"""nanolink-report: latency tables, plots and quality figures from host-receiver / edge-sender --log files.

    nanolink-report host.jsonl
    nanolink-report host.jsonl edge.jsonl --out report/ --title "cae 504² over wifi"
    nanolink-report logs/*.jsonl                   # host-receiver --log 'logs/{stream}.jsonl' files

Records are grouped by stream over all the files. Per stream it prints the frames, mean bytes/frame and
bpp (message bytes without reference frames), fps over the log (from the capture times), frames lost (gaps in seq), the quality records' PSNR and
MS-SSIM when there are any, and the stage table (median, min-max, n). Edge stages come from the edge log
when one is given for the stream, otherwise from the host log's sender_stages; host stages and end_to_end
from the host log. Only frames that reached the host count when a host log is given.

--out DIR writes stages.png (each stage's ms over time, stacked, one panel per stream), latency-hist.png
(end-to-end latency with its median and p95; the sum of the logged stages when the log has no end_to_end),
quality.png (PSNR and MS-SSIM over time, when the logs have quality records) and report.json (the printed
numbers). Exit status: 0, 1 for a log it cannot use (the message names the file and line), 2 for bad
arguments.
"""
import argparse
import json
import math
import os
import sys

from nanolink.common.errors import NanolinkError
from nanolink.common.stages import ALL_STAGES, END_TO_END, format_table, percentile, read_jsonl, summarise

PLOT_STAGES = [s for s in ALL_STAGES if s != END_TO_END]     # stacked in pipeline order: edge, then host
LOG_HINT = 'give the --log files written by host-receiver or edge-sender'


# ------------------------------------------------------------------------------------------------ reading
def _is_number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _problem(rec):
    """Why a parsed line is not a usable record, or None. Records with an "event" key are not frames."""
    if not isinstance(rec, dict):
        return 'not a JSON object'
    if 'event' in rec:
        return None
    for key, ok in (('stream', lambda v: isinstance(v, str)), ('seq', lambda v: isinstance(v, int)),
                    ('t_cap', _is_number), ('bytes', _is_number), ('width', _is_number), ('height', _is_number),
                    ('stages', lambda v: isinstance(v, dict) and all(_is_number(x) for x in v.values()))):
        if key not in rec or not ok(rec[key]):
            return 'not a frame record ("{}" missing or wrong)'.format(key)
    if 'sender_stages' in rec and not isinstance(rec['sender_stages'], dict):
        return 'not a frame record ("sender_stages" is not an object)'
    return None


def _locate(path):
    """The first line of path that is not a usable record, as 'PATH line N: why'."""
    with open(path, 'rb') as f:
        for n, raw in enumerate(f, 1):
            if not raw.strip():
                continue
            try:
                why = _problem(json.loads(raw.decode('utf-8').strip()))
            except UnicodeDecodeError:
                why = 'not UTF-8 text'
            except ValueError as e:
                why = 'not JSON ({})'.format(e)
            if why:
                return '{} line {}: {}'.format(path, n, why)
    return '{}: unreadable'.format(path)


def load(paths):
    """All records of the logs, in file order; a NanolinkError naming the file and line of a bad one."""
    records = []
    for path in paths:
        if not os.path.isfile(path):
            raise NanolinkError('{}: {}; {}'.format(path, 'a folder, not a file' if os.path.isdir(path) else
                                                    'no such file', LOG_HINT))
        try:
            recs = read_jsonl(path)
        except ValueError:                                  # not JSON, or not UTF-8: find the line to name
            raise NanolinkError('{}; fix or delete that line (a process killed mid-write leaves a partial last '
                                'line)'.format(_locate(path)))
        except OSError as e:
            raise NanolinkError('{}: cannot read it ({}); {}'.format(path, e.strerror, LOG_HINT))
        if any(_problem(r) for r in recs):
            raise NanolinkError('{}; {}'.format(_locate(path), LOG_HINT))
        records.extend(recs)
    return records


# --------------------------------------------------------------------------------------------- the numbers
def group(records):
    """{stream: {'host': [...], 'edge': [...], 'quality': [...]}}; unknown events are ignored."""
    streams = {}
    for r in records:
        if 'event' in r and (r['event'] != 'quality' or 'stream' not in r):
            continue
        kind = 'quality' if 'event' in r else ('host' if 'sender_stages' in r else 'edge')
        streams.setdefault(str(r['stream']), {'host': [], 'edge': [], 'quality': []})[kind].append(r)
    return streams


def frames_of(g):
    """One dict per frame, in capture order: {seq, t_cap, bytes, width, height, stages: all its stages}. The
    host's frames when there is a host log (edge stages from the edge log by seq when there is one)."""
    edge_by_seq = {r['seq']: r['stages'] for r in g['edge']}
    out = []
    for r in g['host'] or g['edge']:
        stages = dict(r['stages'])
        if g['host']:
            stages.update(edge_by_seq.get(r['seq'], r['sender_stages']))
        out.append(dict(r, stages=stages))
    return sorted(out, key=lambda f: f['t_cap'])


def _codec_bytes(f):
    """A frame's message bytes without its reference JPEG (edge-sender --reference-every): the codec's rate."""
    return f['bytes'] - f.get('ref_bytes', 0)


def _mean(values):
    return sum(values) / len(values) if values else None


def stream_numbers(g):
    frames = frames_of(g)
    numbers = {'source': 'host log' if g['host'] else ('edge log' if g['edge'] else None), 'frames': len(frames)}
    if frames:
        samples = {}
        for f in frames:
            for k, v in f['stages'].items():
                samples.setdefault(k, []).append(v)
        seqs = sorted(set(f['seq'] for f in frames))
        span = frames[-1]['t_cap'] - frames[0]['t_cap']
        numbers.update(
            bytes_per_frame=_mean([_codec_bytes(f) for f in frames]),
            bpp=_mean([_codec_bytes(f) * 8.0 / (f['width'] * f['height']) for f in frames if f['width'] * f['height']]),
            reference_bytes=sum(f.get('ref_bytes', 0) for f in frames),
            fps=(len(frames) - 1) / span if span > 0 else None,
            lost=seqs[-1] - seqs[0] + 1 - len(seqs),
            stages=summarise(samples),
            unknown_stages=sorted(k for k in samples if k not in ALL_STAGES))
    q = [r for r in g['quality'] if _is_number(r.get('psnr'))]
    ms = [r['ms_ssim'] for r in q if _is_number(r.get('ms_ssim'))]
    if q:
        numbers['quality'] = {'n': len(q), 'mean_psnr': _mean([r['psnr'] for r in q]),
                              'min_psnr': min(r['psnr'] for r in q), 'n_ms_ssim': len(ms),
                              'mean_ms_ssim': _mean(ms), 'min_ms_ssim': min(ms) if ms else None}
    return numbers


def _num(v, fmt):
    return '-' if v is None else fmt.format(v)


def format_stream(name, n):
    lines = ['stream {}: {} frames ({}), {} lost (seq gaps), {} fps, {} bytes/frame, {} bpp'.format(
        name, n['frames'], n['source'] or 'quality records only', n.get('lost', 0), _num(n.get('fps'), '{:.1f}'),
        _num(n.get('bytes_per_frame'), '{:.0f}'), _num(n.get('bpp'), '{:.3f}'))]
    q = n.get('quality')
    if q:
        lines.append('  quality ({} scored frames): PSNR mean {:.2f} dB, min {:.2f} dB; MS-SSIM {}'.format(
            q['n'], q['mean_psnr'], q['min_psnr'], 'mean {:.4f}, min {:.4f} ({} scored)'.format(
                q['mean_ms_ssim'], q['min_ms_ssim'], q['n_ms_ssim']) if q['n_ms_ssim'] else 'not measured'))
    if n.get('stages'):
        lines.append(format_table(n['stages']))
    if n.get('unknown_stages'):
        lines.append('  not in the table (stages this version does not know): ' + ', '.join(n['unknown_stages']))
    return '\n'.join(lines)


# ---------------------------------------------------------------------------------------------------- plots
def _pyplot():
    try:
        import matplotlib
    except ImportError:
        raise NanolinkError('--out draws its plots with matplotlib, which is not installed: pip install matplotlib '
                            '(or leave out --out for the tables only)')
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    return plt


def _panels(plt, n, title, height=3.0, sharex=False):
    fig, axes = plt.subplots(n, 1, figsize=(10, height * n + 0.8), squeeze=False, sharex=sharex)
    fig.suptitle(title)
    return fig, [a[0] for a in axes]


def _save(plt, fig, path):
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_stages(plt, path, streams, title):
    fig, axes = _panels(plt, len(streams), title + ': stage breakdown over time')
    colors = plt.get_cmap('tab20').colors
    for ax, (name, frames) in zip(axes, streams):
        t = [f['t_cap'] - frames[0]['t_cap'] for f in frames]
        present = [s for s in PLOT_STAGES if any(s in f['stages'] for f in frames)]
        ax.stackplot(t, [[f['stages'].get(s, 0.0) for f in frames] for s in present], labels=present,
                     colors=[colors[PLOT_STAGES.index(s) % len(colors)] for s in present])
        if any(END_TO_END in f['stages'] for f in frames):
            ax.plot(t, [f['stages'].get(END_TO_END, math.nan) for f in frames], 'k--', lw=1, label=END_TO_END)
        ax.set_title('stream {} ({} frames)'.format(name, len(frames)), fontsize=10)
        ax.set_xlabel('capture time since its first frame (s)')
        ax.set_ylabel('ms per frame')
        ax.legend(fontsize=7, loc='upper left', bbox_to_anchor=(1.01, 1.0))
    return _save(plt, fig, path)


def plot_latency_hist(plt, path, streams, title):
    fig, axes = _panels(plt, len(streams), title + ': end-to-end latency')
    for ax, (name, frames) in zip(axes, streams):
        values = [f['stages'][END_TO_END] for f in frames if END_TO_END in f['stages']]
        what = 'end_to_end'
        if not values:
            values = [sum(v for k, v in f['stages'].items() if k != END_TO_END) for f in frames]
            what = 'sum of the logged stages (no end_to_end in the log)'
        med, p95 = percentile(values, 50), percentile(values, 95)
        ax.hist(values, bins=min(50, max(5, len(values) // 4)), color='tab:blue', alpha=0.8)
        ax.axvline(med, color='k', ls='-', label='median {:.1f} ms'.format(med))
        ax.axvline(p95, color='tab:red', ls='--', label='p95 {:.1f} ms'.format(p95))
        ax.set_title('stream {}: {}, {} frames'.format(name, what, len(values)), fontsize=10)
        ax.set_xlabel('ms')
        ax.set_ylabel('frames')
        ax.legend(fontsize=8)
    return _save(plt, fig, path)


def plot_quality(plt, path, streams, title):
    fig, (top, bottom) = _panels(plt, 2, title + ': quality over time', sharex=True)
    for name, t0, recs in streams:
        recs = sorted(recs, key=lambda r: r['t'])
        top.plot([r['t'] - t0 for r in recs], [r['psnr'] for r in recs], '.-', label=name)
        ms = [r for r in recs if _is_number(r.get('ms_ssim'))]
        if ms:
            bottom.plot([r['t'] - t0 for r in ms], [r['ms_ssim'] for r in ms], '.-', label=name)
    top.set_ylabel('PSNR (dB)')
    bottom.set_ylabel('MS-SSIM')
    if not bottom.lines:
        bottom.text(0.5, 0.5, 'no MS-SSIM in the logs', ha='center', va='center', transform=bottom.transAxes)
    for ax in (top, bottom):
        ax.set_xlabel('time since the stream\'s first frame (s)')
        if ax.lines:
            ax.legend(fontsize=8)
    return _save(plt, fig, path)


def write_out(out, streams, report, title):
    plt = _pyplot()
    frames = [(name, frames_of(g)) for name, g in sorted(streams.items())]
    frames = [(name, f) for name, f in frames if f]
    written = [plot_stages(plt, os.path.join(out, 'stages.png'), frames, title),
               plot_latency_hist(plt, os.path.join(out, 'latency-hist.png'), frames, title)]
    quality = []
    for name, g in sorted(streams.items()):
        q = [r for r in g['quality'] if _is_number(r.get('psnr')) and _is_number(r.get('t'))]
        if q:
            t0 = min([r['t_cap'] for r in g['host'] or g['edge']] or [min(r['t'] for r in q)])
            quality.append((name, t0, q))
    if quality:
        written.append(plot_quality(plt, os.path.join(out, 'quality.png'), quality, title))
    path = os.path.join(out, 'report.json')
    with open(path, 'w') as f:
        json.dump(report, f, indent=2)
        f.write('\n')
    return written + [path]


# ------------------------------------------------------------------------------------------------------ main
def build_parser():
    p = argparse.ArgumentParser(prog='nanolink-report', description=__doc__.split('\n')[0],
                                epilog='Full reference: docs/cli.md.')
    p.add_argument('logs', nargs='+', metavar='LOG.jsonl', help='--log files of host-receiver and/or edge-sender')
    p.add_argument('--out', metavar='DIR', help='write stages.png, latency-hist.png, quality.png (with quality '
                                                'records) and report.json to DIR (needs matplotlib)')
    p.add_argument('--title', help='title of the report and its plots (default: the log file names)')
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    title = args.title or 'nanolink-report ' + ', '.join(os.path.basename(p) for p in args.logs)
    try:
        if args.out:
            _pyplot()                                       # fail before the work, not after it
            try:
                os.makedirs(args.out, exist_ok=True)
            except OSError as e:
                raise NanolinkError('--out {}: cannot create it ({})'.format(args.out, e.strerror))
        streams = group(load(args.logs))
        if not any(g['host'] or g['edge'] for g in streams.values()):
            raise NanolinkError('no frame records in {}; {} (run them with --log PATH)'.format(
                ', '.join(args.logs), LOG_HINT))
        report = {'title': title, 'logs': args.logs,
                  'streams': {name: stream_numbers(g) for name, g in sorted(streams.items())}}
        print(title)
        for name, n in report['streams'].items():
            print()
            print(format_stream(name, n))
        if args.out:
            try:
                written = write_out(args.out, streams, report, title)
            except OSError as e:
                raise NanolinkError('--out {}: cannot write there ({})'.format(args.out, e.strerror or e))
            print()
            for path in written:
                print('wrote ' + path)
    except NanolinkError as e:
        print('nanolink-report: error: {}'.format(e), file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
