"""edge-sender --max-mbps: the rate point picked from the bundled manifests, the refusal when none fits, and the
measured rate of a real stream (real processes, real sockets)."""
import json
import re

import pytest

from conftest import cli
from nanolink.common import zoo
from nanolink.common.errors import UsageError
from nanolink.edge import rate


def needs(model, w, h, fps=30.0):
    info = zoo.bundled_model(model)
    return [(r, rate.mbps(b, w, h, fps)) for r, b in rate.rate_points(info)]


@pytest.mark.parametrize('model', ['cae', 'ae', 'cae-bin'])
def test_pick_takes_the_best_rate_point_under_the_cap(model):
    info = zoo.bundled_model(model)
    table = needs(model, 1280, 720)
    assert len(table) >= 3 and [m for _, m in table] == sorted(m for _, m in table)
    for i, (r, need) in enumerate(table):
        assert rate.pick(info, need, 1280, 720) == (r, need, table[i - 1][0] if i else None)   # exactly: it fits
        if i + 1 < len(table):
            between = (need + table[i + 1][1]) / 2
            assert rate.pick(info, between, 1280, 720)[0] == r
    assert rate.pick(info, 1e6, 1280, 720)[0] == table[-1][0]
    with pytest.raises(UsageError, match=r'--max-mbps 0\.01: even .* {} of {} needs about {:.2f} Mbit/s at 1280x720'
                       .format(table[0][0], model, table[0][1])):
        rate.pick(info, 0.01, 1280, 720)


def test_the_rate_scales_with_pixels_and_frame_rate():
    (r, full), = needs('cae', 1008, 1008)[:1]
    (_, half), = needs('cae', 1008, 1008, fps=15.0)[:1]
    assert half == pytest.approx(full / 2)
    bpp = rate.rate_points(zoo.bundled_model('cae'))[0][1]
    assert full == pytest.approx((bpp * 1008 * 1008 + 8 * rate.HEADER_BYTES) * 30 / 1e6)


def test_cli_sends_at_the_picked_rate_point_and_reports_the_measured_rate(tmp_path, host_process):
    table = needs('cae', 320, 240)
    q2, q3 = table[1][1], table[2][1]
    cap = (q2 + q3) / 2
    h = host_process('--frames', 6, '--timeout', 60, '--log', tmp_path / 'host.jsonl')
    r = cli('nanolink.edge.cli', '--camera', 'synthetic://320x240', '--model', 'cae', '--max-mbps', cap, '--frames',
            6, '--fps', 30, '--connect', h.endpoint, '--log', tmp_path / 'edge.jsonl', timeout=180)
    assert r.returncode == 0, r.stderr
    assert '--max-mbps {:g}: --quality 2 of cae, planned {:.2f} Mbit/s at 320x240, 30 fps'.format(cap, q2) in r.stderr
    edge = [json.loads(l) for l in open(str(tmp_path / 'edge.jsonl'))]
    measured = 8.0 * sum(e['bytes'] for e in edge) / len(edge) * 30 / 1e6
    m = re.search(r'rate: ([0-9.]+) Mbit/s at 30 fps measured over all 6 frames sent \(--quality 2; --max-mbps', r.stderr)
    assert m and float(m.group(1)) == pytest.approx(measured, abs=0.006), r.stderr
    assert h.wait()[0] == 0
    # the same frames at --quality 2, chosen by hand, are the same messages
    h2 = host_process('--frames', 6, '--timeout', 60)
    r2 = cli('nanolink.edge.cli', '--camera', 'synthetic://320x240', '--model', 'cae', '--quality', 2, '--frames', 6,
             '--connect', h2.endpoint, '--log', tmp_path / 'edge2.jsonl', timeout=180)
    assert r2.returncode == 0, r2.stderr
    assert [json.loads(l)['bytes'] for l in open(str(tmp_path / 'edge2.jsonl'))] == [e['bytes'] for e in edge]
    assert h2.wait()[0] == 0


def test_a_scene_that_needs_more_than_planned_is_warned_about(host_process):
    """Synthetic frames (noise over gradients) need more bits than the average photo the plan assumes: with the
    cap just above the lowest rate point's plan, the measured rate runs over it and the edge says so, once."""
    (q1, need), = needs('cae', 320, 240)[:1]
    h = host_process('--frames', 40, '--timeout', 60)
    r = cli('nanolink.edge.cli', '--camera', 'synthetic://320x240', '--model', 'cae', '--max-mbps', need * 1.01,
            '--frames', 40, '--connect', h.endpoint, timeout=300)
    assert r.returncode == 0, r.stderr
    measured = float(re.search(r'rate: ([0-9.]+) Mbit/s', r.stderr).group(1))
    if measured > 1.1 * need * 1.01:
        assert r.stderr.count('over --max-mbps') == 1 and 'lower --size or --fps' in r.stderr, r.stderr
    else:
        pytest.fail('synthetic frames measured {:.2f} Mbit/s, not over the {:.2f} planned: pick a busier source for '
                    'this test'.format(measured, need))
    assert h.wait()[0] == 0


@pytest.mark.parametrize('args, words', [
    (['--max-mbps', '0'], '--max-mbps must be a positive number'),
    (['--max-mbps', 'nan'], '--max-mbps must be a positive number'),
    (['--max-mbps', '5', '--quality', '2', '--model', 'cae'], 'drop --quality'),
    (['--max-mbps', '5', '--model', 'jpeg'], 'drop --model jpeg'),
    (['--max-mbps', '0.01', '--model', 'cae'], 'even --quality 1 of cae needs about'),
    (['--max-mbps', '0.01'], 'raise --max-mbps, or lower --fps or --size'),
])
def test_bad_max_mbps_exits_2_with_a_message(args, words):
    r = cli('nanolink.edge.cli', '--camera', 'synthetic://320x240', '--connect', 'tcp://127.0.0.1:9', '--frames', 1,
            *args)
    assert r.returncode == 2, r.stderr
    assert words in r.stderr and 'Traceback' not in r.stderr
