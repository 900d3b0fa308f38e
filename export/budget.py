"""Measure the compute budgets of a model's exported networks (issues 4 and 5).

    python -m nanolink.export.budget --model cae --size 1008 --runs 30 --out docs/budget.json

For each encoder (rate point) and decoder (the fast one and any variant such as ``quality``):
multiply-accumulates per input pixel counted from the ONNX graph itself (every Conv and ConvTranspose node,
shapes from running the graph at the given frame size), and the ONNX Runtime CPU time at size x size (median
and p5-p95 over --runs after warm-up). For entropy-coded models (cae) also the rANS coding of each rate point's
symbols of the frame on one core (the C coder is single-threaded), edge and host. In the same run, as baselines
on the same frame: OpenCV JPEG encode and decode at the quality whose bytes match the code, and a raw copy.
Budgets: encoder <= 2500 MAC/px and <= 33 ms; fast decoder <= 50 ms (2-core CPU); edge entropy coding <= 5 ms.

The runs are timed in 3 rounds (--rounds): each round gives every network, coder and baseline a turn (3 untimed
calls, then a third of its runs). A shared machine's speed drifts by the minute (two back-to-back runs here, each
network timed in one block as --rounds 1 still does, gave the encoders 33.6-38.4 ms then 28.3-29.1 ms and the
decoder 41.5 then 54.5 ms), so a network timed in one block gets one spell of it; in rounds each median spans the
same minutes as the others' and the JPEG baseline's.
"""
import argparse
import json
import os
import sys

import cv2
import numpy as np

from nanolink.common.backends import OnnxRuntimeBackend
from nanolink.common.codec import HostDecoder
from nanolink.common.codec import prepare
from nanolink.common.cpus import cpu_threads
from nanolink.common.stages import time_calls
from nanolink.common.zoo import FAST, SAMPLE_DIR, bundled_model, load_manifest
from nanolink.export.machine import OtherLoad, cpu_name

ENCODER_MAC_PER_PX = 2500
ENCODER_MS = 33.0
DECODER_MS = 50.0
ENTROPY_MS = 5.0
QUIET_PCT = 5.0                     # other processes' share of the cores above which a run is flagged


def onnx_macs(path, input_shape):
    """Multiply-accumulates of every Conv and ConvTranspose in the ONNX graph at a fixed input shape (batch 1).

    Their shapes come from running the graph once on zeros in ONNX Runtime (every such input and output made a
    graph output), which also covers shapes that static inference cannot follow (computed pads). A Conv costs
    its output size x (Cin / groups x kh x kw); a ConvTranspose its input size x (Cout / groups x kh x kw)."""
    import onnx
    import onnxruntime as ort
    model = onnx.load(path)
    graph = model.graph
    weights = {t.name: list(t.dims) for t in graph.initializer}
    for node in graph.node:                        # fixed filters may be exported as Constant nodes, and equal
        if node.op_type == 'Constant':             # weights shared through Identity nodes
            for a in node.attribute:
                if a.name == 'value':
                    weights[node.output[0]] = list(a.t.dims)
        elif node.op_type == 'Identity' and node.input[0] in weights:
            weights[node.output[0]] = weights[node.input[0]]
    convs = [n for n in graph.node if n.op_type in ('Conv', 'ConvTranspose')]
    known = {o.name for o in graph.output} | {i.name for i in graph.input}
    for n in convs:
        for name in (n.output[0], n.input[0]):
            if name not in known:
                graph.output.append(onnx.helper.make_empty_tensor_value_info(name))
                known.add(name)
    sess = ort.InferenceSession(model.SerializeToString(), providers=['CPUExecutionProvider'])
    names = [o.name for o in sess.get_outputs()]
    x = np.zeros(input_shape, np.float32)
    outs = dict(zip(names, sess.run(None, {graph.input[0].name: x})))
    outs[graph.input[0].name] = x
    total = 0
    for node in convs:
        w = weights.get(node.input[1])
        if not w:
            raise RuntimeError('cannot find the weights of {} {} in {}'.format(node.op_type, node.name, path))
        if node.op_type == 'Conv':      # weights (Cout, Cin/groups, kh, kw)
            total += int(np.prod(outs[node.output[0]].shape)) * int(np.prod(w[1:]))
        else:                           # weights (Cin, Cout/groups, kh, kw)
            total += int(np.prod(outs[node.input[0]].shape)) * int(np.prod(w[1:]))
    return total


def _stats(t):
    return {'median_ms': float(np.median(t)), 'p5_ms': float(np.percentile(t, 5)),
            'p95_ms': float(np.percentile(t, 95))}


