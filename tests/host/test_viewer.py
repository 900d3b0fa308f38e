"""host-receiver --http (browser viewer), --record and the live quality monitor (edge-sender --reference-every),
with real processes, sockets, files and, for the page, a real headless Chromium."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

import cv2
import numpy as np
import pytest

from nanolink.common import metrics, zoo
from nanolink.common.stages import read_jsonl

SAMPLE = zoo.SAMPLE_DIR


def start_edge(endpoint, *args, stream='cam1'):
    return subprocess.Popen([sys.executable, '-m', 'nanolink.edge.cli', '--connect', endpoint, '--stream-id', stream,
                             '--quiet'] + [str(a) for a in args], stderr=subprocess.PIPE, universal_newlines=True)


def viewer_url(host):
    line = host.proc.stdout.readline().strip()
    assert line.startswith('viewer on http://127.0.0.1:'), line
    return line.split()[-1]


def get(url, timeout=10):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.status, r.headers.get('Content-Type'), r.read()


def stats(url):
    return json.loads(get(url + 'stats.json')[2].decode('utf-8'))


def wait_for(fn, timeout=60, what='condition'):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = fn()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError('timed out waiting for ' + what)


def mjpeg_parts(url, n, timeout=30):
    """The first n JPEG parts of a multipart/x-mixed-replace response, as decoded images. Each part must end with
    the boundary after it (a browser shows a part only once it sees that boundary)."""
    r = urllib.request.urlopen(url, timeout=timeout)
    assert r.headers.get('Content-Type').startswith('multipart/x-mixed-replace; boundary=')
    boundary = r.headers.get('Content-Type').split('boundary=')[1].encode()
    assert r.readline() == b'--' + boundary + b'\r\n'
    out = []
    while len(out) < n:
        headers = {}
        while True:
            h = r.readline().strip()
            if not h:
                break
            k, _, v = h.decode().partition(':')
            headers[k.lower()] = v.strip()
        assert headers['content-type'] == 'image/jpeg'
        data = r.read(int(headers['content-length']))
        assert r.read(len(boundary) + 6) == b'\r\n--' + boundary + b'\r\n'      # the part's closing boundary
        out.append(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR))
    r.close()
    return out


def stop_host(host):
    host.proc.send_signal(signal.SIGINT)
    return host.wait(60)


def test_stats_json_and_mjpeg_stream_follow_the_live_stream(tmp_path, host_process):
    host = host_process('--http', '127.0.0.1:0', '--log', tmp_path / 'host.jsonl')
    url = viewer_url(host)
    status, ctype, page = get(url)
    assert status == 200 and ctype.startswith('text/html') and b'/stats.json' in page
    s0 = stats(url)
    assert s0['streams'] == {} and s0['received'] == 0
    edge = start_edge(host.endpoint, '--camera', SAMPLE, '--loop', '--fps', '6',      # until killed below
                      '--reference-every', '4')
    try:
        s1 = wait_for(lambda: stats(url)['streams'].get('cam1', {}).get('decoded', 0) >= 3 and stats(url),
                      what='decoded frames in /stats.json')
        cam = s1['streams']['cam1']
        assert cam['width'] == 768 and cam['height'] == 512 and cam['model'] == zoo.DEFAULT_MODEL
        assert cam['received'] >= cam['decoded'] >= 3 and cam['rejected'] == 0 and cam['lost'] == 0
        assert 0.1 < cam['bpp'] < 2.0 and cam['fps'] > 0
        assert {'receive', 'deserialise', 'decode', 'postprocess', 'display', 'end_to_end'} <= set(cam['stages'])
        assert {'capture', 'encode', 'reference'} <= set(cam['sender_stages'])
        assert cam['latency_history'] and all(ms >= 0 for _, ms in cam['latency_history'])
        # the counters grow, and the quality monitor scores the reference frames
        s2 = wait_for(lambda: (lambda s: s['streams']['cam1'].get('quality', {}).get('n', 0) >= 2 and
                               s['streams']['cam1']['decoded'] > cam['decoded'] and s)(stats(url)),
                      what='growing counters and quality scores')
        q = s2['streams']['cam1']['quality']
        assert 22.0 < q['last']['psnr'] < 45.0 and 0.85 < q['last']['ms_ssim'] <= 1.0, q
        assert s2['received'] >= s2['decoded'] > s1['decoded']
        # a rejected message of this stream is counted on it; one of a stream that never decoded only in the totals
        import msgpack
        import zmq
        from nanolink.common.sender import Sender
        ctx = zmq.Context()
        with Sender(host.endpoint, context=ctx) as tx:
            for name in ('cam1', 'ghost'):
                assert tx.send(msgpack.packb({'v': 2, 'stream': name, 'seq': 0}))
            s3 = wait_for(lambda: (lambda s: s['rejected'] >= 2 and s)(stats(url)), what='rejections counted')
        ctx.term()
        assert s3['streams']['cam1']['rejected'] == 1 and 'ghost' not in s3['streams']
        assert list(s3['reject_reasons'].values()) == [2] and 'missing field(s) session, t_cap' in list(s3['reject_reasons'])[0]
        # MJPEG: successive parts are successive decoded frames of the right size
        a, b, c = mjpeg_parts(url + 'stream/cam1.mjpg', 3)
        assert a.shape == b.shape == c.shape == (512, 768, 3)
        assert metrics.psnr(a, b) < 40 or metrics.psnr(b, c) < 40          # the picture changes
        status, ctype, still = get(url + 'frame/cam1.jpg')
        assert status == 200 and ctype == 'image/jpeg' and still[:2] == b'\xff\xd8'
        for bad in ('stream/nobody.mjpg', 'nothing', 'stream/cam1.jpg'):
            with pytest.raises(urllib.error.HTTPError) as e:
                get(url + bad)
            assert e.value.code == 404
    finally:
        edge.kill()
        edge.wait()
    # with no more frames coming, the newest one still arrives whole, its closing boundary included (a browser
    # shows a part once it sees that boundary: a boundary sent only with the next part would hide this frame)
    last, = mjpeg_parts(url + 'stream/cam1.mjpg', 1, timeout=20)
    assert last.shape == (512, 768, 3)
    rc, err = stop_host(host)
    assert rc == 0, err[-2000:]
    assert 'quality vs' in err
    quality = [r for r in read_jsonl(str(tmp_path / 'host.jsonl')) if r.get('event') == 'quality']
    assert quality and all(r['stream'] == 'cam1' and r['seq'] % 4 == 0 for r in quality)


def test_reference_frames_score_the_decoded_frame_against_the_source(tmp_path, host_process):
    """The monitor's PSNR equals the PSNR of the saved decoded frame against the source image (through the q95
    reference, so within a small margin), and bpp excludes the reference's bytes."""
    src = sorted(os.path.join(SAMPLE, f) for f in os.listdir(SAMPLE) if f.endswith('.jpg'))[0]
    folder = tmp_path / 'one'
    folder.mkdir()
    shutil.copy(src, str(folder / 'a.jpg'))
    host = host_process('--frames', '4', '--save', tmp_path / 'out', '--log', tmp_path / 'host.jsonl',
                        '--timeout', '60')
    r = subprocess.run([sys.executable, '-m', 'nanolink.edge.cli', '--camera', folder, '--loop', '--frames', '4',
                        '--connect', host.endpoint, '--reference-every', '2', '--log', tmp_path / 'edge.jsonl',
                        '--quiet'], stderr=subprocess.PIPE, universal_newlines=True, timeout=120)
    assert r.returncode == 0, r.stderr
    rc, err = host.wait(60)
    assert rc == 0, err
    recs = read_jsonl(str(tmp_path / 'host.jsonl'))
    frames = [x for x in recs if 'event' not in x]
    quality = [x for x in recs if x.get('event') == 'quality']
    assert [q['seq'] for q in quality] == [0, 2]
    assert [('ref_bytes' in f) for f in frames] == [True, False, True, False]
    edge = read_jsonl(str(tmp_path / 'edge.jsonl'))
    assert edge[0]['ref_bytes'] == frames[0]['ref_bytes'] > 10000          # a q95 JPEG of a 768x512 photo
    assert edge[0]['stages']['reference'] > edge[1]['stages']['reference']
    decoded = cv2.imread(str(tmp_path / 'out' / 'edge' / '00000000.png'))
    truth = metrics.psnr(cv2.imread(src), decoded)
    assert abs(quality[0]['psnr'] - truth) < 0.5, (quality[0]['psnr'], truth)
    assert abs(quality[0]['ms_ssim'] - metrics.ms_ssim(cv2.imread(src), decoded)) < 0.01
    # the summary's bpp is the codec's: without the reference bytes
    bpp = float(err.split('stream edge: ')[1].split(' bpp')[0].split()[-1])
    codec_bytes = sum(f['bytes'] - f.get('ref_bytes', 0) for f in frames)
    assert abs(bpp - codec_bytes * 8.0 / (4 * 768 * 512)) < 1e-3


