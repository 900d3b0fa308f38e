"""The C round trip of the rANS coder (tests/c/test_rans.c): built here with -Wall -Werror, and cross-built for
aarch64, the Jetson's CPU, then run under qemu-user. CI installs Debian's gcc-aarch64-linux-gnu and qemu-user, so
there the aarch64 leg must run; elsewhere it skips and says what to install."""
import os
import shutil
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SOURCES = [os.path.join(ROOT, 'tests', 'c', 'test_rans.c')] + [
    os.path.join(ROOT, 'common', 'csrc', name) for name in ('rans.c', 'rans_ctx_enc.c', 'rans_ctx_dec.c')]
FLAGS = ['-O2', '-Wall', '-Wextra', '-Werror', '-std=c99', '-I' + os.path.join(ROOT, 'common', 'csrc')]


def _need(tool, package):
    path = shutil.which(tool)
    if path is None:
        if os.environ.get('CI') == 'true':
            pytest.fail('{} is missing in CI: scripts/test.sh installs Debian\'s {}'.format(tool, package))
        pytest.skip('{} is not installed (Debian package {})'.format(tool, package))
    return path


def _build_and_run(cc, runner, tmp_path):
    exe = str(tmp_path / 'test_rans')
    subprocess.run([cc] + FLAGS + SOURCES + ['-o', exe], check=True, timeout=300)
    r = subprocess.run(runner + [exe], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True,
                       timeout=600)
    assert r.returncode == 0 and r.stdout.startswith('ok: 600 cases'), r.stdout


def test_c_round_trip_native(tmp_path):
    _build_and_run(_need('gcc', 'gcc'), [], tmp_path)


def test_c_round_trip_under_address_and_undefined_behaviour_sanitizers(tmp_path):
    """Every decode of a corrupt, truncated or extended stream stays inside its buffers (ASan) and does no
    undefined arithmetic (UBSan)."""
    cc = _need('gcc', 'gcc')
    probe = subprocess.run([cc, '-fsanitize=address,undefined', '-x', 'c', '-', '-o', str(tmp_path / 'probe')],
                           input='int main(void){return 0;}', universal_newlines=True, stderr=subprocess.PIPE)
    if probe.returncode != 0:
        pytest.skip('this gcc has no ASan/UBSan runtime (Debian: libasan, libubsan)')
    exe = str(tmp_path / 'test_rans_asan')
    subprocess.run([cc, '-O1', '-g', '-fsanitize=address,undefined', '-fno-sanitize-recover=all'] + FLAGS[1:] +
                   SOURCES + ['-o', exe], check=True, timeout=300)
    r = subprocess.run([exe], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True, timeout=600)
    assert r.returncode == 0 and r.stdout.startswith('ok: 600 cases'), r.stdout


def test_c_round_trip_aarch64_under_qemu(tmp_path):
    cc = _need('aarch64-linux-gnu-gcc', 'gcc-aarch64-linux-gnu')
    qemu = _need('qemu-aarch64', 'qemu-user')
    _build_and_run(cc, [qemu, '-L', '/usr/aarch64-linux-gnu'], tmp_path)
    out = subprocess.run(['file', str(tmp_path / 'test_rans')], stdout=subprocess.PIPE, universal_newlines=True)
    assert out.returncode != 0 or 'aarch64' in out.stdout           # it really was an ARM binary