class Timings:
    """Calls registered with ``add`` (which returns the dict their figures will fill), timed by ``run`` in
    ``rounds``: each round gives every call a turn of ``warmup`` untimed calls, then its share of the runs (one
    round: each call's runs in one block, as before 2026-12-07). The untimed calls absorb what the call before
    leaves behind: its data in the caches and, with ONNX Runtime's own thread settings (before 0e283d5), its
    session's worker threads spinning for a while after each run, sharing the cores with the next session's first
    calls (turns of one timed call each then measured the encoders at twice their time; one untimed call per turn
    still left the p95 at 1.5x)."""

    def __init__(self):
        self.calls = []
        self.load = OtherLoad()             # what other processes took of the machine while calls were timed

    def add(self, fn):
        out = {}
        self.calls.append((fn, out))
        return out

    def run(self, runs, warmup=3, rounds=3):
        times = [[] for _ in self.calls]
        rounds = max(1, min(rounds, runs))
        for r in range(rounds):
            share = runs * (r + 1) // rounds - runs * r // rounds
            for (fn, _), t in zip(self.calls, times):
                with self.load:
                    t.extend(time_calls(fn, share, warmup))
        for (_, out), t in zip(self.calls, times):
            out.update(_stats(t))


def test_frame(size):
    """A real photo (the bundled sample's first image), resized to size x size."""
    name = sorted(f for f in os.listdir(SAMPLE_DIR) if f.endswith('.jpg'))[0]
    img = cv2.imread(os.path.join(SAMPLE_DIR, name))
    return cv2.resize(img, (size, size), interpolation=cv2.INTER_LINEAR), name


def jpeg_matching(frame, target_bytes):
    """Highest OpenCV JPEG quality whose file is at most target_bytes (at least quality 1)."""
    best = 1
    for q in range(1, 101):
        if len(cv2.imencode('.jpg', frame, [cv2.IMWRITE_JPEG_QUALITY, q])[1]) <= target_bytes:
            best = q
    return best


def measure(info, size, runs, threads, rounds=3):
    timings = Timings()
    used = threads or cpu_threads() or 'onnxruntime default'      # what the report says ran
    timed = timings.add
    frame, name = test_frame(size)
    x, _ = prepare(frame, info.multiple)
    px = size * size
    rows, coding, codes = [], [], {}
    encoders = sorted(info.encoders.items()) if info.encoders else [(None, info.encoder)]
    for k, path in encoders:
        enc = OnnxRuntimeBackend(path, 'cpu', threads)
        code = codes[k] = enc.forward(x)
        row = {'network': os.path.basename(path), 'role': 'encoder', 'k': k,
               'mac_per_px': onnx_macs(path, (1, 3, size, size)) / px, 'code_bytes': int(code.nbytes),
               'ort_cpu': timed(lambda enc=enc: enc.forward(x))}
        rows.append(row)
    h = size // info.stride
    if info.dtype == 'rans':                        # cae: rANS on one core, and the real latents for the decoder
        coding, payload_bytes = entropy_rows(info, codes, timed)
        dec_in = HostDecoder(info, None)
        sym = codes[info.default_channels]
        s = dec_in.tables[info.default_channels].values(sym[0]).astype(np.float32) * \
            dec_in.inv_gain[info.default_channels]
        s = s[None]
    elif info.dtype == 'jpeg':                      # ae: the decoder takes the 8-bit code image (1, h, w, 3)
        s = np.random.RandomState(0).randint(0, 256, (1, h, h, 3)).astype(np.float32)
    else:
        s = np.where(np.random.RandomState(0).rand(1, info.channels, h, h) > 0.5, 1.0, -1.0).astype(np.float32)
    for variant in [FAST] + sorted(info.variants):  # the fast decoder has the CPU budget; variants are for GPUs
        path = info.decoder_file(variant)
        dec = OnnxRuntimeBackend(path, 'cpu', threads)
        rows.append({'network': os.path.basename(path), 'role': 'decoder', 'variant': variant, 'k': info.channels,
                     'mac_per_px': onnx_macs(path, s.shape) / px, 'ort_cpu': timed(lambda dec=dec: dec.forward(s))})
    if info.dtype == 'jpeg':
        timings.run(runs, rounds=rounds)
        return {'model': info.name, 'fingerprint': info.fingerprint, 'size': size, 'runs': runs,
                'threads': used, 'frame': name, 'cores': os.cpu_count(),
                'rounds': min(rounds, runs), 'other_cpu_pct': timings.load.percent,
                'steal_pct': timings.load.steal_percent,
                'networks': rows, 'entropy': [], 'baselines': []}
    k = info.default_channels
    if info.dtype == 'rans':
        target, what = payload_bytes, 'cae quality {} payload'.format(k)
    else:
        target, what = px * k // (info.stride ** 2 * 8), 'code k={}'.format(k)
    q = jpeg_matching(frame, target)
    buf = cv2.imencode('.jpg', frame, [cv2.IMWRITE_JPEG_QUALITY, q])[1]
    baselines = [
        {'network': 'OpenCV JPEG encode q{} ({} B, {} is {} B)'.format(q, len(buf), what, target),
         'role': 'baseline', 'cpu': timed(lambda: cv2.imencode('.jpg', frame, [cv2.IMWRITE_JPEG_QUALITY, q]))},
        {'network': 'OpenCV JPEG decode q{}'.format(q), 'role': 'baseline',
         'cpu': timed(lambda: cv2.imdecode(buf, cv2.IMREAD_COLOR))},
        {'network': 'raw copy of the {}x{} frame'.format(size, size), 'role': 'baseline',
         'cpu': timed(lambda: frame.copy())},
    ]
    timings.run(runs, rounds=rounds)
    return {'model': info.name, 'fingerprint': info.fingerprint, 'size': size, 'runs': runs,
            'threads': used, 'frame': name, 'cpu': cpu_name(), 'cores': os.cpu_count(),
            'rounds': min(rounds, runs), 'other_cpu_pct': timings.load.percent,
            'steal_pct': timings.load.steal_percent,
            'networks': rows, 'entropy': coding, 'baselines': baselines}


