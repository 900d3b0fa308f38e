"""Export a trained nanolink model: ONNX encoders (one per rate point), ONNX decoder, manifest.

    nanolink-export --checkpoint runs/cae/last.pt --out exported/cae
    nanolink-export --model cae --out exported/cae        # the bundled weights
    nanolink-export --checkpoint runs/cae-q/last.pt --decoder-variant quality --out exported/cae
                                                          # adds a heavier decoder of the same bits

Graphs use ONNX opset 13 (TensorRT 8.2 parses up to 13) with dynamic height and width: the encoder takes
``image`` float32 (1, 3, H, W) RGB in [0, 1], H and W multiples of the model's ``multiple``, and returns
``code`` uint8 (1, H/4, W/4 * k / 8), the wire payload; the decoder takes ``symbols`` float32
(1, C, H/4, W/4) in {-1, 0, +1} (0 = channel not sent) and returns ``image`` uint8 (1, H, W, 3), BGR bytes
ready to show (ae: ``code`` float32 (1, H/2, W/2, 3) BGR byte values in, the same ``image`` out).
"""
import argparse
import dataclasses
import json
import os
import re
import sys
import warnings

from nanolink.common import cli as cliutil
from nanolink.common.errors import NanolinkError
from nanolink.common.zoo import METADATA_KEY, bundled_model, tables_digest
from nanolink.export.model_io import entropy_section, identity, load_checkpoint, save_checkpoint
from nanolink.export.onnx_graph import drop_byte_concat_casts, share_weights
try:                                    # --help works without torch; main() says what to install
    import torch
    from nanolink.export.entropy_model import clip_warnings
    from nanolink.export.models import MODELS, build_model
    MISSING = None
except ImportError as e:
    MISSING, MODELS = e, {}

OPSET = 13


def encoder_identity(model, k, inline_tables=True):
    """The metadata an encoder file carries at rate point k: the model's identity, plus the channel count (binary
    codes) or the quality and its rANS tables (entropy-coded latents), which the edge needs to send its frames.
    Without ``inline_tables`` (exported ONNX encoders) the tables are named by their digest and live once, in the
    manifest.json beside the files (nanolink.common.zoo.encoder_tables reads them back)."""
    ident = identity(model)
    if model.wire_dtype == 'bits':
        ident['code_channels'] = k
    elif model.wire_dtype == 'rans':
        t = model.tables(k - 1)
        tables = {'lo': t['lo'], 'freqs': t['freqs']}
        if getattr(model, 'context', None):
            tables['context'] = model.context[k]
        ident['quality'] = k
        if inline_tables:
            ident['tables'] = tables
        else:
            ident['tables_digest'] = tables_digest(tables)
    return ident


def round_weights_to_float16(model):
    """Round every float32 weight of the encoder and decoder networks to the nearest float16 number (kept as
    float32), in place: the exported torch checkpoint then stores them as float16 at no loss (nearly half the bytes
    of the bundle's NAME.pt), and the ONNX files hold the very same values. Costs nothing measurable (relative steps
    of 2^-11, what a Nano's fp16 engine runs anyway). The priors are left alone: the integer tables, and the
    context tables fitted against their symbol ranges, are derived from them. Tensors whose values exceed
    float16's range are left alone too."""
    with torch.no_grad():
        for t in list(model.encoder.state_dict().values()) + list(model.decoder.state_dict().values()):
            if t.dtype == torch.float32 and t.numel() and float(t.abs().max()) < 65504:
                t.copy_(t.half().float())


def write_manifest(out_dir, manifest):
    text = json.dumps(manifest, indent=2, sort_keys=True)
    # lists of numbers on one line each (the rANS tables would otherwise take a line per frequency)
    text = re.sub(r'\[\s+(-?[0-9][-0-9.e+,\s]*?)\s+\]', lambda m: '[' + re.sub(r',\s+', ', ', m.group(1)) + ']', text)
    with open(os.path.join(out_dir, 'manifest.json'), 'w') as f:
        f.write(text + '\n')


