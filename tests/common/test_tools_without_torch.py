"""Without torch (README command 1's install, a Jetson): the training and export tools still print --help, and a
run says in one line what to install. Runs in the Python 3.6 leg of scripts/test.sh, which has no torch."""
import subprocess
import sys

import pytest

from nanolink.common.zoo import SAMPLE_DIR

try:
    import torch  # noqa: F401
    HAVE_TORCH = True
except ImportError:
    HAVE_TORCH = False

TOOLS = [('nanolink.export.train', ['--data', 'nowhere']), ('nanolink.export.onnx_export', ['--model', 'cae', '--out', 'x']),
         ('nanolink.export.evaluate', ['--images', SAMPLE_DIR, '--out', 'x.json'])]   # arguments checked first


@pytest.mark.skipif(HAVE_TORCH, reason='torch is installed here; the Python 3.6 leg (no torch) runs this')
@pytest.mark.parametrize('module, args', TOOLS)
def test_help_works_and_a_run_names_what_to_install(module, args, tmp_path):
    r = subprocess.run([sys.executable, '-m', module, '--help'], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       universal_newlines=True, timeout=120, cwd=str(tmp_path))
    assert r.returncode == 0 and r.stdout.startswith('usage:') and 'Traceback' not in r.stderr, r.stderr
    r = subprocess.run([sys.executable, '-m', module] + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       universal_newlines=True, timeout=120, cwd=str(tmp_path))
    assert r.returncode == 1 and 'Traceback' not in r.stderr
    assert 'pip install "nanolink[train]"' in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr


try:
    import onnx  # noqa: F401
    HAVE_ONNX = True
except ImportError:
    HAVE_ONNX = False


@pytest.mark.skipif(HAVE_ONNX, reason='onnx is installed here; the Python 3.6 leg (runtime install) runs this')
def test_budget_without_onnx_names_what_to_install(tmp_path):
    r = subprocess.run([sys.executable, '-m', 'nanolink.export.budget', '--model', 'cae', '--size', '64'],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, timeout=120,
                       cwd=str(tmp_path))
    assert r.returncode == 1 and 'Traceback' not in r.stderr, r.stderr
    assert 'pip install onnx' in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
