"""Bounded fuzzing of the video decoder entry point with mutated small videos.

Each mutated file is probed and fully decoded (`probe` + `iter_frames`, both backends chosen by
"auto"). The only acceptable outcomes are a clean decode or `VideoError`. The decoding runs in a
child process, so a native crash (segfault in a decoder) fails the test and names the input
instead of killing the test session.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from videos import write_video

N_MUTANTS = 48      # per source video; the run takes a few seconds

WORKER = r"""
import json, sys, traceback
from vadclip.video import VideoError, iter_frames, probe
results = []
for path in sys.argv[1:]:
    print(path, file=sys.stderr, flush=True)         # the last line names a crashing input
    try:
        info = probe(path)
        n = sum(len(idx) for idx, _ in iter_frames(path, batch_size=16, info=info))
        results.append([path, "ok", [n, info.n_frames]])
    except VideoError as e:
        results.append([path, "video_error", str(e)])
    except Exception:
        results.append([path, "crash", traceback.format_exc()])
print(json.dumps(results))
"""


def mutate(data: bytes, rng: np.random.Generator) -> bytes:
    """One random mutation: bit flips, a byte run overwritten, truncation, insertion or a
    duplicated chunk."""
    buf = bytearray(data)
    kind = rng.integers(5)
    if kind == 0:                                   # flip a few bits anywhere (headers included)
        for pos in rng.integers(0, len(buf), rng.integers(1, 16)):
            buf[pos] ^= 1 << int(rng.integers(8))
    elif kind == 1:                                 # overwrite a run with random bytes
        start = int(rng.integers(len(buf)))
        run = rng.integers(0, 256, int(rng.integers(1, 512)), dtype=np.uint8).tobytes()
        buf[start:start + len(run)] = run
    elif kind == 2:                                 # truncate
        del buf[int(rng.integers(1, len(buf))):]
    elif kind == 3:                                 # insert random bytes
        start = int(rng.integers(len(buf)))
        buf[start:start] = rng.integers(0, 256, int(rng.integers(1, 256)), dtype=np.uint8).tobytes()
    else:                                           # duplicate a chunk elsewhere
        a, b = sorted(int(x) for x in rng.integers(0, len(buf), 2))
        chunk = bytes(buf[a:b][:4096])
        at = int(rng.integers(len(buf)))
        buf[at:at] = chunk
    return bytes(buf)


@pytest.mark.parametrize("name", ["clip.mp4", "clip.mkv", "clip.avi"])
def test_mutated_videos_decode_or_fail_cleanly(tmp_path, name):
    codec = "mpeg4" if name.endswith(".avi") else "h264"
    source = write_video(tmp_path / name, 40, width=64, height=48, codec=codec)
    rng = np.random.default_rng(sum(name.encode()))
    data = source.read_bytes()
    paths = []
    for i in range(N_MUTANTS):
        path = tmp_path / f"mutant{i:03d}{source.suffix}"
        path.write_bytes(mutate(data, rng))
        paths.append(str(path))
    proc = subprocess.run([sys.executable, "-c", WORKER, *paths], capture_output=True, text=True,
                          timeout=300, cwd=Path(__file__).resolve().parents[1])
    last_input = proc.stderr.strip().splitlines()[-1:] or ["?"]
    assert proc.returncode == 0, f"decoder process died ({proc.returncode}) on {last_input[0]}"
    results = json.loads(proc.stdout.strip().splitlines()[-1])
    crashes = [r for r in results if r[1] == "crash"]
    assert not crashes, f"{len(crashes)} inputs raised something other than VideoError:\n{crashes[0][2]}"
    assert len(results) == N_MUTANTS
    for path, outcome, detail in results:
        if outcome == "video_error":
            assert Path(path).name in detail                  # the message names the file
        else:
            decoded, promised = detail
            assert decoded == promised, f"{path}: probe counted {promised} frames, decoding gave {decoded}"
