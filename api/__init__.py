"""nanolink: stream camera frames from a Jetson to a PC as learned compressed features, over ZeroMQ.

    import nanolink

    with nanolink.Sender('tcp://pc:5555', model='cae', quality=3, stream_id='dock-cam') as tx:   # the edge
        info = tx.send(frame_bgr)                 # SentFrame: seq, bytes, delivered, stages (ms)

    with nanolink.Receiver('tcp://*:5555') as rx:                                                # the PC
        for f in rx:                              # ReceivedFrame: f.image (H, W, 3) BGR uint8, f.stream, f.seq,
            ...                                   # f.t_cap, f.stages, f.timings, f.bpp
        f = rx.recv(timeout=1.0)                  # None when nothing came in time

    codec = nanolink.open_codec('cae', quality=3)  # no sockets: bytes = codec.encode(frame), codec.decode(bytes)

Errors are NanolinkError (UsageError for a bad argument), with one line saying what to do; Codec.decode refuses
a malformed or foreign message with WireError (a ValueError: its ``reason`` says why), which a Receiver counts and
logs instead of raising. The CLIs (edge-sender,
host-receiver, nanolink-demo, latency-bench) are loops around these same objects.
"""
import importlib
import sys
import types

# The public names and the modules they live in. They are imported on first use, so that ``import nanolink`` (and
# every console script, nanolink.entry) costs nothing until a name is asked for: the edge-sender that is started
# and stopped with Ctrl-C at once ends quietly. (A module class with __getattr__: PEP 562's module __getattr__ needs
# Python 3.7, and the edge runs on 3.6.)
_EXPORTS = {
    'Sender': 'nanolink.edge.pipeline', 'SentFrame': 'nanolink.edge.pipeline',
    'Receiver': 'nanolink.host.pipeline', 'ReceivedFrame': 'nanolink.host.pipeline',
    'Codec': 'nanolink.codec', 'open_codec': 'nanolink.codec',
    'NanolinkError': 'nanolink.common.errors', 'UsageError': 'nanolink.common.errors',
    'WireError': 'nanolink.common.errors',
}
__all__ = ['Sender', 'SentFrame', 'Receiver', 'ReceivedFrame', 'Codec', 'open_codec', 'NanolinkError', 'UsageError',
           'WireError']


class _Package(types.ModuleType):
    def __getattr__(self, name):
        if name not in _EXPORTS:
            raise AttributeError("module 'nanolink' has no attribute '{}'".format(name))
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        setattr(self, name, value)
        return value

    def __dir__(self):
        return sorted(set(types.ModuleType.__dir__(self)) | set(_EXPORTS))


sys.modules[__name__].__class__ = _Package
