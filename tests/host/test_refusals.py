"""Refusals on real sockets: the host tells an edge why it did not decode a frame (common/answers.py), and the
edge counts each refused frame once, in acknowledged and in latest mode."""
import threading
import time

import msgpack
import numpy as np
import zmq

import nanolink
from nanolink.common import wire
from nanolink.common.answers import unpack_answer
from nanolink.common.sender import Sender as Link
from nanolink.common.transport import Receiver as HostLink


def _serve(rx, stop):
    while not stop.is_set():
        rx.recv(0.1)


def _answers(sock, quiet_ms=2000):
    got = []
    while sock.poll(quiet_ms):
        got.append(unpack_answer(sock.recv())[:3])
    return got


def test_a_repeat_of_a_refused_frame_is_refused_again():
    """The payload does not decode: refused before and after its acknowledgement. Sent again on a new connection
    (the edge reconnected, the answers lost), it is a repeat: acknowledged and refused again, not decoded twice."""
    stop = threading.Event()
    with nanolink.Receiver('tcp://127.0.0.1:*', models=['jpeg']) as rx:
        server = threading.Thread(target=_serve, args=(rx, stop), daemon=True)
        server.start()
        d = msgpack.unpackb(nanolink.open_codec('jpeg').encode(np.zeros((48, 64, 3), np.uint8)), raw=False)
        d['payload'] = b'\xff\xd8 not a jpeg' * 10
        bad = msgpack.packb(d, use_bin_type=True)
        ctx = zmq.Context()
        try:
            for _ in range(2):
                sock = ctx.socket(zmq.DEALER)
                sock.setsockopt(zmq.LINGER, 0)
                sock.connect(rx.endpoint)
                sock.send(bad)
                refusal = ('refused', d['session'], d['seq'])
                assert _answers(sock) == [refusal, ('ack', d['session'], d['seq']), refusal]
                sock.close()
        finally:
            stop.set()
            server.join(30)
            ctx.term()
        assert rx.rejects.total == 1 and rx.decoded == 0


def test_a_sender_in_latest_mode_counts_refusals_too():
    """latest: the edge's socket keeps only the newest answer (ZMQ_CONFLATE); the refusal comes last, so the
    edge still learns that the host decodes none of its frames (jpeg only here, the edge sends raw)."""
    stop = threading.Event()
    with nanolink.Receiver('tcp://127.0.0.1:*', models=['jpeg']) as rx:
        server = threading.Thread(target=_serve, args=(rx, stop), daemon=True)
        server.start()
        try:
            with nanolink.Sender(rx.endpoint, model='raw', latest=True, stream_id='late') as tx:
                assert tx.link.wait_connected(30)
                frame = np.zeros((16, 16, 3), np.uint8)
                deadline = time.time() + 60
                while tx.link.refused == 0 and time.time() < deadline:
                    tx.send(frame)               # each send reads the answers that came meanwhile
                    time.sleep(0.02)
                sent = tx.seq
        finally:
            stop.set()
            server.join(30)
        link = tx.link
        assert 1 <= link.refused <= sent and all(0 <= s < sent for s in link.refused_seqs)
        assert list(link.refusals) == ["unknown model 'raw'; this receiver decodes ['jpeg']"]


def test_a_callback_that_raises_does_not_stop_the_link():
    ctx = zmq.Context()
    calls = []

    def boom(seq, reason):
        calls.append(seq)
        raise RuntimeError('the caller\'s bug')
    with HostLink('tcp://127.0.0.1:*', context=ctx) as rx, Link(rx.endpoint, context=ctx, session=7,
                                                                  linger_ms=0) as tx:
        tx.on_refused = boom
        for seq in range(3):
            msg = wire.pack(wire.Frame(stream='t', session=7, seq=seq, t_cap=1.7e9, model='raw', fp='0' * 16,
                                       dtype='raw', shape=(3, 2, 2), size=(2, 2), payload=bytes(12), stages={}))
            assert tx.send(msg, seq)
            m = None
            deadline = time.time() + 30
            while m is None and time.time() < deadline:
                m = rx.recv(0.1)
            assert m is not None, 'frame {} did not arrive'.format(seq)
            rx.ack(7, seq, refused='not today' if seq == 0 else None)
        assert tx.wait_acknowledged(30000) and tx.acked == 3 and tx.refused == 1 and calls == [0]
    ctx.term()


def test_a_frame_refused_over_the_pixel_rate_is_taken_not_lost():
    """Refused at admission (over --max-pixel-rate): its seq counts as taken, not lost, and a repeat of it, once the
    stream's budget has filled again, is refused again rather than decoded, so the edge's count of refused frames
    stays true."""
    stop = threading.Event()
    codec = nanolink.open_codec('jpeg')
    messages = [codec.encode(np.full((48, 64, 3), 60 * i, np.uint8)) for i in range(3)]   # 3072 pixels each
    with nanolink.Receiver('tcp://127.0.0.1:*', models=['jpeg'], max_pixel_rate=5000) as rx:
        server = threading.Thread(target=_serve, args=(rx, stop), daemon=True)
        server.start()
        ctx = zmq.Context()
        try:
            sock = ctx.socket(zmq.DEALER)
            sock.setsockopt(zmq.LINGER, 0)
            sock.connect(rx.endpoint)
            first = msgpack.unpackb(messages[0], raw=False)
            session = first['session']
            sock.send(messages[0])
            sock.send(messages[1])           # at once: 3072 more pixels than the 1928 left this second
            got = _answers(sock)
            assert ('ack', session, 0) in got and ('refused', session, 1) in got
            time.sleep(1.5)                  # the budget fills again: a new frame would be decoded now
            sock.close()
            sock = ctx.socket(zmq.DEALER)    # the edge reconnected, sends 1 again, then 2
            sock.setsockopt(zmq.LINGER, 0)
            sock.connect(rx.endpoint)
            sock.send(messages[1])
            got = _answers(sock)
            assert got[0] == ('refused', session, 1) and ('ack', session, 1) in got
            time.sleep(1.5)
            sock.send(messages[2])
            assert ('ack', session, 2) in _answers(sock)
            sock.close()
        finally:
            stop.set()
            server.join(30)
            ctx.destroy(linger=0)            # closes the sockets an assertion left open
        st = rx.streams.all()[first['stream']]
        assert rx.decoded == 2 and st.decoded == 2 and st.repeats == 1 and st.lost == 0
        assert rx.rejects.total == 1
