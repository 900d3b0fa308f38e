"""nanolink-keys: CurveZMQ certificates for an encrypted, authenticated link (zmq.auth).

    nanolink-keys keys/ --edges cam1,cam2

writes ``keys/host.key`` + ``host.key_secret`` (the host), ``keys/<edge>.key`` + ``<edge>.key_secret`` for
each edge and ``keys/authorized/<edge>.key``, the host's allow-list of edge public keys. Then
``host-receiver --curve-keys keys/`` accepts only edges in ``authorized/``, and
``edge-sender --curve-keys keys/ --stream-id cam1`` uses ``cam1.key_secret`` and the host's public key.
Copy ``host.key``, ``cam1.key`` and ``cam1.key_secret`` to the Nano; secrets never leave their machine otherwise.
"""
import argparse
import os
import shutil
import sys

import zmq
import zmq.auth

from nanolink.common import cli as cliutil
from nanolink.common import wire
from nanolink.common.errors import NanolinkError

HOST = 'host'


def _load(path, secret):
    if not os.path.isfile(path):
        raise NanolinkError('--curve-keys: {} is missing; create keys with nanolink-keys'.format(path))
    public, secret_key = zmq.auth.load_certificate(path)
    if secret and secret_key is None:
        raise NanolinkError('--curve-keys: {} holds no secret key'.format(path))
    return public, secret_key


def host_options(folder):
    """Socket options for the host (CURVE server), the allow-list folder of edge public keys, and
    {public key (z85, ZeroMQ's User-Id of a CURVE peer): edge name} from the allow-list's file names: an edge may
    send only under its own name as stream id."""
    public, secret = _load(os.path.join(folder, HOST + '.key_secret'), True)
    allowed = os.path.join(folder, 'authorized')
    if not os.path.isdir(allowed):
        raise NanolinkError('--curve-keys: {} is missing (the allow-list of edge public keys)'.format(allowed))
    names = {}
    for fn in sorted(os.listdir(allowed)):
        if fn.endswith('.key'):
            key, _ = _load(os.path.join(allowed, fn), False)
            names[key.decode('ascii')] = fn[:-len('.key')]
    return [(zmq.CURVE_SERVER, 1), (zmq.CURVE_PUBLICKEY, public), (zmq.CURVE_SECRETKEY, secret)], allowed, names


def edge_options(folder, name):
    """Socket options for an edge (CURVE client) named ``name``."""
    public, secret = _load(os.path.join(folder, name + '.key_secret'), True)
    server, _ = _load(os.path.join(folder, HOST + '.key'), False)
    return [(zmq.CURVE_SERVERKEY, server), (zmq.CURVE_PUBLICKEY, public), (zmq.CURVE_SECRETKEY, secret)]


def create(folder, edges):
    if not zmq.has('curve'):
        raise NanolinkError('this libzmq has no CURVE support: install pyzmq from its wheels (they bundle it)')
    allowed = os.path.join(folder, 'authorized')
    os.makedirs(allowed, mode=0o700, exist_ok=True)     # whoever can write authorized/ can let an edge in
    for d in (folder, allowed):                          # (makedirs' mode is filtered by the umask, and kept for
        if os.stat(d).st_mode & 0o077:                   # folders that exist: set it either way)
            os.chmod(d, 0o700)
    made = []
    for name in [HOST] + list(edges):
        secret = os.path.join(folder, name + '.key_secret')
        if os.path.exists(secret):                      # never overwrite a key pair in use, but keep it private
            if os.stat(secret).st_mode & 0o077:
                os.chmod(secret, 0o600)
                print('nanolink-keys: {} was readable by others; now 0600'.format(secret), file=sys.stderr)
            continue
        old_umask = os.umask(0o077)                     # a secret key is for its owner's eyes only, from the
        try:                                            # moment it exists
            public, _ = zmq.auth.create_certificates(folder, name)
        finally:
            os.umask(old_umask)
        os.chmod(public, 0o644)                         # the public half is meant to be copied
        made.append(name)
        if name != HOST:
            shutil.copy(public, os.path.join(allowed, name + '.key'))
    return made


def main(argv=None):
    p = argparse.ArgumentParser(prog='nanolink-keys', description=__doc__.split('\n')[0])
    p.add_argument('folder', help='where to write the certificates')
    p.add_argument('--edges', default='edge', help='comma-separated edge names (their --stream-id; default: %(default)s)')
    args = p.parse_args(argv)
    edges = [e.strip() for e in args.edges.split(',') if e.strip()]
    if not edges or any(e == HOST for e in edges):
        p.error('--edges needs one or more names other than "host"')
    for e in edges:
        try:
            wire.check_stream_id(e)
        except wire.WireError as err:
            p.error('--edges {}: an edge name is its --stream-id: {}'.format(e, err.reason))
    try:
        try:
            made = create(args.folder, edges)
        except OSError as e:
            raise NanolinkError('{}: cannot write keys there ({}); give a folder path'.format(
                args.folder, e.strerror or e))
    except NanolinkError as e:
        return cliutil.fail('nanolink-keys', e)
    print('created {} in {} (existing key pairs kept)'.format(', '.join(made) or 'nothing new', args.folder))
    return 0


if __name__ == '__main__':
    sys.exit(main())