def entropy_rows(info, codes, timed):
    """rANS coding of each rate point's symbols of the frame: edge (varying channels + encode) and host (decode),
    one core, registered with ``timed`` (Timings.add); returns the rows and the default rate point's payload bytes."""
    from nanolink.common.wire import pack_rans
    dec = HostDecoder(info, None)
    rows, default_bytes = [], None
    for q, code in sorted(codes.items()):
        tables = dec.tables[q]
        sym = np.ascontiguousarray(code[0])                          # (C, h, w)
        n, w = sym.shape[1] * sym.shape[2], sym.shape[2]
        stream, coded = tables.encode(sym)
        payload = pack_rans(q, coded, stream)
        rows.append({'k': q, 'symbols': int(sym.size), 'coded_channels': int(coded.sum()), 'bytes': len(payload),
                     'context': tables.context,
                     'edge': timed(lambda tables=tables, sym=sym: tables.encode(sym)),
                     'host': timed(lambda tables=tables, a=(stream, coded, n, w): tables.decode(*a))})
        if q == info.default_channels:
            default_bytes = len(payload)
    return rows, default_bytes


def quiet_line(r):
    """How quiet the machine was while the calls were timed: what other processes took of its cores, and the
    hypervisor's steal (from the machine's CPU counters, export/machine.py)."""
    other, steal = r.get('other_cpu_pct'), r.get('steal_pct')
    if other is None:
        return 'other processes\' share of the machine: not measured (no /proc/stat here)'
    line = 'other processes took {:.1f} % of the {} cores while calls were timed (steal {:.1f} %)'.format(
        other, r['cores'], steal or 0.0)
    if other + (steal or 0.0) > QUIET_PCT:
        line += ': NOT a quiet run (over {:.0f} %): its times do not compare with a quiet run\'s'.format(QUIET_PCT)
    return line


def jpeg_medians(r):
    """(encode, decode) median ms of the run's OpenCV JPEG baselines, None where the run has none."""
    med = {}
    for b in r.get('baselines', []):
        for side in ('encode', 'decode'):
            if b['network'].startswith('OpenCV JPEG ' + side):
                med[side] = b['cpu']['median_ms']
    return med.get('encode'), med.get('decode')


def _times(ms, base):
    """ms as a multiple of the same run's baseline: '12.3x', or '' without one."""
    return '{:.1f}x'.format(ms / base) if base else ''


