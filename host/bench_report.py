"""latency-bench's figures: each row's stage statistics, the printed table beside the slides' published one, the
wire vs pickle micro-benchmark, and the JSON / CSV / chart it writes."""
import csv
import json
import os
import time

import numpy as np

from nanolink.common import wire, zoo
from nanolink.common.errors import NanolinkError
from nanolink.common.stages import ALL_STAGES, END_TO_END, percentile, time_calls


def stat(values):
    return {'median_ms': percentile(values, 50), 'p5_ms': percentile(values, 5), 'p95_ms': percentile(values, 95)}


# Published figures of the reference slides (R. Chavhan, "Image Compression using Deep Learning": a Lossy CAE on a
# Jetson Nano; quoted in docs/latency.md), printed for comparison only.
SLIDES = [
    ('slides: Lossy CAE 2 MB, Nano', 504, 28.56, 'encode 7-15, misc 0.2-1, GPU->CPU 1-3, pickle 1-3, send 10-15, '
                                                 'T_200 4.845 s, avg 24 ms, host CPU decode > 10 s'),
    ('slides: Lossy CAE 2 MB, Nano', 1008, 34.01, 'encode 8-15, misc 0.2-1, GPU->CPU 6-10, pickle 5-7, send 6-10, '
                                                  'T_200 5.763 s, avg 28 ms, host CPU decode 50 ms'),
]
# The slides' columns, in order: (header, stages summed per frame)
COLUMNS = [('Encode', ('encode',)), ('Misc (encode)', ('preprocess',)), ('GPU->CPU', ('gpu_to_cpu',)),
           ('Serialise', ('serialise',)), ('Send', ('send',)), ('Misc (decode)', ('postprocess',)),
           ('Decode', ('decode',))]
EXTRA = [('capture', ('capture',)), ('entropy', ('entropy',)), ('receive', ('receive',)), ('deserialise', ('deserialise',)),
         ('display', ('display',)), ('end_to_end', (END_TO_END,))]
CHART_STAGES = [s for s in ALL_STAGES if s != END_TO_END]


def summarise_row(row, host_rows, frames, warmup):
    mine = sorted((r for r in host_rows if r['stream'] == row.stream and r['seq'] >= warmup), key=lambda r: r['seq'])
    if not mine:
        raise NanolinkError('no timed frame of {} reached the host'.format(row.stream))
    samples = {}
    for r in mine:
        for k, v in list(r['stages'].items()) + list(r['sender_stages'].items()):
            samples.setdefault(k, []).append(v)
    total_s = max(r['t_done'] for r in mine) - min(r['t_cap'] for r in mine)
    return {'model': row.name, 'size': row.size, 'mode': row.mode, 'frames': len(mine), 'psnr': row.psnr,
            'bpp': float(np.mean([r['bytes'] * 8.0 / (r['width'] * r['height']) for r in mine])),
            'stages': {k: stat(samples[k]) for k in ALL_STAGES if k in samples},
            'total_s': total_s, 'avg_ms': 1000.0 * total_s / len(mine), 'lost': frames - len(mine)}


# edge-sender's three pipeline stages (nanolink.edge.pipeline: run_frames): capture, the device half, the CPU half
EDGE_PIPE = (('capture', ('capture',)), ('device', ('preprocess', 'encode', 'gpu_to_cpu')),
             ('cpu', ('entropy', 'reference', 'serialise', 'send')))


def edge_rate(edge_rows, warmup):
    """The edge's achieved rate over its timed frames (from its own log: capture times, which the bounded queues
    pace at the slowest stage) beside what its stage times allow: 1 / (sum of the stages) run one after the other,
    1 / (slowest of the three pipeline stages) when they overlap. Medians of the timed frames."""
    mine = sorted((r for r in edge_rows if r['seq'] >= warmup), key=lambda r: r['seq'])
    if len(mine) < 2:
        raise NanolinkError('the edge logged {} timed frames: need at least 2 for its rate'.format(len(mine)))
    span = mine[-1]['t_cap'] - mine[0]['t_cap']
    parts = {}
    for name, stages in EDGE_PIPE:
        parts[name] = float(np.median([sum(r['stages'].get(k, 0.0) for k in stages) for r in mine]))
    total = float(np.median([sum(r['stages'].get(k, 0.0) for _, ks in EDGE_PIPE for k in ks) for r in mine]))
    slowest = max(parts, key=parts.get)
    fps = (len(mine) - 1) / span if span > 0 else float('inf')
    return {'fps': fps, 'stage_sum_ms': total, 'fps_if_sequential': 1000.0 / total if total else float('inf'),
            'stage_ms': parts, 'slowest': slowest, 'fps_if_pipelined': 1000.0 / parts[slowest]
            if parts[slowest] else float('inf')}


