"""What a user's clone carries: the bundled sample and weights stay small, and no stray dump gets committed.

Runs only in a git checkout (an installed copy has no history to check)."""
import os
import shutil
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MiB = 1024 * 1024


def _tracked_files():
    if shutil.which('git') is None or not os.path.isdir(os.path.join(ROOT, '.git')):
        pytest.skip('not a git checkout: nothing to check')
    out = subprocess.run(['git', 'ls-files', '-z'], cwd=ROOT, stdout=subprocess.PIPE, check=True).stdout
    return [p for p in out.decode().split('\0') if p and os.path.isfile(os.path.join(ROOT, p))]


CHECKPOINT = 'export/checkpoints/cae-train.pt'     # the resumable training checkpoint: at most 10 MB


def test_no_tracked_file_over_1_mib_but_weights_within_their_limits():
    sizes = {p: os.path.getsize(os.path.join(ROOT, p)) for p in _tracked_files()}
    weights = {}
    for p, s in sizes.items():
        if p.startswith('common/weights/'):
            weights.setdefault(p.split('/')[2], 0)
            weights[p.split('/')[2]] += s
    big = {p: s for p, s in sizes.items() if s > MiB and not p.startswith('common/weights/') and p != CHECKPOINT}
    assert not big, 'files over 1 MiB in git (docs must stay small; dumps belong in .gitignore): %r' % big
    assert all(total <= 8 * MiB for total in weights.values()), 'a bundled model over 8 MiB: %r' % weights
    assert sizes.get(CHECKPOINT, 0) <= 10 * 1000 * 1000, 'the resumable checkpoint must stay within 10 MB'
    checkpoints = [p for p in sizes if p.endswith('.pt') and p.startswith('export/')]
    assert checkpoints in ([], [CHECKPOINT]), 'one resumable checkpoint, replaced in place: %r' % checkpoints


def test_bundled_sample_within_2_mb():
    sample = [p for p in _tracked_files() if p.startswith('common/sample/')]
    assert sample, 'common/sample/ has no tracked files'
    total = sum(os.path.getsize(os.path.join(ROOT, p)) for p in sample)
    assert total <= 2 * 1000 * 1000, 'common/sample/ holds %d bytes; the bundled sample must stay within 2 MB' % total


def test_modules_stay_small():
    """Small modules with one job: every source module of the package and its scripts (Python and the coder's C)
    under 400 lines; a longer one is split by what it does (export/train.py gave train_data.py and validation.py)."""
    code = [p for p in _tracked_files() if p.endswith(('.py', '.c', '.h'))
            and p.split('/')[0] in ('api', 'common', 'edge', 'host', 'export', 'scripts', 'examples')]
    assert len(code) > 50, 'found only %d modules: is this the repository root?' % len(code)
    lines = {}
    for p in code:
        with open(os.path.join(ROOT, p), 'rb') as f:
            lines[p] = f.read().count(b'\n')
    long = {p: n for p, n in lines.items() if n >= 400}
    assert not long, 'modules of 400 lines or more (split them by job): %r' % long
