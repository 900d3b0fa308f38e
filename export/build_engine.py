"""nanolink-build-engine: build a TensorRT engine from an exported ONNX encoder, on the target.

    nanolink-build-engine --onnx cae-enc-q3-float16.onnx --out cae.trt --fp16 --shape 1x3x720x1280 [--workspace 1024]
    nanolink-build-engine --model cae --quality 3 --out cae.trt --fp16 --shape 1x3x720x1280
    nanolink-build-engine --model cae-bin --channels 8 --out cae.trt --fp16 --shape 1x3x720x1280
    nanolink-build-engine --via torch2trt --model cae --quality 3 --out cae.trt --fp16 --shape 1x3x720x1280

Engines only run on the TensorRT version and GPU that built them, so this runs on the Jetson itself
(JetPack's python3 has the tensorrt module; the ONNX path needs no torch). It prints the equivalent trtexec
line and writes ``<out>.json`` with the model identity, which the runtime needs. Every TensorRT from 8.2
(JetPack 4.6) builds with ``build_serialized_network`` (``build_engine``, its older twin, is gone in 10); the
workspace is ``max_workspace_size`` up to 8.3 and a memory-pool limit from 8.4; networks are explicit-batch
(the EXPLICIT_BATCH flag before 10, the only kind from 10 on, when the flag itself goes); fp16 is the FP16 builder
flag where TensorRT has one. One optimisation profile is built for the one frame shape given (NCHW).

``--via torch2trt`` converts the torch encoder (bundled ``--model`` or a ``--checkpoint``) with NVIDIA's
torch2trt instead of parsing ONNX, for users whose Jetson images carry torch and torch2trt (l4t-pytorch);
the engine and its ``.json`` are the same kind of file either way.

``--model NAME`` without ``--onnx`` builds from the bundled ONNX encoder whose ``code`` output is float16
(byte values 0..255, exact in fp16): TensorRT 8.2 has no UINT8 network outputs, and one file then serves
every TensorRT version. The edge casts the code back to bytes; the device-to-host copy of a 1008² frame
is 127 KB for cae-bin at k = 8 and 1.27 MB for cae (160 x 63 x 63 symbol indices in float16).

The engine's ``<out>.json`` names the model, so ``edge-sender --engine cae.trt`` runs an engine of either ``cae``
(its rate point and rANS tables are in the .json) or ``cae-bin``.

Decoders are not built: they return display-ready uint8 BGR bytes, which TensorRT 8.2 cannot output; hosts
decode with ONNX Runtime (its CUDA provider with ``--device cuda``) or torch.
"""
import argparse
import json
import os
import sys

from nanolink.common import cli as cliutil
from nanolink.common.errors import NanolinkError, UsageError
from nanolink.common.zoo import METADATA_KEY, bundled_model, encoder_tables


def parse_shape(text):
    try:
        shape = tuple(int(v) for v in text.lower().split('x'))
    except ValueError:
        shape = ()
    if len(shape) != 4 or min(shape) < 1:
        raise UsageError('--shape must be NxCxHxW, e.g. 1x3x720x1280, got "{}"'.format(text))
    return shape


