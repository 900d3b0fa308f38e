"""The soak script at CI scale: real processes, thousands of frames, no frame lost, bounded memory.
The 10 000-frame figures in README come from the same script (docs/soak.txt)."""
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_soak_streams_thousands_of_frames_without_loss_or_memory_growth(tmp_path):
    out = str(tmp_path / 'soak')
    r = subprocess.run([sys.executable, os.path.join(ROOT, 'scripts', 'soak.py'), '--frames', '5000', '--size',
                        '64x48', '--warmup', '300', '--interval', '0.25', '--out', out], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, universal_newlines=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    s = json.load(open(os.path.join(out, 'soak.json')))
    assert s['sent'] == s['decoded'] and s['lost'] == 0 and s['dropped_by_edge'] <= 50, s
    assert s['host_rss_growth_mb'] < 10, s                    # issue 7: < 10 MB over the run
    assert s['edge_rss_growth_mb'] is not None and s['edge_rss_growth_mb'] < 10, s
