"""H.264 / H.265 in low-latency settings through ffmpeg (libx264 / libx265), for nanolink-compare: encode a
clip at a bit rate, decode it, read the encoder's own settings from its stream, and lose one frame on purpose.

Settings, the usual ones for live streaming from a robot: ``-tune zerolatency`` (no lookahead, no B-frames),
``-bf 0``, one slice per frame, a keyframe every ``gop`` frames and none in between (scenecut off), constant bit
rate with a VBV of half a second, 4:2:0 (what every player and NVENC take). libx264 runs with one thread: its
frame threads would hold back a frame each, and its sliced threads would cut a frame in several slices; libx265
keeps its wavefront threads (within a frame) and one frame thread, as zerolatency sets.

ffmpeg comes from --ffmpeg, the imageio-ffmpeg wheel (pip install imageio-ffmpeg; it carries libx264 and
libx265) or the PATH.
"""
import os
import re
import shutil
import subprocess
import tempfile
import time

import numpy as np

from nanolink.common.errors import NanolinkError, UsageError

CODECS = {  # name: (ffmpeg encoder, raw stream format, its parameters option, NAL header parser)
    'h264': ('libx264', 'h264', '-x264-params'),
    'h265': ('libx265', 'hevc', '-x265-params'),
}


def find_ffmpeg(path=None):
    """The ffmpeg executable: ``path``, else imageio-ffmpeg's, else the PATH's; NanolinkError naming the fix."""
    if path:
        if not (os.path.isfile(path) and os.access(path, os.X_OK)):
            raise UsageError('--ffmpeg {}: not an executable file'.format(path))
        return path
    try:
        import imageio_ffmpeg
        return imageio_ffmpeg.get_ffmpeg_exe()
    except (ImportError, RuntimeError):
        pass
    found = shutil.which('ffmpeg')
    if not found:
        raise NanolinkError('no ffmpeg found: pip install imageio-ffmpeg (it ships one with libx264 and libx265), '
                            'apt install ffmpeg, or give --ffmpeg PATH')
    return found