def check_frame_shape(shape, multiple):
    """An encoder engine's input is the padded frame: H and W a multiple of the model's ``multiple``."""
    if multiple and shape[1] == 3 and (shape[2] % multiple or shape[3] % multiple):
        up = lambda v: -(-v // multiple) * multiple
        raise UsageError('--shape {}: the edge pads frames to a multiple of {} for this model, so build for {}x3x{}x{}'
                         .format('x'.join(str(v) for v in shape), multiple, shape[0], up(shape[2]), up(shape[3])))


def onnx_metadata(path):
    """The nanolink identity JSON (a str) of an exported ONNX file.

    Read with the onnx package when it is installed, else with onnxruntime, else from the manifest.json that
    nanolink-export writes beside the ONNX files (JetPack images often have neither package).
    """
    if not os.path.isfile(path):
        raise NanolinkError('no such ONNX file: {}'.format(path))
    try:
        import onnx
        from google.protobuf.message import DecodeError       # onnx parses with protobuf
    except ImportError:
        onnx = None
    if onnx is not None:
        try:
            meta = {p.key: p.value for p in onnx.load(path, load_external_data=False).metadata_props}
        except DecodeError as e:
            raise _not_onnx(path, e)
    else:
        try:
            import onnxruntime
        except ImportError:
            return _metadata_from_manifest(path)
        from nanolink.common.backends import ort_errors
        try:
            sess = onnxruntime.InferenceSession(path, providers=['CPUExecutionProvider'])
        except ort_errors() as e:
            raise _not_onnx(path, e)
        meta = dict(sess.get_modelmeta().custom_metadata_map)
    if METADATA_KEY not in meta:
        raise NanolinkError('{} carries no nanolink metadata: export it with nanolink-export'.format(path))
    return meta[METADATA_KEY]


def _not_onnx(path, error):
    """The one line for a --onnx file that onnx / onnxruntime cannot parse (junk, truncated, another format)."""
    return NanolinkError('{} is not an ONNX model ({}): give --onnx an encoder that nanolink-export wrote '
                         '(cae-enc-q3-float16.onnx, ...), or --model NAME for a bundled one'.format(
                             path, (str(error).splitlines() or [type(error).__name__])[0][:200]))


def sidecar_metadata(path):
    """What nanolink-build-engine writes to <engine>.json for the exported encoder ``path``: its identity, with an
    entropy-coded encoder's rANS tables whole (an exported ONNX encoder names them by digest, in the manifest.json
    beside it), so the engine and its sidecar need nothing else on the device."""
    try:
        ident = json.loads(onnx_metadata(path))
    except (ValueError, RecursionError) as e:
        ident = e
    if not isinstance(ident, dict):
        raise NanolinkError('{}: its nanolink metadata is not a JSON object ({}): export it again with '
                            'nanolink-export'.format(path, str(ident)[:120] if isinstance(ident, Exception) else
                                                     type(ident).__name__))
    if ident.get('dtype') == 'rans' and 'tables' not in ident:
        ident['tables'] = encoder_tables(ident, path)
        del ident['tables_digest']
    return json.dumps(ident, sort_keys=True)


def _manifest_beside(path):
    """The manifest.json that nanolink-export wrote beside an exported file, as a dict, or None."""
    manifest = os.path.join(os.path.dirname(os.path.abspath(path)), 'manifest.json')
    if not os.path.isfile(manifest):
        return None
    with open(manifest) as f:
        try:
            return json.load(f)
        except ValueError as e:                 # JSONDecodeError, UnicodeDecodeError
            raise NanolinkError('{} is not a manifest nanolink-export wrote (not JSON: {}): export the model again, '
                                'or move the file away'.format(manifest, e))


def refuse_decoder(path):
    """A clear error for an exported decoder (listed as such in the manifest.json beside it)."""
    m = _manifest_beside(path)
    m = m or {}
    decoders = [m.get('files', {}).get('decoder')]
    decoders += [v['files']['decoder'] for v in m.get('decoder_variants', {}).values()]
    if os.path.basename(path) in decoders:
        raise NanolinkError('{} is a decoder: decoders return uint8 BGR bytes, which TensorRT 8.2 cannot output, and '
                            'run on the host with ONNX Runtime (host-receiver --device cuda) or torch; build engines '
                            'from an encoder (--model NAME or its -enc ONNX file)'.format(path))


def _metadata_from_manifest(path):
    m = _manifest_beside(path)
    if m is None:
        raise NanolinkError('cannot read the model identity of {}: install onnx or onnxruntime, or keep the '
                            'manifest.json that nanolink-export wrote beside it'.format(path))
    base = os.path.basename(path)
    files = m.get('files', {})
    code_channels = None
    for key in ('encoders', 'encoders_float16'):
        for k, fn in files.get(key, {}).items():
            if fn == base:
                code_channels = int(k)                # cae-bin: channels; cae: quality
    if files.get('decoder') == base or base in (files.get('encoder'), files.get('encoder_float16')):
        code_channels = m['channels']
    if code_channels is None:
        raise NanolinkError('{} is not listed in the manifest.json beside it: export it with nanolink-export'.format(
            path))
    ident = {k: m[k] for k in ('name', 'fingerprint', 'stride', 'multiple', 'channels', 'rate_points',
                               'default_channels', 'dtype')}
    if m['dtype'] == 'bits':                      # binary-code networks carry their channel count
        ident['code_channels'] = code_channels
    if m['dtype'] == 'rans' and code_channels != m['channels']:   # entropy-coded encoders: rate point and tables
        t = m['entropy']['rates'][str(code_channels)]
        ident.update(quality=code_channels, tables={'lo': t['lo'], 'freqs': t['freqs']})
        if 'context' in t:                        # context tables (nanolink-fit-context) go with them
            ident['tables']['context'] = t['context']
    return json.dumps(ident, sort_keys=True)


def bundled_encoder(name, channels=None, quality=None):
    """Path of the bundled float16-code ONNX encoder of model name at k = channels (cae-bin) or quality (cae)."""
    info = bundled_model(name)
    if info.dtype == 'rans':
        if channels:
            raise UsageError('--channels is for cae-bin; {} takes --quality 1..{}'.format(name, max(info.rate_points)))
        channels = cliutil.check_range('--quality', quality or info.default_channels, 1, max(info.rate_points))
    elif quality is not None:
        raise UsageError('--quality is for entropy-coded models (cae), not {}'.format(name))
    if info.dtype == 'jpeg':                      # one encoder; its rate is the JPEG quality on the edge
        fn = info.manifest.get('files', {}).get('encoder_float16')
        if not fn:
            raise NanolinkError('the bundled {} model has no float16-code encoder'.format(name))
        return os.path.join(os.path.dirname(info.decoder), fn)
    k = channels or info.default_channels
    files = info.manifest.get('files', {}).get('encoders_float16', {})
    if str(k) not in files:
        raise UsageError('--channels {}: the bundled {} encoders have k in {}'.format(
            k, name, ', '.join(sorted(files, key=int)) or 'none'))   # (cae's quality was range-checked above)
    return os.path.join(os.path.dirname(info.decoder), files[str(k)])


def trtexec_line(onnx_path, out, input_name, shape, fp16, workspace_mb):
    dims = 'x'.join(str(d) for d in shape)
    line = 'trtexec --onnx={} --saveEngine={} --shapes={}:{}'.format(onnx_path, out, input_name, dims)
    if fp16:
        line += ' --fp16'
    # trtexec's workspace flag changed: --workspace=MB up to TensorRT 8.3 (JetPack 4.6 has 8.2), --memPoolSize from 8.4
    return line + ' --memPoolSize=workspace:{0}M   (TensorRT 8.2 / JetPack 4.6: --workspace={0})'.format(workspace_mb)


def _import_tensorrt():
    try:
        import tensorrt as trt
    except ImportError:
        raise NanolinkError('TensorRT is not installed here (no "tensorrt" module): build engines on the Jetson with '
                            'JetPack\'s python3, or with trtexec (/usr/src/tensorrt/bin/trtexec)')
    return trt


def build(onnx_path, out, shape, fp16=True, workspace_mb=1024):
    trt = _import_tensorrt()
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    major = int(trt.__version__.split('.')[0])
    network = builder.create_network(0 if major >= 10 else 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH))
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(onnx_path):   # from the file: it finds shared weights (external data) beside it
        raise NanolinkError('TensorRT cannot parse {}: {}'.format(onnx_path, parser.get_error(0)))
    config = builder.create_builder_config()
    if hasattr(config, 'set_memory_pool_limit'):
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_mb << 20)
    else:
        config.max_workspace_size = workspace_mb << 20
    if fp16:
        if not hasattr(trt.BuilderFlag, 'FP16'):
            raise NanolinkError('--fp16: TensorRT {} has no FP16 builder flag (its networks are strongly typed, in '
                                'the types of the ONNX file): drop --fp16'.format(trt.__version__))
        if not getattr(builder, 'platform_has_fast_fp16', True):
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


