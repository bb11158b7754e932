"""Capture statements: the device signs, once a second, what every recording holds so far (R9).

While a call is written, the writer keeps a running SHA-256 over its file's
sealed bytes. At least once a second (and at once when a recording closes)
one *statement* covers every recording written since the last: for each,
the call id, the length so far, the SHA-256 of those bytes and whether the
recording is closed. One ECDSA P-256 signature per statement, whatever the
number of lines — a hardware TPM signs a few dozen times a second at best.

The entries are the leaves of a Merkle tree (RFC 6962 hashing: leaf =
SHA-256(0x00 ‖ entry), node = SHA-256(0x01 ‖ left ‖ right)); the device
signs the root. For each recording only its *latest* entry is kept, with
the path to its statement's root and the signature (``capture_seals``, one
row a recording): a few hundred bytes a call instead of every second's
whole list, and still checkable on its own. A file cut by a crash verifies
up to its last signed length; a file re-sealed by someone holding only the
archive *public* key has no signature that matches it.

The Merkle code is ours: it is twenty lines, and the libraries that offer
it bring a storage model we do not want.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from appliance.store.catalog import Catalog, to_utc_text

FORMAT = 1
#: at most this often in the writer's own time (seconds); the issue's "at least once a second"
INTERVAL_S = 1.0


def _leaf(entry: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + entry).digest()


def _node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def entry_bytes(call_id: str, length: int, sha256: str, final: bool) -> bytes:
    return f"{call_id}|{length}|{sha256}|{int(final)}".encode()


def merkle(leaves: list[bytes]) -> tuple[bytes, list[str]]:
    """The root and, per leaf, its path as 'L<hex>' / 'R<hex>' steps joined by ','."""
    paths: list[list[str]] = [[] for _ in leaves]
    level = [(h, [i]) for i, h in enumerate(leaves)]
    while len(level) > 1:
        nxt = []
        for j in range(0, len(level), 2):
            if j + 1 == len(level):          # an odd node goes up unchanged
                nxt.append(level[j])
                continue
            (lh, li), (rh, ri) = level[j], level[j + 1]
            for i in li:
                paths[i].append("R" + rh.hex())
            for i in ri:
                paths[i].append("L" + lh.hex())
            nxt.append((_node(lh, rh), li + ri))
        level = nxt
    return level[0][0], [",".join(p) for p in paths]


def root_of(entry: bytes, proof: str) -> bytes | None:
    h = _leaf(entry)
    for step in filter(None, proof.split(",")):
        try:
            other = bytes.fromhex(step[1:])
        except ValueError:
            return None
        if step[0] == "R":
            h = _node(h, other)
        elif step[0] == "L":
            h = _node(other, h)
        else:
            return None
    return h


def statement_message(device_fp: str, seq: int, at: str, root_hex: str) -> bytes:
    """The exact bytes the device signs."""
    return json.dumps({"v": FORMAT, "device": device_fp, "seq": seq, "at": at, "root": root_hex},
                      sort_keys=True, separators=(",", ":")).encode()


class CaptureSealer:
    """Signs statements for the writer; runs in the writer's thread only.

    ``signer`` has ``sign(bytes) -> DER signature`` (devicekey.py);
    ``monotonic`` paces statements, ``now`` dates them (both passed in)."""

    def __init__(self, catalog: Catalog, signer, device_fp: str,
                 monotonic: Callable[[], float], now: Callable[[], datetime]) -> None:
        self.catalog = catalog
        self.signer = signer
        self.device_fp = device_fp
        self.monotonic = monotonic
        self.now = now
        self._pending: dict[str, object] = {}     # call id → RecordingFile written since
        self._final: set[str] = set()
        self._last = monotonic()
        row = catalog.conn.execute("SELECT MAX(seq) FROM capture_seals").fetchone()
        self.seq = row[0] or 0
        self.statements = 0
        self.sign_seconds = 0.0

    def wrote(self, call_id: str, rfile) -> None:
        """``rfile`` (a RecordingFile) got bytes; signed with the next statement."""
        self._pending[call_id] = rfile

    def closed(self, call_id: str, rfile) -> None:
        """The recording is complete: sign now, so a closed row always has a final statement."""
        self._pending[call_id] = rfile
        self._final.add(call_id)
        self.seal()

    def due(self) -> bool:
        return bool(self._pending) and self.monotonic() - self._last >= INTERVAL_S

    def tick(self) -> None:
        if self.due():
            self.seal()

    def seal(self) -> int:
        """Sign one statement over every pending recording; returns how many it covers."""
        if not self._pending:
            return 0
        t0 = self.monotonic()
        items = []
        for call_id, f in sorted(self._pending.items()):
            items.append((call_id, f.size, f.running_sha256(), call_id in self._final))
        self.seq += 1
        at = to_utc_text(self.now())
        root, proofs = merkle([_leaf(entry_bytes(*it)) for it in items])
        sig = self.signer.sign(statement_message(self.device_fp, self.seq, at, root.hex()))
        with self.catalog.transaction():
            self.catalog.conn.executemany(
                "INSERT OR REPLACE INTO capture_seals (call_id, seq, at, length, sha256, final,"
                " proof, root, sig) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [(cid, self.seq, at, n, sha, int(final), proof, root.hex(), sig.hex())
                 for (cid, n, sha, final), proof in zip(items, proofs)])
        self._pending.clear()
        self._final.clear()
        self._last = self.monotonic()
        self.statements += 1
        self.sign_seconds += self._last - t0
        return len(items)


@dataclass(frozen=True)
class SealCheck:
    signed_length: int        # bytes of the file the device vouches for (0: none)
    final: bool               # the device saw the recording closed at that length
    problem: str | None       # why the seal does not hold, if it does not


def check_seal(seal: dict | None, data: bytes, public, device_fp: str,
               verify: Callable[[object, bytes, bytes], bool],
               cache: dict | None = None) -> SealCheck:
    """Does the device's latest statement for this recording hold for ``data``?"""
    if seal is None:
        return SealCheck(0, False, "装置の署名がありません / no device-signed statement")
    cache = {} if cache is None else cache
    key = (seal["seq"], seal["root"], seal["sig"])
    if key not in cache:
        try:
            sig = bytes.fromhex(seal["sig"])
        except ValueError:
            sig = b""
        cache[key] = verify(public, statement_message(device_fp, seal["seq"], seal["at"],
                                                      seal["root"]), sig)
    if not cache[key]:
        return SealCheck(0, False, "装置の署名が一致しません / the device signature does not "
                                   "verify (not signed by this appliance)")
    entry = entry_bytes(seal["call_id"], seal["length"], seal["sha256"], bool(seal["final"]))
    root = root_of(entry, seal["proof"])
    if root is None or root.hex() != seal["root"]:
        return SealCheck(0, False, "署名済みの記載が改変されています / the signed entry was "
                                   "altered (not in the signed statement)")
    if len(data) < seal["length"]:
        return SealCheck(seal["length"], bool(seal["final"]),
                         f"ファイルが署名時より短い / the file is shorter ({len(data)} bytes) than "
                         f"the {seal['length']} bytes the device signed")
    if hashlib.sha256(data[:seal["length"]]).hexdigest() != seal["sha256"]:
        return SealCheck(seal["length"], bool(seal["final"]),
                         "署名時の内容と異なります / the file differs from what the device signed")
    return SealCheck(seal["length"], bool(seal["final"]), None)
