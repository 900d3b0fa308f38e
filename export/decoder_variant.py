"""A decoder variant for an exported model (``nanolink-export --decoder-variant NAME``): a heavier decoder of the
same bits, e.g. ``quality`` for GPU hosts, added beside the model's files and listed in its manifest.

A variant that is the model's own fast decoder plus a post-filter (``nanolink-train --train-only post``) shares
the fast decoder's weights: they move to NAME-dec.weights (ONNX external data) which both decoders read, and the
variant's torch file holds the post-filter alone, naming NAME.pt as its base (load_checkpoint joins them). The
model folder then grows by the filter, not by a second decoder."""
import dataclasses
import os

import torch

from nanolink.common.errors import NanolinkError, UsageError
from nanolink.common.zoo import FAST, load_manifest
from nanolink.export.model_io import fingerprint, identity, load_checkpoint, save_checkpoint, save_delta_checkpoint
from nanolink.export.onnx_export import export_onnx, write_manifest
from nanolink.export.onnx_graph import share_by_value


def adds_post_filter_only(model, base_model):
    """True when model is base_model, weight for weight (gains and priors included), plus a post-filter
    (--train-only post)."""
    if getattr(model.decoder, 'post', None) is None or getattr(base_model.decoder, 'post', 'none') is not None:
        return False
    own = {k: v for k, v in model.state_dict().items() if not k.startswith('decoder.post.')}
    return fingerprint(own) == fingerprint(base_model.state_dict())


def export_decoder_variant(model, out_dir, variant, extra=None):
    """Add ``model``'s decoder to the exported model in out_dir as decoder variant ``variant`` (e.g. 'quality').

    A variant reads the bits of out_dir's encoders, so model must hold exactly the same encoder weights (train it
    with ``nanolink-train --init OUT_DIR/NAME.pt --train-only decoder``); frames keep out_dir's fingerprint. Writes
    NAME-dec-VARIANT.onnx and NAME-VARIANT.pt and the manifest's ``decoder_variants[variant]``."""
    base = load_manifest(out_dir)
    if variant == FAST or not variant.isalnum():
        raise UsageError('--decoder-variant {}: name a variant other than "fast" (letters and digits, e.g. '
                            'quality)'.format(variant))
    if not base.torch or not os.path.isfile(base.torch):
        raise NanolinkError('{} has no torch checkpoint to compare encoder weights with: export the model there with '
                            'nanolink-export first'.format(out_dir))
    base_model, _ = load_checkpoint(base.torch)
    if getattr(base_model, 'context', None) and not getattr(model, 'context', None):
        model.context = base_model.context          # the same bits: the base's rANS context tables
    ident = identity(model)
    for key in ('name', 'stride', 'multiple', 'channels', 'rate_points', 'dtype'):
        if ident[key] != base.manifest[key]:
            raise NanolinkError('{} {} is not {}\'s {} {}: a decoder variant must read that model\'s bits'.format(
                key, ident[key], out_dir, key, base.manifest[key]))
    if fingerprint(model.encoder.state_dict()) != fingerprint(base_model.encoder.state_dict()):
        raise NanolinkError('the encoder weights differ from those of {} (fingerprint {}): a decoder variant must be '
                            'trained on the frozen encoder (nanolink-train --init {} --train-only decoder); export a '
                            'new model to its own folder instead'.format(out_dir, base.fingerprint, base.torch))
    name = ident['name']
    files = {'decoder': '{}-dec-{}.onnx'.format(name, variant), 'torch': '{}-{}.pt'.format(name, variant)}
    shared = adds_post_filter_only(model, base_model)
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
    manifest = dict(base.manifest)
    entry = dict(files=files, architecture=dataclasses.asdict(model.config), weights_fingerprint=ident['fingerprint'],
                 reads_fingerprint=base.fingerprint)
    if shared:
        weights = base.manifest['files'].get('decoder_weights') or '{}-dec.weights'.format(name)
        n = share_by_value(base.decoder, [os.path.join(out_dir, files['decoder'])], weights)[0]
        save_delta_checkpoint(model, os.path.join(out_dir, files['torch']), base.torch, base_model)
        manifest['files'] = dict(manifest['files'], decoder_weights=weights)
        entry['shares'] = '{} tensors of the fast decoder ({}); its torch file holds the post-filter, on {}'.format(
            n, weights, os.path.basename(base.torch))
    else:
        save_checkpoint(model, os.path.join(out_dir, files['torch']))
        if getattr(model.decoder, 'post', None) is not None:
            entry['note'] = ('a whole second decoder: weights other than the post-filter differ from {}\'s, so none '
                             'are shared (train the filter alone, --train-only post, to share them)'.format(out_dir))
    entry.update(extra or {})
    manifest['decoder_variants'] = dict(manifest.get('decoder_variants', {}), **{variant: entry})
    write_manifest(out_dir, manifest)
    return entry
