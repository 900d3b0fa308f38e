"""nanolink-report on the logs of a real edge-sender -> host-receiver run: tables, plots, report.json, quality
records, and its errors (bad line, missing file, no frames, bad arguments)."""
import json
import os
import shutil

import cv2
import pytest

from conftest import HostProcess, cli
from nanolink.common.stages import ALL_STAGES, EDGE_STAGES, END_TO_END, percentile

N = 10
REPORT = 'nanolink.host.report'


@pytest.fixture(scope='module')
def logs(tmp_path_factory, video_file):
    """host.jsonl and edge.jsonl of one real run of N frames of stream cam0."""
    d = tmp_path_factory.mktemp('logs')
    h = HostProcess('--frames', N, '--log', d / 'host.jsonl', '--timeout', 60, '--quiet')
    try:
        r = cli('nanolink.edge.cli', '--camera', video_file, '--frames', N, '--connect', h.endpoint,
                '--log', d / 'edge.jsonl', '--stream-id', 'cam0', '--quiet')
        assert r.returncode == 0, r.stderr
        rc, err = h.wait()
        assert rc == 0, err
    finally:
        h.kill()
    return str(d / 'host.jsonl'), str(d / 'edge.jsonl')


def read(path):
    return [json.loads(line) for line in open(path)]


def table_rows(stdout):
    """{stage: the table line} of the stage tables in the report's stdout."""
    return {line.split()[0]: line for line in stdout.splitlines() if line.split() and line.split()[0] in ALL_STAGES}


def assert_png(path):
    assert os.path.getsize(path) > 5000, path
    img = cv2.imread(path)
    assert img is not None and img.shape[0] > 200 and img.shape[1] > 400, path


def stage_values(records, key):
    values = {}
    for r in records:
        for k, v in r[key].items():
            values.setdefault(k, []).append(v)
    return values


def test_host_log_gives_every_stage_plots_and_matching_json(logs, tmp_path):
    pytest.importorskip('matplotlib')
    host = read(logs[0])
    out = tmp_path / 'report'
    r = cli(REPORT, logs[0], '--out', out, '--title', 'cae run')
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith('cae run\n')
    assert 'stream cam0: {} frames (host log), 0 lost'.format(N) in r.stdout
    values = stage_values(host, 'stages')
    values.update(stage_values(host, 'sender_stages'))
    assert set(values) <= set(ALL_STAGES) and END_TO_END in values
    rows = table_rows(r.stdout)
    assert set(rows) == set(values)                       # every stage in the log, and no other
    for k, v in values.items():
        assert rows[k].split()[-2] == str(len(v))          # n
    for name in ('stages.png', 'latency-hist.png'):
        assert_png(str(out / name))
        assert 'wrote {}'.format(out / name) in r.stdout
    assert not (out / 'quality.png').exists()
    rep = json.load(open(str(out / 'report.json')))
    s = rep['streams']['cam0']
    assert rep['title'] == 'cae run' and s['frames'] == N and s['lost'] == 0 and 'quality' not in s
    for k, v in values.items():
        assert s['stages'][k]['n'] == len(v)
        assert s['stages'][k]['median_ms'] == pytest.approx(percentile(v, 50))
        assert s['stages'][k]['p95_ms'] == pytest.approx(percentile(v, 95))
    assert s['bpp'] == pytest.approx(sum(x['bytes'] * 8.0 / (x['width'] * x['height']) for x in host) / N)
    assert s['bytes_per_frame'] == pytest.approx(sum(x['bytes'] for x in host) / float(N))
    t = sorted(x['t_cap'] for x in host)
    assert s['fps'] == pytest.approx((N - 1) / (t[-1] - t[0]))
    assert '{:.3f} bpp'.format(s['bpp']) in r.stdout


def test_edge_log_beside_host_log_gives_the_edge_stages_of_every_frame(logs):
    host_only, both = cli(REPORT, logs[0]), cli(REPORT, logs[0], logs[1])
    assert host_only.returncode == 0 and both.returncode == 0, host_only.stderr + both.stderr
    edge = read(logs[1])
    assert 'stream cam0: {} frames (host log)'.format(N) in both.stdout      # frames are not counted twice
    # serialise/send of a frame reach the host in the next frame's message: the host log lacks the first one's
    assert table_rows(host_only.stdout)['send'].split()[-2] == str(N - 1)
    rows = table_rows(both.stdout)
    for k, v in stage_values(edge, 'stages').items():
        assert rows[k].split()[-2] == str(N)
        assert rows[k].split()[1] == '{:.2f}'.format(percentile(v, 50))
    assert set(EDGE_STAGES) <= set(rows) and END_TO_END in rows


