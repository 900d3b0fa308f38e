"""TensorRT backend vs ONNX Runtime on the bundled decoder (needs tensorrt, pycuda and a CUDA GPU)."""
import json
import os

import numpy as np
import pytest

trt = pytest.importorskip('tensorrt', reason='TensorRT is not installed here: this parity test runs on a Jetson '
                                             'or a CUDA machine with tensorrt and pycuda')
pytest.importorskip('pycuda.driver', reason='pycuda is not installed: the TensorRT backend needs it')

from nanolink.common import zoo                                       # noqa: E402
from nanolink.common.backends import open_backend                     # noqa: E402

FP16_TOL = 0.02     # decoder output in [0, 1]: fp16 engines stay within 2 % (about 5 grey levels)


def build_engine(onnx_path, engine_path, shape, fp16):
    """Minimal engine build with the documented API (8.2: build_engine; >= 8.5: build_serialized_network)."""
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH))
    parser = trt.OnnxParser(network, logger)
    with open(onnx_path, 'rb') as f:
        assert parser.parse(f.read()), parser.get_error(0)
    config = builder.create_builder_config()
    profile = builder.create_optimization_profile()
    profile.set_shape(network.get_input(0).name, shape, shape, shape)
    config.add_optimization_profile(profile)
    if fp16:
        config.set_flag(trt.BuilderFlag.FP16)
    if hasattr(builder, 'build_serialized_network'):
        data = builder.build_serialized_network(network, config)
    else:
        data = builder.build_engine(network, config).serialize()
    with open(engine_path, 'wb') as f:
        f.write(data)
    with open(engine_path + '.json', 'w') as f:
        f.write(json.dumps(dict(zoo.bundled_model('cae').manifest, code_channels=16)))


@pytest.mark.tensorrt
@pytest.mark.parametrize('fp16', [False, True])
def test_decoder_engine_matches_onnxruntime(tmp_path, fp16):
    info = zoo.bundled_model('cae')
    shape = (1, 16, 32, 48)
    engine = str(tmp_path / 'dec.trt')
    build_engine(info.decoder, engine, shape, fp16)
    s = np.random.RandomState(0).choice([-1.0, 0.0, 1.0], size=shape).astype(np.float32)
    backend = open_backend(engine, 'decoder')
    try:
        got = backend.run(s)
    finally:
        backend.close()
    want = open_backend(info.decoder, 'decoder').run(s)
    assert np.max(np.abs(got - want)) < (FP16_TOL if fp16 else 1e-3)
    assert os.path.getsize(engine) > 0
