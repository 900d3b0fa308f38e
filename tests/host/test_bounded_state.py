"""One unauthenticated sender cannot stop or bloat the host: bounded streams, reason keys, frame sizes and pixel
rates (real host-receiver processes, real ZeroMQ sockets on 127.0.0.1)."""
import json
import os
import time
import urllib.request

import numpy as np
import zmq

from nanolink.common import wire
from nanolink.common.classical import classical_info
from nanolink.common.sender import Sender
from nanolink.host.streams import MAX_REASON_KEYS, RejectLog, StreamTable, reason_key

RAW = classical_info('raw')


def raw_frame(stream, seq=0, h=16, w=16, fp=RAW.fingerprint, model='raw'):
    payload = np.random.RandomState(seq).randint(0, 256, h * w * 3).astype(np.uint8).tobytes()
    return wire.pack(wire.Frame(stream=stream, seq=seq, t_cap=time.time(), model=model, fp=fp, dtype='raw',
                                shape=(3, h, w), size=(h, w), payload=payload, stages={}))


def send_all(endpoint, messages):
    ctx = zmq.Context()
    with Sender(endpoint, context=ctx, send_timeout_ms=-1) as tx:
        for m in messages:
            assert tx.send(m)
    ctx.term()


def test_a_flood_of_stream_ids_is_capped_and_opens_no_more_log_files(tmp_path, host_process):
    logs = tmp_path / 'logs'
    h = host_process('--max-streams', 8, '--log', str(logs / '{stream}.jsonl'), '--frames', 9, '--timeout', 60)
    send_all(h.endpoint, [raw_frame('cam{}'.format(i)) for i in range(200)] + [raw_frame('cam0', seq=1)])
    rc, err = h.wait(120)
    assert rc == 0, err
    assert sorted(os.listdir(str(logs))) == sorted('cam{}.jsonl'.format(i) for i in range(8))
    assert '9 decoded, 192 rejected of 201 received' in err
    assert '192 frames of new streams refused: --max-streams 8 streams were live' in err
    assert 'Traceback' not in err and err.count('refusing new streams') <= 2       # logged once per 10 s


def test_an_idle_stream_is_evicted_to_make_room_and_keeps_its_counts(tmp_path, host_process):
    h = host_process('--max-streams', 2, '--stream-idle', '0.5', '--frames', 3, '--timeout', 60,
                     '--log', str(tmp_path / '{stream}.jsonl'))
    send_all(h.endpoint, [raw_frame('a'), raw_frame('b')])
    time.sleep(2.0)                                  # well past --stream-idle: a and b are idle now
    send_all(h.endpoint, [raw_frame('c')])
    rc, err = h.wait(120)
    assert rc == 0, err
    assert '3 decoded, 0 rejected of 3 received' in err
    for name in 'abc':
        assert 'stream {}: 1 frames'.format(name) in err
    assert 'its state released' in err


def test_reject_reason_keys_stay_bounded_and_hold_no_sender_values(tmp_path, host_process):
    h = host_process('--http', '127.0.0.1:0', '--frames', 1, '--timeout', 60)
    url = h.proc.stdout.readline().split()[-1]
    rng = np.random.RandomState(0)
    junk = [raw_frame('s{}'.format(i), fp='{:016x}'.format(rng.randint(2 ** 62))) for i in range(300)]
    junk += [raw_frame('m{}'.format(i), model='model-{}'.format(i)) for i in range(300)]
    send_all(h.endpoint, junk)
    deadline = time.time() + 60
    while time.time() < deadline:
        stats = json.loads(urllib.request.urlopen(url + 'stats.json', timeout=10).read().decode())
        if stats['rejected'] >= 600:
            break
        time.sleep(0.2)
    assert stats['rejected'] == 600, stats['rejected']
    keys = stats['reject_reasons']
    assert len(keys) <= MAX_REASON_KEYS and sum(keys.values()) == 600
    assert not any(any(c.isdigit() for c in k) for k in keys), keys                   # no fingerprints, no ids
    assert stats['streams'] == {} and len(json.dumps(stats)) < 5000
    send_all(h.endpoint, [raw_frame('ok')])
    rc, err = h.wait(60)
    assert rc == 0 and err.count('\n') < 200, err[-2000:]          # 600 rejections, a few log lines


def test_frames_over_max_size_or_the_pixel_rate_are_refused_before_decoding(host_process):
    h = host_process('--max-size', '32x32', '--frames', 1, '--timeout', 60)
    send_all(h.endpoint, [raw_frame('big', h=64, w=48), raw_frame('small', h=24, w=32)])
    rc, err = h.wait(60)
    assert rc == 0 and '1 decoded, 1 rejected of 2 received' in err, err
    assert 'frame of 48x64 is over --max-size 32x32' in err
    h = host_process('--max-pixel-rate', '0.001', '--frames', 1, '--timeout', 60)    # 1000 pixels a second
    send_all(h.endpoint, [raw_frame('fast', seq=i, h=40, w=40) for i in range(5)] + [raw_frame('slow', h=16, w=16)])
    rc, err = h.wait(60)                            # 1600 pixels never fit a 1000-pixel bucket; 256 do
    assert rc == 0 and '1 decoded, 5 rejected of 6 received' in err, err
    assert 'over the decoded pixel rate of this stream (--max-pixel-rate 0.001 Mpx/s)' in err


def test_reason_keys_and_the_table_directly():
    assert reason_key("unknown model 'x-1'; this receiver decodes ['ae']") == 'unknown model #; this receiver decodes #'
    assert reason_key('model cae with fingerprint 0123456789abcdef is not loaded here') == \
        'model cae with fingerprint # is not loaded here'
    r = RejectLog()
    for i in range(100):
        r.add('reason{} of some kind'.format(chr(65 + i % 26) * (i + 1)), None)
    assert len(r.counts) == MAX_REASON_KEYS and r.total == 100 and r.counts['other'] > 0
    evicted = []
    t = StreamTable(max_streams=1, idle_s=10, max_pixel_rate=100, on_evict=evicted.append)
    assert t.admit('a', 0.0, 50) == (t.get('a'), None)
    assert t.admit('b', 5.0, 10)[1].startswith('too many streams')
    assert t.admit('a', 5.0, 60)[1] is None                                      # refilled to the 100 cap
    assert t.admit('a', 5.0, 50)[1].startswith('over the decoded pixel rate')   # 40 left
    assert t.admit('b', 20.0, 10)[1] is None and evicted == ['a']                # a idled out
    assert set(t.all()) == {'a', 'b'}
