"""Acknowledged delivery with real processes: 15 kill -9 restarts of the host lose no frame, a restarted edge is
a new session, and under CurveZMQ a key can only send its own stream id."""
import json
import os
import re
import signal
import subprocess
import sys
import time

from conftest import HostProcess, cli


def decoded_seqs(paths):
    seqs = []
    for p in paths:
        if os.path.exists(str(p)):
            with open(str(p)) as f:                       # a line still being written has no newline yet
                seqs += [json.loads(line)['seq'] for line in f if line.endswith('\n') and line.strip()]
    return seqs


def wait_for(cond, timeout_s, what):
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        if cond():
            return
        time.sleep(0.05)
    raise AssertionError('{} within {} s'.format(what, timeout_s))


def test_fifteen_host_kills_lose_no_frame(tmp_path):
    logs = [tmp_path / 'h{}.jsonl'.format(i) for i in range(16)]
    edge_log = tmp_path / 'edge.jsonl'
    host = HostProcess('--model', 'jpeg', '--log', logs[0])
    endpoint = host.endpoint
    # no --frames: the edge streams until the 15 kills are done, however long they take on a slow machine
    edge = subprocess.Popen([sys.executable, '-m', 'nanolink.edge.cli', '--camera', 'synthetic://96x64', '--model',
                             'jpeg', '--fps', '10', '--connect', endpoint, '--stream-id', 'cam',
                             '--log', str(edge_log)], stderr=subprocess.PIPE, universal_newlines=True)
    try:
        for i in range(15):
            wait_for(lambda: len(decoded_seqs([logs[i]])) >= 2, 60, 'host {} decodes'.format(i))
            host.proc.send_signal(signal.SIGSTOP)                     # frozen: whatever the edge sends now is
            sent_before = max(decoded_seqs([edge_log]) or [-1])       # in flight, never acknowledged
            wait_for(lambda: max(decoded_seqs([edge_log]) or [-1]) > sent_before, 60, 'the edge sends on')
            host.proc.send_signal(signal.SIGKILL)                     # no goodbye, frames in flight
            host.proc.wait()
            deadline = time.time() + 30
            while True:                                               # the port is free again a moment later
                try:
                    host = HostProcess('--model', 'jpeg', '--log', logs[i + 1], bind=endpoint)
                    break
                except AssertionError:
                    assert time.time() < deadline, 'the port did not come free'
                    time.sleep(0.2)
        wait_for(lambda: len(decoded_seqs([logs[15]])) >= 2, 60, 'host 15 decodes')
        edge.send_signal(signal.SIGINT)                           # stop: it waits for every acknowledgement
        _, err = edge.communicate(timeout=120)
        assert edge.returncode == 0, err                          # and it says all were acknowledged
        n = int(re.search(r'edge-sender: (\d+) frames in', err).group(1))
        wait_for(lambda: set(decoded_seqs(logs)) >= set(range(n)), 120, 'every frame decoded')
    finally:
        if edge.poll() is None:
            edge.kill()
        host.proc.send_signal(signal.SIGCONT)                     # a host left frozen by a failed wait ignores SIGINT
        host.proc.send_signal(signal.SIGINT)
        host.wait(60)
    seqs = decoded_seqs(logs)
    assert sorted(set(seqs)) == list(range(n))                   # 0 lost across 15 kills
    for p in logs:                                                # each host got them in order
        assert decoded_seqs([p]) == sorted(set(decoded_seqs([p]))), p
    assert ', 0 dropped,' in err and 'sent again (after a reconnection or an acknowledgement' in err
    assert int(err.split(' dropped, ')[1].split()[0]) >= 15      # each kill left a frame to send again


