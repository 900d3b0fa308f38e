"""Model manifests and the bundled weights.

Each bundled model lives in ``nanolink/common/weights/<name>/`` with a ``manifest.json`` written by
``nanolink-export``: architecture arguments, rate points, training data and steps, measured metrics,
the files (one ONNX encoder per rate point, one ONNX decoder, the torch checkpoint) and the weights
fingerprint that every wire message carries. Exported ONNX files also carry the manifest's identity in
their metadata (key ``nanolink``), so ``--engine some.onnx`` knows which model it runs.

A model may also ship decoder variants (``decoder_variants``: a heavier ``quality`` decoder for GPU hosts),
trained on the frozen encoder: they read the same bits, so frames keep the model's fingerprint whichever decoder
the host runs; each variant records its own ``weights_fingerprint``.
"""
import hashlib
import json
import os

from dataclasses import dataclass, field
from typing import Dict, Tuple

from nanolink.common.errors import NanolinkError, UsageError

WEIGHTS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'weights')
SAMPLE_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'sample')
METADATA_KEY = 'nanolink'
FAST = 'fast'                      # the decoder in files.decoder: the one that meets the CPU budget
DEFAULT_MODEL = 'cae'              # what edge-sender, nanolink-demo and latency-bench run unless told otherwise


@dataclass
class ModelInfo:
    name: str                      # model name on the wire ("cae")
    fingerprint: str               # 16 hex chars, SHA-256 of the weights
    stride: int                    # frame side / code side
    multiple: int                  # frames are padded to a multiple of this
    channels: int                  # binary channels of the full code
    rate_points: Tuple[int, ...]   # channel counts the decoder was trained for
    default_channels: int          # channels edge-sender sends unless told otherwise
    dtype: str = 'bits'            # payload coding on the wire
    encoders: Dict[int, str] = field(default_factory=dict)   # channels -> ONNX encoder path (binary codes)
    encoder: str = ''              # the one ONNX encoder of a model whose rate is set outside it (ae: JPEG)
    decoder: str = ''              # ONNX decoder path
    torch: str = ''                # torch checkpoint path
    manifest: dict = field(default_factory=dict)             # the whole manifest.json
    variants: Dict[str, Dict[str, str]] = field(default_factory=dict)  # decoder variant -> {runtime: path}

    def decoder_file(self, variant=FAST, runtime='onnxruntime'):
        """Path of the decoder ``variant`` ('fast': the default one) for ``runtime`` (onnxruntime | torch)."""
        if variant == FAST:
            return self.decoder if runtime == 'onnxruntime' else self.torch
        if variant not in self.variants:
            raise NanolinkError('model {} has no "{}" decoder; its decoders: {}'.format(
                self.name, variant, ', '.join([FAST] + sorted(self.variants))))
        return self.variants[variant].get(runtime, '')

    def variant_or_fast(self, variant):
        """``variant`` if this model ships it, else 'fast' (a host asked for the quality decoder decodes the models
        without one with their fast decoder, and says so)."""
        return variant if variant in self.variants else FAST


def load_manifest(path):
    """Read a manifest.json (or the folder holding one) into a ModelInfo with absolute file paths. A file that is
    not a manifest nanolink-export wrote raises NanolinkError naming what is wrong with it."""
    if os.path.isdir(path):
        path = os.path.join(path, 'manifest.json')
    if not os.path.isfile(path):
        raise NanolinkError('no model manifest at {}: export one with nanolink-export'.format(path))
    fix = 'give the folder nanolink-export wrote (its manifest.json beside the ONNX files), or export it again'
    try:
        with open(path, 'rb') as f:
            m = json.loads(f.read().decode('utf-8'))
    except OSError as e:
        raise NanolinkError('cannot read the model manifest {}: {}'.format(path, e.strerror or e))
    except (ValueError, RecursionError) as e:   # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise NanolinkError('{} is not a model manifest (not JSON: {}): {}'.format(path, str(e)[:120], fix))
    if not isinstance(m, dict):
        raise NanolinkError('{} is not a model manifest (a JSON {}, not an object): {}'.format(
            path, type(m).__name__, fix))
    try:
        return _model_info(m, os.path.dirname(os.path.abspath(path)))
    except KeyError as e:
        raise NanolinkError('{} is not a complete model manifest (no "{}"): {}'.format(path, e.args[0], fix))
    except (TypeError, ValueError, AttributeError, OverflowError) as e:
        raise NanolinkError('{} is not a valid model manifest ({}): {}'.format(path, str(e)[:160], fix))


def _field(m, key, kind):
    """m[key], checked: 'name' a non-empty str, 'int' an integer >= 1, 'ints' a non-empty list of them, 'dict' a
    map; TypeError (or KeyError) naming it otherwise, never a value coerced into another."""
    v = m[key]
    ok = {'name': lambda: isinstance(v, str) and v != '',
          'int': lambda: type(v) is int and v >= 1,
          'ints': lambda: isinstance(v, list) and v != [] and all(type(x) is int and x >= 1 for x in v),
          'dict': lambda: isinstance(v, dict)}[kind]()
    if not ok:
        raise TypeError('"{}" must be {}, got {!r}'.format(key, {
            'name': 'a non-empty string', 'int': 'an integer >= 1', 'ints': 'a non-empty list of integers >= 1',
            'dict': 'an object'}[kind], v)[:160])
    return v


