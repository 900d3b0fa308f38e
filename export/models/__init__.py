"""Torch definitions of nanolink's learned codecs.

The contract (after CompressAI): ``forward(x, keep)`` returns a dict for training;
``encode_bits(x)`` returns the binary code the edge sends; ``decode_symbols(s)`` returns the image the
host shows. The edge only ever runs the encoder half and the host only the decoder half.

Run ``python -m nanolink.export.models`` to print each registered model's size and MAC budget.
"""
from nanolink.export.models.registry import MODELS, build_model, register_model  # noqa: F401
from nanolink.export.models.layers import (DisplayBytes, budget, count_macs, display_conv, display_order,  # noqa: F401
                                           swap_rb)
from nanolink.export.models.cae_bin import LossyCAE, PackedEncoder, SymbolDecoder  # noqa: F401
from nanolink.export.models.ae import CodeImageAE, FullCodeAE, jpeg_round_trip  # noqa: F401
from nanolink.export.models.cae import EntropyCAE  # noqa: F401

__all__ = ['MODELS', 'build_model', 'register_model', 'DisplayBytes', 'budget', 'count_macs', 'display_conv',
           'display_order', 'swap_rb', 'LossyCAE', 'PackedEncoder', 'SymbolDecoder', 'CodeImageAE', 'FullCodeAE',
           'jpeg_round_trip', 'EntropyCAE']
