"""Browser viewer of host-receiver (--http HOST:PORT): live video, counters and a latency plot.

    host-receiver --http 127.0.0.1:8080        # then open http://127.0.0.1:8080/

Routes (GET only):
    /                       the page: one card per stream with the live picture, FPS, bpp, counters, the
                            latest stage latencies, live quality (edge-sender --reference-every) and a plot
                            of end-to-end latency; it polls /stats.json twice a second
    /stats.json             totals and per-stream counters: received, decoded, rejected, lost, reordered,
                            fps, bpp, the latest stage timings (host and sender), end-to-end latency history
    /stream/<id>.mjpg       the stream's decoded frames as MJPEG (multipart/x-mixed-replace), one part per
                            decoded frame, JPEG-coded once per frame however many browsers watch
    /frame/<id>.jpg         the newest decoded frame as one JPEG

It binds where --http says (127.0.0.1 keeps it on this machine; a LAN address shows the video to everyone who
can reach it) and prints that address. Requests must name this server in their Host header (an IP address,
localhost, or this machine's name), so a web page whose domain resolves to 127.0.0.1 (DNS rebinding) gets a 403.
With --http-token TOKEN every request needs the token: open http://HOST:PORT/?token=TOKEN once, and the page
keeps it in a cookie (or send "Authorization: Bearer TOKEN"); without it, 401. It runs on its own threads; a slow
or vanished browser never stalls decoding.
"""
import hmac
import ipaddress
import json
import logging
import re
import socket
from http.cookies import SimpleCookie
from urllib.parse import parse_qs
import socketserver
import threading

from http.server import BaseHTTPRequestHandler, HTTPServer
from urllib.parse import unquote

from nanolink.common.errors import NanolinkError, UsageError
from nanolink.common.wire import is_stream_id

log = logging.getLogger('nanolink.host.web')
BOUNDARY = 'nanolinkframe'
_STREAM_PATH = re.compile(r'/(stream|frame)/(.+)\.(mjpg|jpg)')      # the id is checked by wire.is_stream_id


def check_token(token):
    """A --http-token: None, or 16-256 URL-safe characters (UsageError otherwise)."""
    if token is not None and not re.fullmatch(r'[A-Za-z0-9._~-]{16,256}', token):
        raise UsageError('--http-token must be 16-256 characters of A-Z a-z 0-9 . _ ~ - (e.g. python3 -c "import '
                         'secrets; print(secrets.token_urlsafe(24))")')
    return token


def parse_listen(text):
    """'HOST:PORT' (port 0: any free port; '[::1]:8080' for IPv6) -> (host, port); a clear error otherwise."""
    host, sep, port = text.rpartition(':')
    host = host[1:-1] if host.startswith('[') and host.endswith(']') else host
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise UsageError('--http must look like HOST:PORT, e.g. 127.0.0.1:8080 or 0.0.0.0:8080 (port 0 picks a '
                            'free one), got "{}"'.format(text))
    return host or '0.0.0.0', int(port)


class _Server(socketserver.ThreadingMixIn, HTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address, live, token=None):
        if ':' in address[0]:
            self.address_family = socket.AF_INET6
        self.live, self.token = live, token
        self.names = {'localhost', socket.gethostname().lower(), socket.getfqdn().lower()}
        HTTPServer.__init__(self, address, _Handler)


def host_allowed(header, names):
    """True for a Host header naming this server: an IP address (with or without a port), or one of ``names``."""
    host = (header or '').strip().lower()
    if host.startswith('['):
        host = host[1:].split(']')[0]
    elif host.count(':') == 1:
        host = host.split(':')[0]
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return host in names


