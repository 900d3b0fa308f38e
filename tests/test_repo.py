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


def test_no_tracked_file_over_1_mib():
    big = {p: os.path.getsize(os.path.join(ROOT, p)) for p in _tracked_files()}
    big = {p: s for p, s in big.items() if s > MiB}
    assert not big, 'files over 1 MiB in git (weights and docs must stay small; dumps belong in .gitignore): %r' % big


def test_bundled_sample_within_2_mb():
    sample = [p for p in _tracked_files() if p.startswith('common/sample/')]
    assert sample, 'common/sample/ has no tracked files'
    total = sum(os.path.getsize(os.path.join(ROOT, p)) for p in sample)
    assert total <= 2 * 1000 * 1000, 'common/sample/ holds %d bytes; the bundled sample must stay within 2 MB' % total
