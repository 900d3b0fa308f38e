"""nanolink-build-engine: build a TensorRT engine from an exported ONNX encoder or decoder, on the target.

    nanolink-build-engine --onnx cae-enc-k8.onnx --out cae.trt --fp16 --shape 1x3x720x1280 [--workspace 1024]

Engines only run on the TensorRT version and GPU that built them, so this runs on the Jetson itself
(JetPack's python3 has the tensorrt module; no torch needed). It prints the equivalent trtexec line and
writes ``<out>.json`` with the model identity from the ONNX metadata, which the runtime needs. TensorRT 8.2
(JetPack 4.6) uses ``build_engine`` and ``max_workspace_size``; 8.5+ and 10.x ``build_serialized_network``
and a memory-pool limit. One optimisation profile is built for the one frame shape given (NCHW).
"""
import argparse
import sys

from nanolink.common.errors import NanolinkError
from nanolink.common.zoo import METADATA_KEY


def parse_shape(text):
    try:
        shape = tuple(int(v) for v in text.lower().split('x'))
    except ValueError:
        shape = ()
    if len(shape) != 4 or min(shape) < 1:
        raise NanolinkError('--shape must be NxCxHxW, e.g. 1x3x720x1280, got "{}"'.format(text))
    return shape


def onnx_metadata(path):
    import onnx
    m = onnx.load(path, load_external_data=False)
    return {p.key: p.value for p in m.metadata_props}


def trtexec_line(onnx_path, out, input_name, shape, fp16, workspace_mb):
    dims = 'x'.join(str(d) for d in shape)
    line = 'trtexec --onnx={} --saveEngine={} --shapes={}:{}'.format(onnx_path, out, input_name, dims)
    if fp16:
        line += ' --fp16'
    return line + ' --memPoolSize=workspace:{}M'.format(workspace_mb)


def build(onnx_path, out, shape, fp16=True, workspace_mb=1024):
    try:
        import tensorrt as trt
    except ImportError:
        raise NanolinkError('TensorRT is not installed here (no "tensorrt" module): build engines on the Jetson with '
                            'JetPack\'s python3, or with trtexec (/usr/src/tensorrt/bin/trtexec)')
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH))
    parser = trt.OnnxParser(network, logger)
    with open(onnx_path, 'rb') as f:
        if not parser.parse(f.read()):
            raise NanolinkError('TensorRT cannot parse {}: {}'.format(onnx_path, parser.get_error(0)))
    config = builder.create_builder_config()
    if hasattr(config, 'set_memory_pool_limit'):
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_mb << 20)
    else:
        config.max_workspace_size = workspace_mb << 20
    if fp16:
        if not builder.platform_has_fast_fp16:
            raise NanolinkError('--fp16: this GPU has no fast fp16; drop --fp16')
        config.set_flag(trt.BuilderFlag.FP16)
    name = network.get_input(0).name
    profile = builder.create_optimization_profile()
    profile.set_shape(name, shape, shape, shape)
    config.add_optimization_profile(profile)
    if hasattr(builder, 'build_serialized_network'):
        data = builder.build_serialized_network(network, config)
    else:
        engine = builder.build_engine(network, config)
        data = engine.serialize() if engine is not None else None
    if data is None:
        raise NanolinkError('TensorRT could not build the engine (out of memory? on a 4 GB Nano add swap and lower '
                            '--workspace)')
    with open(out, 'wb') as f:
        f.write(data)
    return name


def main(argv=None):
    p = argparse.ArgumentParser(prog='nanolink-build-engine', description=__doc__.split('\n')[0])
    p.add_argument('--onnx', required=True, help='exported encoder or decoder (nanolink-export)')
    p.add_argument('--out', required=True, help='engine file to write, e.g. cae.trt')
    p.add_argument('--shape', required=True, help='input shape NxCxHxW, e.g. 1x3x720x1280 (frame size padded to 8)')
    p.add_argument('--fp16', action='store_true', help='allow fp16 kernels (use on the Nano; no fast INT8 there)')
    p.add_argument('--workspace', type=int, default=1024, metavar='MB', help='builder workspace (default: %(default)s)')
    args = p.parse_args(argv)
    try:
        shape = parse_shape(args.shape)
        meta = onnx_metadata(args.onnx)
        if METADATA_KEY not in meta:
            raise NanolinkError('{} carries no nanolink metadata: export it with nanolink-export'.format(args.onnx))
        print('equivalent: ' + trtexec_line(args.onnx, args.out, 'image' if shape[1] == 3 else 'symbols', shape,
                                            args.fp16, args.workspace), flush=True)
        build(args.onnx, args.out, shape, args.fp16, args.workspace)
        with open(args.out + '.json', 'w') as f:
            f.write(meta[METADATA_KEY])
    except NanolinkError as e:
        print('nanolink-build-engine: error: {}'.format(e), file=sys.stderr)
        return 1
    print('wrote {} and {}.json'.format(args.out, args.out))
    return 0


if __name__ == '__main__':
    sys.exit(main())