class _Handler(BaseHTTPRequestHandler):
    server_version = 'nanolink'
    protocol_version = 'HTTP/1.1'

    def log_message(self, fmt, *args):          # not on stderr: host-receiver's log is for frames
        log.debug('%s %s', self.address_string(), fmt % args)

    def _authorised(self):
        """The Host check, then the token (query, bearer header or the cookie the page got); 403 / 401 otherwise."""
        if not host_allowed(self.headers.get('Host'), self.server.names):
            self._send(403, 'text/plain', b'this viewer answers requests for its own address only\n')
            return False
        token = self.server.token
        if not token:
            return True
        given = parse_qs(self.path.split('?', 1)[1] if '?' in self.path else '').get('token', [''])[0]
        auth = self.headers.get('Authorization', '')
        if auth.startswith('Bearer '):
            given = given or auth[len('Bearer '):]
        cookie = SimpleCookie(self.headers.get('Cookie', ''))
        if not given and 'nanolink_token' in cookie:
            given = cookie['nanolink_token'].value
        if hmac.compare_digest(given.encode('utf-8'), token.encode('utf-8')):
            return True
        self._send(401, 'text/plain', b'this viewer needs its token: open /?token=TOKEN (host-receiver --http-token)\n')
        return False

    def do_GET(self):
        live = self.server.live
        path = unquote(self.path.split('?', 1)[0])        # stream ids may hold ':' (the page escapes it)
        try:
            if not self._authorised():
                return
            if path in ('/', '/index.html'):
                cookie = None
                if self.server.token:
                    cookie = 'nanolink_token={}; HttpOnly; SameSite=Strict; Path=/'.format(self.server.token)
                self._send(200, 'text/html; charset=utf-8', PAGE.encode('utf-8'), cookie)
            elif path == '/stats.json':
                self._send(200, 'application/json', json.dumps(live.snapshot(), allow_nan=False).encode('utf-8'))
            else:
                m = _STREAM_PATH.fullmatch(path)
                if not m or (m.group(1) == 'stream') != (m.group(3) == 'mjpg') or not is_stream_id(m.group(2)):
                    self._send(404, 'text/plain', b'not found: try / or /stats.json\n')
                elif m.group(2) not in live.streams():
                    self._send(404, 'text/plain', 'no stream {} (yet)\n'.format(m.group(2)).encode('utf-8'))
                elif m.group(1) == 'frame':
                    got = live.jpeg(m.group(2), 0, timeout=2.0)
                    if got is None:
                        self._send(503, 'text/plain', b'no frame yet\n')
                    else:
                        self._send(200, 'image/jpeg', got[1])
                else:
                    self._mjpeg(live, m.group(2))
        except (BrokenPipeError, ConnectionResetError, socket.timeout):
            pass                                   # the browser went away

    def _send(self, code, ctype, body, cookie=None):
        self.send_response(code)
        if cookie:
            self.send_header('Set-Cookie', cookie)
        self.send_header('Content-Type', ctype)
        self.send_header('Content-Length', str(len(body)))
        self.send_header('Cache-Control', 'no-store')
        self.end_headers()
        self.wfile.write(body)

    def _mjpeg(self, live, stream):
        self.close_connection = True
        self.send_response(200)
        self.send_header('Content-Type', 'multipart/x-mixed-replace; boundary=' + BOUNDARY)
        self.send_header('Cache-Control', 'no-store')
        self.send_header('Connection', 'close')
        self.end_headers()
        self.wfile.write('--{}\r\n'.format(BOUNDARY).encode('ascii'))
        n = 0
        while not live.closed:
            got = live.jpeg(stream, n, timeout=1.0)
            if got is None:
                continue
            n, data = got
            # Each part ends with the next boundary, written with it: a browser shows a part once it sees the
            # boundary after it, so a part without one would stay hidden until the next frame (one frame late).
            self.wfile.write('Content-Type: image/jpeg\r\nContent-Length: {}\r\n\r\n'.format(
                len(data)).encode('ascii') + data + '\r\n--{}\r\n'.format(BOUNDARY).encode('ascii'))
            self.wfile.flush()


class WebViewer(object):
    """The HTTP server on its own thread; ``url`` is where it listens."""

    def __init__(self, listen, live, token=None):
        host, port = parse_listen(listen)
        check_token(token)
        try:
            self._server = _Server((host, port), live, token)
        except OSError as e:
            raise NanolinkError('--http {}: cannot listen there ({}): pick another port or address'.format(
                listen, e.strerror or e))
        self.live = live
        bound = self._server.server_address[0]              # what was bound, as it is (0.0.0.0: every interface)
        self.url = 'http://{}:{}/'.format('[{}]'.format(bound) if ':' in bound else bound,
                                          self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={'poll_interval': 0.2},
                                        name='web-viewer', daemon=True)
        self._thread.start()

    def close(self):
        self.live.close()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


