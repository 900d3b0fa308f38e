"""Both CLIs as real subprocesses over real TCP sockets on 127.0.0.1."""
import json
import os
import subprocess
import time

import cv2
import msgpack
import numpy as np
import pytest
import zmq


from conftest import CAE_QUALITIES, cli
from nanolink.common import metrics, wire, zoo
from nanolink.common.stages import EDGE_STAGES, END_TO_END, HOST_STAGES

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
    (['--camera', 'synthetic', '--model', 'ae', '--channels', '8'], 'sets its rate with --jpeg-quality'),
    (['--camera', 'synthetic', '--model', 'ae', '--quality', '2'], 'ae takes --jpeg-quality'),
    (['--camera', 'synthetic', '--model', 'ae-full', '--quality', '2'], 'ae-full takes --jpeg-quality'),
    (['--camera', 'synthetic', '--channels', '8'], 'cae sets its rate with --quality ' + CAE_QUALITIES),
    (['--camera', 'synthetic', '--fps', '1e-10'], '--fps must be a finite number of frames per second, at least'),
    (['--camera', 'csi://x'], 'a CSI camera is csi://N with N a sensor number'),
    (['--camera', 'synthetic://4104x64'], '--camera synthetic://4104x64: width and height must be'),
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


def test_an_onnx_engine_that_is_not_onnx_is_refused_in_one_line(tmp_path):
    """onnxruntime's own exception types (InvalidProtobuf, InvalidArgument, ...) become one line, exit 1."""
    for name, data in (('junk.onnx', b'not a model'), ('empty.onnx', b'')):
        (tmp_path / name).write_bytes(data)
        r = cli('nanolink.edge.cli', '--camera', 'synthetic', '--frames', 1, '--engine', tmp_path / name)
        assert r.returncode == 1 and 'cannot load ONNX model' in r.stderr and name in r.stderr, r.stderr
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


@pytest.mark.parametrize('text, words', [
    (b'{', 'not JSON'), (b'[]', 'a JSON list, not an object'), (b'{"model": "cae"}', 'no "name"'),
    (b'\xff\xfe', 'not JSON'), (b'[' * 100000, 'not JSON'),
] + [(b'{"name": "cae", "fingerprint": "0", "stride": 16, "multiple": 16, "channels": 1, "rate_points": [1], '
      b'"default_channels": 1, ' + bad + b'}', 'not a valid model manifest') for bad in (
          b'"stride": "x"', b'"stride": Infinity', b'"stride": 1e400', b'"stride": 4.9', b'"rate_points": "48"',
          b'"rate_points": []', b'"name": null', b'"channels": 0', b'"files": []')])
def test_a_model_dir_that_is_not_an_export_is_refused_in_one_line(tmp_path, text, words):
    (tmp_path / 'manifest.json').write_bytes(text)
    for where in (tmp_path, tmp_path / 'manifest.json'):
        r = cli('nanolink.host.cli', '--model-dir', where, '--bind', 'tcp://127.0.0.1:*', '--timeout', '1')
        assert r.returncode == 1 and words in r.stderr and 'nanolink-export' in r.stderr, r.stderr
        assert 'Traceback' not in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_host_timeout_exits_non_zero(host_process):
    h = host_process('--timeout', '1', '--frames', '1')
    rc, err = h.wait(30)
    assert rc == 1 and 'no frame for 1 s' in err


def test_an_edge_whose_frames_the_host_refuses_says_why_and_exits_1(host_process):
    """The host decodes cae only; an edge sending ae is refused frame by frame: the edge logs the reason once,
    lists the refused frames at the end and exits 1, where it used to report a clean run."""
    h = host_process('--model', 'cae', '--timeout', '5')
    r = cli('nanolink.edge.cli', '--camera', 'synthetic://64x64', '--frames', 4, '--model', 'ae', '--connect',
            h.endpoint)
    assert r.returncode == 1, r.stderr
    assert r.stderr.count("host-receiver refused frame") == 1 and "unknown model 'ae'" in r.stderr
    assert "took 4 of the 4 frames but did not decode them (0-3): unknown model 'ae'; this receiver decodes " \
           "['cae'] (4)" in r.stderr and 'Traceback' not in r.stderr
    rc, err = h.wait()
    assert rc == 1 and "mostly: unknown model 'ae'; this receiver decodes ['cae'] (4)" in err


def test_an_edge_reports_refused_and_unacknowledged_frames_both():
    """A host that refuses frame 0, takes 1-4 without a word and goes away: the edge names both, exit 1."""
    import threading
    from nanolink.common.transport import Receiver as HostLink
    host = HostLink('tcp://127.0.0.1:*')
    got = []

    def serve():
        deadline = time.time() + 60
        while len(got) < 5 and time.time() < deadline:
            m = host.recv(0.1)
            ids = wire.peek_ids(m) if m is not None else None
            if ids:
                got.append(ids[1])
                if ids[1] == 0:
                    host.ack(ids[0], 0, refused='not this one')
        host.close()
    t = threading.Thread(target=serve, daemon=True)
    t.start()
    r = cli('nanolink.edge.cli', '--camera', 'synthetic://32x32', '--frames', 5, '--model', 'raw', '--connect',
            host.endpoint)
    t.join(60)
    assert sorted(got) == [0, 1, 2, 3, 4] and r.returncode == 1, r.stderr
    assert 'took 1 of the 5 frames but did not decode them (0): not this one (1)' in r.stderr
    assert 'went away and did not come back: 4 frames were never acknowledged' in r.stderr


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
    assert np.mean([x['bytes'] * 8.0 / (768 * 512) for x in host]) <= 0.8     # cae quality 3 on photos: ~0.5-0.6


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
    raw = ctx.socket(zmq.DEALER)             # one connection, in this order; acknowledgements are left unread
    raw.connect(h.endpoint)
    for m in junk:
        raw.send(m)
    raw.send_multipart([good, b'extra'])
    raw.send(good)
    raw.send(wire.pack(wire.Frame(stream='s', seq=1, t_cap=time.time(), model='cae-bin', fp=info.fingerprint,
                                  shape=(8, 2, 2), size=(8, 8), payload=payload, stages={})))
    rc, err = h.wait()
    raw.close(0)
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
    h = host_process('--curve-keys', keydir, '--frames', 3, '--timeout', 120, '--log', tmp_path / 'host.jsonl')
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
