"""A running host-receiver takes >= 10 000 malformed messages, logs and counts them, and still decodes."""
import os
import re
import time

import zmq
from hypothesis import HealthCheck, given, settings, strategies as st

from nanolink.common import wire, zoo
from nanolink.common.sender import Sender

N_MALFORMED = 10000


def valid(seq, fp, stream='ok'):
    return wire.pack(wire.Frame(stream=stream, seq=seq, t_cap=time.time(), model='cae-bin', fp=fp, shape=(8, 2, 2),
                                size=(8, 8), payload=bytes(4), stages={}))


def test_ten_thousand_malformed_messages_then_valid_frames(host_process, tmp_path):
    fp = zoo.bundled_model('cae-bin').fingerprint
    good = valid(0, fp)
    sent = []

    @settings(max_examples=N_MALFORMED, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(st.one_of(st.binary(max_size=300),
                     st.tuples(st.integers(0, len(good) - 1), st.integers(0, 255)).map(
                         lambda t: good[:t[0]] + bytes([good[t[0]] ^ (t[1] | 1)]) + good[t[0] + 1:]),
                     st.integers(0, len(good) - 1).map(lambda n: good[:n])))
    def collect(msg):
        try:
            wire.unpack(msg, models)
        except wire.WireError:
            sent.append(msg)               # keep only messages the format must reject

    info = zoo.bundled_model('cae-bin')
    models = {'cae-bin': {fp: info}}
    collect()
    while len(sent) < N_MALFORMED:         # top up with random bytes if hypothesis produced duplicates or valid ones
        sent.append(os.urandom(len(sent) % 300))
    h = host_process('--frames', 3, '--timeout', 60, '--log', tmp_path / 'host.jsonl')
    ctx = zmq.Context()
    with Sender(h.endpoint, hwm=100000, context=ctx, send_timeout_ms=-1) as tx:
        for m in sent:
            assert tx.send(m)
        for seq in range(3):
            assert tx.send(valid(seq, fp))
        rc, err = h.wait(120)
    ctx.term()
    assert len(sent) >= N_MALFORMED
    assert rc == 0, err[-2000:]
    assert 'Traceback' not in err
    m = re.search(r'(\d+) decoded, (\d+) rejected of (\d+) received', err)
    assert m and [int(g) for g in m.groups()] == [3, len(sent), len(sent) + 3]
    assert 'more rejected messages not shown' in err


def test_model_mismatch_is_one_line_per_stream(host_process, tmp_path):
    fp = zoo.bundled_model('cae-bin').fingerprint
    h = host_process('--frames', 1, '--timeout', 30)
    ctx = zmq.Context()
    with Sender(h.endpoint, context=ctx) as tx:
        for seq in range(50):
            tx.send(valid(seq, '0' * 16, stream='old-weights'))
        tx.send(valid(0, fp))
        rc, err = h.wait(60)
    ctx.term()
    assert rc == 0 and err.count('refusing stream old-weights') == 1 and '50 rejected' in err


def test_oversized_gaps_and_reordering_are_counted(host_process, tmp_path):
    fp = zoo.bundled_model('cae-bin').fingerprint
    h = host_process('--frames', 4, '--timeout', 30)
    ctx = zmq.Context()
    with Sender(h.endpoint, context=ctx, send_timeout_ms=5000) as tx:
        assert tx.send(b'\x00' * (wire.MAX_MESSAGE_BYTES + 1))      # over the wire limit, under the socket cap
        for seq in (0, 1, 4, 3):                                       # 2 lost, then 3 arrives after 4
            tx.send(valid(seq, fp))
        rc, err = h.wait(60)
    ctx.term()
    assert rc == 0, err
    assert 'exceeds the 16777216 byte limit' in err
    assert '4 decoded, 1 rejected of 5 received' in err
    assert 'stream ok: 4 frames, 1 lost, 1 reordered' in err      # frame 2 never came


def test_ae_full_frame_with_an_odd_code_is_rejected_not_decoded(host_process, tmp_path):
    """ae-full's decoder works at half resolution, so its code (the padded frame) has even sides; a message with an
    odd one is refused by the wire check instead of failing inside the decoder, and the next frame decodes."""
    import cv2
    import numpy as np
    fp = zoo.bundled_model('ae-full').fingerprint

    def frame(h, w, seq):
        img = np.random.RandomState(seq).randint(0, 256, (h, w, 3)).astype(np.uint8)
        payload = cv2.imencode('.jpg', img, [cv2.IMWRITE_JPEG_QUALITY, 50])[1].tobytes()
        return wire.pack(wire.Frame(stream='cam', seq=seq, t_cap=time.time(), model='ae-full', fp=fp, dtype='jpeg',
                                    shape=(3, h, w), size=(h, w), payload=payload, stages={}))

    h = host_process('--frames', 1, '--timeout', 30, '--model', 'ae-full')
    ctx = zmq.Context()
    with Sender(h.endpoint, context=ctx) as tx:
        assert tx.send(frame(15, 24, 0))
        assert tx.send(frame(16, 24, 1))
        rc, err = h.wait(60)
    ctx.term()
    assert rc == 0 and 'Traceback' not in err, err[-2000:]
    assert 'does not fit code shape' in err and '1 decoded, 1 rejected of 2 received' in err, err[-2000:]
