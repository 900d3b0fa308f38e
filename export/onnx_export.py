"""Export a trained nanolink model: ONNX encoders (one per rate point), ONNX decoder, manifest.

    nanolink-export --checkpoint runs/cae/last.pt --out exported/cae
    nanolink-export --model cae --out exported/cae        # the bundled weights

Graphs use ONNX opset 13 (TensorRT 8.2 parses up to 13) with dynamic height and width: the encoder takes
``image`` float32 (1, 3, H, W) RGB in [0, 1], H and W multiples of the model's ``multiple``, and returns
``code`` uint8 (1, H/4, W/4 * k / 8), the wire payload; the decoder takes ``symbols`` float32
(1, C, H/4, W/4) in {-1, 0, +1} (0 = channel not sent) and returns ``image`` float32 (1, 3, H, W).
"""
import argparse
import dataclasses
import hashlib
import json
import os
import sys
import warnings

import torch

from nanolink.common.zoo import METADATA_KEY, bundled_model
from nanolink.export.models import PackedEncoder, build_model

OPSET = 13


def fingerprint(state_dict):
    """First 64 bits (16 hex chars) of SHA-256 over the weights in sorted key order."""
    h = hashlib.sha256()
    for k in sorted(state_dict):
        t = state_dict[k].detach().cpu().contiguous()
        h.update(k.encode()); h.update(str(t.dtype).encode()); h.update(str(tuple(t.shape)).encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()[:16]


def load_checkpoint(path):
    """-> (model in eval mode, identity dict: name, fingerprint, stride, multiple, channels, rate_points)."""
    ck = torch.load(path, map_location='cpu', weights_only=False)
    cfg = dict(ck['model_config'])
    cfg = {k: tuple(v) if isinstance(v, list) else v for k, v in cfg.items()}
    model = build_model(ck['model_name'], **cfg)
    model.load_state_dict(ck['model'])
    model.eval()
    return model, identity(model)


def identity(model):
    c = model.config
    return {'name': model.model_name, 'fingerprint': fingerprint(model.state_dict()), 'stride': model.stride,
            'multiple': model.multiple, 'channels': c.channels, 'rate_points': list(c.rate_points),
            'default_channels': c.default_channels, 'dtype': model.wire_dtype}


def _set_metadata(path, meta):
    import onnx
    m = onnx.load(path)
    entry = m.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, json.dumps(meta, sort_keys=True)
    onnx.save(m, path)


def export_onnx(module, example, path, input_name, output_name, meta, dyn_in=None, dyn_out=None):
    dyn = {input_name: dyn_in or {2: 'height', 3: 'width'},
           output_name: dyn_out or ({1: 'height', 2: 'width'} if output_name == 'code' else {2: 'height', 3: 'width'})}
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        torch.onnx.export(module, example, path, input_names=[input_name], output_names=[output_name],
                          dynamic_axes=dyn, opset_version=OPSET, dynamo=False)
    _set_metadata(path, meta)


CODE_DTYPES = {'uint8': torch.uint8, 'float16': torch.float16}


def export(model, out_dir, extra_manifest=None, code_dtype='uint8'):
    """Write encoders, decoder, torch checkpoint and manifest.json for model into out_dir.

    code_dtype 'float16' writes encoders whose ``code`` output holds the same byte values as float16, for
    TensorRT 8.2 (JetPack 4.6), which has no UINT8 inputs or outputs; the edge casts them back to bytes.
    """
    os.makedirs(out_dir, exist_ok=True)
    if model.wire_dtype == 'jpeg':
        return _export_code_image_model(model, out_dir, extra_manifest, code_dtype)
    ident = identity(model)
    name = ident['name']
    files = {'encoders': {}, 'decoder': '{}-dec.onnx'.format(name), 'torch': '{}.pt'.format(name)}
    x = torch.rand(1, 3, 64, 96)
    for k in model.config.rate_points:
        fn = '{}-enc-k{}{}.onnx'.format(name, k, '' if code_dtype == 'uint8' else '-' + code_dtype)
        export_onnx(PackedEncoder(model, k, CODE_DTYPES[code_dtype]).eval(), x, os.path.join(out_dir, fn), 'image', 'code',
                    dict(ident, code_channels=k))
        files['encoders'][str(k)] = fn
    s = torch.zeros(1, model.config.channels, 16, 24)
    export_onnx(model.decoder_module().eval(), s, os.path.join(out_dir, files['decoder']), 'symbols', 'image',
                dict(ident, code_channels=model.config.channels))
    torch.save({'model': model.state_dict(), 'model_name': name,
                'model_config': dataclasses.asdict(model.config)}, os.path.join(out_dir, files['torch']))
    manifest = dict(ident, architecture=dataclasses.asdict(model.config), files=files, onnx_opset=OPSET,
                    io={'encoder': {'input': 'image', 'input_shape': [1, 3, 'H', 'W'], 'input_dtype': 'float32',
                                    'output': 'code', 'output_shape': [1, 'H/4', 'W/4*k/8'], 'output_dtype': code_dtype},
                        'decoder': {'input': 'symbols', 'input_shape': [1, model.config.channels, 'H/4', 'W/4'],
                                    'input_dtype': 'float32', 'output': 'image', 'output_shape': [1, 3, 'H', 'W'],
                                    'output_dtype': 'float32'}})
    manifest.update(extra_manifest or {})
    with open(os.path.join(out_dir, 'manifest.json'), 'w') as f:
        json.dump(manifest, f, indent=2, sort_keys=True)
        f.write('\n')
    return manifest


def _export_code_image_model(model, out_dir, extra_manifest, code_dtype):
    """ae: one encoder (image -> 8-bit BGR code image at H/2, which the edge codes with JPEG), one decoder."""
    ident = identity(model)
    name = ident['name']
    suffix = '' if code_dtype == 'uint8' else '-' + code_dtype
    files = {'encoder': '{}-enc{}.onnx'.format(name, suffix), 'decoder': '{}-dec.onnx'.format(name),
             'torch': '{}.pt'.format(name)}
    x = torch.rand(1, 3, 64, 96)
    export_onnx(model.encoder_module(None, CODE_DTYPES[code_dtype]).eval(), x, os.path.join(out_dir, files['encoder']),
                'image', 'code', ident, dyn_out={1: 'height', 2: 'width'})
    c = torch.randint(0, 256, (1, 32, 48, 3)).float()
    export_onnx(model.decoder_module().eval(), c, os.path.join(out_dir, files['decoder']), 'code', 'image', ident,
                dyn_in={1: 'height', 2: 'width'})
    torch.save({'model': model.state_dict(), 'model_name': name,
                'model_config': dataclasses.asdict(model.config)}, os.path.join(out_dir, files['torch']))
    manifest = dict(ident, architecture=dataclasses.asdict(model.config), files=files, onnx_opset=OPSET,
                    io={'encoder': {'input': 'image', 'input_shape': [1, 3, 'H', 'W'], 'input_dtype': 'float32',
                                    'output': 'code', 'output_shape': [1, 'H/2', 'W/2', 3], 'output_dtype': code_dtype,
                                    'note': 'BGR byte values; the edge codes them with JPEG at the chosen quality'},
                        'decoder': {'input': 'code', 'input_shape': [1, 'H/2', 'W/2', 3], 'input_dtype': 'float32',
                                    'output': 'image', 'output_shape': [1, 3, 'H', 'W'], 'output_dtype': 'float32'}})
    manifest.update(extra_manifest or {})
    with open(os.path.join(out_dir, 'manifest.json'), 'w') as f:
        json.dump(manifest, f, indent=2, sort_keys=True)
        f.write('\n')
    return manifest


def main(argv=None):
    p = argparse.ArgumentParser(prog='nanolink-export', description=__doc__.split('\n')[0])
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument('--checkpoint', help='training checkpoint (runs/NAME/last.pt) or exported NAME.pt')
    src.add_argument('--model', help='a bundled model name, e.g. cae')
    p.add_argument('--out', required=True, help='output folder')
    p.add_argument('--code-dtype', choices=sorted(CODE_DTYPES), default='uint8',
                   help='encoder output type: uint8, or float16 for TensorRT 8.2 / JetPack 4.6 (default: %(default)s)')
    p.add_argument('--manifest-extra', help='JSON file merged into manifest.json (training data, metrics)')
    args = p.parse_args(argv)
    path = args.checkpoint or bundled_model(args.model).torch
    if not os.path.isfile(path):
        p.error('no such checkpoint: {}'.format(path))
    model, _ = load_checkpoint(path)
    extra = None
    if args.manifest_extra:
        with open(args.manifest_extra) as f:
            extra = json.load(f)
    elif args.model:
        m = bundled_model(args.model).manifest
        extra = {k: m[k] for k in ('training', 'metrics') if k in m}
    manifest = export(model, args.out, extra, args.code_dtype)
    print('exported {} (fingerprint {}) to {}'.format(manifest['name'], manifest['fingerprint'], args.out))
    return 0


if __name__ == '__main__':
    sys.exit(main())
