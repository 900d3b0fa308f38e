"""TensorRT backend vs ONNX Runtime on the bundled decoder (needs tensorrt, pycuda and a CUDA GPU)."""
import os

import numpy as np
import pytest

trt = pytest.importorskip('tensorrt', reason='TensorRT is not installed here: this parity test runs on a Jetson '
                                             'or a CUDA machine with tensorrt and pycuda')
pytest.importorskip('pycuda.driver', reason='pycuda is not installed: the TensorRT backend needs it')

from nanolink.common import zoo                                       # noqa: E402
from nanolink.common.backends import open_backend                     # noqa: E402
from nanolink.export import build_engine                              # noqa: E402

FP16_TOL = 0.02     # decoder output in [0, 1]: fp16 engines stay within 2 % (about 5 grey levels)


@pytest.mark.tensorrt
@pytest.mark.parametrize('fp16', [False, True])
def test_decoder_engine_matches_onnxruntime(tmp_path, fp16):
    info = zoo.bundled_model('cae')
    shape = (1, 16, 32, 48)
    engine = str(tmp_path / 'dec.trt')
    assert build_engine.main(['--onnx', info.decoder, '--out', engine, '--shape', 'x'.join(map(str, shape))]
                             + (['--fp16'] if fp16 else [])) == 0
    s = np.random.RandomState(0).choice([-1.0, 0.0, 1.0], size=shape).astype(np.float32)
    backend = open_backend(engine, 'decoder')
    try:
        got = backend.run(s)
    finally:
        backend.close()
    want = open_backend(info.decoder, 'decoder').run(s)
    assert np.max(np.abs(got - want)) < (FP16_TOL if fp16 else 1e-3)
    assert os.path.getsize(engine) > 0
