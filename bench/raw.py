"""Raw limits of this machine, one core: Ed25519 verify (and sign), SHA-256, SQLite batched inserts.

These bound what the node and the hub can ever do: a change costs one signature, one hash and one row,
and the hub verifies every change it receives. Each figure is a rate per second, measured in several
rounds; the rounds' median, min and max are reported.
"""

from __future__ import annotations

import hashlib
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import apsw
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

MESSAGE_BYTES = 450  # about one change on the wire
ROWS_PER_TX = 1000


def _rate(rounds: int, once: Callable[[], int]) -> dict:
    """Run `once` (which returns how many operations it did) `rounds` times; rates per second."""
    rates = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        done = once()
        rates.append(done / (time.perf_counter() - t0))
    return {"median_per_s": round(statistics.median(rates)), "min_per_s": round(min(rates)),
            "max_per_s": round(max(rates)), "rounds": rounds}


def ed25519(rounds: int = 5, per_round: int = 2000) -> tuple[dict, dict]:
    """(sign, verify) rates for 32-byte messages (a change's hash), as the log signs them."""
    key = Ed25519PrivateKey.generate()
    public = key.public_key()
    messages = [hashlib.sha256(os.urandom(MESSAGE_BYTES)).digest() for _ in range(per_round)]
    signatures = [key.sign(m) for m in messages]

    def sign() -> int:
        for m in messages:
            key.sign(m)
        return len(messages)

    def verify() -> int:
        for m, s in zip(messages, signatures, strict=True):
            public.verify(s, m)
        return len(messages)

    return _rate(rounds, sign), _rate(rounds, verify)


def sha256(rounds: int = 5, per_round: int = 200_000) -> dict:
    """SHA-256 digests of distinct 450-byte messages."""
    messages = [os.urandom(MESSAGE_BYTES) for _ in range(1000)]

    def once() -> int:
        for i in range(per_round):
            hashlib.sha256(messages[i % 1000]).digest()
        return per_round

    return _rate(rounds, once)


def sqlite_inserts(rounds: int = 5, transactions: int = 20, folder: Path | None = None) -> dict:
    """Rows per second inserted in 1,000-row transactions (executemany) into a WAL file, synchronous=FULL."""
    with tempfile.TemporaryDirectory(dir=folder) as tmp:
        db = apsw.Connection(str(Path(tmp) / "raw.db"))
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            db.execute("CREATE TABLE change (id INTEGER PRIMARY KEY, entity_id TEXT, hash TEXT, payload TEXT)")
            db.execute("CREATE INDEX change_hash ON change (hash)")
            payload = "x" * MESSAGE_BYTES
            counter = [0]

            def once() -> int:
                for _ in range(transactions):
                    rows = []
                    for _ in range(ROWS_PER_TX):
                        counter[0] += 1
                        n = counter[0]
                        rows.append((f"E{n:012d}", hashlib.sha256(n.to_bytes(8, "big")).hexdigest(), payload))
                    with db:
                        db.executemany("INSERT INTO change (entity_id, hash, payload) VALUES (?, ?, ?)", rows)
                return transactions * ROWS_PER_TX

            return _rate(rounds, once)
        finally:
            db.close()


def measure(quick: bool = False, folder: Path | None = None) -> dict:
    """All raw figures; `folder` is where the SQLite file goes (the same disk as the node, ideally)."""
    rounds = 3 if quick else 5
    sign, verify = ed25519(rounds)
    return {
        "ed25519_verify": verify,
        "ed25519_sign": sign,
        "sha256_450B": sha256(rounds, 50_000 if quick else 200_000),
        "sqlite_insert_rows_1000_per_tx": sqlite_inserts(rounds, 10 if quick else 20, folder),
    }
