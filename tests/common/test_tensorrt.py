"""TensorRT backend vs ONNX Runtime on the bundled float16-code encoder, the network the Nano runs (needs
tensorrt, pycuda and a CUDA GPU). The decoders return uint8, which TensorRT 8.2 cannot output; hosts decode
with ONNX Runtime or torch."""
import os

import numpy as np
import pytest

trt = pytest.importorskip('tensorrt', reason='TensorRT is not installed here: this parity test runs on a Jetson '
                                             'or a CUDA machine with tensorrt and pycuda')
pytest.importorskip('pycuda.driver', reason='pycuda is not installed: the TensorRT backend needs it')

from nanolink.common import zoo                                       # noqa: E402
from nanolink.common.backends import open_backend                     # noqa: E402
from nanolink.export import build_engine                              # noqa: E402

BIT_FLIPS = {False: 1e-3, True: 0.01}    # share of code bits that may differ from ONNX Runtime (near-zero activations)


@pytest.mark.tensorrt
@pytest.mark.parametrize('fp16', [False, True])
def test_encoder_engine_matches_onnxruntime(tmp_path, fp16):
    info = zoo.bundled_model('cae-bin')
    shape = (1, 3, 64, 96)
    engine = str(tmp_path / 'enc.trt')
    assert build_engine.main(['--model', 'cae-bin', '--channels', '8', '--out', engine, '--shape',
                              'x'.join(map(str, shape))] + (['--fp16'] if fp16 else [])) == 0
    x = np.random.RandomState(0).rand(*shape).astype(np.float32)
    backend = open_backend(engine, 'encoder', 8)
    try:
        got = backend.run(x).astype(np.uint8)           # float16 byte values (TensorRT 8.2 has no UINT8 I/O)
    finally:
        backend.close()
    want = open_backend(info.encoders[8], 'encoder', 8).run(x)
    assert got.shape == want.shape
    flips = np.unpackbits(got ^ want).mean()
    assert flips <= BIT_FLIPS[fp16], 'share of differing code bits {:.4f}'.format(flips)
    assert os.path.getsize(engine) > 0


@pytest.mark.tensorrt
@pytest.mark.parametrize('fp16', [False, True])
def test_cae_engine_symbols_match_onnxruntime(tmp_path, fp16, sample_frame):
    """The entropy-coded cae through TensorRT (float16 symbol indices, shared external weights): the same integers
    as ONNX Runtime but for rounding ties, which fp16 makes more of."""
    from nanolink.common.codec import prepare
    info = zoo.bundled_model('cae')
    engine = str(tmp_path / 'cae.trt')
    assert build_engine.main(['--model', 'cae', '--quality', '3', '--out', engine, '--shape', '1x3x512x768'] +
                             (['--fp16'] if fp16 else [])) == 0
    x = prepare(sample_frame, info.multiple)[0]
    backend = open_backend(engine, 'encoder', 3)
    try:
        got = backend.run(x).astype(np.uint8)
    finally:
        backend.close()
    want = open_backend(info.encoders[3], 'encoder', 3).run(x)
    assert got.shape == want.shape and (got != want).mean() <= (0.02 if fp16 else 1e-3)


@pytest.mark.tensorrt
def test_edge_sender_streams_an_engine_end_to_end_and_exits_cleanly(tmp_path, host_process):
    """edge-sender --engine cae.trt to a real host, then a clean exit (0; pycuda aborts the process when a made
    context is left on its stack, which close() prevents)."""
    import subprocess
    import sys
    engine = str(tmp_path / 'cae.trt')
    assert build_engine.main(['--model', 'cae', '--out', engine, '--shape', '1x3x96x128', '--fp16']) == 0
    h = host_process('--frames', 5, '--timeout', 120)
    r = subprocess.run([sys.executable, '-m', 'nanolink.edge.cli', '--camera', 'synthetic://128x96', '--engine', engine,
                        '--frames', '5', '--connect', h.endpoint, '--quiet'], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, universal_newlines=True, timeout=300)
    assert r.returncode == 0, r.stderr
    rc, err = h.wait(60)
    assert rc == 0 and '5 decoded' in err and 'model cae' in err
    r = subprocess.run([sys.executable, '-m', 'nanolink.edge.cli', '--camera', 'synthetic://640x480', '--engine', engine,
                        '--frames', '1', '--connect', 'tcp://127.0.0.1:9', '--quiet'], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, universal_newlines=True, timeout=300)
    assert r.returncode == 1 and 'the engine takes frames of' in r.stderr and 'Traceback' not in r.stderr