def encode(ffmpeg, frames, codec, kbps, fps, gop, preset='veryfast'):
    """(raw stream bytes, wall seconds of the whole encode) of BGR frames at kbps kilobits a second."""
    lib, fmt, params = CODECS[codec]
    h, w = frames[0].shape[:2]
    rate = '{}k'.format(int(round(kbps)))
    extra = ('threads=1:sliced-threads=0:slices=1:keyint={0}:min-keyint={0}:scenecut=0'.format(gop) if codec == 'h264'
             else 'keyint={0}:min-keyint={0}:scenecut=0:bframes=0:frame-threads=1:log-level=error'.format(gop))
    cmd = [ffmpeg, '-hide_banner', '-loglevel', 'error', '-f', 'rawvideo', '-pix_fmt', 'bgr24', '-s',
           '{}x{}'.format(w, h), '-r', str(fps), '-i', '-', '-an', '-c:v', lib, '-preset', preset, '-tune',
           'zerolatency', '-b:v', rate, '-maxrate', rate, '-bufsize', '{}k'.format(int(round(kbps / 2))), '-g',
           str(gop), '-bf', '0', '-pix_fmt', 'yuv420p', params, extra, '-f', fmt, '-']
    t0 = time.time()
    with tempfile.TemporaryFile() as raw:
        for f in frames:
            raw.write(np.ascontiguousarray(f).tobytes())
        raw.seek(0)
        p = subprocess.run(cmd, stdin=raw, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    wall = time.time() - t0
    if p.returncode != 0 or not p.stdout:
        why = ' / '.join(p.stderr.decode('utf-8', 'replace').strip().splitlines()[-3:])
        raise NanolinkError('ffmpeg {} failed (exit {}): {}'.format(lib, p.returncode, why))
    return p.stdout, wall


def decode(ffmpeg, data, codec, size):
    """The BGR frames ffmpeg's decoder outputs for a raw H.264 / H.265 stream, damage concealed as it does."""
    fmt = CODECS[codec][1]
    w, h = size
    with tempfile.NamedTemporaryFile(suffix='.' + fmt) as f:
        f.write(data)
        f.flush()
        p = subprocess.run([ffmpeg, '-hide_banner', '-loglevel', 'quiet', '-err_detect', 'ignore_err', '-f', fmt,
                            '-i', f.name, '-fps_mode', 'passthrough', '-f', 'rawvideo', '-pix_fmt', 'bgr24', '-'],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    n = len(p.stdout) // (w * h * 3)
    if n == 0:
        raise NanolinkError('ffmpeg decoded nothing of the {} stream'.format(codec))
    return list(np.frombuffer(p.stdout[:n * w * h * 3], np.uint8).reshape(n, h, w, 3))


def shown_after_loss(outputs, frames, k):
    """What a viewer sees, frame by frame, of a stream of ``frames`` frames whose frame k was lost, from the
    decoder's ``outputs``: it outputs one frame per frame it received (H.264 conceals the damage) or discards
    the frames after the loss until the next keyframe (H.265), and a frame not output leaves the last one shown
    on screen (frozen). Returns (frames shown, count of frames not output)."""
    discarded = frames - 1 - len(outputs)
    if discarded < 0:
        raise NanolinkError('the decoder output {} frames of {} sent'.format(len(outputs), frames - 1))
    shown = list(outputs[:k])
    last = shown[-1] if shown else outputs[0]
    shown += [last] * (1 + discarded)                      # the lost frame and the discarded ones: frozen
    shown += list(outputs[k:])
    return shown, 1 + discarded


def nal_units(data):
    """[(start, end, NAL type)] of an Annex-B stream (start codes 00 00 01 / 00 00 00 01)."""
    starts = [m.end() for m in re.finditer(b'\x00\x00\x01', data)]
    units = []
    for i, s in enumerate(starts):
        end = starts[i + 1] - 3 if i + 1 < len(starts) else len(data)
        while end > s and data[end - 1] == 0 and i + 1 < len(starts):     # a 4-byte start code's leading zero
            end -= 1
        units.append((s, end, data[s]))
    return units


def frame_units(data, codec):
    """[(start, end)] of each frame's coded slice (VCL NAL unit), one per frame (one slice per frame)."""
    if codec == 'h264':
        vcl = [(s, e) for s, e, b in nal_units(data) if (b & 0x1F) in (1, 5)]
    else:
        vcl = [(s, e) for s, e, b in nal_units(data) if ((b >> 1) & 0x3F) < 32]
    return vcl


def drop_frame(data, codec, k):
    """The stream with frame k's slice removed: one frame lost in transit (its parameter sets stay)."""
    units = frame_units(data, codec)
    s, e = units[k]
    return data[:s - 3] + data[e:]


def frames_held(data, codec):
    """(frames the encoder holds before it emits a frame, the settings it was read from), from the options
    string x264 / x265 write into their stream's SEI: B-frames + lookahead + frame threads - 1."""
    text = data[:65536].decode('latin-1')

    def get(*keys):
        for k in keys:
            m = re.search(r'\b' + re.escape(k) + r'=(\d+)', text)
            if m:
                return int(m.group(1))
        return None
    if codec == 'h264':
        b, la, sync, th, sliced = (get('bframes'), get('rc_lookahead'), get('sync_lookahead'), get('threads'),
                                   get('sliced_threads'))
        if None in (b, th):
            raise NanolinkError('the H.264 stream carries no x264 options SEI')
        held = b + (la or 0) + (sync or 0) + (0 if sliced else th - 1)
        return held, 'bframes={} rc_lookahead={} sync_lookahead={} threads={} sliced_threads={}'.format(
            b, la, sync, th, sliced)
    b, la, ft = get('bframes'), get('rc-lookahead'), get('frame-threads')
    if None in (b, ft):
        raise NanolinkError('the H.265 stream carries no x265 options SEI')
    return b + (la or 0) + ft - 1, 'bframes={} rc-lookahead={} frame-threads={}'.format(b, la, ft)