def test_edge_log_alone_has_no_end_to_end_and_still_plots(logs, tmp_path):
    pytest.importorskip('matplotlib')
    r = cli(REPORT, logs[1], '--out', tmp_path)
    assert r.returncode == 0, r.stderr
    assert 'stream cam0: {} frames (edge log)'.format(N) in r.stdout
    assert set(table_rows(r.stdout)) == set(EDGE_STAGES)
    assert_png(str(tmp_path / 'latency-hist.png'))       # of the summed stages
    assert END_TO_END not in json.load(open(str(tmp_path / 'report.json')))['streams']['cam0']['stages']


def test_quality_records_are_reported_and_plotted(logs, tmp_path):
    pytest.importorskip('matplotlib')
    log = str(tmp_path / 'host-quality.jsonl')
    shutil.copy(logs[0], log)
    t = [x['t_done'] for x in read(logs[0])]
    with open(log, 'a') as f:
        f.write(json.dumps({'event': 'quality', 'stream': 'cam0', 'seq': 0, 't': t[0], 'psnr': 30.5,
                            'ms_ssim': 0.95}) + '\n')
        f.write(json.dumps({'event': 'quality', 'stream': 'cam0', 'seq': 5, 't': t[5], 'psnr': 28.25,
                            'ms_ssim': None}) + '\n')
        f.write(json.dumps({'event': 'some-future-event', 'stream': 'cam0', 'value': 1}) + '\n')
    r = cli(REPORT, log, '--out', tmp_path / 'out')
    assert r.returncode == 0, r.stderr
    assert 'stream cam0: {} frames'.format(N) in r.stdout                 # the events are not frames
    assert 'quality (2 scored frames): PSNR mean 29.38 dB, min 28.25 dB; MS-SSIM mean 0.9500, min 0.9500 ' \
           '(1 scored)' in r.stdout
    assert_png(str(tmp_path / 'out' / 'quality.png'))
    q = json.load(open(str(tmp_path / 'out' / 'report.json')))['streams']['cam0']['quality']
    assert q == {'n': 2, 'mean_psnr': pytest.approx(29.375), 'min_psnr': 28.25, 'n_ms_ssim': 1,
                 'mean_ms_ssim': 0.95, 'min_ms_ssim': 0.95}


@pytest.mark.parametrize('bad, why', [
    ('{"seq": 3, "stream": "ca', 'not JSON'),
    ('[1, 2]', 'not a JSON object'),
    ('{"seq": 3, "stream": "cam0", "stages": {}}', 'not a frame record ("t_cap" missing or wrong)'),
])
def test_a_bad_line_is_named_with_its_number(logs, tmp_path, bad, why):
    lines = open(logs[0]).read().splitlines()
    log = tmp_path / 'host.jsonl'
    log.write_text('\n'.join(lines[:3] + [bad] + lines[3:]) + '\n')
    r = cli(REPORT, log)
    assert r.returncode == 1 and r.stdout == ''
    assert r.stderr.startswith('nanolink-report: error: {} line 4: {}'.format(log, why)), r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and 'Traceback' not in r.stderr


def test_missing_file_and_logs_without_frames_exit_1(logs, tmp_path):
    r = cli(REPORT, logs[0], tmp_path / 'nope.jsonl')
    assert r.returncode == 1 and r.stderr == 'nanolink-report: error: {}: no such file; give the --log files ' \
                                             'written by host-receiver or edge-sender\n'.format(tmp_path / 'nope.jsonl')
    (tmp_path / 'q.jsonl').write_text('{"event": "quality", "stream": "cam0", "seq": 0, "t": 1.0, "psnr": 30}\n\n')
    r = cli(REPORT, tmp_path / 'q.jsonl')
    assert r.returncode == 1 and r.stderr.startswith('nanolink-report: error: no frame records in ')
    assert len(r.stderr.strip().splitlines()) == 1


def test_arguments(tmp_path):
    r = cli(REPORT)
    assert r.returncode == 2 and 'usage: nanolink-report' in r.stderr
    r = cli(REPORT, '--help')
    assert r.returncode == 0 and '--out DIR' in r.stdout and '--title' in r.stdout
