"""Both CLIs as real subprocesses over real TCP sockets on 127.0.0.1."""
import json
import os
import subprocess
import sys
import time

import cv2
import msgpack
import numpy as np
import pytest
import zmq


from conftest import HostProcess, cli
from nanolink.common import metrics, wire, zoo
from nanolink.common.stages import EDGE_STAGES, END_TO_END, HOST_STAGES
from nanolink.common.transport import Sender

STREAM_PSNR_FLOOR = 21.0   # dB, the default bundled model on natural 768x512 frames (ae q75 measures ~28, cae-bin k8 ~24)


@pytest.mark.parametrize('module', ['nanolink.edge.cli', 'nanolink.host.cli', 'nanolink.host.demo'])
def test_help(module):
    r = cli(module, '--help')
    assert r.returncode == 0 and 'usage:' in r.stdout


@pytest.mark.parametrize('args, words', [
    (['--camera', 'synthetic', '--frames', 'x'], 'invalid int value'),
    (['--camera', 'synthetic', '--device', 'tpu'], 'invalid choice'),
    (['--frames', '3'], 'required: --camera'),
])
def test_bad_edge_arguments_exit_2(args, words):
    r = cli('nanolink.edge.cli', *args)
    assert r.returncode == 2 and words in r.stderr


@pytest.mark.parametrize('args, words', [
    (['--camera', 'synthetic', '--frames', '0'], '--frames must be at least 1'),
    (['--camera', 'synthetic', '--size', '12'], '--size must look like'),
    (['--camera', 'synthetic', '--stream-id', 'a b'], '--stream-id'),
    (['--camera', 'synthetic', '--connect', 'localhost:5555'], 'expected an endpoint'),
    (['--camera', 'synthetic', '--connect', 'tcp://127.0.0.1:99999'], 'a port in 1..65535'),
    (['--camera', 'synthetic', '--model', 'cae-bin', '--channels', '5'], 'has encoders for 4, 8, 16 channels'),
    (['--camera', 'synthetic', '--jpeg-quality', '101'], '--jpeg-quality must be in 1..100'),
    (['--camera', 'synthetic', '--channels', '8'], 'sets its rate with --jpeg-quality'),
    (['--camera', 'synthetic://4104x64'], '--camera synthetic:// 4104x64: width and height must be'),
    (['--camera', 'synthetic', '--threads', '-1'], '--threads must be in 0..256'),
    (['--camera', 'synthetic', '--send-timeout', '2147483648'], '--send-timeout must be in 0..2147483647'),
    (['--camera', 'synthetic', '--clock-offset', 'nan'], '--clock-offset must be'),
    (['--camera', 'synthetic', '--model', 'jpeg', '--device', 'cuda'], 'drop --device cuda'),
    (['--camera', 'synthetic', '--model', 'raw', '--jpeg-quality', '50'], 'takes no --jpeg-quality'),
    (['--camera', 'synthetic', '--model', 'nope'], 'no bundled model "nope"'),
])
def test_bad_edge_values_exit_2_with_one_line(args, words):
    r = cli('nanolink.edge.cli', *args)
    assert r.returncode == 2 and words in r.stderr
    assert 'Traceback' not in r.stderr and len(r.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize('args, words', [
    (['--camera', 'synthetic', '--engine', 'enc.bin'], 'unknown network file type'),
    (['--camera', 'no/such/clip%20x.mp4'], 'no such camera, file or folder'),
])
def test_missing_things_exit_1_with_one_line(args, words):
    r = cli('nanolink.edge.cli', *args)
    assert r.returncode == 1 and words in r.stderr
    assert 'Traceback' not in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_an_engine_of_another_model_than_model_is_refused():
    r = cli('nanolink.edge.cli', '--camera', 'synthetic', '--engine', os.path.join(zoo.WEIGHTS_DIR, 'cae-bin',
                                                                                  'cae-bin-enc-k8.onnx'), '--model', 'ae')
    assert r.returncode == 2 and 'holds model cae-bin, not --model ae' in r.stderr


def test_frames_too_large_for_the_wire_format_ask_for_size(tmp_path):
    cv2.imwrite(str(tmp_path / 'wide.png'), np.zeros((16, 4104, 3), np.uint8))
    r = cli('nanolink.edge.cli', '--camera', tmp_path / 'wide.png', '--frames', 1, '--connect', 'tcp://127.0.0.1:9')
    assert r.returncode == 1 and 'cannot send a 4104x16 frame' in r.stderr and '--size' in r.stderr
    assert 'Traceback' not in r.stderr
    r = cli('nanolink.edge.cli', '--camera', 'synthetic://2400x2400', '--model', 'raw', '--frames', 1,
            '--connect', 'tcp://127.0.0.1:9')        # within 4096, but over the 16 MiB every receiver refuses
    assert r.returncode == 1 and 'over the 16777216 byte limit' in r.stderr and '--size' in r.stderr
    r = cli('nanolink.edge.cli', '--camera', tmp_path / 'wide.png', '--frames', 1, '--size', '4096x16',
            '--connect', 'tcp://127.0.0.1:9')        # fits: encoded and queued, but no host ever answers there
    assert r.returncode == 1 and 'cannot send' not in r.stderr
    assert 'no host-receiver answered at tcp://127.0.0.1:9: none of the 1 frame reached one' in r.stderr


def test_the_users_card_command_parses_and_explains_what_is_missing(tmp_path):
    r = cli('nanolink.edge.cli', '--camera', '0', '--engine', 'cae.trt', cwd=str(tmp_path))
    assert r.returncode == 1 and 'Traceback' not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert 'cae.trt' in r.stderr and ('no such' in r.stderr or 'TensorRT' in r.stderr)
    (tmp_path / 'cae.trt').write_bytes(b'engine')        # the engine exists, but no TensorRT / CUDA here
    r = cli('nanolink.edge.cli', '--camera', '0', '--engine', 'cae.trt', cwd=str(tmp_path))
    assert r.returncode == 1 and 'TensorRT' in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_bad_host_arguments():
    r = cli('nanolink.host.cli', '--decoder', 'tensorflow')
    assert r.returncode == 2 and 'invalid choice' in r.stderr
    r = cli('nanolink.host.cli', '--bind', 'tcp://127.0.0.1:*', '--device', 'cuda', '--frames', '1')
    assert r.returncode == 1 and 'CUDA' in r.stderr and 'Traceback' not in r.stderr
    r = cli('nanolink.host.cli', '--bind', 'tcp://127.0.0.1:*', '--show', '--frames', '1', env=dict(os.environ, DISPLAY=''))
    assert r.returncode == 1 and '--show' in r.stderr and '--save' in r.stderr


def test_host_timeout_exits_non_zero(host_process):
    h = host_process('--timeout', '1', '--frames', '1')
    rc, err = h.wait(30)
    assert rc == 1 and 'no frame for 1 s' in err


def test_video_file_streams_in_order_with_every_stage_logged(tmp_path, video_file, host_process):
    n = 12
    h = host_process('--frames', n, '--save', tmp_path / 'out', '--log', tmp_path / 'host.jsonl', '--timeout', 60)
    r = cli('nanolink.edge.cli', '--camera', video_file, '--frames', n, '--connect', h.endpoint,
            '--log', tmp_path / 'edge.jsonl', '--stream-id', 'cam0')
    assert r.returncode == 0, r.stderr
    rc, err = h.wait()
    assert rc == 0, err
    edge = [json.loads(l) for l in open(str(tmp_path / 'edge.jsonl'))]
    host = [json.loads(l) for l in open(str(tmp_path / 'host.jsonl'))]
    assert [e['seq'] for e in edge] == list(range(n)) == [x['seq'] for x in host]
    for e, x in zip(edge, host):
        assert set(e['stages']) == set(EDGE_STAGES)
        assert set(x['stages']) == set(HOST_STAGES) | {END_TO_END}
        assert e['bytes'] == x['bytes'] and x['stream'] == 'cam0' and (x['width'], x['height']) == (768, 512)
        assert {'capture', 'preprocess', 'encode', 'gpu_to_cpu'} <= set(x['sender_stages'])
    assert set(host[-1]['sender_stages']) == set(EDGE_STAGES)   # serialise/send arrive one frame late
    assert '0 lost' in err and '0 rejected' in err
    cap = cv2.VideoCapture(video_file)
    psnrs = []
    for seq in range(n):
        ok, src = cap.read()
        dec = cv2.imread(str(tmp_path / 'out' / 'cam0' / '{:08d}.png'.format(seq)))
        assert dec.shape == src.shape
        psnrs.append(metrics.psnr(src, dec))
    assert np.mean(psnrs) >= STREAM_PSNR_FLOOR
    assert np.mean([x['bytes'] * 8.0 / (768 * 512) for x in host]) <= 0.51


def test_receiver_counts_malformed_messages_and_keeps_decoding(tmp_path, host_process, sample_frame):
    h = host_process('--frames', 2, '--log', tmp_path / 'host.jsonl', '--timeout', 30)
    info = zoo.bundled_model('cae-bin')
    payload = bytes(8 * 2 * 2 // 8)
    good = wire.pack(wire.Frame(stream='s', seq=0, t_cap=time.time(), model='cae-bin', fp=info.fingerprint, shape=(8, 2, 2),
                                size=(8, 8), payload=payload, stages={}))
    # the mismatch first: the receiver logs at most 5 rejections a second and summarises the rest
    junk = [good.replace(info.fingerprint.encode(), b'0000000000000000'), b'', b'\xc1\xc1', os.urandom(300),
            good[:-3], msgpack.packb({'v': 9})]
    ctx = zmq.Context()
    with Sender(h.endpoint, context=ctx) as tx:
        for m in junk:
            assert tx.send(m)
        tx.socket.send_multipart([good, b'extra'])
        assert tx.send(good)
        assert tx.send(wire.pack(wire.Frame(stream='s', seq=1, t_cap=time.time(), model='cae-bin', fp=info.fingerprint,
                                            shape=(8, 2, 2), size=(8, 8), payload=payload, stages={})))
        rc, err = h.wait()
    ctx.term()
    assert rc == 0, err
    assert '2 decoded, 7 rejected of 9 received' in err
    assert 'refusing stream s: model cae-bin with fingerprint 0000000000000000' in err
    assert 'Traceback' not in err


@pytest.mark.skipif(not os.environ.get('NANOLINK_PY36_EDGE'),
                    reason='no Python 3.6 edge-sender: scripts/test.sh sets NANOLINK_PY36_EDGE when pyenv has a 3.6')
@pytest.mark.parametrize('model', [[], ['--model', 'cae', '--quality', '2']], ids=['default', 'cae'])
def test_python36_edge_sender_streams_to_this_host(tmp_path, video_file, host_process, model):
    edge = os.environ['NANOLINK_PY36_EDGE']
    py = os.path.join(os.path.dirname(edge), 'python')
    version = subprocess.run([py, '-c', 'import sys; print("%d.%d" % sys.version_info[:2])'],
                             stdout=subprocess.PIPE, universal_newlines=True).stdout.strip()
    assert version == '3.6'
    h = host_process('--frames', 8, '--timeout', 60, '--log', tmp_path / 'host.jsonl')
    r = subprocess.run([edge, '--camera', video_file, '--frames', '8', '--connect', h.endpoint, '--stream-id', 'py36']
                       + model, stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, timeout=120)
    assert r.returncode == 0, r.stderr
    rc, err = h.wait()
    assert rc == 0 and '8 decoded, 0 rejected of 8 received' in err, err
    rows = [json.loads(l) for l in open(str(tmp_path / 'host.jsonl'))]
    assert [row['seq'] for row in rows] == list(range(8))
    assert {row['model'] for row in rows} == {model[1] if model else zoo.DEFAULT_MODEL}


def test_curve_keys_let_only_authorised_edges_in(tmp_path, host_process):
    keydir = tmp_path / 'keys'
    r = cli('nanolink.common.keys', keydir, '--edges', 'cam1')
    assert r.returncode == 0 and (keydir / 'authorized' / 'cam1.key').exists()
    stranger = tmp_path / 'stranger'                         # a valid key pair the host has never seen
    assert cli('nanolink.common.keys', stranger, '--edges', 'cam1').returncode == 0
    import shutil
    shutil.copy(str(keydir / 'host.key'), str(stranger / 'host.key'))   # knows the host, not in its allow-list
    h = host_process('--curve-keys', keydir, '--frames', 3, '--timeout', 20, '--log', tmp_path / 'host.jsonl')
    r = cli('nanolink.edge.cli', '--camera', 'synthetic://128x96', '--frames', 3, '--connect', h.endpoint,
            '--curve-keys', stranger, '--stream-id', 'cam1', '--quiet')
    assert r.returncode == 1 and 'no host-receiver answered' in r.stderr   # it runs, but nothing gets in,
    assert '--curve-keys on both sides' in r.stderr                         # and it says so
    time.sleep(1.0)
    assert not (tmp_path / 'host.jsonl').read_text()
    r = cli('nanolink.edge.cli', '--camera', 'synthetic://128x96', '--frames', 3, '--connect', h.endpoint,
            '--curve-keys', keydir, '--stream-id', 'cam1', '--quiet')
    assert r.returncode == 0, r.stderr
    rc, err = h.wait()
    assert rc == 0 and '3 decoded, 0 rejected of 3 received' in err
    r = cli('nanolink.edge.cli', '--camera', 'synthetic', '--curve-keys', keydir, '--stream-id', 'nobody')
    assert r.returncode == 1 and 'nobody.key_secret is missing' in r.stderr


def test_sigint_and_sigterm_stop_both_sides_cleanly_with_a_summary(tmp_path, host_process):
    import signal
    import sys
    h = host_process('--log', tmp_path / 'host.jsonl')
    edge = subprocess.Popen([sys.executable, '-m', 'nanolink.edge.cli', '--camera', 'synthetic://256x192',
                             '--connect', h.endpoint, '--fps', '20', '--log', str(tmp_path / 'edge.jsonl')],
                            stderr=subprocess.PIPE, universal_newlines=True)
    deadline = time.time() + 30
    while time.time() < deadline and not ((tmp_path / 'host.jsonl').exists() and
                                          len((tmp_path / 'host.jsonl').read_text().splitlines()) >= 5):
        time.sleep(0.2)
    edge.send_signal(signal.SIGINT)
    _, err = edge.communicate(timeout=30)
    assert edge.returncode == 0 and 'edge-sender:' in err and 'frames in' in err and 'Traceback' not in err
    h.proc.send_signal(signal.SIGTERM)
    rc, err = h.wait(30)
    assert rc == 0 and 'decoded' in err and 'stream edge:' in err
    sent = len((tmp_path / 'edge.jsonl').read_text().splitlines())
    assert sent >= 5 and len((tmp_path / 'host.jsonl').read_text().splitlines()) >= 5


def test_many_edges_into_one_host_with_per_stream_tracking_logs_and_folders(tmp_path, host_process):
    n = 6
    h = host_process('--frames', 3 * n, '--timeout', 60, '--save', tmp_path / 'out',
                     '--log', str(tmp_path / 'logs' / '{stream}.jsonl'))
    edges = [subprocess.Popen([sys.executable, '-m', 'nanolink.edge.cli', '--camera', 'synthetic://160x120',
                               '--frames', str(n), '--connect', h.endpoint, '--stream-id', name, '--quiet'],
                              stderr=subprocess.PIPE, universal_newlines=True) for name in ('cam-a', 'cam-b', 'cam-c')]
    for e in edges:
        assert e.wait(60) == 0, e.stderr.read()
    rc, err = h.wait()
    assert rc == 0, err
    for name in ('cam-a', 'cam-b', 'cam-c'):
        assert 'stream {}: {} frames, 0 lost, 0 reordered'.format(name, n) in err
        rows = [json.loads(l) for l in open(str(tmp_path / 'logs' / (name + '.jsonl')))]
        assert [r['seq'] for r in rows] == list(range(n)) and {r['stream'] for r in rows} == {name}
        assert sorted(os.listdir(str(tmp_path / 'out' / name))) == ['{:08d}.png'.format(i) for i in range(n)]


def test_latest_mode_with_real_processes_delivers_the_newest_frame(tmp_path):
    import socket
    s = socket.socket()
    s.bind(('127.0.0.1', 0))
    port = s.getsockname()[1]
    s.close()
    endpoint = 'tcp://127.0.0.1:{}'.format(port)
    edge = subprocess.Popen([sys.executable, '-m', 'nanolink.edge.cli', '--camera', 'synthetic://160x120', '--latest',
                             '--frames', '400', '--fps', '20', '--connect', endpoint, '--quiet'],
                            stderr=subprocess.PIPE, universal_newlines=True)
    time.sleep(1.5)                                   # the edge streams into a queue of one while no host runs
    host = HostProcess('--latest', '--frames', 2, '--timeout', 30, '--log', tmp_path / 'h.jsonl', bind=endpoint)
    rc, err = host.wait(60)
    edge.kill()
    edge.wait()
    assert rc == 0, err
    first = json.loads(open(str(tmp_path / 'h.jsonl')).readline())['seq']
    assert first >= 5, first                          # not frame 0: older frames were dropped, the newest kept


def test_classical_baselines_stream_through_the_same_clis(tmp_path, host_process, sample_frame):
    """edge-sender --model raw / --model jpeg into one host-receiver: raw frames arrive bit-exact, JPEG frames
    equal OpenCV's at that quality, and a hostile JPEG header is rejected and counted, not decoded."""
    import struct
    from nanolink.common.classical import classical_info
    sof = b'\xff\xc0' + struct.pack('>HBHHB', 11, 8, 60000, 60000, 1) + b'\x01\x11\x00'
    hostile = wire.pack(wire.Frame(stream='evil', seq=0, t_cap=time.time(), model='jpeg', dtype='jpeg',
                                   fp=classical_info('jpeg').fingerprint, shape=(3, 8, 8), size=(8, 8),
                                   payload=b'\xff\xd8' + sof, stages={}))
    src = tmp_path / 'src'
    src.mkdir()
    cv2.imwrite(str(src / 'a.png'), sample_frame)
    h = host_process('--frames', 4, '--save', tmp_path / 'out', '--timeout', 60, '--log', tmp_path / 'host.jsonl')
    ctx = zmq.Context()
    with Sender(h.endpoint, context=ctx) as tx:
        assert tx.send(hostile)
    ctx.term()
    for model, extra in (('raw', []), ('jpeg', ['--jpeg-quality', '40'])):
        r = cli('nanolink.edge.cli', '--camera', src, '--model', model, '--frames', 2, '--loop', '--connect',
                h.endpoint, '--stream-id', model, '--quiet', *extra)
        assert r.returncode == 0, r.stderr
    rc, err = h.wait()
    assert rc == 0, err
    assert '4 decoded, 1 rejected of 5 received' in err and 'Traceback' not in err
    raw = cv2.imread(str(tmp_path / 'out' / 'raw' / '00000001.png'))
    np.testing.assert_array_equal(raw, sample_frame)
    jpg = cv2.imread(str(tmp_path / 'out' / 'jpeg' / '00000000.png'))
    ref = cv2.imdecode(cv2.imencode('.jpg', sample_frame, [cv2.IMWRITE_JPEG_QUALITY, 40])[1], cv2.IMREAD_COLOR)
    np.testing.assert_array_equal(jpg, ref)


def test_message_over_the_socket_limit_drops_only_its_connection_and_is_counted(tmp_path, host_process):
    """A 40 MiB message exceeds ZMQ_MAXMSGSIZE (32 MiB): ZeroMQ closes that connection without delivering it;
    the receiver counts the closed connection, keeps running and decodes the edge's next frames."""
    h = host_process('--frames', 2, '--timeout', 30, '--log', tmp_path / 'host.jsonl')
    info = zoo.bundled_model('cae-bin')

    def frame(seq):
        return wire.pack(wire.Frame(stream='s', seq=seq, t_cap=time.time(), model='cae-bin', fp=info.fingerprint,
                                    shape=(8, 2, 2), size=(8, 8), payload=bytes(4), stages={}))
    ctx = zmq.Context()
    with Sender(h.endpoint, context=ctx, linger_ms=0) as tx:
        assert tx.send(b'\x00' * (40 << 20))
        time.sleep(1.0)                                  # the host drops the connection; the edge reconnects
        seq = 0
        while h.proc.poll() is None and seq < 50:
            tx.send(frame(seq))
            seq += 1
            time.sleep(0.2)
        rc, err = h.wait()
    ctx.term()
    assert rc == 0, err
    assert '2 decoded, 0 rejected' in err and 'Traceback' not in err
    closed = int(err.split(' accepted, ')[1].split()[0])
    accepted = int(err.split('connections: ')[1].split()[0])
    assert closed >= 1 and accepted >= 2, err


@pytest.mark.parametrize('model, qualities', [('ae', (50, 90)), ('ae-full', (10, 50))])
def test_ae_streams_with_its_jpeg_quality_through_the_clis(tmp_path, host_process, sample_frame, model, qualities):
    src = tmp_path / 'src'
    src.mkdir()
    cv2.imwrite(str(src / 'a.png'), sample_frame[:301, :457])
    h = host_process('--frames', 4, '--save', tmp_path / 'out', '--timeout', 60, '--log', tmp_path / 'host.jsonl')
    for q in qualities:
        r = cli('nanolink.edge.cli', '--camera', src, '--model', model, '--jpeg-quality', q, '--frames', 2, '--loop',
                '--connect', h.endpoint, '--stream-id', 'q{}'.format(q), '--quiet')
        assert r.returncode == 0, r.stderr
    rc, err = h.wait()
    assert rc == 0, err
    low, high = [cv2.imread(str(tmp_path / 'out' / 'q{}'.format(q) / '00000001.png')) for q in qualities]
    assert low.shape == high.shape == (301, 457, 3)
    assert 18 < metrics.psnr(sample_frame[:301, :457], low) < metrics.psnr(sample_frame[:301, :457], high)
    rows = [json.loads(l) for l in open(str(tmp_path / 'host.jsonl'))]
    assert set(r['model'] for r in rows) == {model}
    bpp = {r['stream']: r['bytes'] * 8.0 / (301 * 457) for r in rows}
    assert bpp['q{}'.format(qualities[0])] < bpp['q{}'.format(qualities[1])]
    r = cli('nanolink.edge.cli', '--camera', src, '--model', model, '--channels', 8, '--frames', 1)
    assert r.returncode == 2 and '--jpeg-quality' in r.stderr


def test_zlib_entropy_coding_sends_fewer_bytes_and_decodes_the_same_frame(tmp_path, host_process, sample_frame):
    src = tmp_path / 'src'
    src.mkdir()
    cv2.imwrite(str(src / 'a.png'), sample_frame)
    h = host_process('--frames', 2, '--save', tmp_path / 'out', '--timeout', 60, '--log', tmp_path / 'host.jsonl')
    for mode in ('zlib', 'none'):
        r = cli('nanolink.edge.cli', '--camera', src, '--model', 'cae-bin', '--entropy', mode, '--frames', 1,
                '--connect', h.endpoint,
                '--stream-id', mode, '--quiet', '--log', tmp_path / 'edge-{}.jsonl'.format(mode))
        assert r.returncode == 0, r.stderr
    rc, err = h.wait()
    assert rc == 0, err
    a, b = [cv2.imread(str(tmp_path / 'out' / m / '00000000.png')) for m in ('zlib', 'none')]
    np.testing.assert_array_equal(a, b)
    size = {json.loads(l)['stream']: json.loads(l)['bytes'] for l in open(str(tmp_path / 'host.jsonl'))}
    assert size['zlib'] < 0.9 * size['none']
    edge = json.loads(open(str(tmp_path / 'edge-zlib.jsonl')).readline())
    assert edge['stages']['entropy'] > 0


def test_quality_decoder_variant_decodes_the_same_stream_better(tmp_path, host_process, sample_frame):
    src = tmp_path / 'src'
    src.mkdir()
    cv2.imwrite(str(src / 'a.png'), sample_frame)
    fp, ae_fp = zoo.bundled_model('cae-bin').fingerprint, zoo.bundled_model('ae').fingerprint
    for variant in ('fast', 'quality'):
        h = host_process('--frames', 1, '--save', tmp_path / variant, '--timeout', 60, '--decoder-variant', variant,
                         '--log', tmp_path / '{}.jsonl'.format(variant))
        r = cli('nanolink.edge.cli', '--camera', src, '--model', 'cae-bin', '--frames', 1, '--connect', h.endpoint,
                '--stream-id', 's', '--quiet')                   # the same edge command: the same bits
        assert r.returncode == 0, r.stderr
        rc, err = h.wait()
        assert rc == 0, err
        assert 'model cae-bin (fingerprint {}): {} decoder'.format(fp, variant) in err
        assert 'model ae (fingerprint {}): {} decoder'.format(ae_fp, variant) in err
        row = json.loads(open(str(tmp_path / '{}.jsonl'.format(variant))).readline())
        assert row['model'] == 'cae-bin' and row['decoder'] == variant
    fast, quality = [cv2.imread(str(tmp_path / v / 's' / '00000000.png')) for v in ('fast', 'quality')]
    assert metrics.psnr(sample_frame, quality) > metrics.psnr(sample_frame, fast) + 0.3
    r = cli('nanolink.host.cli', '--bind', 'tcp://127.0.0.1:*', '--model', 'jpeg', '--decoder-variant', 'quality',
            '--frames', 1)
    assert r.returncode == 2 and 'none of the models loaded here (jpeg) ships a quality decoder' in r.stderr
    r = cli('nanolink.host.cli', '--decoder-variant', 'best')
    assert r.returncode == 2 and 'invalid choice' in r.stderr


def test_ctrl_c_stops_an_edge_that_waits_for_its_host(tmp_path):
    """--send-timeout 0 waits for the host as long as it takes -- but Ctrl-C still stops it, with a summary."""
    import signal
    p = subprocess.Popen([sys.executable, '-m', 'nanolink.edge.cli', '--camera', 'synthetic://64x48', '--send-timeout',
                          '0', '--connect', 'tcp://127.0.0.1:9', '--quiet'], stderr=subprocess.PIPE,
                         universal_newlines=True)
    time.sleep(3.0)                                   # the queue (64 frames) is full: the sender is waiting
    assert p.poll() is None
    t0 = time.time()
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=20)
    assert time.time() - t0 < 5, 'Ctrl-C took {:.1f} s'.format(time.time() - t0)
    assert 'stopped while waiting for the host' in err and 'frames in' in err
    assert p.returncode == 1 and 'no host-receiver answered' in err and 'Traceback' not in err


def test_fps_does_not_wait_after_the_last_frame(host_process):
    h = host_process('--frames', 1, '--timeout', 30, '--quiet')
    t0 = time.time()
    r = cli('nanolink.edge.cli', '--camera', 'synthetic://64x48', '--frames', 1, '--fps', 0.2, '--connect',
            h.endpoint, '--quiet')
    assert r.returncode == 0, r.stderr
    assert time.time() - t0 < 4.0            # not the 5 s one more frame interval at 0.2 fps would take
    assert h.wait()[0] == 0


def test_capture_times_ahead_of_the_host_clock_are_flagged_not_zero(host_process, tmp_path):
    h = host_process('--frames', 3, '--timeout', 30, '--log', tmp_path / 'h.jsonl')
    r = cli('nanolink.edge.cli', '--camera', 'synthetic://64x48', '--frames', 3, '--clock-offset', 30,
            '--connect', h.endpoint, '--quiet')
    assert r.returncode == 0, r.stderr
    rc, err = h.wait()
    assert rc == 0, err
    import re
    ahead = re.findall(r"capture times are ([0-9.]+) s ahead of this host's clock", err)
    assert len(ahead) == 1 and 0 < float(ahead[0]) <= 30.0, err      # one warning; 30 s less the time in transit
    assert '3 frames had capture times ahead of this host\'s clock' in err                  # and the summary
    assert 'end_to_end' not in err.split('stage')[-1]                 # no 0 ms end_to_end row in the table
    rows = [json.loads(l) for l in open(str(tmp_path / 'h.jsonl'))]
    assert rows and all(END_TO_END not in r['stages'] for r in rows)


def test_timeout_after_rejected_messages_says_so_and_prints_the_summary(host_process):
    h = host_process('--model', 'cae-bin', '--timeout', 20)          # long enough for a loaded machine's edge
    r = cli('nanolink.edge.cli', '--camera', 'synthetic://64x48', '--frames', 2, '--model', 'ae', '--connect',
            h.endpoint, '--quiet')
    assert r.returncode == 0, r.stderr
    rc, err = h.wait()
    assert rc == 1
    assert 'host-receiver: 0 decoded, 2 rejected of 2 received' in err                     # the summary, first
    assert 'no frame decoded for 20 s: 2 messages arrived and were rejected' in err and 'unknown model' in err


def test_bind_to_an_address_not_on_this_machine_says_so():
    r = cli('nanolink.host.cli', '--bind', 'tcp://256.1.1.1:5555', '--frames', 1)
    assert r.returncode == 1 and 'bind to an address of this machine' in r.stderr
    assert 'another host-receiver' not in r.stderr
    r = cli('nanolink.host.cli', '--bind', 'tcp://127.0.0.1:70000', '--frames', 1)
    assert r.returncode == 2 and 'a port in 1..65535' in r.stderr


def test_record_goes_on_when_the_codec_refuses_one_streams_size(host_process, tmp_path, sample_frame):
    cv2.imwrite(str(tmp_path / 'tiny.png'), sample_frame[:1, :1])
    cv2.imwrite(str(tmp_path / 'odd.png'), sample_frame[:63, :97])
    h = host_process('--frames', 14, '--timeout', 120, '--record', tmp_path / 'rec' / '{stream}.mp4')
    for name, n in (('tiny', 2), ('odd', 12)):
        r = cli('nanolink.edge.cli', '--camera', tmp_path / '{}.png'.format(name), '--loop', '--frames', n,
                '--stream-id', name, '--connect', h.endpoint, '--quiet')
        assert r.returncode == 0, r.stderr
    rc, err = h.wait()
    assert rc == 0, err
    assert 'not recording stream tiny' in err and 'refuses 1x1 frames' in err
    assert 'not recorded: {} (2 frames of 1x1'.format(tmp_path / 'rec' / 'tiny.mp4') in err
    assert 'gets 97x63 frames; video encoders keep even sizes' in err
    cap = cv2.VideoCapture(str(tmp_path / 'rec' / 'odd.mp4'))
    n = 0
    while cap.read()[0]:
        n += 1
    assert n == 12


def test_keys_are_private_and_edge_names_are_stream_ids(tmp_path):
    r = cli('nanolink.common.keys', tmp_path / 'k', '--edges', 'cam1')
    assert r.returncode == 0, r.stderr
    for name in ('host.key_secret', 'cam1.key_secret'):
        assert os.stat(str(tmp_path / 'k' / name)).st_mode & 0o777 == 0o600, name
    assert os.stat(str(tmp_path / 'k' / 'cam1.key')).st_mode & 0o077 == 0o044          # public: readable
    for bad in ('../evil', 'bad id!'):
        r = cli('nanolink.common.keys', tmp_path / 'k2', '--edges', bad)
        assert r.returncode == 2 and 'an edge name is its --stream-id' in r.stderr
    assert not (tmp_path / 'evil.key_secret').exists() and not (tmp_path / 'k2').exists()
    (tmp_path / 'file').write_text('x')
    r = cli('nanolink.common.keys', tmp_path / 'file', '--edges', 'cam1')
    assert r.returncode == 1 and 'cannot write keys there' in r.stderr and 'Traceback' not in r.stderr


def test_an_edge_whose_host_goes_away_says_how_many_frames_never_left(host_process):
    h = host_process('--frames', 5, '--timeout', 30, '--quiet')
    r = cli('nanolink.edge.cli', '--camera', 'synthetic://96x64', '--frames', 20, '--fps', 10, '--connect',
            h.endpoint, '--quiet')
    assert h.wait()[0] == 0
    assert r.returncode == 1 and 'went away and did not come back' in r.stderr
    n = int(r.stderr.split('did not come back: ')[1].split()[0])
    assert n == 15, r.stderr                 # 20 sent, 5 decoded and acknowledged: exactly 15 unconfirmed


def test_ipv6_endpoints(host_process):
    try:
        h = host_process('--frames', 1, '--timeout', 30, bind='tcp://[::1]:*')
    except AssertionError as e:
        pytest.skip('no IPv6 loopback here: {}'.format(e))
    r = cli('nanolink.edge.cli', '--camera', 'synthetic://64x48', '--frames', 1, '--connect', h.endpoint, '--quiet')
    assert r.returncode == 0, r.stderr
    assert h.wait()[0] == 0


def test_a_torch_file_that_is_not_a_checkpoint_is_one_line(tmp_path):
    torch = pytest.importorskip('torch')
    (tmp_path / 'rand.pt').write_bytes(os.urandom(5000))
    torch.save({'x': 1}, str(tmp_path / 'dict.pt'))
    torch.save([1, 2], str(tmp_path / 'list.pt'))
    for name in ('rand.pt', 'dict.pt', 'list.pt'):
        r = cli('nanolink.edge.cli', '--camera', 'synthetic://64x48', '--engine', tmp_path / name, '--frames', 1)
        assert r.returncode == 1 and 'not a nanolink checkpoint' in r.stderr and 'Traceback' not in r.stderr, name
        r = cli('nanolink.export.onnx_export', '--checkpoint', tmp_path / name, '--out', tmp_path / 'x')
        assert r.returncode == 1 and 'not a nanolink checkpoint' in r.stderr and 'Traceback' not in r.stderr, name


def test_existing_world_readable_secrets_are_made_private(tmp_path):
    assert cli('nanolink.common.keys', tmp_path / 'k', '--edges', 'cam1').returncode == 0
    os.chmod(str(tmp_path / 'k' / 'cam1.key_secret'), 0o644)
    r = cli('nanolink.common.keys', tmp_path / 'k', '--edges', 'cam1,cam3')
    assert r.returncode == 0 and 'was readable by others; now 0600' in r.stderr
    assert os.stat(str(tmp_path / 'k' / 'cam1.key_secret')).st_mode & 0o777 == 0o600