def test_record_writes_a_video_that_opencv_reads_back(tmp_path, host_process, video_file):
    out = tmp_path / 'rec' / 'out.mp4'
    host = host_process('--frames', '24', '--record', out, '--save', tmp_path / 'png', '--timeout', '60',
                        '--log', tmp_path / 'host.jsonl')
    r = subprocess.run([sys.executable, '-m', 'nanolink.edge.cli', '--camera', video_file, '--connect',
                        host.endpoint, '--fps', '10', '--quiet'], stderr=subprocess.PIPE, universal_newlines=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    rc, err = host.wait(60)
    assert rc == 0, err
    assert 'recorded {} (24 frames at '.format(out) in err
    cap = cv2.VideoCapture(str(out))
    assert cap.isOpened()
    from nanolink.host.record import ESTIMATE_FRAMES, estimate_fps, writable_fps
    t_cap = [x['t_cap'] for x in read_jsonl(str(tmp_path / 'host.jsonl'))][:ESTIMATE_FRAMES]
    # the stream's rate, from its capture times: whatever a loaded machine made of --fps 10 (7.8 and 10.7 seen;
    # the pacer catches up after a stall, so bursts can shorten the median interval), the file says the same
    assert len(t_cap) == ESTIMATE_FRAMES
    expected = writable_fps(estimate_fps(t_cap))
    assert cap.get(cv2.CAP_PROP_FPS) == pytest.approx(expected, abs=0.02)
    frames = []
    while True:
        ok, img = cap.read()
        if not ok:
            break
        frames.append(img)
    assert len(frames) == 24 and frames[0].shape == (512, 768, 3)
    for i in (0, 11, 23):       # each video frame is the decoded frame (mp4v is lossy: a loose bound)
        png = cv2.imread(str(tmp_path / 'png' / 'edge' / '{:08d}.png'.format(i)))
        assert metrics.psnr(png, frames[i]) > 30.0


def test_record_keeps_streams_and_sessions_apart(tmp_path, host_process):
    """Two streams and a restarted edge (a new session of stream a, at another size): three files, none
    overwriting another."""
    host = host_process('--frames', '12', '--record', tmp_path / '{stream}.avi', '--record-fps', '5',
                        '--timeout', '60')
    for name, size, n in (('a', '320x240', '4'), ('b', '256x256', '4'), ('a', '400x304', '4')):
        r = subprocess.run([sys.executable, '-m', 'nanolink.edge.cli', '--camera', 'synthetic', '--size', size,
                            '--frames', n, '--connect', host.endpoint, '--stream-id', name, '--quiet'],
                           stderr=subprocess.PIPE, universal_newlines=True, timeout=120)
        assert r.returncode == 0, r.stderr
    rc, err = host.wait(60)
    assert rc == 0, err
    for path, shape in (('a.avi', (240, 320)), ('a~2.avi', (304, 400)), ('b.avi', (256, 256))):
        cap = cv2.VideoCapture(str(tmp_path / path))
        ok, img = cap.read()
        assert ok and img.shape[:2] == shape, path
        assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 4
        assert cap.get(cv2.CAP_PROP_FPS) == pytest.approx(5.0)


@pytest.mark.parametrize('args, words', [
    (['--http', 'localhost'], 'HOST:PORT'),
    (['--http', '127.0.0.1:99999'], 'HOST:PORT'),
    (['--record', 'out.xyz'], 'unknown video extension'),
    (['--record', 'out.mp4', '--record-fourcc', 'toolong'], '4 characters'),
    (['--record-fps', '0'], '--record-fps'),
])
def test_bad_viewer_and_record_arguments(args, words):
    r = subprocess.run([sys.executable, '-m', 'nanolink.host.cli'] + args, stderr=subprocess.PIPE,
                       universal_newlines=True, timeout=60)
    assert r.returncode != 0 and words in r.stderr, r.stderr


def test_http_port_in_use_is_a_clear_error(host_process):
    host = host_process('--http', '127.0.0.1:0')
    port = viewer_url(host).rsplit(':', 1)[1].strip('/')
    r = subprocess.run([sys.executable, '-m', 'nanolink.host.cli', '--bind', 'tcp://127.0.0.1:*', '--http',
                        '127.0.0.1:' + port], stderr=subprocess.PIPE, universal_newlines=True, timeout=60)
    assert r.returncode == 1 and 'cannot listen there' in r.stderr and 'another port' in r.stderr, r.stderr
    host.kill()


def test_bad_reference_arguments():
    for args, words in ((['--reference-every', '-1'], '--reference-every'), (['--reference-quality', '0'], '1..100')):
        r = subprocess.run([sys.executable, '-m', 'nanolink.edge.cli', '--camera', 'synthetic'] + args,
                           stderr=subprocess.PIPE, universal_newlines=True, timeout=60)
        assert r.returncode == 2 and words in r.stderr, r.stderr


# -- the page in a real browser --------------------------------------------------------------------------------
CHROMIUM = shutil.which('chromium') or shutil.which('chromium-browser')
CHROMEDRIVER = shutil.which('chromedriver')


def chromium(tmp_path):
    webdriver = pytest.importorskip('selenium.webdriver', reason='selenium is not installed (pip install selenium)')
    from selenium.webdriver.chrome.service import Service
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in ('--headless=new', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
                 '--disable-background-networking', '--disable-component-update', '--disable-sync',
                 '--disable-dev-shm-usage', '--window-size=1360,1150', '--user-data-dir={}'.format(tmp_path / 'chrome')):
        opts.add_argument(flag)
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)