def build_torch2trt(checkpoint, channels, out, shape, fp16=True, workspace_mb=1024, code_dtype='float16'):
    """Convert the torch encoder with torch2trt (at rate point ``channels``: k for cae-bin, the quality for cae);
    returns the identity JSON for ``<out>.json``."""
    try:
        import torch
        from torch2trt import torch2trt
    except ImportError:
        raise NanolinkError('--via torch2trt needs torch and torch2trt (the l4t-pytorch image has torch; torch2trt: '
                            'git clone https://github.com/NVIDIA-AI-IOT/torch2trt && cd torch2trt && python3 setup.py '
                            'install), or use the default --via onnx')
    if not torch.cuda.is_available():
        raise NanolinkError('--via torch2trt needs a CUDA GPU (torch.cuda.is_available() is False)')
    _import_tensorrt()
    from nanolink.export.model_io import load_checkpoint
    from nanolink.export.onnx_export import CODE_DTYPES, encoder_identity
    model, _ = load_checkpoint(checkpoint)
    k = channels or model.config.default_channels
    if k not in model.config.rate_points:
        raise UsageError('--{} {} is not a rate point of {}: one of {}'.format(
            'quality' if model.wire_dtype == 'rans' else 'channels', k, model.model_name,
            list(model.config.rate_points)))
    module = model.encoder_module(k, CODE_DTYPES[code_dtype]).eval().cuda()
    x = torch.rand(*shape, device='cuda')
    trt_module = torch2trt(module, [x], fp16_mode=fp16, max_workspace_size=workspace_mb << 20,
                           input_names=['image'], output_names=['code'])
    with open(out, 'wb') as f:
        f.write(trt_module.engine.serialize())
    return json.dumps(encoder_identity(model, k), sort_keys=True)