def _set_metadata(path, meta):
    import onnx
    m = onnx.load(path)
    entry = m.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, json.dumps(meta, sort_keys=True)
    onnx.save(m, path)


def export_onnx(module, example, path, input_name, output_name, meta, dyn_in=None, dyn_out=None):
    dyn = {input_name: dyn_in or {2: 'height', 3: 'width'},
           output_name: dyn_out or {1: 'height', 2: 'width'}}        # outputs are channels-last (code, image)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        torch.onnx.export(module, example, path, input_names=[input_name], output_names=[output_name],
                          dynamic_axes=dyn, opset_version=OPSET, dynamo=False)
    drop_byte_concat_casts(path)
    _set_metadata(path, meta)


CODE_DTYPES = {'uint8': torch.uint8, 'float16': torch.float16} if MISSING is None else {'uint8': None, 'float16': None}
DECODER_OUT = {'output': 'image', 'output_shape': [1, 'H', 'W', 3], 'output_dtype': 'uint8',
               'note_output': 'BGR bytes ready to show; the host crops the padding off'}


def _export_encoders(model, out_dir, code_dtype, with_float16, tag, output, dyn_out=None):
    """One ONNX encoder per rate point (NAME-enc-<tag><k>[-float16].onnx) -> the manifest's encoders entries."""
    files, x = {}, torch.rand(1, 3, 64, 96)
    for dtype, key in _encoder_sets(code_dtype, with_float16, 'encoders'):
        files[key] = {}
        for k in model.config.rate_points:
            fn = '{}-enc-{}{}{}.onnx'.format(model.model_name, tag, k, '' if dtype == 'uint8' else '-' + dtype)
            export_onnx(model.encoder_module(k, CODE_DTYPES[dtype]).eval(), x, os.path.join(out_dir, fn), 'image',
                        output, encoder_identity(model, k, inline_tables=False), dyn_out=dyn_out)
            files[key][str(k)] = fn
    return files


def _encoder_sets(code_dtype, with_float16, key):
    """(code dtype, manifest files key) of each encoder set to write."""
    sets = [(code_dtype, key)]
    if with_float16 and code_dtype != 'float16':
        sets.append(('float16', key + '_float16'))
    return sets


def export(model, out_dir, extra_manifest=None, code_dtype='uint8', with_float16=False):
    """Write encoders, decoder, torch checkpoint and manifest.json for model into out_dir.

    code_dtype 'float16' writes encoders whose ``code`` output holds the same byte values as float16, for
    TensorRT 8.2 (JetPack 4.6), which has no UINT8 inputs or outputs; the edge casts them back to bytes.
    with_float16 writes those too, besides the uint8 ones (manifest files ``encoders_float16`` / ``encoder_float16``:
    what nanolink-build-engine --model builds from), as the bundled models ship.
    """
    os.makedirs(out_dir, exist_ok=True)
    if model.wire_dtype == 'jpeg':
        return _export_code_image_model(model, out_dir, extra_manifest, code_dtype, with_float16)
    if model.wire_dtype == 'rans':
        return _export_rans_model(model, out_dir, extra_manifest, code_dtype, with_float16)
    ident = identity(model)
    name = ident['name']
    files = {'decoder': '{}-dec.onnx'.format(name), 'torch': '{}.pt'.format(name)}
    files.update(_export_encoders(model, out_dir, code_dtype, with_float16, 'k', 'code'))
    s = torch.zeros(1, model.config.channels, 16, 24)
    export_onnx(model.decoder_module().eval(), s, os.path.join(out_dir, files['decoder']), 'symbols', 'image',
                dict(ident, code_channels=model.config.channels))
    save_checkpoint(model, os.path.join(out_dir, files['torch']))
    manifest = dict(ident, architecture=dataclasses.asdict(model.config), files=files, onnx_opset=OPSET,
                    io={'encoder': {'input': 'image', 'input_shape': [1, 3, 'H', 'W'], 'input_dtype': 'float32',
                                    'output': 'code', 'output_shape': [1, 'H/4', 'W/4*k/8'], 'output_dtype': code_dtype},
                        'decoder': dict(DECODER_OUT, input='symbols', input_dtype='float32',
                                        input_shape=[1, model.config.channels, 'H/4', 'W/4'])})
    manifest.update(extra_manifest or {})
    write_manifest(out_dir, manifest)
    return manifest


