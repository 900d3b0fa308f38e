"""The ZeroMQ link on real sockets (pyzmq's test style: random ports on 127.0.0.1, a timeout on every wait):
acknowledged delivery across a host restart, the buffer's limit, latest-frame mode, timeouts."""
import time

import msgpack
import pytest
import zmq

from nanolink.common import answers, wire
from nanolink.common.sender import Sender
from nanolink.common.transport import CREDIT, MULTIPART, Receiver

SESSION = 0x1234


def frame(seq, session=SESSION):
    return wire.pack(wire.Frame(stream='t', session=session, seq=seq, t_cap=1.7e9, model='raw', fp='0' * 16,
                                dtype='raw', shape=(3, 2, 2), size=(2, 2), payload=bytes(12), stages={}))


def take(rx, timeout_s=0.5, ack=True, tx=None):
    """Everything that arrives until timeout_s passes without a message; each frame acknowledged, as a host does."""
    got = []
    while True:
        m = None
        deadline = time.time() + timeout_s
        while m is None and time.time() < deadline:
            m = rx.recv(min(0.05, timeout_s))
        if m is None:
            return got
        ids = wire.peek_ids(m) if m is not MULTIPART else None
        got.append(ids[1] if ids else m)
        if ids and ack:
            rx.ack(*ids)


def rebind(endpoint, ctx, timeout_s=30):
    """A Receiver on the port a closed one just left (the kernel frees it a moment after the close)."""
    from nanolink.common.errors import NanolinkError
    deadline = time.time() + timeout_s
    while True:
        try:
            return Receiver(endpoint, context=ctx)
        except NanolinkError:
            if time.time() > deadline:
                raise
            time.sleep(0.1)


def test_acknowledged_mode_delivers_every_frame_in_order_and_empties_its_buffer():
    ctx = zmq.Context()
    with Receiver('tcp://127.0.0.1:*', context=ctx) as rx, Sender(rx.endpoint, context=ctx, session=SESSION) as tx:
        got = []
        for i in range(100):
            assert tx.send(frame(i), i)
            got += take(rx, 0.01, tx=tx)       # a host answering as frames come (send reads the answers)
        while len(got) < 100 and tx.pending:
            tx.wait_acknowledged(100)
            got += take(rx, 0.2, tx=tx)
        assert got == list(range(100))
        assert tx.wait_acknowledged(10000) and tx.acked == 100 and tx.pending == 0 and tx.resent == 0
    assert tx.undelivered == 0
    ctx.term()


def test_frames_unacknowledged_when_the_host_dies_are_sent_again_to_the_next_one():
    ctx = zmq.Context()
    rx = Receiver('tcp://127.0.0.1:*', context=ctx)
    endpoint = rx.endpoint
    with Sender(endpoint, context=ctx, session=SESSION) as tx:
        for i in range(10):
            assert tx.send(frame(i), i)
        first = take(rx, ack=False, tx=tx)     # taken, never acknowledged: the host "crashes" here
        assert first == list(range(10))
        rx.close()
        for i in range(10, 15):
            assert tx.send(frame(i), i)        # buffered while no host runs
        rx = rebind(endpoint, ctx)             # the host is back on the same port
        deadline = time.time() + 30
        got = []
        while time.time() < deadline and len(set(got)) < 15:
            got += take(rx, 1.0, tx=tx)
        assert sorted(set(got)) == list(range(15)), got     # nothing lost; repeats are the host's to drop
        assert tx.wait_acknowledged(10000) and tx.resent >= 10 and tx.handshakes >= 2
    rx.close()
    ctx.term()


def test_a_full_buffer_drops_after_the_timeout_and_names_the_frames():
    ctx = zmq.Context()
    with Sender('tcp://127.0.0.1:9', context=ctx, session=SESSION, buffer_frames=3, send_timeout_ms=100,
                linger_ms=0) as tx:
        t = time.time()
        results = [tx.send(frame(i), i) for i in range(6)]
        assert results == [True] * 3 + [False] * 3 and tx.dropped_seqs == [3, 4, 5]
        assert time.time() - t < 30                                  # each drop waited its 100 ms, not forever
    assert tx.undelivered == 3 and tx.handshakes == 0
    ctx.term()


def test_credit_limits_the_frames_in_flight():
    ctx = zmq.Context()
    with Receiver('tcp://127.0.0.1:*', context=ctx) as rx, Sender(rx.endpoint, context=ctx, session=SESSION,
                                                                    linger_ms=0) as tx:
        for i in range(3 * CREDIT):
            assert tx.send(frame(i), i)
        got = take(rx, ack=False, tx=tx)
        assert got == list(range(CREDIT))                          # the rest waits for acknowledgements
        for i in range(CREDIT):
            rx.ack(SESSION, i)
        tx.wait_acknowledged(200)
        assert take(rx, ack=False, tx=tx) == list(range(CREDIT, 2 * CREDIT))
    ctx.term()


