"""The ZeroMQ link on real sockets: timeouts, reliable and latest-frame modes."""
import time

import zmq

from nanolink.common.transport import MULTIPART, Receiver, Sender


def drain(rx, timeout_s=0.5):
    got = []
    while True:
        m = rx.recv(timeout_s)
        if m is None:
            return got
        got.append(m)


def test_reliable_mode_delivers_every_message_in_order():
    ctx = zmq.Context()
    with Receiver('tcp://127.0.0.1:*', context=ctx) as rx, Sender(rx.endpoint, context=ctx) as tx:
        for i in range(20):
            assert tx.send(b'%d' % i)
        assert drain(rx) == [b'%d' % i for i in range(20)]
    ctx.term()


def test_latest_mode_keeps_only_the_newest_message():
    ctx = zmq.Context()
    with Receiver('tcp://127.0.0.1:*', context=ctx, latest=True) as rx, Sender(rx.endpoint, context=ctx) as tx:
        for i in range(20):
            assert tx.send(b'%d' % i)
        time.sleep(0.5)                       # all 20 reach the host while nobody reads
        assert drain(rx) == [b'19']
    ctx.term()


def test_receive_times_out_and_multipart_is_flagged():
    ctx = zmq.Context()
    with Receiver('tcp://127.0.0.1:*', context=ctx) as rx, Sender(rx.endpoint, context=ctx) as tx:
        t = time.time()
        assert rx.recv(0.2) is None and 0.15 < time.time() - t < 2
        tx.socket.send_multipart([b'a', b'b'])
        assert rx.recv(2) is MULTIPART
    ctx.term()


def test_send_without_a_host_drops_after_the_timeout_instead_of_hanging():
    ctx = zmq.Context()
    with Sender('tcp://127.0.0.1:9', hwm=2, send_timeout_ms=100, linger_ms=0, context=ctx) as tx:
        results = [tx.send(b'x' * 100) for _ in range(6)]
        assert results[:2] == [True, True] and not all(results) and tx.dropped >= 1
    ctx.term()