def _export_rans_model(model, out_dir, extra_manifest, code_dtype, with_float16):
    """cae: one encoder per rate point (image -> uint8 symbol indices at H/16, gain and clip inside), one decoder
    (dequantised latents -> BGR bytes), the integer tables in the manifest (each encoder's metadata names its rate
    point's by digest). The weights are first rounded to float16 numbers (round_weights_to_float16), so the torch
    checkpoint stores them in half the bytes; the model's fingerprint and tables are those of the rounded weights."""
    round_weights_to_float16(model)
    for line in clip_warnings(model):
        print('nanolink-export: warning: ' + line, file=sys.stderr)
    ident = identity(model)
    name = ident['name']
    entropy = entropy_section(model)
    files = {'decoder': '{}-dec.onnx'.format(name), 'torch': '{}.pt'.format(name)}
    files.update(_export_encoders(model, out_dir, code_dtype, with_float16, 'q', 'symbols', {2: 'height', 3: 'width'}))
    files['encoder_weights'] = '{}-enc.weights'.format(name)
    share_weights([os.path.join(out_dir, fn) for key in files if key.startswith('encoders')
                   for fn in files[key].values()], files['encoder_weights'])
    y = torch.zeros(1, model.config.channels, 4, 6)
    export_onnx(model.decoder_module().eval(), y, os.path.join(out_dir, files['decoder']), 'latents', 'image', ident)
    save_checkpoint(model, os.path.join(out_dir, files['torch']))
    m = model.config.channels
    manifest = dict(ident, architecture=dataclasses.asdict(model.config), files=files, onnx_opset=OPSET,
                    entropy=entropy,
                    io={'encoder': {'input': 'image', 'input_shape': [1, 3, 'H', 'W'], 'input_dtype': 'float32',
                                    'output': 'symbols', 'output_shape': [1, m, 'H/16', 'W/16'],
                                    'output_dtype': code_dtype,
                                    'note': 'symbol index of each latent in its channel\'s table at this rate point '
                                            '(the integer is lo[c] + index); rANS-coded on the CPU'},
                        'decoder': dict(DECODER_OUT, input='latents', input_dtype='float32',
                                        input_shape=[1, m, 'H/16', 'W/16'],
                                        note_input='(lo[c] + index) * inv_gain[c] of the frame\'s rate point')})
    manifest.update(extra_manifest or {})
    write_manifest(out_dir, manifest)
    return manifest


def _export_code_image_model(model, out_dir, extra_manifest, code_dtype, with_float16=False):
    """ae, ae-full: one encoder (image -> 8-bit BGR code image at H/s, s = 2 or 1, which the edge codes with JPEG),
    one decoder."""
    ident = identity(model)
    code_h, code_w = ('H', 'W') if model.stride == 1 else ('H/{}'.format(model.stride), 'W/{}'.format(model.stride))
    name = ident['name']
    files = {'decoder': '{}-dec.onnx'.format(name), 'torch': '{}.pt'.format(name)}
    x = torch.rand(1, 3, 64, 96)
    for dtype, key in _encoder_sets(code_dtype, with_float16, 'encoder'):
        files[key] = '{}-enc{}.onnx'.format(name, '' if dtype == 'uint8' else '-' + dtype)
        export_onnx(model.encoder_module(None, CODE_DTYPES[dtype]).eval(), x, os.path.join(out_dir, files[key]),
                    'image', 'code', ident, dyn_out={1: 'height', 2: 'width'})
    c = torch.randint(0, 256, (1, 32, 48, 3)).float()
    export_onnx(model.decoder_module().eval(), c, os.path.join(out_dir, files['decoder']), 'code', 'image', ident,
                dyn_in={1: 'height', 2: 'width'})
    save_checkpoint(model, os.path.join(out_dir, files['torch']))
    manifest = dict(ident, architecture=dataclasses.asdict(model.config), files=files, onnx_opset=OPSET,
                    io={'encoder': {'input': 'image', 'input_shape': [1, 3, 'H', 'W'], 'input_dtype': 'float32',
                                    'output': 'code', 'output_shape': [1, code_h, code_w, 3], 'output_dtype': code_dtype,
                                    'note': 'BGR byte values; the edge codes them with JPEG at the chosen quality'},
                        'decoder': dict(DECODER_OUT, input='code', input_dtype='float32',
                                        input_shape=[1, code_h, code_w, 3])})
    manifest.update(extra_manifest or {})
    write_manifest(out_dir, manifest)
    return manifest


