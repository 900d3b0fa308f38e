"""The Python API (import nanolink) on real sockets, pyzmq-test style: random ports on 127.0.0.1, a timeout on every
receive; and the three examples, run as a user would."""
import os
import re
import subprocess
import sys
import threading
import time

import cv2
import numpy as np
import pytest

import nanolink
from conftest import CAE_QUALITIES, cli
from nanolink.common import metrics, zoo

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SAMPLE = sorted(os.path.join(zoo.SAMPLE_DIR, f) for f in os.listdir(zoo.SAMPLE_DIR) if f.endswith('.jpg'))


def test_sender_to_receiver_in_one_process():
    frames = [cv2.imread(p) for p in SAMPLE[:3]]
    with nanolink.Receiver('tcp://127.0.0.1:*', models=['cae']) as rx:
        with nanolink.Sender(rx.endpoint, model='cae', quality=2, stream_id='api') as tx:
            sent = [tx.send(f) for f in frames]
            got = [rx.recv(timeout=60) for _ in frames]
        assert tx.link.undelivered == 0 and all(s.delivered for s in sent)
        assert [g.seq for g in got] == [0, 1, 2] and {g.stream for g in got} == {'api'}
        for f, g in zip(frames, got):
            assert g.image.shape == f.shape and g.image.dtype == np.uint8
            assert metrics.psnr(f, g.image) > 24
            assert g.session == tx.session and set(g.timings) >= {'receive', 'deserialise', 'decode', 'postprocess'}
            assert {'preprocess', 'encode', 'entropy'} <= set(g.stages)
        assert rx.recv(timeout=0.2) is None                     # nothing more: a timeout, not a hang


def test_receive_timeout_and_rejections_never_raise():
    import zmq
    with nanolink.Receiver('tcp://127.0.0.1:*', models=['jpeg']) as rx:
        ctx = zmq.Context()
        s = ctx.socket(zmq.DEALER)
        s.connect(rx.endpoint)
        s.send(b'not a frame')
        deadline = time.time() + 30
        while rx.rejects.total == 0 and time.time() < deadline:
            assert rx.recv(timeout=0.2) is None
        assert rx.rejects.total == 1
        s.close(0)
        ctx.term()


def test_iteration_stops_with_the_stop_event():
    stop = threading.Event()
    with nanolink.Receiver('tcp://127.0.0.1:*', models=['jpeg'], stop=stop) as rx:
        t = threading.Timer(0.5, stop.set)
        t.start()
        assert list(rx) == []
        t.join()


