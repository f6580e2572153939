#!/usr/bin/env python3
"""The same workload as `swarm-bench wal`, against SQLite (WAL mode, synchronous=FULL):
batches of log entries plus the hard state, one transaction (and fsync) per batch.

    python3 Benchmarks/sqlite_log_bench.py --batch 64 --payload 128 --batches 2000
"""
import argparse
import os
import sqlite3
import tempfile
import time

p = argparse.ArgumentParser()
p.add_argument("--batch", type=int, default=64)
p.add_argument("--payload", type=int, default=128)
p.add_argument("--batches", type=int, default=2000)
a = p.parse_args()

with tempfile.TemporaryDirectory() as d:
    db = sqlite3.connect(os.path.join(d, "raft.db"), isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("CREATE TABLE entries (idx INTEGER PRIMARY KEY, term INTEGER, type INTEGER, data BLOB)")
    db.execute("CREATE TABLE hardstate (id INTEGER PRIMARY KEY CHECK (id = 0), term INTEGER, vote INTEGER, commit_idx INTEGER)")
    payload = b"a" * a.payload
    idx = 0
    start = time.perf_counter()
    for _ in range(a.batches):
        db.execute("BEGIN")
        rows = []
        for _ in range(a.batch):
            idx += 1
            rows.append((idx, 1, 0, payload))
        db.executemany("INSERT OR REPLACE INTO entries VALUES (?, ?, ?, ?)", rows)
        db.execute("INSERT OR REPLACE INTO hardstate VALUES (0, 1, 1, ?)", (idx,))
        db.execute("COMMIT")
    s = time.perf_counter() - start
    print(f"sqlite: {a.batches} fsynced batches of {a.batch} x {a.payload} B: "
          f"{idx / s:.0f}/s entries, {a.batches / s:.0f}/s batches, {s / a.batches * 1000:.2f} ms per batch")