@pytest.mark.skipif(not (CHROMIUM and CHROMEDRIVER), reason='Chromium and chromedriver are not installed (Debian: '
                                                            'apt-get install chromium chromium-driver; CI does)')
def test_page_in_headless_chromium_shows_changing_video_and_growing_counters(tmp_path, host_process):
    """Loads the page in Chromium; the picture changes and the counters grow; saves a screenshot (also to
    $NANOLINK_SCREENSHOT when set: README's docs/viewer.jpg is made that way)."""
    host = host_process('--http', '127.0.0.1:0')
    url = viewer_url(host)
    edges = [start_edge(host.endpoint, '--camera', SAMPLE, '--loop', '--fps', '4', '--reference-every', '8',
                        stream='front-cam'),
             start_edge(host.endpoint, '--camera', 'synthetic://512x384', '--fps', '4', '--model', 'cae-bin',
                        stream='dock:cam.2')]               # ':' and '.' are legal in stream ids: URL-escaped
    driver = chromium(tmp_path)
    try:
        driver.set_page_load_timeout(30)
        driver.get(url)

        def text(selector):      # read in one script call: the page re-renders its tables twice a second
            return driver.execute_script('const e = document.querySelector(arguments[0]);'
                                         'return e ? e.textContent : null;', selector)

        def number(stream, key):
            t = text('[id="stream-{}"] td[data-k="{}"]'.format(stream, key))
            return int(t) if t and t.isdigit() else None

        first = wait_for(lambda: number('front-cam', 'decoded'), 60, 'the page to show decoded frames')
        pixels = ('const i = document.querySelector(\'[id="stream-\' + arguments[0] + \'"] img\');'
                  'if (!i.complete || !i.naturalWidth) return null;'
                  'const c = document.createElement("canvas"); c.width = 96; c.height = 64;'
                  'const g = c.getContext("2d"); g.drawImage(i, 0, 0, 96, 64);'
                  'return [i.naturalWidth, i.naturalHeight, Array.from(g.getImageData(0, 0, 96, 64).data)];')
        shot1 = wait_for(lambda: driver.execute_script(pixels, 'front-cam'), 30, 'the MJPEG image to load')
        assert shot1[:2] == [768, 512]
        wait_for(lambda: (number('front-cam', 'decoded') or 0) >= first + 3, 60, 'the decoded counter to grow')

        def changed():           # the page shows what the MJPEG stream delivers, which can trail the counter
            shot = driver.execute_script(pixels, 'front-cam')
            return shot and np.abs(np.array(shot1[2], float) - np.array(shot[2], float)).mean() > 2.0
        wait_for(changed, 60, 'the picture to change (the looped sample photos differ from each other)')
        wait_for(lambda: number('dock:cam.2', 'decoded'), 60, 'the second stream')
        assert wait_for(lambda: driver.execute_script(pixels, 'dock:cam.2'), 30, 'its picture')[:2] == [512, 384]
        wait_for(lambda: '/' in (text('#stream-front-cam td[data-k="psnr"]') or ''), 60,
                 'a PSNR from the quality monitor')
        totals = text('#totals')
        assert 'received' in totals and 'rejected' in totals
        plotted = driver.execute_script('const c = document.querySelector("#stream-front-cam canvas");'
                                        'const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;'
                                        'let n = 0; for (let k = 0; k < d.length; k += 4) if (d[k+2] > 200) n++;'
                                        'return n;')
        assert plotted > 20, 'no latency line drawn'
        time.sleep(3.0)                           # a few seconds of latency plot
        path = tmp_path / 'viewer.png'
        assert driver.save_screenshot(str(path))
        img = cv2.imread(str(path))
        assert img is not None and img.shape[1] >= 1000 and img.std() > 10
        if os.environ.get('NANOLINK_SCREENSHOT'):
            cv2.imwrite(os.environ['NANOLINK_SCREENSHOT'], img, [cv2.IMWRITE_JPEG_QUALITY, 85])
    finally:
        driver.quit()
        for e in edges:
            e.kill()
            e.wait()
    rc, err = stop_host(host)
    assert rc == 0, err[-2000:]


