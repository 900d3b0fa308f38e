"""Build step for the one compiled part of nanolink: the rANS entropy coder (common/csrc/rans.c).

It is plain C loaded with ctypes (nanolink.common.rans), not a CPython extension: it includes no Python header, so
the same source builds for any Python from 3.6 up and for aarch64 (JetPack) as for x86. setuptools builds it as an
extension only to put the shared library inside the package. Metadata lives in setup.cfg. -O3 vectorises the context
loops (-O2 took twice as long at 1008², GCC 12); -funroll-loops took 7-9 % off the edge coder (2026-12-07).
"""
from setuptools import Extension, setup

setup(ext_modules=[Extension('nanolink.common._rans', sources=['common/csrc/rans.c', 'common/csrc/rans_ctx_enc.c',
                                                                'common/csrc/rans_ctx_dec.c'],
                             depends=['common/csrc/rans.h', 'common/csrc/rans_le.h', 'common/csrc/rans_ctx.h'],
                             extra_compile_args=['-O3', '-funroll-loops', '-std=c99', '-Wall'])])