def format_report(r):
    rounds = r.get('rounds', 1)
    how = 'in {} rounds, each giving every row a turn'.format(rounds) if rounds > 1 else 'each row in one block'
    jpeg_enc, jpeg_dec = jpeg_medians(r)
    lines = ['{} at {}x{} ({} runs {}; ONNX Runtime CPU, {} cores of {})'.format(
                 r['model'], r['size'], r['size'], r['runs'], how, r['cores'], r.get('cpu', 'an unrecorded CPU')),
             quiet_line(r)]
    if jpeg_enc:
        lines.append('x JPEG: the row\'s median over the same run\'s OpenCV JPEG median (encode for the encoders and '
                     'the edge coder, decode for the decoders and the host\'s), which a slow spell moves too')
    lines.append('{:28s} {:>9s} {:>10s} {:>16s} {:>7s}  {}'.format('network', 'MAC/px', 'median ms', 'p5-p95 ms',
                                                                   'x JPEG', 'budget'))
    for n in r['networks']:
        t = n['ort_cpu']
        if n['role'] == 'encoder':
            ok = n['mac_per_px'] <= ENCODER_MAC_PER_PX and t['median_ms'] <= ENCODER_MS
            budget = '<= {} MAC/px, <= {:.0f} ms: {}'.format(ENCODER_MAC_PER_PX, ENCODER_MS, 'met' if ok else 'MISSED')
        elif n.get('variant', FAST) == FAST:
            ok = t['median_ms'] <= DECODER_MS
            budget = '<= {:.0f} ms: {}'.format(DECODER_MS, 'met' if ok else 'MISSED')
        else:
            budget = '{} decoder of the same bits, for GPU hosts: no CPU budget'.format(n['variant'])
        base = jpeg_enc if n['role'] == 'encoder' else jpeg_dec
        lines.append('{:28s} {:9.0f} {:10.1f} {:>16s} {:>7s}  {}'.format(
            n['network'], n['mac_per_px'], t['median_ms'], '{:.1f}-{:.1f}'.format(t['p5_ms'], t['p95_ms']),
            _times(t['median_ms'], base), budget))
    for e in r.get('entropy', []):
        t, h = e['edge'], e['host']['median_ms']
        lines.append('rANS{} q{:<3d} {:7d} symbols, {:3d} channels coded, {:7d} B: edge {:5.2f} ms ({:.2f}-{:.2f}{}), '
                     'host {:5.2f} ms{}, one core  <= {:.0f} ms: {}'.format(
                         ' (context tables)' if e.get('context') else '', e['k'], e['symbols'], e['coded_channels'],
                         e['bytes'], t['median_ms'], t['p5_ms'], t['p95_ms'],
                         '; ' + _times(t['median_ms'], jpeg_enc) if jpeg_enc else '', h,
                         ' (' + _times(h, jpeg_dec) + ')' if jpeg_dec else '', ENTROPY_MS,
                         'met' if t['median_ms'] <= ENTROPY_MS else 'MISSED'))
    if r['baselines']:
        lines.append('baselines, same frame and run:')
    for b in r['baselines']:
        t = b['cpu']
        lines.append('  {:54s} {:8.2f} ms ({:.2f}-{:.2f})'.format(b['network'], t['median_ms'], t['p5_ms'], t['p95_ms']))
    return '\n'.join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(prog='python -m nanolink.export.budget', description=__doc__.split('\n')[0])
    src = p.add_mutually_exclusive_group()
    src.add_argument('--model', default='cae', help='bundled model name (default: %(default)s)')
    src.add_argument('--model-dir', help='a folder written by nanolink-export')
    p.add_argument('--size', type=int, default=1008, help='square frame side (default: %(default)s)')
    p.add_argument('--runs', type=int, default=30, help='timed runs per network (default: %(default)s)')
    p.add_argument('--threads', type=int, default=0,
                   help='ONNX Runtime intra-op threads (default 0: one per physical core this process may use)')
    p.add_argument('--rounds', type=int, default=3,
                   help='split each row\'s runs into this many turns, taken in rotation (1: each row\'s runs in one '
                        'block, as before 2026-12-07; default: %(default)s)')
    p.add_argument('--out', help='write the figures as JSON here')
    args = p.parse_args(argv)
    try:
        import onnx  # noqa: F401  (MACs are counted from the ONNX graph)
    except ImportError:
        print('{}: error: counting MACs from the ONNX graphs needs the onnx package: pip install onnx (or '
              '"nanolink[train]")'.format(p.prog), file=sys.stderr)
        return 1
    if args.runs < 1 or args.size < 16 or args.threads < 0 or args.rounds < 1:
        p.error('--runs and --rounds must be >= 1, --size >= 16 and --threads >= 0')
    info = load_manifest(args.model_dir) if args.model_dir else bundled_model(args.model)
    if args.size % info.multiple:
        p.error('--size must be a multiple of {} for {}'.format(info.multiple, info.name))
    report = measure(info, args.size, args.runs, args.threads, args.rounds)
    print(format_report(report))
    if args.out:
        with open(args.out, 'w') as f:
            json.dump(report, f, indent=2)
            f.write('\n')
    return 0


if __name__ == '__main__':
    sys.exit(main())
