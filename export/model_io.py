"""nanolink's model files: load and save the torch checkpoints of nanolink-train and nanolink-export (plain and
delta), and the identity a model's frames and files carry (name, fingerprint, geometry, rANS tables)."""
import dataclasses
import hashlib
import json
import os
import pickle
import struct

from nanolink.common.errors import NanolinkError
try:                                    # the CLIs' --help works without torch; they say what to install
    import torch
    from nanolink.export.models import MODELS, build_model
except ImportError:
    MODELS = {}


def fingerprint(state_dict):
    """First 64 bits (16 hex chars) of SHA-256 over the weights in sorted key order."""
    h = hashlib.sha256()
    for k in sorted(state_dict):
        t = state_dict[k].detach().cpu().contiguous()
        h.update(k.encode()); h.update(str(t.dtype).encode()); h.update(str(tuple(t.shape)).encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()[:16]


def torch_load(path, trusted=True):
    """torch.load without running code: weights_only where torch has it (1.13+), which nanolink's checkpoints
    (tensors, numbers, strings, dicts, the RNG state) pass. Older torch (JetPack 4.6 has 1.10) can only unpickle,
    which may run code: that is done for ``trusted`` files only (the bundled weights; a file the user vouched for)."""
    import inspect
    if 'weights_only' in inspect.signature(torch.load).parameters:
        return torch.load(path, map_location='cpu', weights_only=True)
    if not trusted:
        raise NanolinkError('{}: torch {} cannot load a .pt file without running the code it may hold (no weights_only '
                            'before torch 1.13); pass --trust-checkpoint if you trust this file, or use its ONNX export'
                            .format(path, torch.__version__))
    return torch.load(path, map_location='cpu')


def stored_config(ck):
    """The Config fields a checkpoint dict was saved with (lists back to tuples), plus its model's legacy value of
    each field the checkpoint predates."""
    cfg = {k: tuple(v) if isinstance(v, list) else v for k, v in (ck.get('model_config') or {}).items()}
    for k, v in getattr(MODELS.get(ck.get('model_name')), 'legacy_config', {}).items():
        cfg.setdefault(k, v)                     # a checkpoint older than the field
    return cfg


def load_checkpoint(path, trusted=None):
    """-> (model in eval mode, identity dict: name, fingerprint, stride, multiple, channels, rate_points).
    trusted (see torch_load): default, the files of the bundled weights and the user's own (tools given a path)."""
    if not os.path.isfile(path):
        raise NanolinkError('no such checkpoint: {}; give runs/NAME/last.pt from nanolink-train or an exported '
                            'NAME.pt'.format(path))
    try:
        ck = torch_load(path, True if trusted is None else trusted)
        if not isinstance(ck, dict) or not {'model_config', 'model_name', 'model'} <= set(ck):
            raise ValueError('it holds no model_name, model_config and model weights')
        model = build_model(ck['model_name'], **stored_config(ck))
        state, context = ck['model'], ck.get('context')
        if ck.get('base'):                       # save_delta_checkpoint: the base's weights plus these
            base_path = os.path.join(os.path.dirname(os.path.abspath(path)), ck['base'])
            if not os.path.isfile(base_path):
                raise NanolinkError('{} holds only the weights it adds to {}, which must lie beside it: copy the '
                                    'whole model folder'.format(path, ck['base']))
            base, _ = load_checkpoint(base_path, trusted)
            if fingerprint(base.state_dict()) != ck['base_weights']:
                raise NanolinkError('{} adds to {} weights {}, but {} now holds {}: restore {}, or export the variant '
                                    'again from its training checkpoint (nanolink-export --checkpoint '
                                    'runs/NAME/last.pt --decoder-variant ...)'.format(
                                        path, ck['base'], ck['base_weights'], ck['base'],
                                        fingerprint(base.state_dict()), ck['base']))
            state = dict(base.state_dict(), **state)
            context = context or getattr(base, 'context', None)
        model.load_state_dict(state)
        if context:                              # rANS context tables (nanolink-fit-context)
            model.context = {int(q): dict(v) for q, v in context.items()}
    except (pickle.UnpicklingError, RuntimeError, EOFError, KeyError, ValueError, TypeError, AttributeError,
            IndexError, OverflowError, struct.error) as e:        # what the unpickler raises on garbage bytes
        raise NanolinkError('{}: not a nanolink checkpoint ({}: {}); give runs/NAME/last.pt from nanolink-train or '
                            'an exported NAME.pt'.format(path, type(e).__name__,
                                                         (str(e).splitlines() or [''])[0][:200]))
    model.eval()
    return model, identity(model)


def model_fingerprint(model):
    """The fingerprint frames carry: the weights', and for entropy-coded models the weights' and the integer rANS
    tables' together (the tables are derived from the weights, but by export code that could change)."""
    fp = fingerprint(model.state_dict())
    if model.wire_dtype != 'rans':
        return fp
    h = hashlib.sha256(fp.encode())
    h.update(json.dumps(entropy_section(model), sort_keys=True).encode())
    return h.hexdigest()[:16]


def entropy_section(model):
    """manifest.json's ``entropy`` of an entropy-coded model: per rate point its lambda, integer tables and the
    inverse gain the host multiplies symbols by."""
    from nanolink.common.rans import PROB_BITS
    rates = {}
    for i, q in enumerate(model.config.rate_points):
        t = model.tables(i)
        rates[str(q)] = {'lambda': model.config.lambdas[i], 'lo': t['lo'], 'freqs': t['freqs'],
                         'inv_gain': [float(v) for v in model.inv_gain[i].detach().exp().numpy()]}
        if getattr(model, 'context', None):
            rates[str(q)]['context'] = model.context[q]
    return {'coder': 'rans', 'prob_bits': PROB_BITS, 'states': 2, 'rates': rates,
            'note': 'channel c of rate q codes the integers lo[c] .. lo[c] + len(freqs[c]) - 1; frequencies sum to '
                    '2^prob_bits; a channel with one symbol is constant at that rate and never coded. With '
                    '"context" (nanolink-fit-context), each channel has ks * ka tables over those symbols, chosen '
                    'per symbol from decoded neighbours (common/csrc/rans.h); freqs then gives the fill symbol'}


def identity(model):
    c = model.config
    return {'name': model.model_name, 'fingerprint': model_fingerprint(model), 'stride': model.stride,
            'multiple': model.multiple, 'channels': c.channels, 'rate_points': list(c.rate_points),
            'default_channels': c.default_channels, 'dtype': model.wire_dtype}


def _float16_if_exact(t):
    """t as float16 when that loses nothing (every value a float16 number), else t."""
    if t.dtype == torch.float32 and t.numel() and bool(torch.isfinite(t).all()):
        h = t.half()
        if torch.equal(h.float(), t):
            return h
    return t


def save_checkpoint(model, path):
    """The torch checkpoint that load_checkpoint reads: weights (float16 where that is exact, see
    round_weights_to_float16; load_state_dict casts them back to float32), model name and Config."""
    ck = {'model': {k: _float16_if_exact(v) for k, v in model.state_dict().items()}, 'model_name': model.model_name,
          'model_config': dataclasses.asdict(model.config)}
    if getattr(model, 'context', None):
        ck['context'] = {int(q): v for q, v in model.context.items()}
    torch.save(ck, path)


def save_delta_checkpoint(model, path, base_path, base_model):
    """A checkpoint of the weights model adds to base_model (those base_model lacks: a post-filter), naming its
    base beside it; load_checkpoint loads the base and adds them."""
    if os.path.dirname(os.path.abspath(base_path)) != os.path.dirname(os.path.abspath(path)):
        raise NanolinkError('{}: a delta checkpoint must lie beside its base {}'.format(path, base_path))
    have = base_model.state_dict()
    torch.save({'model': {k: _float16_if_exact(v) for k, v in model.state_dict().items() if k not in have},
                'model_name': model.model_name, 'model_config': dataclasses.asdict(model.config),
                'base': os.path.basename(base_path), 'base_weights': fingerprint(have)}, path)