def test_an_acknowledgement_is_for_its_frame_only_and_a_frame_passed_over_goes_again():
    # after a reconnection the host can take a newer frame before an older one sent again: acknowledging 2 must
    # not take 0 and 1 out of the buffer (they would be lost if that connection died too); a frame still
    # unacknowledged RESEND_AFTER_S after a newer one was goes again
    ctx = zmq.Context()
    with Receiver('tcp://127.0.0.1:*', context=ctx) as rx, Sender(rx.endpoint, context=ctx, session=SESSION,
                                                                    linger_ms=0) as tx:
        for i in range(3):
            assert tx.send(frame(i), i)
        assert take(rx, ack=False, tx=tx) == [0, 1, 2]
        tx.RESEND_AFTER_S = 0.5          # only now: set before, the unacknowledged window went again inside take()
        rx.ack(SESSION, 2)
        deadline = time.time() + 30
        while tx.acked < 1 and time.time() < deadline:
            tx.wait_acknowledged(50)
        assert tx.acked == 1 and tx.pending == 2
        got = []
        while len(got) < 2 and time.time() < deadline:
            got += take(rx, 0.5, tx=tx)                            # the two passed over, sent again, in order
        assert got == [0, 1] and tx.resent == 2
        assert tx.wait_acknowledged(10000) and tx.pending == 0 and tx.acked == 3
    ctx.term()


def test_acknowledgements_of_another_session_are_ignored():
    ctx = zmq.Context()
    with Receiver('tcp://127.0.0.1:*', context=ctx) as rx, Sender(rx.endpoint, context=ctx, session=SESSION,
                                                                    linger_ms=0) as tx:
        assert tx.send(frame(0), 0)
        assert take(rx, ack=False, tx=tx) == [0]
        rx.ack(SESSION + 1, 0)
        rx.socket.send_multipart([rx.peer, b'not an acknowledgement'])
        deadline = time.time() + 30
        while tx.bad_acks < 2 and time.time() < deadline:
            tx.wait_acknowledged(50)
        assert tx.pending == 1 and tx.bad_acks == 2
    ctx.term()


def test_a_refused_frame_is_counted_once_with_its_reason_and_leaves_the_buffer():
    ctx = zmq.Context()
    seen = []
    with Receiver('tcp://127.0.0.1:*', context=ctx) as rx, Sender(rx.endpoint, context=ctx, session=SESSION,
                                                                    linger_ms=0) as tx:
        tx.on_refused = lambda seq, reason: seen.append((seq, reason))
        for i in range(3):
            assert tx.send(frame(i), i)
        got = []
        deadline = time.time() + 30
        while len(got) < 3 and time.time() < deadline:
            got += take(rx, 0.2, ack=False, tx=tx)
        assert got == [0, 1, 2]
        rx.ack(SESSION, 1, refused="unknown model 'raw'; this receiver decodes ['cae']")
        rx.socket.send_multipart([rx.peer, answers.pack_refusal(SESSION, 1, 'the same frame again')])
        rx.ack(SESSION, 0)
        rx.ack(SESSION + 1, 2, refused='another session')              # not this sender's: a bad answer
        deadline = time.time() + 30
        while (tx.acked < 2 or tx.bad_acks < 3) and time.time() < deadline:
            tx.wait_acknowledged(50)
        assert tx.acked == 2 and tx.pending == 1 and tx.bad_acks == 3     # the other session's refusals and ack
        assert tx.refused == 1 and tx.refused_seqs == [1] and seen == [(1, "unknown model 'raw'; this receiver "
                                                                           "decodes ['cae']")]
        assert dict(tx.refusals) == {"unknown model 'raw'; this receiver decodes ['cae']": 1}
    ctx.term()


def test_answers_round_trip_and_anything_else_is_a_wire_error():
    assert answers.unpack_answer(answers.pack_ack(7, 9, CREDIT)) == ('ack', 7, 9, CREDIT)
    assert answers.unpack_answer(answers.pack_refusal(7, 9, 'why')) == ('refused', 7, 9, 'why')
    long = answers.unpack_answer(answers.pack_refusal(1, 2, 'é' * 150))[3]     # cut at 200 bytes, whole characters
    assert long == 'é' * 100
    bad = [b'', b'\x80', msgpack.packb({'v': 2, 'ack': 1, 'seq': 2}), msgpack.packb([1, 2, 3]),
           msgpack.packb({'v': 2, 'ack': 1, 'seq': 2, 'credit': 4097}),
           msgpack.packb({'v': 2.0, 'ack': 1, 'seq': 2, 'credit': 3}),
           msgpack.packb({'v': 2, 'refused': 1, 'seq': 2, 'reason': ''}),
           msgpack.packb({'v': 2, 'refused': 1, 'seq': 2, 'reason': b'bytes'}, use_bin_type=True),
           msgpack.packb({'v': 2, 'refused': -1, 'seq': 2, 'reason': 'x'}),
           msgpack.packb({'v': 2, 'refused': 1, 'seq': 2, 'reason': 'x' * 201}),
           msgpack.packb({'v': 3, 'refused': 1, 'seq': 2, 'reason': 'x'}),
           msgpack.packb({'v': 2, 'ack': 1, 'refused': 1, 'seq': 2})]
    for data in bad:
        with pytest.raises(wire.WireError):
            answers.unpack_answer(data)


