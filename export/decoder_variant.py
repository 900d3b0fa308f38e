"""A decoder variant for an exported model (``nanolink-export --decoder-variant NAME``): a heavier decoder of the
same bits, e.g. ``quality`` for GPU hosts, added beside the model's files and listed in its manifest."""
import dataclasses
import os

import torch

from nanolink.common.errors import NanolinkError, UsageError
from nanolink.common.zoo import FAST, load_manifest
from nanolink.export.onnx_export import export_onnx, fingerprint, identity, load_checkpoint, save_checkpoint, \
    write_manifest


def export_decoder_variant(model, out_dir, variant, extra=None):
    """Add ``model``'s decoder to the exported model in out_dir as decoder variant ``variant`` (e.g. 'quality').

    A variant reads the bits of out_dir's encoders, so model must hold exactly the same encoder weights (train it
    with ``nanolink-train --init OUT_DIR/NAME.pt --train-only decoder``); frames keep out_dir's fingerprint. Writes
    NAME-dec-VARIANT.onnx and NAME-VARIANT.pt and the manifest's ``decoder_variants[variant]``."""
    base = load_manifest(out_dir)
    if variant == FAST or not variant.isalnum():
        raise UsageError('--decoder-variant {}: name a variant other than "fast" (letters and digits, e.g. '
                            'quality)'.format(variant))
    ident = identity(model)
    for key in ('name', 'stride', 'multiple', 'channels', 'rate_points', 'dtype'):
        if ident[key] != base.manifest[key]:
            raise NanolinkError('{} {} is not {}\'s {} {}: a decoder variant must read that model\'s bits'.format(
                key, ident[key], out_dir, key, base.manifest[key]))
    if not base.torch or not os.path.isfile(base.torch):
        raise NanolinkError('{} has no torch checkpoint to compare encoder weights with: export the model there with '
                            'nanolink-export first'.format(out_dir))
    base_model, _ = load_checkpoint(base.torch)
    if fingerprint(model.encoder.state_dict()) != fingerprint(base_model.encoder.state_dict()):
        raise NanolinkError('the encoder weights differ from those of {} (fingerprint {}): a decoder variant must be '
                            'trained on the frozen encoder (nanolink-train --init {} --train-only decoder); export a '
                            'new model to its own folder instead'.format(out_dir, base.fingerprint, base.torch))
    name = ident['name']
    files = {'decoder': '{}-dec-{}.onnx'.format(name, variant), 'torch': '{}-{}.pt'.format(name, variant)}
    meta = {k: base.manifest[k] for k in ('name', 'fingerprint', 'stride', 'multiple', 'channels', 'rate_points',
                                          'default_channels', 'dtype')}
    meta.update(decoder_variant=variant, weights_fingerprint=ident['fingerprint'])
    if model.wire_dtype == 'jpeg':
        export_onnx(model.decoder_module().eval(), torch.randint(0, 256, (1, 32, 48, 3)).float(),
                    os.path.join(out_dir, files['decoder']), 'code', 'image', meta, dyn_in={1: 'height', 2: 'width'})
    elif model.wire_dtype == 'rans':                 # as _export_rans_model's decoder: dequantised latents in
        export_onnx(model.decoder_module().eval(), torch.zeros(1, model.config.channels, 4, 6),
                    os.path.join(out_dir, files['decoder']), 'latents', 'image', meta)
    else:
        meta['code_channels'] = model.config.channels
        export_onnx(model.decoder_module().eval(), torch.zeros(1, model.config.channels, 16, 24),
                    os.path.join(out_dir, files['decoder']), 'symbols', 'image', meta)
    save_checkpoint(model, os.path.join(out_dir, files['torch']))
    manifest = dict(base.manifest)
    entry = dict(files=files, architecture=dataclasses.asdict(model.config), weights_fingerprint=ident['fingerprint'],
                 reads_fingerprint=base.fingerprint)
    entry.update(extra or {})
    manifest['decoder_variants'] = dict(manifest.get('decoder_variants', {}), **{variant: entry})
    write_manifest(out_dir, manifest)
    return entry