def test_codec_encode_decode_without_sockets():
    img = cv2.imread(SAMPLE[0])
    for model, opts in (('cae', {'quality': 4}), ('ae', {'jpeg_quality': 75}), ('jpeg', {'jpeg_quality': 50})):
        with nanolink.open_codec(model, **opts) as codec:
            data = codec.encode(img)
            out = codec.decode(data)
            assert isinstance(data, bytes) and out.shape == img.shape and metrics.psnr(img, out) > 24, model
    with nanolink.open_codec('cae') as codec:                      # what is not a message is refused, by name
        for bad in (b'xxxx', data[:len(data) // 2]):
            with pytest.raises(nanolink.WireError) as e:
                codec.decode(bad)
            assert e.value.reason and isinstance(e.value, ValueError)
    assert 'WireError' in nanolink.__all__


def test_bad_arguments_are_usage_errors():
    with pytest.raises(nanolink.UsageError, match='quality must be an integer in ' + CAE_QUALITIES):
        nanolink.open_codec('cae', quality=9)
    with pytest.raises(nanolink.UsageError, match='stream_id'):
        nanolink.Sender('tcp://127.0.0.1:9', model='jpeg', stream_id='no spaces')
    with pytest.raises(nanolink.UsageError, match='no bundled model'):
        nanolink.Receiver('tcp://127.0.0.1:*', models=['nope'])
    with pytest.raises(nanolink.UsageError, match='ae takes --jpeg-quality'):
        nanolink.open_codec('ae', quality=2)                       # cae's rate option, not ignored


def run_example(name, *args, **kw):
    return subprocess.Popen([sys.executable, os.path.join(ROOT, 'examples', name)] + [str(a) for a in args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, **kw)


def test_examples_send_and_receive_each_other():
    rx = run_example('receive_and_process.py', '--bind', 'tcp://127.0.0.1:*', '--frames', 8, '--timeout', 60)
    line = rx.stdout.readline()
    assert line.startswith('listening on tcp://127.0.0.1:'), line + rx.stderr.read()
    tx = run_example('send_frames.py', '--connect', line.split()[-1], '--frames', 8, '--fps', 20)
    out, err = tx.communicate(timeout=120)
    assert tx.returncode == 0, err
    assert 'all 8 frames acknowledged by the host' in out
    rout, rerr = rx.communicate(timeout=120)
    assert rx.returncode == 0, rerr
    assert rout.count('my-camera #') == 8 and 'brightness' in rout


def test_example_encode_to_files(tmp_path):
    p = run_example('encode_to_files.py', SAMPLE[0], SAMPLE[1], '--out', tmp_path, '--quality', 2)
    out, err = p.communicate(timeout=120)
    assert p.returncode == 0, err
    assert out.count('PSNR') == 2
    name = os.path.splitext(os.path.basename(SAMPLE[0]))[0]
    assert (tmp_path / (name + '.nlk')).stat().st_size > 1000 and (tmp_path / (name + '.decoded.png')).exists()


def test_example_encode_to_files_skips_what_is_not_an_image_and_bad_quality_is_one_line(tmp_path):
    """The sample folder as a user globs it (its README.md among the photos), then a rate point that does not exist."""
    (tmp_path / 'notes.txt').write_text('not a picture')
    p = run_example('encode_to_files.py', tmp_path / 'notes.txt', SAMPLE[0], '--out', tmp_path / 'o')
    out, err = p.communicate(timeout=120)
    assert p.returncode == 0, err
    assert out.count('PSNR') == 1 and 'notes.txt: not an image, skipped' in err
    p = run_example('encode_to_files.py', SAMPLE[0], '--out', tmp_path / 'o', '--quality', 9)
    out, err = p.communicate(timeout=120)
    assert p.returncode == 2 and 'quality must be an integer in ' + CAE_QUALITIES in err and 'Traceback' not in err, err


@pytest.mark.parametrize('workers', [0, 3])
def test_decode_workers_return_every_frame_in_arrival_order_bit_exact(workers):
    """Two edges' frames interleaved into one Receiver: with 3 decode threads (frames decoded at once, taken ahead
    of the caller) every frame comes out once, each stream in order, and each image equals the one-thread decode."""
    frames = [cv2.imread(p) for p in SAMPLE[:3]]
    with nanolink.Receiver('tcp://127.0.0.1:*', models=['ae'], workers=workers) as rx:
        with nanolink.Sender(rx.endpoint, model='ae', stream_id='a') as a, \
                nanolink.Sender(rx.endpoint, model='ae', stream_id='b') as b:
            for f in frames * 2:
                a.send(f)
                b.send(f[::-1].copy())
            got = [rx.recv(timeout=60) for _ in range(12)]
        assert rx.recv(timeout=0.5) is None
    assert all(g is not None for g in got)
    for stream, flip in (('a', False), ('b', True)):
        mine = [g for g in got if g.stream == stream]
        assert [g.seq for g in mine] == list(range(6))
        with nanolink.open_codec('ae') as codec:
            for g in mine:
                src = frames[g.seq % 3][::-1].copy() if flip else frames[g.seq % 3]
                np.testing.assert_array_equal(g.image, codec.decode(codec.encode(src)))
    assert rx.workers == workers


# -- what Sender.send and Codec.encode refuse, and the odd frames they take (grey, (H, W, 1), BGRA) --

BAD_FRAMES = [
    (None, r'a numpy uint8 array \(H, W, 3\) BGR, .* got NoneType'),
    ([[1, 2], [3, 4]], r'a numpy uint8 array \(H, W, 3\) BGR, .* got list'),
    (np.zeros((1, 64, 80, 3), np.uint8), r'batch of one, \(1, 64, 80, 3\): send frame\[0\]'),
    (np.zeros((0, 80, 3), np.uint8), r'empty frame, shape \(0, 80, 3\)'),
    (np.zeros((64, 0), np.uint8), r'empty frame, shape \(64, 0\)'),
    (np.zeros((64, 80, 5), np.uint8), r'\(H, W, 4\) BGRA, got shape \(64, 80, 5\)'),
    (np.zeros((64, 80, 2), np.uint8), r'got shape \(64, 80, 2\)'),
    (np.zeros((64 * 80 * 3,), np.uint8), r'got shape \(15360,\)'),
    (np.zeros((64, 80, 3)), r'8-bit \(uint8\), got float64: convert with \(frame \* 255\)\.clip\(0, 255\)'),
    (np.zeros((64, 80, 3), np.uint16), r'got uint16: convert with frame\.astype\(np\.uint8\)'),
]


def test_send_refuses_what_is_not_a_frame_with_one_line_saying_what_to_pass(capfd):
    """Each refused before the encoder (no runtime's own error on stderr), as a UsageError; the Sender goes on."""
    good = cv2.imread(SAMPLE[0])[:64, :80]
    with nanolink.Receiver('tcp://127.0.0.1:*', models=['cae']) as rx:
        with nanolink.Sender(rx.endpoint, model='cae', quality=1, stream_id='bad') as tx:
            for frame, hint in BAD_FRAMES:
                with pytest.raises(nanolink.UsageError, match=hint) as e:
                    tx.send(frame)
                assert '\n' not in str(e.value)
            assert tx.seq == 0 and tx.send(good).seq == 0          # nothing was counted; the next frame goes
            got = rx.recv(timeout=60)
    assert got.seq == 0 and got.image.shape == good.shape
    assert 'onnxruntime' not in capfd.readouterr().err.lower()


def test_codec_refuses_the_same_frames():
    with nanolink.open_codec('jpeg') as codec:
        for frame, hint in BAD_FRAMES:
            with pytest.raises(nanolink.UsageError, match=hint):
                codec.encode(frame)


def _odd_frames(bgr):
    grey = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
    bgra = np.dstack([bgr, np.full(bgr.shape[:2], 200, np.uint8)])
    return [('grey (H, W)', grey, cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR)),
            ('grey (H, W, 1)', grey[:, :, None], cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR)),
            ('BGRA (H, W, 4)', bgra, bgr)]


def test_grey_and_bgra_frames_round_trip_through_sender_and_receiver():
    bgr = cv2.imread(SAMPLE[1])[:96, :128]
    odd = _odd_frames(bgr)
    with nanolink.Receiver('tcp://127.0.0.1:*', models=['cae']) as rx:
        with nanolink.Sender(rx.endpoint, model='cae', quality=4, stream_id='odd') as tx:
            for _, frame, _ in odd:
                tx.send(frame)
            got = [rx.recv(timeout=60) for _ in odd]
    with nanolink.open_codec('cae', quality=4) as codec:
        for (name, frame, as_bgr), g in zip(odd, got):
            assert g is not None and g.image.shape == (96, 128, 3), name
            assert metrics.psnr(as_bgr, g.image) > 24, name
            np.testing.assert_array_equal(g.image, codec.decode(codec.encode(frame)), err_msg=name)
            np.testing.assert_array_equal(g.image, codec.decode(codec.encode(as_bgr)), err_msg=name)


# -- Sender's arguments: checked when it is made, as edge-sender checks its flags (the same functions and limits) --

BAD_SENDER_ARGS = [
    (dict(quality='3'), r"quality must be an integer in {}, got '3'".format(CAE_QUALITIES)),
    (dict(quality=3.5), r'quality must be an integer in {}, got 3\.5'.format(CAE_QUALITIES)),
    (dict(quality=True), r'quality must be an integer in {}, got True'.format(CAE_QUALITIES)),
    (dict(quality=0), r'quality must be an integer in {}, got 0'.format(CAE_QUALITIES)),
    (dict(model='cae-bin', channels=8.0), r'channels must be an integer of at least 1, got 8\.0'),
    (dict(model='ae', jpeg_quality='75'), r"jpeg_quality must be an integer in 1\.\.100, got '75'"),
    (dict(model='jpeg', quality=3), r'jpeg is a classical baseline: it takes jpeg_quality 1\.\.100, not quality'),
    (dict(model='raw', jpeg_quality=50), r'raw is a classical baseline: it takes no rate argument'),
    (dict(connect=None), r"connect None: expected an endpoint like 'tcp://192\.168\.1\.10:5555'"),
    (dict(connect='localhost:5555'), r'connect localhost:5555: expected an endpoint like'),
    (dict(size=(0, 0)), r'size=\(0, 0\): width and height must be between 8 and 4096'),
    (dict(size=(640.0, 480)), r'size must be \(width, height\) in pixels, e\.g\. \(640, 480\), or "640x480"'),
    (dict(size=640), r'size must be \(width, height\) in pixels'),
    (dict(size='640'), r'size must look like WIDTHxHEIGHT, e\.g\. 1008x1008, got "640"'),
    (dict(size='9000x9'), r'size 9000x9: width and height must be between 8 and 4096'),
    (dict(buffer_frames=0), r'buffer_frames must be an integer in 1\.\.1048576, got 0'),
    (dict(buffer_mb=-1), r'buffer_mb must be a number > 0 MB, got -1'),
    (dict(entropy='foo'), r"entropy must be one of 'zlib', 'none', got 'foo'"),
    (dict(entropy='none'), r"cae always codes its symbols with rANS: drop entropy='none'"),
    (dict(threads=-1), r'threads must be an integer in 0\.\.256, got -1'),
    (dict(send_timeout_ms='5'), r"send_timeout_ms must be an integer in -1\.\.\d+, got '5'"),
    (dict(linger_ms='x'), r"linger_ms must be an integer of at least -1, got 'x'"),
    (dict(clock_offset=float('nan')), r'clock_offset must be a number in -86400\.0\.\.86400\.0 seconds, got nan'),
    (dict(reference_quality=0), r'reference_quality must be an integer in 1\.\.100, got 0'),
    (dict(latest=True, buffer_frames=16), r'latest=True sends the newest frame only.*drop buffer_frames and buffer_mb'),
    (dict(model='jpeg', device='cuda'), r"model jpeg is a classical baseline coded on the CPU: drop device='cuda'"),
]


@pytest.mark.parametrize('kw, hint', BAD_SENDER_ARGS, ids=[repr(kw) for kw, _ in BAD_SENDER_ARGS])
def test_bad_sender_arguments_are_one_line_usage_errors(kw, hint):
    kw = dict(kw)
    connect = kw.pop('connect', 'tcp://127.0.0.1:9')
    kw.setdefault('model', 'cae')
    with pytest.raises(nanolink.UsageError, match=hint) as e:
        nanolink.Sender(connect, **kw)
    assert '\n' not in str(e.value)


def test_sender_size_as_a_pair_or_as_wxh_text():
    frame = cv2.imread(SAMPLE[2])
    with nanolink.Receiver('tcp://127.0.0.1:*', models=['cae']) as rx:
        for size in ((96, 64), '96x64', np.array([96, 64])):
            with nanolink.Sender(rx.endpoint, model='cae', quality=1, stream_id='sized', size=size) as tx:
                assert tx.size == (96, 64) and tx.send(frame).size == (64, 96)
            got = rx.recv(timeout=60)
            assert got is not None and got.image.shape == (64, 96, 3), size


def test_a_frame_over_the_wire_limit_names_the_size_argument():
    with nanolink.Receiver('tcp://127.0.0.1:*', models=['ae']) as rx:
        with nanolink.Sender(rx.endpoint, model='ae', stream_id='wide') as tx:
            with pytest.raises(nanolink.NanolinkError, match=r'cannot send a 5000x64 frame: .*; shrink frames with '
                               r'size=\(W, H\) \(edge-sender: --size WxH\)$'):
                tx.send(np.zeros((64, 5000, 3), np.uint8))
        with nanolink.Sender(rx.endpoint, model='raw', stream_id='big') as tx:
            with pytest.raises(nanolink.NanolinkError, match=r'--size WxH\) or use a learned model$'):
                tx.send(np.zeros((2400, 4000, 3), np.uint8))


BAD_CODEC_ARGS = [
    (dict(quality='3'), r"quality must be an integer in {}, got '3'".format(CAE_QUALITIES)),
    (dict(quality=3.5), r'quality must be an integer in {}, got 3\.5'.format(CAE_QUALITIES)),
    (dict(quality=True), r'quality must be an integer in {}, got True'.format(CAE_QUALITIES)),
    (dict(model='jpeg', quality=3), r'jpeg is a classical baseline: it takes jpeg_quality 1\.\.100, not quality'),
    (dict(model='ae', jpeg_quality=0), r'jpeg_quality must be an integer in 1\.\.100, got 0'),
    (dict(size=(0, 0)), r'size=\(0, 0\): width and height must be between 8 and 4096'),
    (dict(size='640'), r'size must look like WIDTHxHEIGHT'),
    (dict(size=(640, None)), r'size must be \(width, height\) in pixels'),
    (dict(decoder='foo'), r"decoder must be one of 'onnxruntime', 'torch', got 'foo'"),
    (dict(device='gpu'), r"device must be one of 'cpu', 'cuda', got 'gpu'"),
    (dict(threads='2'), r"threads must be an integer in 0\.\.256, got '2'"),
]


@pytest.mark.parametrize('kw, hint', BAD_CODEC_ARGS, ids=[repr(kw) for kw, _ in BAD_CODEC_ARGS])
def test_bad_codec_arguments_are_the_senders_usage_errors(kw, hint):
    kw = dict(kw)
    with pytest.raises(nanolink.UsageError, match=hint) as e:
        nanolink.open_codec(kw.pop('model', 'cae'), **kw)
    assert '\n' not in str(e.value)


def test_codec_size_and_odd_frames_and_the_wire_limit():
    bgr = cv2.imread(SAMPLE[3])
    for size in ('96x64', (96, 64)):
        with nanolink.open_codec('cae', quality=2, size=size) as codec:
            assert codec.decode(codec.encode(bgr)).shape == (64, 96, 3)
            for name, frame, _ in _odd_frames(bgr[:64, :96]):
                assert codec.decode(codec.encode(frame)).shape == (64, 96, 3), name
    with nanolink.open_codec('cae') as codec:
        with pytest.raises(nanolink.NanolinkError, match=r'cannot send a 4100x64 frame: .*; shrink frames with '
                           r'size=\(W, H\) \(edge-sender: --size WxH\)$'):     # refused before the encoder runs
            codec.encode(np.zeros((64, 4100, 3), np.uint8))


# -- Receiver's arguments: checked before a decoder loads or the port is bound --

BAD_RECEIVER_ARGS = [
    (dict(workers=-1), r'workers must be an integer in 0\.\.64, got -1'),
    (dict(workers=1.5), r'workers must be an integer in 0\.\.64, got 1\.5'),
    (dict(bind=None), r"bind None: expected an endpoint like 'tcp://\*:5555'"),
    (dict(bind='tcp://127.0.0.1:0x'), r'bind tcp://127\.0\.0\.1:0x: expected tcp://HOST:PORT with a port in 1\.\.65535'),
    (dict(models=[1]), r"models must be a list of str, e\.g\. \['cae'\], got \[1\]"),
    (dict(model_dirs=5), r'model_dirs must be a list of str'),
    (dict(decoder='x'), r"decoder must be one of 'onnxruntime', 'torch', got 'x'"),
    (dict(device='gpu'), r"device must be one of 'cpu', 'cuda', got 'gpu'"),
    (dict(threads=-1), r'threads must be an integer in 0\.\.256, got -1'),
    (dict(max_streams=0), r'max_streams must be an integer of at least 1, got 0'),
    (dict(stream_idle_s=0), r'stream_idle_s must be a number > 0 seconds or inf, got 0'),
    (dict(stream_idle_s='300'), r"stream_idle_s must be a number > 0 seconds or inf, got '300'"),
    (dict(max_size=(0, 0)), r'max_size=\(0, 0\): width and height must be between 8 and 4096'),
    (dict(max_pixel_rate=float('-inf')), r'max_pixel_rate must be a number > 0 pixels a second or inf, got -inf'),
    (dict(max_pixel_rate=float('nan')), r'max_pixel_rate must be a number > 0 pixels a second or inf, got nan'),
]


@pytest.mark.parametrize('kw, hint', BAD_RECEIVER_ARGS, ids=[repr(kw) for kw, _ in BAD_RECEIVER_ARGS])
def test_bad_receiver_arguments_are_one_line_usage_errors(kw, hint):
    kw = dict(kw)
    kw.setdefault('models', ['jpeg'])
    with pytest.raises(nanolink.UsageError, match=hint) as e:
        nanolink.Receiver(kw.pop('bind', 'tcp://127.0.0.1:*'), **kw)
    assert '\n' not in str(e.value)


def test_a_refused_receiver_leaves_its_port_free_and_one_model_name_or_wxh_text_is_taken():
    with nanolink.Receiver('tcp://127.0.0.1:*', models=['jpeg']) as rx:
        endpoint = rx.endpoint
    with pytest.raises(nanolink.UsageError, match='workers'):
        nanolink.Receiver(endpoint, models=['jpeg'], workers=-1)       # it used to bind first, then fail
    frame = cv2.imread(SAMPLE[4])[:64, :96]
    with nanolink.Receiver(endpoint, models='jpeg', max_size='128x96') as rx:
        assert rx.max_size == (128, 96) and set(rx.decoders) == {'jpeg'}
        with nanolink.Sender(rx.endpoint, model='jpeg', stream_id='one') as tx:
            tx.send(frame)
            tx.send(np.zeros((97, 96, 3), np.uint8))                    # over max_size: refused, counted
            tx.send(frame)
            got = [rx.recv(timeout=60) for _ in range(2)]
    assert [g.seq for g in got] == [0, 2] and got[0].image.shape == frame.shape
    assert rx.rejects.total == 1


@pytest.mark.parametrize('kw, hint', [(dict(buffer_frames=None), 'buffer_frames must be an integer in 1'),
                                      (dict(buffer_mb=None), 'buffer_mb must be a number > 0 MB, got None'),
                                      (dict(send_timeout_ms=None), 'send_timeout_ms must be an integer in -1'),
                                      (dict(clock_offset=None), 'clock_offset must be a number in'),
                                      (dict(reference_quality=None), 'reference_quality must be an integer in 1..100')])
def test_none_is_refused_where_it_means_nothing(kw, hint):
    with pytest.raises(nanolink.UsageError, match=re.escape(hint)):
        nanolink.Sender('tcp://127.0.0.1:9', model='jpeg', **kw)


@pytest.mark.parametrize('kw, hint', [(dict(workers=None), 'workers must be an integer in 0..64, got None'),
                                      (dict(max_streams=None), 'max_streams must be an integer of at least 1'),
                                      (dict(stream_idle_s=None), 'stream_idle_s must be a number > 0 seconds'),
                                      (dict(max_pixel_rate=None), 'max_pixel_rate must be a number > 0')])
def test_receiver_refuses_none_for_its_bounds(kw, hint):
    with pytest.raises(nanolink.UsageError, match=re.escape(hint)):
        nanolink.Receiver('tcp://127.0.0.1:*', models=['jpeg'], **kw)


def test_none_where_it_means_the_default():
    with nanolink.Receiver('tcp://127.0.0.1:*', models=['jpeg'], max_size=None, threads=None, device=None) as rx:
        assert rx.max_size == (4096, 4096)
        with nanolink.Sender(rx.endpoint, model='jpeg', threads=None, linger_ms=None, jpeg_quality=None) as tx:
            tx.send(cv2.imread(SAMPLE[5])[:32, :48])
            assert rx.recv(timeout=60).image.shape == (32, 48, 3)


def test_receiver_takes_inf_for_no_idle_limit_and_no_pixel_rate_limit():
    """host-receiver --stream-idle inf / --max-pixel-rate inf ran before the API's checks and still do."""
    with nanolink.Receiver('tcp://127.0.0.1:*', models=['jpeg'], stream_idle_s=float('inf'),
                           max_pixel_rate=float('inf'), model_dirs=None) as rx:
        with nanolink.Sender(rx.endpoint, model='jpeg', stream_id='inf') as tx:
            tx.send(np.zeros((32, 48, 3), np.uint8))
            got = rx.recv(timeout=60)
    assert got is not None and got.image.shape == (32, 48, 3)
    r = cli('nanolink.host.cli', '--bind', 'tcp://127.0.0.1:*', '--stream-idle', 'inf', '--max-pixel-rate', 'inf',
            '--timeout', '0.5')
    assert r.returncode == 1 and 'no frame for 0.5 s' in r.stderr, r.stderr       # it ran, and timed out
