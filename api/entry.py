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


def _entry(module, prog):
    """The console script ``prog``: a function of no arguments, as setup.cfg's entry points call it."""
    def run():
        return _launch(module, prog)
    run.__name__ = run.__qualname__ = prog.replace('-', '_')
    run.__doc__ = 'Run {} ({}.main) as its console script does.'.format(prog, module)
    return run


edge_sender = _entry('nanolink.edge.cli', 'edge-sender')
host_receiver = _entry('nanolink.host.cli', 'host-receiver')
demo = _entry('nanolink.host.demo', 'nanolink-demo')
latency_bench = _entry('nanolink.host.bench', 'latency-bench')
compare = _entry('nanolink.host.compare', 'nanolink-compare')
report = _entry('nanolink.host.report', 'nanolink-report')
keys = _entry('nanolink.common.keys', 'nanolink-keys')
train = _entry('nanolink.export.train', 'nanolink-train')
export = _entry('nanolink.export.onnx_export', 'nanolink-export')
fit_context = _entry('nanolink.export.context_model', 'nanolink-fit-context')
codec_eval = _entry('nanolink.export.evaluate', 'codec-eval')
build_engine = _entry('nanolink.export.build_engine', 'nanolink-build-engine')