def main(argv=None):
    p = argparse.ArgumentParser(prog='nanolink-build-engine', description=__doc__.split('\n')[0])
    p.add_argument('--via', choices=('onnx', 'torch2trt'), default='onnx',
                   help='onnx: parse an exported ONNX file (default); torch2trt: convert the torch encoder')
    p.add_argument('--onnx', help='exported encoder (nanolink-export); needed with --via onnx')
    p.add_argument('--model', help='a bundled model name, e.g. cae (instead of --onnx; with --via torch2trt)')
    p.add_argument('--checkpoint', help='--via torch2trt: a training checkpoint or exported NAME.pt')
    p.add_argument('--channels', type=int, help='with --model cae-bin: code channels k, a rate point (default: the '
                                                'model\'s default)')
    p.add_argument('--quality', type=int, help='with --model cae: the rate point 1..6 (default: the model\'s)')
    p.add_argument('--out', required=True, help='engine file to write, e.g. cae.trt')
    p.add_argument('--shape', required=True, help='input shape NxCxHxW, e.g. 1x3x720x1280 (the frame padded to the '
                                                  'model\'s multiple: 16 for cae, 8 for cae-bin)')
    p.add_argument('--fp16', action='store_true', help='allow fp16 kernels (use on the Nano; no fast INT8 there)')
    p.add_argument('--workspace', type=int, default=1024, metavar='MB', help='builder workspace (default: %(default)s)')
    args = p.parse_args(argv)
    if args.via == 'onnx' and not (args.onnx or args.model):
        p.error('--onnx FILE or --model NAME is needed')
    if args.onnx and (args.model or args.checkpoint):
        p.error('give --onnx FILE or --model NAME, not both')
    if args.via == 'torch2trt' and not (args.model or args.checkpoint):
        p.error('--via torch2trt needs --model NAME or --checkpoint FILE')
    if args.workspace < 1:
        p.error('--workspace must be at least 1 MB')
    try:
        shape = parse_shape(args.shape)
        if args.via == 'onnx':
            onnx_path = args.onnx or bundled_encoder(args.model, args.channels, args.quality)
            refuse_decoder(onnx_path)
            meta = sidecar_metadata(onnx_path)
            check_frame_shape(shape, json.loads(meta).get('multiple'))
            print('equivalent: ' + trtexec_line(onnx_path, args.out, 'image' if shape[1] == 3 else 'symbols', shape,
                                                args.fp16, args.workspace), flush=True)
            build(onnx_path, args.out, shape, args.fp16, args.workspace)
        else:
            checkpoint = args.checkpoint or bundled_model(args.model).torch
            if not os.path.isfile(checkpoint):
                raise NanolinkError('no such checkpoint: {}'.format(checkpoint))
            meta = build_torch2trt(checkpoint, args.channels or args.quality, args.out, shape, args.fp16,
                                   args.workspace)
        with open(args.out + '.json', 'w') as f:
            f.write(meta)
    except NanolinkError as e:
        return cliutil.fail('nanolink-build-engine', e)
    print('wrote {} and {}.json'.format(args.out, args.out))
    return 0


if __name__ == '__main__':
    sys.exit(main())
