"""scripts/cae_entropy_bound.py: zlib vs context-model entropy bounds on the cae-bin bits."""
import os
import re
import subprocess
import sys

import pytest

pytest.importorskip('torch')

from nanolink.common.zoo import SAMPLE_DIR     # noqa: E402

SCRIPT = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                      'scripts', 'cae_entropy_bound.py')


def _run(*args):
    return subprocess.run([sys.executable, SCRIPT] + list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, timeout=300)


def test_bounds_on_the_sample_are_ordered():
    r = _run('--images', SAMPLE_DIR, '--channels', '4')
    assert r.returncode == 0, r.stderr
    got = {k.strip(): float(v) for k, v in re.findall(r'^  (.+?)\s+([\d.]+) bpp', r.stdout, re.M)}
    assert got['packed bits (no coding)'] == 0.25                     # 4 of 16 channels at H/4: 4 / 16 bpp
    assert got['zlib level 9, wire order'] <= got['zlib level 1, wire order'] < 0.25
    e0, e1 = got['entropy bound: order 0, per channel'], got['entropy bound: left + up, per channel']
    e2, e3 = got['entropy bound: left + up + previous channel'], got['entropy bound: left + up + all previous channels']
    assert 0 < e3 <= e2 <= e1 <= e0 <= 0.25                             # more context never raises the entropy


def test_bad_arguments_exit_2_with_the_fix():
    r = _run('--images', SAMPLE_DIR, '--channels', '5')
    assert r.returncode == 2 and '--channels must be one of [4, 8, 16]' in r.stderr
    r = _run('--images', SAMPLE_DIR + '/nope')
    assert r.returncode == 2 and 'no PNG or JPEG images' in r.stderr