def test_bad_reference_frames_are_logged_and_the_frames_still_decode(tmp_path, host_process, sample_frame):
    import zmq
    from nanolink.common import wire
    from nanolink.common.classical import classical_info, encode_jpeg
    from nanolink.common.sender import Sender
    img = np.ascontiguousarray(sample_frame[:192, :256])
    fp = classical_info('raw').fingerprint
    refs = [encode_jpeg(img[:96], 95).tobytes(),                # a JPEG of the wrong size
            b'\xff\xd8' + os.urandom(500),                       # not a JPEG after its first marker
            encode_jpeg(img, 95).tobytes()]                      # a good one
    host = host_process('--frames', 3, '--log', tmp_path / 'host.jsonl', '--timeout', 30)
    ctx = zmq.Context()
    with Sender(host.endpoint, context=ctx) as tx:
        for seq, ref in enumerate(refs):
            assert tx.send(wire.pack(wire.Frame(stream='s', seq=seq, t_cap=time.time(), model='raw', fp=fp, dtype='raw',
                                                shape=(3, 192, 256), size=(192, 256), payload=img.tobytes(), stages={},
                                                ref=ref)))
            time.sleep(0.3)              # one at a time: the monitor skips references while it is busy
        rc, err = host.wait()
    ctx.term()
    assert rc == 0, err
    assert '3 decoded, 0 rejected of 3 received' in err
    assert err.count('reference frame ignored') == 2 and 'Traceback' not in err
    quality = [r for r in read_jsonl(str(tmp_path / 'host.jsonl')) if r.get('event') == 'quality']
    assert [q['seq'] for q in quality] == [2], quality
    assert quality[0]['psnr'] > 35 and quality[0]['ms_ssim'] > 0.99, quality          # raw frame vs its q95 JPEG


def test_record_splits_when_a_stream_changes_size(tmp_path, host_process, sample_frame):
    src = tmp_path / 'src'
    src.mkdir()
    for name, (w, h) in (('1.png', (320, 240)), ('2.png', (320, 240)), ('3.png', (400, 304))):
        cv2.imwrite(str(src / name), cv2.resize(sample_frame, (w, h)))
    host = host_process('--frames', '3', '--record', tmp_path / '{stream}.avi', '--record-fps', '5', '--timeout', '60')
    r = subprocess.run([sys.executable, '-m', 'nanolink.edge.cli', '--camera', str(src), '--frames', '3', '--connect',
                        host.endpoint, '--stream-id', 'a', '--quiet'], stderr=subprocess.PIPE, universal_newlines=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    rc, err = host.wait(60)
    assert rc == 0 and 'changed size to 400x304, continuing in a new file' in err, err
    for path, shape, n in (('a.avi', (240, 320), 2), ('a.part2.avi', (304, 400), 1)):
        cap = cv2.VideoCapture(str(tmp_path / path))
        ok, img = cap.read()
        assert ok and img.shape[:2] == shape, path
        assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == n