def main(argv=None):
    p = argparse.ArgumentParser(prog='nanolink-export', description=__doc__.split('\n')[0])
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument('--checkpoint', help='training checkpoint (runs/NAME/last.pt) or exported NAME.pt')
    src.add_argument('--model', help='a bundled model name, e.g. cae')
    p.add_argument('--out', required=True, help='output folder')
    p.add_argument('--code-dtype', choices=sorted(CODE_DTYPES), default='uint8',
                   help='encoder output type: uint8, or float16 for TensorRT 8.2 / JetPack 4.6 (default: %(default)s)')
    p.add_argument('--with-float16', action='store_true',
                   help='also write encoders with float16 code outputs (TensorRT 8.2), as the bundled models ship')
    p.add_argument('--manifest-extra', help='JSON file merged into manifest.json (training data, metrics), or into '
                                            'the variant\'s entry with --decoder-variant')
    p.add_argument('--decoder-variant', metavar='NAME',
                   help='add only the checkpoint\'s decoder to the model already exported in --out, as decoder '
                        'variant NAME (e.g. quality): same encoder weights required, same fingerprint on the wire')
    args = p.parse_args(argv)
    try:
        cliutil.check_output_folder('--out', args.out)      # before the checkpoint is loaded
    except NanolinkError as e:
        return cliutil.fail('nanolink-export', e)
    if MISSING is not None:
        return cliutil.torch_missing('nanolink-export', MISSING)
    try:
        return _run(p, args)
    except NanolinkError as e:
        return cliutil.fail('nanolink-export', e)


def _run(p, args):
    path = args.checkpoint or bundled_model(args.model).torch
    if not os.path.isfile(path):
        p.error('no such checkpoint: {}'.format(path))
    model, _ = load_checkpoint(path)
    extra = None
    if args.manifest_extra:
        try:
            with open(args.manifest_extra) as f:
                extra = json.load(f)
        except OSError as e:
            raise NanolinkError('--manifest-extra {}: cannot read it ({})'.format(args.manifest_extra,
                                                                                 e.strerror or e))
        except ValueError as e:
            raise NanolinkError('--manifest-extra {}: not JSON ({})'.format(args.manifest_extra, e))
        if not isinstance(extra, dict):
            raise NanolinkError('--manifest-extra {}: must hold a JSON object'.format(args.manifest_extra))
    if args.decoder_variant:
        from nanolink.export.decoder_variant import export_decoder_variant
        entry = export_decoder_variant(model, args.out, args.decoder_variant, extra)
        how = 'it shares ' + entry['shares'] if 'shares' in entry else entry.get('note')
        print('exported the {} decoder (weights {}, reads fingerprint {}) into {}{}'.format(
            args.decoder_variant, entry['weights_fingerprint'], entry['reads_fingerprint'], args.out,
            '; ' + how if how else ''))
        return 0
    elif args.model:
        m = bundled_model(args.model).manifest
        extra = {k: m[k] for k in ('training', 'metrics') if k in m}
    manifest = export(model, args.out, extra, args.code_dtype, args.with_float16)
    print('exported {} (fingerprint {}) to {}'.format(manifest['name'], manifest['fingerprint'], args.out))
    return 0


if __name__ == '__main__':
    sys.exit(main())
