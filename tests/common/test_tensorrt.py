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
