"""The console scripts' entry points (setup.cfg): each runs one CLI's ``main()``.

Ctrl-C while a tool is still starting (importing numpy, OpenCV, ONNX Runtime: about 0.3 s here, more on a Nano)
used to print a KeyboardInterrupt traceback. Here the import runs under SIGINT's default action, so Ctrl-C then
just ends the process (status 130 in a shell) with nothing printed; once the CLI is imported, Python's usual
KeyboardInterrupt is back (the streaming CLIs replace it with their clean stop), and one that reaches this level
ends the tool with one line and status 130. ``import nanolink`` is lazy (nanolink/__init__.py), so importing this
module costs nothing.
"""
import importlib
import signal
import sys


def _launch(module, prog):
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    main = importlib.import_module(module).main
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        return main()
    except KeyboardInterrupt:
        print('{}: interrupted'.format(prog), file=sys.stderr)
        return 130


def edge_sender():
    return _launch('nanolink.edge.cli', 'edge-sender')


def host_receiver():
    return _launch('nanolink.host.cli', 'host-receiver')


def demo():
    return _launch('nanolink.host.demo', 'nanolink-demo')


def latency_bench():
    return _launch('nanolink.host.bench', 'latency-bench')


def compare():
    return _launch('nanolink.host.compare', 'nanolink-compare')


def report():
    return _launch('nanolink.host.report', 'nanolink-report')


def keys():
    return _launch('nanolink.common.keys', 'nanolink-keys')


def train():
    return _launch('nanolink.export.train', 'nanolink-train')


def export():
    return _launch('nanolink.export.onnx_export', 'nanolink-export')


def codec_eval():
    return _launch('nanolink.export.evaluate', 'codec-eval')


def build_engine():
    return _launch('nanolink.export.build_engine', 'nanolink-build-engine')