PAGE = r"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>nanolink</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
 body { font: 14px/1.4 system-ui, sans-serif; margin: 0; background: #111; color: #ddd; }
 header { padding: 10px 16px; background: #1b1b1b; border-bottom: 1px solid #333; }
 header b { color: #fff; } #totals { color: #aaa; margin-left: 12px; }
 main { display: flex; flex-wrap: wrap; gap: 16px; padding: 16px; }
 .card { background: #1b1b1b; border: 1px solid #333; border-radius: 6px; padding: 10px; max-width: 100%; }
 .card h2 { font-size: 15px; margin: 0 0 8px; color: #fff; }
 .card img { display: block; max-width: 560px; width: 100%; background: #000; }
 .row { display: flex; gap: 16px; flex-wrap: wrap; margin-top: 8px; }
 table { border-collapse: collapse; line-height: 1.25; } td { padding: 0 8px 0 0; } td.v { text-align: right; color: #fff; }
 canvas { background: #141414; border: 1px solid #333; }
 .muted { color: #888; } #empty { padding: 16px; color: #aaa; }
</style></head>
<body>
<header><b>nanolink</b> host viewer <span id="totals">connecting...</span></header>
<div id="empty">Waiting for a stream: start edge-sender with --connect pointing at this host.</div>
<main id="streams"></main>
<script>
"use strict";
const EDGE = ["capture", "preprocess", "encode", "gpu_to_cpu", "entropy", "reference", "serialise", "send"];
const HOST = ["receive", "deserialise", "decode", "postprocess", "display"];
const cards = {};
const f = (v, d) => (v === null || v === undefined) ? "-" : Number(v).toFixed(d);

function card(name) {
  if (cards[name]) return cards[name];
  const el = document.createElement("div");
  el.className = "card"; el.id = "stream-" + name;
  el.innerHTML = `<h2></h2><img alt="stream ${name}" src="/stream/${encodeURIComponent(name)}.mjpg">
   <div class="row"><table class="counters"></table><table class="stages"></table></div>
   <div class="muted">end-to-end latency (ms), up to the last 60 s</div><canvas width="560" height="120"></canvas>`;
  document.getElementById("streams").appendChild(el);
  cards[name] = el;
  return el;
}

function rows(table, items) {
  table.innerHTML = items.map(([k, v, id]) =>
    `<tr><td>${k}</td><td class="v"${id ? ` data-k="${id}"` : ""}>${v}</td></tr>`).join("");
}

function plot(canvas, hist) {
  const g = canvas.getContext("2d"), W = canvas.width, H = canvas.height;
  g.clearRect(0, 0, W, H);
  const pts = hist.filter(p => p[0] >= -60);
  if (!pts.length) return;
  const span = Math.min(60, Math.max(10, Math.ceil(-pts[0][0])));     // seconds shown: up to the last 60
  const top = Math.max(10, ...pts.map(p => p[1])) * 1.15;
  g.strokeStyle = "#333"; g.fillStyle = "#888"; g.font = "11px sans-serif";
  for (let i = 0; i <= 4; i++) {
    const y = H - 16 - (H - 24) * i / 4;
    g.beginPath(); g.moveTo(34, y); g.lineTo(W, y); g.stroke();
    g.fillText(Math.round(top * i / 4), 2, y + 4);
  }
  g.fillText(`-${span} s`, 34, H - 2); g.fillText("now", W - 24, H - 2);
  g.strokeStyle = "#4fc3f7"; g.lineWidth = 1.5; g.beginPath();
  pts.forEach((p, i) => {
    const x = 34 + (W - 36) * (p[0] + span) / span, y = H - 16 - (H - 24) * p[1] / top;
    i ? g.lineTo(x, y) : g.moveTo(x, y);
  });
  g.stroke();
}

async function tick() {
  let s;
  try { s = await (await fetch("/stats.json", {cache: "no-store"})).json(); }
  catch (e) { document.getElementById("totals").textContent = "host-receiver is not answering"; return; }
  const c = s.connections || {};
  document.getElementById("totals").textContent =
    `${s.received} received, ${s.decoded} decoded, ${s.rejected} rejected; connections ${c.accepted || 0} accepted, ` +
    `${c.closed || 0} closed; up ${Math.round(s.uptime_s)} s`;
  const names = Object.keys(s.streams).sort();
  document.getElementById("empty").style.display = names.length ? "none" : "block";
  for (const name of names) {
    const st = s.streams[name], el = card(name), q = st.quality || {}, last = q.last || {};
    const dec = st.decoder && st.decoder !== "fast" ? ` (${st.decoder} decoder)` : "";
    el.querySelector("h2").textContent = `${name}  ·  ${st.model}${dec}  ·  ${st.width}x${st.height}`;
    rows(el.querySelector(".counters"), [
      ["frames received", st.received, "received"], ["decoded", st.decoded, "decoded"],
      ["rejected", st.rejected, "rejected"], ["lost", st.lost, "lost"], ["reordered", st.reordered],
      ["fps", f(st.fps, 1), "fps"], ["bpp (last / mean)", `${f(st.bpp, 3)} / ${f(st.mean_bpp, 3)}`, "bpp"],
      ["end-to-end ms", f(st.end_to_end_ms, 1), "e2e"],
      ["PSNR dB (last / mean)", q.n ? `${f(last.psnr, 2)} / ${f(q.mean_psnr, 2)}` : "no reference", "psnr"],
      ["MS-SSIM (last / mean)", q.n ? `${f(last.ms_ssim, 4)} / ${f(q.mean_ms_ssim, 4)}` : "-", "msssim"]]);
    const stages = [];
    for (const k of EDGE) if (k in (st.sender_stages || {})) stages.push(["edge " + k, f(st.sender_stages[k], 2)]);
    for (const k of HOST) if (k in (st.stages || {})) stages.push(["host " + k, f(st.stages[k], 2)]);
    rows(el.querySelector(".stages"), stages);
    plot(el.querySelector("canvas"), st.latency_history || []);
  }
}
tick(); setInterval(tick, 500);
</script></body></html>
"""