def format_edge_rates(results):
    """The edge-rate table: achieved fps against both bounds, pipelined and --no-pipeline rows of one run."""
    lines = ['edge rate: achieved fps (capture to capture over the timed frames) against its stage times (median ms)',
             'row | mode | capture | device | cpu | sum ms | 1/sum fps | 1/slowest fps | achieved fps | '
             'achieved / bound']
    for r in results:
        e = r.get('edge')
        if not e:
            continue
        bound = e['fps_if_pipelined'] if r['mode'] == 'pipelined' else e['fps_if_sequential']
        lines.append('{}, {}² | {} | {:.2f} | {:.2f} | {:.2f} | {:.2f} | {:.1f} | {:.1f} ({}) | {:.1f} | {:.2f} of {}'.format(
            r['model'], r['size'], r['mode'], e['stage_ms']['capture'], e['stage_ms']['device'], e['stage_ms']['cpu'],
            e['stage_sum_ms'], e['fps_if_sequential'], e['fps_if_pipelined'], e['slowest'], e['fps'],
            e['fps'] / bound, '1/slowest' if r['mode'] == 'pipelined' else '1/sum'))
    pairs = {}
    for r in results:
        if r.get('edge'):
            pairs.setdefault((r['model'], r['size']), {})[r['mode']] = r['edge']['fps']
    for (model, size), m in sorted(pairs.items()):
        if 'pipelined' in m and 'sequential' in m:
            lines.append('{}, {}²: pipelined {:.1f} fps vs --no-pipeline {:.1f} fps: x{:.2f}'.format(
                model, size, m['pipelined'], m['sequential'], m['pipelined'] / m['sequential']))
    lines.append('device: preprocess + encode + gpu_to_cpu; cpu: entropy + reference + serialise + send. On this '
                 'machine the stages share its cores with each other and with the host.')
    return '\n'.join(lines)


def cell(stages, names):
    if not all(n in stages for n in names):
        return '-'
    s = stages[names[0]]
    return '{:.2f} ({:.2f}-{:.2f})'.format(s['median_ms'], s['p5_ms'], s['p95_ms'])


def format_rows(results, title):
    head = ['Model, size (PSNR)'] + [c for c, _ in COLUMNS[:5]] + ['T_N s', 'Avg ms'] + [c for c, _ in COLUMNS[5:]]
    lines = [title, ' | '.join(head)]
    for r in results:
        ps = 'lossless' if r['psnr'] is None else '{:.2f}'.format(r['psnr'])
        cells = ['{}, {}²{} ({}) {:.3f} bpp'.format(r['model'], r['size'], '' if r['mode'] == 'pipelined' else
                                                     ' --no-pipeline', ps, r['bpp'])]
        cells += [cell(r['stages'], n) for _, n in COLUMNS[:5]]
        cells += ['T_{} {:.3f}{}'.format(r['frames'], r['total_s'], ' ({} lost)'.format(r['lost']) if r['lost'] else ''),
                  '{:.1f}'.format(r['avg_ms'])]
        cells += [cell(r['stages'], n) for _, n in COLUMNS[5:]]
        lines.append(' | '.join(cells))
    lines.append('')
    lines.append('also: ' + ' | '.join(c for c, _ in EXTRA) + '   (median (p5-p95) ms)')
    for r in results:
        lines.append('{}, {}²{}: '.format(r['model'], r['size'], '' if r['mode'] == 'pipelined' else ' --no-pipeline')
                     + ' | '.join(cell(r['stages'], n) for _, n in EXTRA))
    lines.append('')
    lines.append('reference, published in the slides (not measured here):')
    for name, size, p, text in SLIDES:
        lines.append('  {}, {}² ({:.2f}): {}'.format(name, size, p, text))
    return '\n'.join(lines)


