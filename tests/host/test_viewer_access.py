"""Who the browser viewer answers: the address it prints is the one it bound, requests for other host names (DNS
rebinding) get 403, and with --http-token only requests carrying the token get anything (real host-receiver)."""
import http.client
import os
import subprocess
import sys

import pytest

from conftest import cli

TOKEN = 'n4nolink-viewer-token-0123'


def viewer(host_process, *args):
    h = host_process('--http', *args)
    line = h.proc.stdout.readline().strip()
    assert line.startswith('viewer on http://'), line
    return h, line.split()[-1]


def request(url, path='/stats.json', host=None, headers=None):
    addr = url[len('http://'):].rstrip('/')
    hostname, port = addr.rsplit(':', 1)
    conn = http.client.HTTPConnection('127.0.0.1', int(port), timeout=20)
    hdrs = dict(headers or {})
    hdrs['Host'] = addr if host is None else host
    conn.request('GET', path, headers=hdrs)
    r = conn.getresponse()
    body = r.read()
    conn.close()
    return r.status, r.getheader('Set-Cookie'), body


def test_prints_the_address_it_bound_and_refuses_foreign_host_names(host_process):
    h, url = viewer(host_process, '0.0.0.0:0')
    assert url.startswith('http://0.0.0.0:')                         # what it bound: every interface
    port = url.rsplit(':', 1)[1].rstrip('/')
    for ok in ('127.0.0.1:' + port, 'localhost:' + port, 'localhost', '[::1]:' + port, '10.1.2.3:' + port):
        assert request(url, host=ok)[0] == 200, ok
    for bad in ('evil.example.com:' + port, 'evil.example.com', ''):
        status, _, body = request(url, host=bad)
        assert status == 403 and b'its own address' in body, bad
    h.kill()


def test_a_token_is_required_from_every_request(host_process):
    h, url = viewer(host_process, '127.0.0.1:0', '--http-token', TOKEN)
    for path in ('/', '/stats.json', '/frame/cam.jpg', '/stream/cam.mjpg'):
        status, _, body = request(url, path)
        assert status == 401 and b'token' in body, path
    assert request(url, '/stats.json?token=wrong' + TOKEN[5:])[0] == 401
    status, cookie, body = request(url, '/?token=' + TOKEN)
    assert status == 200 and b'<html' in body and cookie.startswith('nanolink_token=' + TOKEN)
    assert 'HttpOnly' in cookie and 'SameSite=Strict' in cookie
    assert request(url, '/stats.json', headers={'Cookie': 'nanolink_token=' + TOKEN})[0] == 200
    assert request(url, '/stats.json', headers={'Authorization': 'Bearer ' + TOKEN})[0] == 200
    h.kill()


@pytest.mark.parametrize('args, words', [
    (['--http-token', TOKEN], 'add --http HOST:PORT'),
    (['--http', '127.0.0.1:0', '--http-token', 'short'], '16-256 characters'),
])
def test_bad_token_arguments_exit_2(args, words):
    r = cli('nanolink.host.cli', *args)
    assert r.returncode == 2 and words in r.stderr and 'Traceback' not in r.stderr


def test_key_folders_are_private_even_under_umask_000(tmp_path):
    r = subprocess.run(['bash', '-c', 'umask 000 && {} -m nanolink.common.keys {} --edges cam1'.format(
        sys.executable, tmp_path / 'k')], stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True,
        timeout=60)
    assert r.returncode == 0, r.stderr
    for d in ('k', os.path.join('k', 'authorized')):
        assert os.stat(str(tmp_path / d)).st_mode & 0o777 == 0o700, d
    assert os.stat(str(tmp_path / 'k' / 'cam1.key_secret')).st_mode & 0o777 == 0o600