def test_frames_sent_again_after_a_kill_reach_the_new_host_in_order(tmp_path):
    # raw 640x480 frames (0.9 MB): with the host frozen, a few fill the kernel's socket buffers and the rest of the
    # edge's credit waits in ZeroMQ's queue for that connection, which the kill cuts: what the new host gets first
    # must still be the oldest frame it lacks, then the rest in order, with nothing lost
    n = 90
    logs = [tmp_path / 'a.jsonl', tmp_path / 'b.jsonl']
    edge_log = tmp_path / 'edge.jsonl'
    host = HostProcess('--model', 'raw', '--log', logs[0])
    endpoint = host.endpoint
    edge = subprocess.Popen([sys.executable, '-m', 'nanolink.edge.cli', '--camera', 'synthetic://640x480', '--model',
                             'raw', '--fps', '30', '--frames', str(n), '--connect', endpoint, '--stream-id', 'cam',
                             '--send-timeout', '0', '--log', str(edge_log)],
                            stderr=subprocess.PIPE, universal_newlines=True)
    try:
        wait_for(lambda: len(decoded_seqs([logs[0]])) >= 3, 60, 'the first host decodes')
        host.proc.send_signal(signal.SIGSTOP)
        sent_before = max(decoded_seqs([edge_log]) or [-1])
        wait_for(lambda: max(decoded_seqs([edge_log]) or [-1]) >= sent_before + 40, 60, 'the edge fills its credit')
        host.proc.send_signal(signal.SIGKILL)
        host.proc.wait()
        deadline = time.time() + 30
        while True:
            try:
                host = HostProcess('--model', 'raw', '--log', logs[1], bind=endpoint)
                break
            except AssertionError:
                assert time.time() < deadline, 'the port did not come free'
                time.sleep(0.2)
        wait_for(lambda: set(decoded_seqs(logs)) >= set(range(n)), 120, 'every frame decoded')
        assert edge.wait(120) == 0, edge.stderr.read()
    finally:
        if edge.poll() is None:
            edge.kill()
        host.proc.send_signal(signal.SIGINT)
        host.wait(60)
    first, second = decoded_seqs([logs[0]]), decoded_seqs([logs[1]])
    assert sorted(set(first + second)) == list(range(n))
    assert second == sorted(set(second)), second               # in order, each once
    assert second[0] <= min(set(range(n)) - set(first)), (first, second)   # starting from the oldest it lacked


def test_frames_beyond_the_buffer_are_counted_and_named(tmp_path):
    r = cli('nanolink.edge.cli', '--camera', 'synthetic://96x64', '--model', 'jpeg', '--frames', 8, '--buffer', 3,
            '--send-timeout', 50, '--connect', 'tcp://127.0.0.1:9', '--quiet')
    assert r.returncode == 1 and 'no host-receiver answered' in r.stderr
    assert ', 5 dropped,' in r.stderr and 'dropped frames (seq): 3-7' in r.stderr


def test_a_restarted_edge_is_a_new_session_counted_and_saved_apart(tmp_path, host_process):
    h = host_process('--frames', 6, '--save', tmp_path / 'out', '--timeout', 60)
    for _ in range(2):
        r = cli('nanolink.edge.cli', '--camera', 'synthetic://96x64', '--model', 'jpeg', '--frames', 3, '--connect',
                h.endpoint, '--stream-id', 'cam', '--quiet')
        assert r.returncode == 0, r.stderr
    rc, err = h.wait(60)
    assert rc == 0, err
    assert 'stream cam: 3 frames, 0 lost, 0 reordered' in err and 'stream cam~2: 3 frames, 0 lost, 0 reordered' in err
    for name in ('cam', 'cam~2'):                                # never overwriting each other
        assert sorted(os.listdir(str(tmp_path / 'out' / name))) == ['{:08d}.png'.format(i) for i in range(3)]


def test_a_curve_key_sends_only_its_own_stream_id(tmp_path, host_process):
    keys = tmp_path / 'keys'
    assert cli('nanolink.common.keys', keys, '--edges', 'cam1,cam2').returncode == 0
    h = host_process('--curve-keys', keys, '--model', 'jpeg', '--frames', 2, '--timeout', 60, '--log',
                     tmp_path / 'h.jsonl')
    import shutil
    forged = tmp_path / 'forged'                     # cam1's key, claiming to be cam2
    forged.mkdir()
    shutil.copy(str(keys / 'host.key'), str(forged / 'host.key'))
    shutil.copy(str(keys / 'cam1.key_secret'), str(forged / 'cam2.key_secret'))
    r = cli('nanolink.edge.cli', '--camera', 'synthetic://96x64', '--model', 'jpeg', '--frames', 2, '--connect',
            h.endpoint, '--curve-keys', forged, '--stream-id', 'cam2', '--quiet')
    assert r.returncode == 1, r.stderr              # delivered and acknowledged, but refused, and told why
    assert 'took 2 of the 2 frames but did not decode them (0-1): stream id cam2 is not the one of the key that ' \
           'sent it (cam1) (2)' in r.stderr
    r = cli('nanolink.edge.cli', '--camera', 'synthetic://96x64', '--model', 'jpeg', '--frames', 2, '--connect',
            h.endpoint, '--curve-keys', keys, '--stream-id', 'cam1', '--quiet')
    assert r.returncode == 0, r.stderr
    rc, err = h.wait(60)
    assert rc == 0, err
    assert '2 decoded, 2 rejected' in err and 'stream id cam2 is not the one of the key that sent it (cam1)' in err
    assert {json.loads(line)['stream'] for line in open(str(tmp_path / 'h.jsonl'))} == {'cam1'}
