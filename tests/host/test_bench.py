"""latency-bench with real edge and host processes: the table, latency.json (schema of issue 6), CSV, chart,
baseline rows in the same run, and the two-machine roles with a clock-offset estimate."""
import csv
import json
import os
import re
import subprocess
import sys

import pytest

from conftest import cli
from nanolink.common import zoo
from nanolink.common.stages import ALL_STAGES

pytest.importorskip('matplotlib', reason='latency-bench --out draws its chart with matplotlib')
jsonschema = pytest.importorskip('jsonschema')

STAGE = {'type': 'object', 'required': ['median_ms', 'p5_ms', 'p95_ms'],
         'properties': {k: {'type': 'number', 'minimum': 0} for k in ('median_ms', 'p5_ms', 'p95_ms')}}
SCHEMA = {
    'type': 'object', 'required': ['rows'],
    'properties': {'rows': {'type': 'array', 'minItems': 1, 'items': {
        'type': 'object', 'required': ['model', 'size', 'frames', 'psnr', 'bpp', 'stages', 'total_s', 'avg_ms'],
        'properties': {'model': {'type': 'string'}, 'size': {'type': 'integer'}, 'frames': {'type': 'integer'},
                       'psnr': {'type': ['number', 'null']}, 'bpp': {'type': 'number', 'exclusiveMinimum': 0},
                       'stages': {'type': 'object', 'propertyNames': {'enum': list(ALL_STAGES)},
                                  'additionalProperties': STAGE},
                       'total_s': {'type': 'number', 'exclusiveMinimum': 0},
                       'avg_ms': {'type': 'number', 'exclusiveMinimum': 0}}}}}}


def test_bench_runs_rows_and_baselines_and_writes_json_csv_chart(tmp_path):
    out = tmp_path / 'bench'
    r = cli('nanolink.host.bench', '--models', 'cae-bin,ae', '--sizes', '64,92', '--frames', 6, '--warmup', 2, '--out', out,
            timeout=300)
    assert r.returncode == 0, r.stderr
    doc = json.load(open(str(out / 'latency.json')))
    jsonschema.validate(doc, SCHEMA)
    rows = {(row['model'], row['size'], row['mode']): row for row in doc['rows']}
    assert [m for m, s, mode in rows if s == 64][:4] == ['cae-bin', 'cae-bin', 'ae', 'ae'] and len(rows) == 12
    assert {mode for m, s, mode in rows if m in ('cae-bin', 'ae')} == {'pipelined', 'sequential'}
    assert {mode for m, s, mode in rows if m not in ('cae-bin', 'ae')} == {'pipelined'}
    rows = {k[:2] if k[2] == 'pipelined' else k: row for k, row in rows.items()}
    jpeg = [row for k, row in rows.items() if 'jpeg' in k[0] and k[1] == 92][0]
    cae_bin, raw = rows[('cae-bin', 92)], rows[('raw', 92)]
    for key, stream in ((('cae-bin', 92), 'cae-bin-92'), (('cae-bin', 92, 'sequential'), 'cae-bin-92-seq')):
        edge = [json.loads(l) for l in open(str(out / 'edge-{}.jsonl'.format(stream)))]
        timed = sorted((e for e in edge if e['seq'] >= 2), key=lambda e: e['seq'])
        assert len(timed) == 6
        assert rows[key]['edge']['fps'] == pytest.approx(5 / (timed[-1]['t_cap'] - timed[0]['t_cap']))
        assert rows[key]['edge']['slowest'] in ('capture', 'device', 'cpu')
    pipelined_fps = rows[('cae-bin', 92)]['edge']['fps']
    sequential_fps = rows[('cae-bin', 92, 'sequential')]['edge']['fps']
    assert 'cae-bin, 92²: pipelined {:.1f} fps vs --no-pipeline {:.1f} fps'.format(pipelined_fps, sequential_fps) \
        in r.stdout
    assert all(row['frames'] == 6 for row in rows.values())
    assert raw['psnr'] is None and raw['bpp'] > 24 and jpeg['psnr'] > 10 and cae_bin['psnr'] > 15
    assert set(cae_bin['stages']) >= {'capture', 'preprocess', 'encode', 'gpu_to_cpu', 'serialise', 'send', 'receive',
                                  'deserialise', 'decode', 'postprocess', 'end_to_end'}
    assert cae_bin['avg_ms'] == pytest.approx(1000 * cae_bin['total_s'] / 6)
    assert doc['micro_benchmark']['copy_ratio'] == 32.0             # packed bits vs float32: 32x fewer bytes
    with open(str(out / 'latency.csv')) as f:
        table = list(csv.DictReader(f))
    assert {(t['model'], int(t['size'])) for t in table} == {k[:2] for k in rows}
    assert os.path.getsize(str(out / 'latency.png')) > 5000
    header = [l for l in r.stdout.splitlines() if l.startswith('Model, size')][0]
    assert header.split(' | ') == ['Model, size (PSNR)', 'Encode', 'Misc (encode)', 'GPU->CPU', 'Serialise', 'Send',
                                   'T_N s', 'Avg ms', 'Misc (decode)', 'Decode']
    assert 'T_6 ' in r.stdout and 'slides: Lossy CAE 2 MB, Nano, 1008² (34.01)' in r.stdout