def _model_info(m, d):
    files = _field(m, 'files', 'dict') if 'files' in m else {}
    return ModelInfo(
        name=_field(m, 'name', 'name'), fingerprint=_field(m, 'fingerprint', 'name'), stride=_field(m, 'stride', 'int'),
        multiple=_field(m, 'multiple', 'int'), channels=_field(m, 'channels', 'int'),
        rate_points=tuple(_field(m, 'rate_points', 'ints')), default_channels=_field(m, 'default_channels', 'int'),
        dtype=m.get('dtype', 'bits'),
        encoders={int(k): os.path.join(d, v) for k, v in files.get('encoders', {}).items()},
        encoder=os.path.join(d, files['encoder']) if files.get('encoder') else '',
        decoder=os.path.join(d, files['decoder']) if files.get('decoder') else '',
        torch=os.path.join(d, files['torch']) if files.get('torch') else '',
        manifest=m,
        variants={v: {'onnxruntime': os.path.join(d, e['files']['decoder']),
                      'torch': os.path.join(d, e['files']['torch'])} for v, e in m.get('decoder_variants', {}).items()})


def bundled_models():
    """{name: ModelInfo} of every model shipped in the package."""
    out = {}
    if os.path.isdir(WEIGHTS_DIR):
        for name in sorted(os.listdir(WEIGHTS_DIR)):
            if os.path.isfile(os.path.join(WEIGHTS_DIR, name, 'manifest.json')):
                out[name] = load_manifest(os.path.join(WEIGHTS_DIR, name))
    return out


CLASSICAL = ('jpeg', 'raw')       # the baselines over the same transport (nanolink.common.classical)


def model_list():
    """'bundled models: ae, ae-full, cae, cae-bin; baselines: jpeg, raw': one list for every tool's messages."""
    return 'bundled models: {}; baselines: {}'.format(', '.join(sorted(bundled_models())) or 'none', ', '.join(CLASSICAL))


def bundled_model(name):
    models = bundled_models()
    if name not in models:
        raise UsageError('no bundled model "{}"; {}'.format(name, model_list()))
    return models[name]


def rate_tables(manifest, rate):
    """The integer tables {'lo', 'freqs', 'inv_gain'} of rate point ``rate`` of an entropy-coded model's manifest."""
    try:
        return manifest['entropy']['rates'][str(rate)]
    except (KeyError, TypeError):
        raise NanolinkError('model {} has no rANS tables for rate point {} in its manifest: export it again with '
                            'nanolink-export'.format(manifest.get('name'), rate))


def tables_digest(tables):
    """SHA-256 (hex) of one rate point's coding tables -- 'lo', 'freqs' and, when present, 'context' -- as canonical
    JSON. An exported encoder names its tables by this digest; they are stored once, in the manifest.json beside it
    (every rate point's context tables would otherwise ride in the manifest and twice more in the encoder files)."""
    core = {k: tables[k] for k in ('lo', 'freqs', 'context') if k in tables}
    return hashlib.sha256(json.dumps(core, sort_keys=True, separators=(',', ':')).encode()).hexdigest()


def encoder_tables(meta, path):
    """The rANS tables {'lo', 'freqs'[, 'context']} an entropy-coded encoder file codes with, from its identity
    ``meta``: inline (engine sidecars, torch checkpoints), or named by ``tables_digest`` and read from the
    manifest.json that nanolink-export wrote beside ``path`` (exported ONNX encoders), checked against the digest."""
    if 'tables' in meta:
        return meta['tables']
    if 'tables_digest' not in meta:
        raise NanolinkError('{}: its metadata has no rANS tables; export it again with nanolink-export'.format(path))
    manifest = os.path.join(os.path.dirname(os.path.abspath(path)), 'manifest.json')
    fix = 'keep the manifest.json that nanolink-export wrote beside it (the encoder files, {}-enc.weights and ' \
          'manifest.json travel together)'.format(meta.get('name', 'NAME'))
    try:
        with open(manifest) as f:
            rates = json.load(f)['entropy']['rates']
        t = rates[str(meta['quality'])]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise NanolinkError('{}: its rANS tables are in the manifest.json beside it, which {}: {}'.format(
            path, 'is missing' if isinstance(e, OSError) else 'has none for quality {}'.format(meta.get('quality')),
            fix))
    tables = {k: t[k] for k in ('lo', 'freqs', 'context') if k in t}
    if tables_digest(tables) != meta['tables_digest']:
        raise NanolinkError('{}: the manifest.json beside it holds other rANS tables than the encoder was exported '
                            'with (digest {}...): {}'.format(path, meta['tables_digest'][:16], fix))
    return tables


def rans_tables(tables):
    """nanolink.common.rans.RansTables of one rate point's manifest (or encoder metadata) tables, with their context
    tables when the model has them."""
    from nanolink.common.rans import RansTables, unpack_context
    ctx = tables.get('context')
    return RansTables(tables['lo'], tables['freqs'], unpack_context(ctx) if ctx else None)


def info_from_metadata(meta, source):
    """ModelInfo-like identity of an exported encoder from its ``nanolink`` metadata JSON."""
    if METADATA_KEY not in meta:
        raise NanolinkError('{} carries no nanolink metadata: export encoders with nanolink-export'.format(source))
    try:
        m = json.loads(meta[METADATA_KEY])
        keys = ('name', 'fingerprint', 'stride', 'multiple', 'channels', 'rate_points', 'default_channels')
        missing = [k for k in keys if k not in m]
    except (ValueError, TypeError) as e:
        raise NanolinkError('{}: its nanolink metadata is not valid JSON ({}); export it again with nanolink-export'
                            .format(source, e))
    if missing:
        raise NanolinkError('{}: its nanolink metadata lacks {}; export it again with nanolink-export'.format(
            source, ', '.join(missing)))
    return ModelInfo(name=m['name'], fingerprint=m['fingerprint'], stride=m['stride'], multiple=m['multiple'],
                     channels=m['channels'], rate_points=tuple(m['rate_points']),
                     default_channels=m.get('code_channels', m['default_channels']), dtype=m.get('dtype', 'bits'),
                     manifest=m)