def test_latest_mode_keeps_only_the_newest_message():
    ctx = zmq.Context()
    with Receiver('tcp://127.0.0.1:*', context=ctx, latest=True) as rx, Sender(rx.endpoint, context=ctx,
                                                                                 latest=True) as tx:
        assert tx.wait_connected(30)
        for i in range(20):
            assert tx.send(frame(i), i)
        time.sleep(0.5)                       # all reach the host's queue while nobody reads
        got = take(rx)
        assert got[-1] == 19 and len(got) < 20                      # older ones were passed over
    ctx.term()


def test_receive_times_out_and_multipart_and_junk_are_passed_on():
    ctx = zmq.Context()
    with Receiver('tcp://127.0.0.1:*', context=ctx) as rx, Sender(rx.endpoint, context=ctx) as tx:
        t = time.time()
        assert rx.recv(0.2) is None and 0.15 < time.time() - t < 30            # it waited its timeout, and did not hang
        assert tx.send(b'not a frame')                 # sent once connected, never waited for
        assert take(rx, 5, tx=tx)[:1] == [b'not a frame']
        raw = ctx.socket(zmq.DEALER)                   # not tx.socket: its I/O thread owns that one
        raw.connect(rx.endpoint)
        raw.send_multipart([b'a', b'b'])
        assert rx.recv(10) is MULTIPART
        raw.close(0)
    assert tx.undelivered == 0
    ctx.term()


def _slow_host(rx, n, delay_s, done):
    """A host that takes ``delay_s`` per frame (a slow decoder) and acknowledges each: a thread of the test."""
    got = 0
    deadline = time.time() + 120
    while got < n and time.time() < deadline:
        m = rx.recv(0.05)
        ids = wire.peek_ids(m) if m is not None and m is not MULTIPART else None
        if ids:
            time.sleep(delay_s)
            rx.ack(*ids)
            got += 1
    done.append(got)


def test_close_waits_for_a_slow_host_that_keeps_acknowledging():
    """20 frames queued at once for a host that acknowledges one every 50 ms (1 s in all): a close whose linger is
    300 ms still delivers all of them, since acknowledgements keep coming in (the linger is time without one)."""
    import threading
    ctx = zmq.Context()
    done = []
    with Receiver('tcp://127.0.0.1:*', context=ctx) as rx:
        host = threading.Thread(target=_slow_host, args=(rx, 20, 0.05, done), daemon=True)
        tx = Sender(rx.endpoint, context=ctx, session=SESSION, linger_ms=300)
        for i in range(20):
            assert tx.send(frame(i), i)
        host.start()
        tx.close()
        host.join(60)
    ctx.term()
    assert tx.undelivered == 0 and tx.acked == 20 and done == [20]


def test_stop_still_waits_for_a_slow_host_but_not_for_an_absent_one():
    """Ctrl-C (stop) with a full buffer: against a host that acknowledges slowly the frame waits and goes in;
    with no host at all it is dropped after STOP_LINGER_MS, and the next one at once."""
    import threading
    ctx = zmq.Context()
    stop = threading.Event()
    done = []
    with Receiver('tcp://127.0.0.1:*', context=ctx) as rx:
        tx = Sender(rx.endpoint, context=ctx, session=SESSION, buffer_frames=4, send_timeout_ms=-1, stop=stop,
                    linger_ms=-1)
        for i in range(4):
            assert tx.send(frame(i), i)
        stop.set()
        host = threading.Thread(target=_slow_host, args=(rx, 6, 0.05, done), daemon=True)
        host.start()
        assert tx.send(frame(4), 4) and tx.send(frame(5), 5)     # room comes as the host acknowledges
        tx.close()
        host.join(60)
    assert tx.undelivered == 0 and tx.dropped == 0 and done == [6]
    tx = Sender('tcp://127.0.0.1:9', context=ctx, session=SESSION, buffer_frames=2, send_timeout_ms=-1, stop=stop,
                linger_ms=-1)
    assert tx.send(frame(0), 0) and tx.send(frame(1), 1)
    assert not tx.send(frame(2), 2) and not tx.send(frame(3), 3)            # nobody there: dropped, not hung
    tx.STOP_LINGER_MS = 3600 * 1000       # close must not give the absent host that time again (Ctrl-C took 4 s)
    closing = threading.Thread(target=tx.close, daemon=True)
    closing.start()
    closing.join(60)
    assert not closing.is_alive(), 'close waited again for a host that a send had already waited for after the stop'
    ctx.term()
    assert tx.dropped == 2 and tx.dropped_seqs == [2, 3] and tx.undelivered == 2
