"""kill -9 in the middle of a large enrolment (and of a key rotation), many times, at random points.

After every kill the gallery opens, ``facewise doctor`` finds nothing wrong, every batch the child reported
committed is there, and no batch is there in part. A store held open by the parent the whole time sees
every commit of the killed children (its in-memory matrix is rebuilt when the generation moves).
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from facewise.gallery import SQLiteStore
from facewise.gallery.crypto import BlobCipher, gallery_marker
from facewise.gallery.doctor import diagnose
from reliability_helpers import run_cli, text

DIM = 64
BATCH = 40
PERSONS = 7
PLAIN_RUNS = 6
ENCRYPTED_RUNS = 4
ROTATION_RUNS = 3
ROTATION_SAMPLES = 20_000

CHILD = """
import sys
import numpy as np
from facewise.gallery import NewSample, SQLiteStore

path, run, dim, batch, persons = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
store = SQLiteStore(path)
store.ensure_collection("c", "p", "sig", dim)
rng = np.random.default_rng(run)
print("ready", flush=True)
b = 0
while True:
    v = rng.normal(size=(batch, dim)).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    ids = store.add_samples("c", [NewSample(person=f"p{(b + i) % persons}", image_sha256=f"{run}-{b}-{i}",
                                            embedding=v[i], model="m") for i in range(batch)])
    assert all(i is not None for i in ids)
    print(f"committed {b}", flush=True)
    b += 1
"""

ROTATE = """
import base64, sys
from facewise.gallery.crypto import BlobCipher, rotate_gallery
old, new = (BlobCipher(base64.b64decode(k)) for k in sys.argv[2:4])
print("ready", flush=True)
rotate_gallery(sys.argv[1], old, new)
print("rotated", flush=True)
"""


def _key(seed: int) -> str:
    return base64.b64encode(np.random.default_rng(seed).bytes(32)).decode()


def _kill_at_random(args: list[str], env: dict[str, str], delay: float, may_finish: bool = False) -> list[str]:
    """Start a child, wait until it is ready, SIGKILL it ``delay`` seconds later; its stdout words."""
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    try:
        first = proc.stdout.readline().decode().strip() if proc.stdout else ""
        assert first == "ready", (first, proc.stderr.read().decode() if proc.stderr else "")
        time.sleep(delay)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
    out = proc.stdout.read().decode() if proc.stdout else ""
    err = proc.stderr.read().decode() if proc.stderr else ""
    assert proc.returncode == -signal.SIGKILL or (may_finish and proc.returncode == 0), (proc.returncode, err[-2000:])
    assert "Traceback" not in err, err[-2000:]
    return out.split()


def _batches(store: SQLiteStore, run: int) -> Counter[int]:
    """batch number -> samples of that batch present in the gallery, for one child run."""
    return Counter(int(s.image_sha256.split("-")[1]) for s in store.list_samples("c")
                   if s.image_sha256.startswith(f"{run}-"))


def _matrix_matches_database(store: SQLiteStore) -> None:
    ix = store.index("c")
    fresh = store._load_index("c")
    assert sorted(ix.sample_ids.tolist()) == sorted(fresh.sample_ids.tolist())
    order, order_fresh = np.argsort(ix.sample_ids), np.argsort(fresh.sample_ids)
    assert np.array_equal(ix.matrix[order], fresh.matrix[order_fresh])


@pytest.mark.parametrize("encrypted", [False, True], ids=["plaintext", "encrypted"])
def test_kill_9_during_enrolment_loses_nothing_committed(tmp_path: Path, encrypted: bool) -> None:
    db = tmp_path / "g.db"
    env = {**os.environ}
    key = _key(1)
    if encrypted:
        env["FACEWISE_KEY"] = key
    cipher = BlobCipher(base64.b64decode(key)) if encrypted else None
    parent = SQLiteStore(db, cipher=cipher)  # held open across every kill
    parent.ensure_collection("c", "p", "sig", DIM)
    rng = np.random.default_rng(42 + encrypted)
    runs = ENCRYPTED_RUNS if encrypted else PLAIN_RUNS
    total = 0
    summary = []
    for run in range(runs):
        before = len(parent.index("c"))
        lines = _kill_at_random([sys.executable, "-c", CHILD, str(db), str(run), str(DIM), str(BATCH), str(PERSONS)],
                                env, float(rng.uniform(0.1, 1.2)))
        reported = {int(b) for w, b in itertools.pairwise(lines) if w == "committed"}
        with SQLiteStore(db, cipher=cipher) as store:
            assert diagnose(store) == [], f"run {run}: doctor found problems"
            present = _batches(store, run)
            assert all(n == BATCH for n in present.values()), f"run {run}: a batch is there in part: {present}"
            assert reported <= set(present), f"run {run}: committed batches lost: {reported - set(present)}"
            in_flight = {max(reported) + 1} if reported else {0}
            assert set(present) <= reported | in_flight, f"run {run}: unexpected batches {set(present) - reported}"
            total += len(present) * BATCH
            assert store.get_collection("c").samples == total
        # the parent's matrix was built before the child wrote: it must notice and rebuild
        assert len(parent.index("c")) == total >= before
        _matrix_matches_database(parent)
        summary.append((run, len(reported), len(present)))
        if run == runs - 1:
            r = run_cli("doctor", "--db", str(db), env={"FACEWISE_KEY": key} if encrypted else None)
            assert r.returncode == 0 and "healthy" in text(r.stdout), text(r.stderr)
    parent.close()
    print(json.dumps({"encrypted": encrypted, "runs": summary, "samples": total}))  # shown with -s
    assert total > 0, "no batch committed before any kill: raise the delays"


def test_kill_9_during_key_rotation_leaves_one_key(tmp_path: Path) -> None:
    """The rotation is one transaction: after a kill the gallery is wholly under the old key or the new one."""
    from facewise.gallery import NewSample
    from facewise.gallery.crypto import rotate_gallery

    db = tmp_path / "g.db"
    keys = [_key(10 + i) for i in range(ROTATION_RUNS + 2)]
    ciphers = [BlobCipher(base64.b64decode(k)) for k in keys]
    rng = np.random.default_rng(3)
    with SQLiteStore(db, cipher=ciphers[0]) as store:
        store.ensure_collection("c", "p", "sig", DIM)
        v = rng.normal(size=(ROTATION_SAMPLES, DIM)).astype(np.float32)
        store.add_samples("c", [NewSample(person=f"p{i % 50}", image_sha256=str(i), embedding=v[i], model="m")
                                for i in range(len(v))])
    t0 = time.perf_counter()
    rotate_gallery(db, ciphers[0], ciphers[1])  # how long one rotation takes here, to aim the kills inside it
    took = time.perf_counter() - t0
    current, interrupted = 1, 0
    for run in range(1, ROTATION_RUNS + 1):
        lines = _kill_at_random([sys.executable, "-c", ROTATE, str(db), keys[current], keys[run + 1]],
                                dict(os.environ), float(rng.uniform(0.0, 0.7 * took)), may_finish=True)
        conn = sqlite3.connect(db)
        marker = gallery_marker(conn)
        conn.close()
        now = next(i for i, c in enumerate(ciphers) if c.marker == marker)
        assert now in (current, run + 1)
        assert now == run + 1 or "rotated" not in lines
        interrupted += "rotated" not in lines
        with SQLiteStore(db, cipher=ciphers[now]) as store:
            assert diagnose(store) == []
            assert store.get_collection("c").samples == ROTATION_SAMPLES
        current = now
    assert interrupted >= 1, f"every rotation finished before its kill ({took:.2f} s each)"