def test_bench_roles_on_two_processes_estimate_the_clock_offset(tmp_path):
    host = subprocess.Popen([sys.executable, '-m', 'nanolink.host.bench', '--role', 'host', '--sizes', '64',
                             '--frames', '5', '--warmup', '1', '--baselines', 'none', '--timeout', '60'],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, cwd=str(tmp_path))
    try:
        line = ''
        while not line.startswith('listening on '):
            line = host.stdout.readline()
            assert line, host.stderr.read()
        endpoint = line.split()[2]
        edge = cli('nanolink.host.bench', '--role', 'edge', '--connect', endpoint, '--sizes', 64, '--frames', 5,
                   '--warmup', 1, '--baselines', 'none', cwd=str(tmp_path), timeout=120)
        assert edge.returncode == 0, edge.stderr
        m = re.search(r'clock offset to the host: ([-+0-9.]+) ms \(\+/- ([0-9.]+) ms', edge.stdout)
        offset_ms, bound_ms = float(m.group(1)), float(m.group(2))
        # one machine, one clock: the true offset is 0, so the estimate lies within its own error bound (however
        # slow a loaded machine made the round trips), plus the print's rounding
        assert abs(offset_ms) <= bound_ms + 0.01, edge.stdout
        out, err = host.communicate(timeout=120)
    finally:
        if host.poll() is None:
            host.kill()
    assert host.returncode == 0, err
    assert 'T_5 ' in out and '{}, 64²'.format(zoo.DEFAULT_MODEL) in out


@pytest.mark.parametrize('args, words', [
    (['--role', 'edge'], '--role edge needs --connect'),
    (['--baselines', 'png'], 'unknown png'),
    (['--models', 'nope'], 'no bundled model "nope"'),
    (['--frames', '0'], '--frames must be at least 1'),
    (['--sizes', '5000'], 'frame sides are 16..4096'),
    (['--jpeg-quality', '0'], '--jpeg-quality must be in 1..100'),
    (['--channels', '0'], '--channels must be at least 1'),
    (['--timeout', '0'], '--timeout must be > 0'),
    (['--edge-modes', 'fast'], '--edge-modes: use pipelined, sequential or both'),
    (['--streams', '0'], '--streams: each count must be in 1..64, each once'),
    (['--decode-workers', '-1'], '--decode-workers must be in 0..64'),
    (['--streams', '2', '--role', 'host'], 'use it with --role both'),
    (['--compare', '--role', 'host'], '--compare runs on this machine'),
    (['--role', 'edge', '--connect', 'tcp://127.0.0.1:99999'], 'a port in 1..65535'),
    (['--role', 'host', '--bind', 'tcp://127.0.0.1:65535'], 'needs a port below 65535'),
])
def test_bench_bad_arguments_exit_with_a_message(args, words):
    r = cli('nanolink.host.bench', *args)
    assert r.returncode == 2, r.stderr                                  # 2: bad arguments
    assert words in r.stderr and 'Traceback' not in r.stderr