def micro_benchmark(size, runs=200):
    """Our payload and message vs the slides' pickled float32 features, for the cae-bin code at size x size, k = 8
    (size padded to cae-bin's multiple of 8, as the edge pads it)."""
    size = -(-size // 8) * 8
    h = size // 4
    rng = np.random.RandomState(0)
    bits = rng.randint(0, 2, size=(8, h, h)).astype(np.uint8)
    features = bits.astype(np.float32) * 2 - 1                      # what the slides copied and pickled
    info = zoo.bundled_model('cae-bin')
    spec = {'cae-bin': {info.fingerprint: info}}

    payload = wire.pack_bits(bits)                                  # packed inside the encoder graph, on the device

    def ours_pack():
        return wire.pack(wire.Frame(stream='b', seq=1, t_cap=time.time(), model='cae-bin', fp=info.fingerprint,
                                    shape=(8, h, h), size=(size, size), payload=payload, stages={}))
    msg = ours_pack()
    dumps, loads, pickled = _slides_pickle_roundtrip(features)

    def t(fn):
        return float(np.median(time_calls(fn, runs, warmup=5)))
    r = {'size': size, 'payload_bytes': len(payload), 'message_bytes': len(msg),
         'float32_bytes': features.nbytes, 'pickle_bytes': len(pickled),
         'serialise_ms': t(ours_pack), 'deserialise_ms': t(lambda: wire.unpack(msg, spec)),
         'pickle_dumps_ms': t(dumps), 'pickle_loads_ms': t(loads)}
    r['copy_ratio'] = r['float32_bytes'] / float(r['payload_bytes'])
    r['serialise_ratio'] = r['pickle_dumps_ms'] / r['serialise_ms']
    r['deserialise_ratio'] = r['pickle_loads_ms'] / r['deserialise_ms']
    return r


def _slides_pickle_roundtrip(features):
    """The slides' approach, for timing only: pickle a local float32 array in memory. Nothing here touches a
    socket; nanolink never unpickles network data."""
    import pickle
    data = pickle.dumps(features, protocol=pickle.HIGHEST_PROTOCOL)
    return (lambda: pickle.dumps(features, protocol=pickle.HIGHEST_PROTOCOL)), (lambda: pickle.loads(data)), data


def format_micro(m):
    return ('micro-benchmark, cae-bin k=8 code of a {0}² frame vs the slides\' pickled float32 features (8x{1}x{1}):\n'
            '  device->host copy: {2:,} B packed bits vs {3:,} B float32  ({4:.0f}x less)\n'
            '  serialise:   wire.pack {5:.3f} ms ({6:,} B) vs pickle.dumps {7:.3f} ms ({8:,} B): pickle/ours = {9:.2f}\n'
            '  deserialise: wire.unpack (validated) {10:.3f} ms vs pickle.loads {11:.3f} ms: pickle/ours = {12:.2f}'
            ).format(
        m['size'], m['size'] // 4, m['payload_bytes'], m['float32_bytes'], m['copy_ratio'], m['serialise_ms'],
        m['message_bytes'], m['pickle_dumps_ms'], m['pickle_bytes'], m['serialise_ratio'], m['deserialise_ms'],
        m['pickle_loads_ms'], m['deserialise_ratio'])


def write_outputs(out, results, micro, meta):
    with open(os.path.join(out, 'latency.json'), 'w') as f:
        json.dump(dict(meta, rows=results, micro_benchmark=micro), f, indent=2)
        f.write('\n')
    with open(os.path.join(out, 'latency.csv'), 'w', newline='') as f:
        w = csv.writer(f)
        w.writerow(['model', 'size', 'frames', 'psnr', 'bpp', 'total_s', 'avg_ms', 'stage', 'median_ms', 'p5_ms',
                    'p95_ms'])
        for r in results:
            for k, s in r['stages'].items():
                w.writerow([r['model'], r['size'], r['frames'], r['psnr'], round(r['bpp'], 5), round(r['total_s'], 4),
                            round(r['avg_ms'], 3), k, round(s['median_ms'], 4), round(s['p5_ms'], 4),
                            round(s['p95_ms'], 4)])
    chart(os.path.join(out, 'latency.png'), results)


def chart(path, results):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    labels = ['{} {}²'.format(r['model'], r['size']) for r in results]
    fig, ax = plt.subplots(figsize=(10, 0.6 * len(results) + 2))
    left = np.zeros(len(results))
    colors = plt.get_cmap('tab20').colors
    for i, stage in enumerate(CHART_STAGES):
        v = np.array([r['stages'].get(stage, {}).get('median_ms', 0.0) for r in results])
        ax.barh(labels, v, left=left, color=colors[i % len(colors)], label=stage)
        left += v
    for y, r in enumerate(results):
        ax.text(left[y], y, '  avg {:.1f} ms/frame'.format(r['avg_ms']), va='center', fontsize=8)
    ax.set_xlim(0, max(left.max(), 1e-3) * 1.3)
    ax.invert_yaxis()
    ax.set_xlabel('median ms per frame, by stage (edge then host)')
    ax.set_title('latency-bench: per-stage breakdown')
    ax.legend(ncol=4, fontsize=7, loc='lower right')
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# ------------------------------------------------------------------------------------------------- main
