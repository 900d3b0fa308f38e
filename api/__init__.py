"""nanolink: stream camera frames from a Jetson to a PC as learned compressed features, over ZeroMQ.

    import nanolink

    with nanolink.Sender('tcp://pc:5555', model='cae', quality=3, stream_id='dock-cam') as tx:   # the edge
        info = tx.send(frame_bgr)                 # SentFrame: seq, bytes, delivered, stages (ms)

    with nanolink.Receiver('tcp://*:5555') as rx:                                                # the PC
        for f in rx:                              # ReceivedFrame: f.image (H, W, 3) BGR uint8, f.stream, f.seq,
            ...                                   # f.t_cap, f.stages, f.timings, f.bpp
        f = rx.recv(timeout=1.0)                  # None when nothing came in time

    codec = nanolink.open_codec('cae', quality=3)  # no sockets: bytes = codec.encode(frame), codec.decode(bytes)

Errors are NanolinkError (UsageError for a bad argument), with one line saying what to do. The CLIs (edge-sender,
host-receiver, nanolink-demo, latency-bench) are loops around these same objects.
"""
from nanolink.common.errors import NanolinkError, UsageError
from nanolink.codec import Codec, open_codec
from nanolink.edge.pipeline import SentFrame, Sender
from nanolink.host.pipeline import ReceivedFrame, Receiver

__all__ = ['Sender', 'SentFrame', 'Receiver', 'ReceivedFrame', 'Codec', 'open_codec', 'NanolinkError', 'UsageError']