def test_bench_out_that_is_a_file_is_refused(tmp_path):
    (tmp_path / 'f').write_text('x')
    r = cli('nanolink.host.bench', '--out', tmp_path / 'f', '--sizes', '64', '--frames', '1')
    assert r.returncode == 2 and 'is a file, not a folder' in r.stderr and 'Traceback' not in r.stderr


@pytest.mark.parametrize('out', [[], ['--out', 'new']])
def test_bench_bad_source_names_its_own_option_and_leaves_no_folder(tmp_path, out):
    """--source is latency-bench's name for what edge-sender calls --camera: the message says --source, and the run
    it stops makes no latency-bench-logs/ (nor --out) in the current folder."""
    r = cli('nanolink.host.bench', '--source', tmp_path / 'nowhere', '--sizes', '64', '--frames', '1', *out,
            cwd=str(tmp_path))
    assert r.returncode == 1 and 'Traceback' not in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert r.stderr.startswith('latency-bench: error: --source ') and '--source takes a camera index' in r.stderr
    assert '--camera' not in r.stderr and sorted(os.listdir(str(tmp_path))) == []


def test_bench_streams_reports_one_hosts_decoded_fps_for_n_edges(tmp_path):
    out = tmp_path / 'bench'
    r = cli('nanolink.host.bench', '--models', 'cae-bin', '--sizes', '64', '--frames', 5, '--warmup', 1,
            '--baselines', 'none', '--edge-modes', 'pipelined', '--streams', '1,2', '--out', out, timeout=300)
    assert r.returncode == 0, r.stderr
    doc = json.load(open(str(out / 'latency.json')))
    assert [s['streams'] for s in doc['streams']] == [1, 2]
    for s in doc['streams']:
        log = [json.loads(l) for l in open(str(out / 'streams-{}-host.jsonl'.format(s['streams'])))]
        assert sorted({e['stream'] for e in log}) == ['s{}'.format(i) for i in range(s['streams'])]
        assert len(log) == 6 * s['streams'] and s['frames'] == 5 * s['streams']
        assert s['decoded_fps'] > 0 and s['per_stream_fps'] == pytest.approx(s['decoded_fps'] / s['streams'])
    assert 'one host-receiver, N edge-senders at once' in r.stdout


def test_bench_compare_prints_the_alternatives_in_the_same_run(tmp_path):
    pytest.importorskip('imageio_ffmpeg', reason='--compare needs ffmpeg: pip install imageio-ffmpeg (the bench extra)')
    pytest.importorskip('imagezmq', reason='--compare needs imagezmq: pip install imagezmq (the bench extra)')
    out = tmp_path / 'bench'
    r = cli('nanolink.host.bench', '--models', 'cae', '--sizes', '64', '--frames', 4, '--warmup', 1, '--baselines',
            'none', '--compare', '--compare-size', '96x64', '--compare-frames', 12, '--compare-rate-sizes', '96x64',
            '--out', out, timeout=600)
    assert r.returncode == 0, r.stderr
    text = r.stdout
    assert text.index('edge rate: achieved fps') < text.index('H264 at cae') < text.index('imagezmq + JPEG')
    assert 'cae, 64²: pipelined' in text and (out / 'compare' / 'compare.json').exists()


def test_bench_host_on_a_named_port_whose_clock_port_is_taken_says_so(tmp_path):
    """--role host --bind PORT puts its clock on PORT + 1; when that is taken it stops with the fix, and does not
    move the user's port (a random port, --bind ...:*, is drawn again instead)."""
    import zmq
    ctx = zmq.Context()
    taken = ctx.socket(zmq.REP)
    try:
        port = taken.bind_to_random_port('tcp://127.0.0.1', min_port=20001, max_port=60000)
        r = cli('nanolink.host.bench', '--role', 'host', '--bind', 'tcp://127.0.0.1:{}'.format(port - 1),
                '--sizes', 64, '--frames', 1, '--warmup', 0, '--baselines', 'none', cwd=str(tmp_path), timeout=120)
    finally:
        taken.close(0)
        ctx.term()
    assert r.returncode != 0 and 'Traceback' not in r.stderr
    assert 'the clock cannot listen on tcp://127.0.0.1:{}'.format(port) in r.stderr
    assert 'give --bind a port below 65535 whose next port is free' in r.stderr
