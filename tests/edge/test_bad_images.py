"""Hostile image files on the edge: headers claiming huge sizes are refused before decoding (skipped in a folder,
a one-line error for a single file), also under a Nano-sized address-space limit."""
import os
import struct
import subprocess
import sys
import zlib

import cv2
import numpy as np
import pytest

from nanolink.common.imageproc import MAX_IMAGE_PIXELS, ImageTooLarge, header_size, read_image


def png_header_only(path, w, h):
    """A tiny PNG whose IHDR claims w x h (its pixel data is one empty deflate stream)."""
    def chunk(kind, data):
        return struct.pack('>I', len(data)) + kind + data + struct.pack('>I', zlib.crc32(kind + data) & 0xffffffff)
    ihdr = struct.pack('>IIBBBBB', w, h, 8, 2, 0, 0, 0)
    with open(path, 'wb') as f:
        f.write(b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', ihdr) + chunk(b'IDAT', zlib.compress(b'')) + chunk(b'IEND', b''))


def test_headers_give_sizes_without_decoding(tmp_path):
    img = np.zeros((37, 53, 3), np.uint8)
    for ext in ('.png', '.jpg', '.bmp', '.webp', '.ppm'):
        path = str(tmp_path / ('x' + ext))
        assert cv2.imwrite(path, img)
        assert tuple(header_size(np.fromfile(path, np.uint8))) == (53, 37), ext
    png_header_only(str(tmp_path / 'claims.png'), 60000, 60000)
    assert os.path.getsize(str(tmp_path / 'claims.png')) < 80
    assert header_size(np.fromfile(str(tmp_path / 'claims.png'), np.uint8)) == (60000, 60000)
    assert header_size(b'GIF89a') is None and header_size(b'\x89PNG') is None


def test_read_image_refuses_oversized_headers(tmp_path):
    png_header_only(str(tmp_path / 'big.png'), 20000, 20000)
    with pytest.raises(ImageTooLarge, match='20000x20000 pixels, over the 64 Mpx'):
        read_image(str(tmp_path / 'big.png'))
    assert 20000 * 20000 > MAX_IMAGE_PIXELS


@pytest.mark.skipif(not sys.platform.startswith('linux'), reason='ulimit -v is a Linux shell limit here')
def test_edge_sender_skips_huge_images_in_a_folder_under_a_4_gb_limit(tmp_path, sample_frame, host_process):
    folder = tmp_path / 'imgs'
    folder.mkdir()
    png_header_only(str(folder / 'a-claims-60000.png'), 60000, 60000)
    png_header_only(str(folder / 'b-claims-20000.png'), 20000, 20000)
    cv2.imwrite(str(folder / 'c-real.jpg'), sample_frame)
    h = host_process('--frames', 1, '--timeout', 60)
    cmd = '{} -m nanolink.edge.cli --camera {} --connect {} --model jpeg'.format(sys.executable, folder, h.endpoint)
    r = subprocess.run(['bash', '-c', 'ulimit -v 4000000 && ' + cmd], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       universal_newlines=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert 'Traceback' not in r.stderr and '1 frames in' in r.stderr
    assert r.stderr.count('skipping ') == 2 and '60000x60000 pixels, over the 64 Mpx' in r.stderr
    rc, err = h.wait(60)
    assert rc == 0 and '1 decoded' in err
    single = subprocess.run(['bash', '-c', 'ulimit -v 4000000 && {} -m nanolink.edge.cli --camera {} --connect {}'
                             .format(sys.executable, folder / 'b-claims-20000.png', h.endpoint)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, timeout=120)
    assert single.returncode == 1 and 'Traceback' not in single.stderr
    assert single.stderr.strip().splitlines()[-1].startswith('edge-sender: error:') and '20000x20000' in single.stderr
