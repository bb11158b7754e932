"""Day keys and hold keys in the TPM: erasure that survives flash remnants (R8).

Flash keeps old copies of blocks; overwriting a data-key file does not
reach them, and the archive private key that opens them survives (wrapped
per staff member and by the recovery key). So every data-key file is also
encrypted under a key-encryption key that lives only in the TPM, and
erasure destroys that key *in the TPM*, never trusting the flash.

**Day keys** (one per recording day, Japan time) come from a forward
ratchet kept in one NV index (``DAY_INDEX``, 36 bytes: the oldest live day
and its seed). Day *d*'s seed is ``S(d) = SHA-256("acr-day-ratchet" ‖
S(d-1))`` and its key ``HMAC-SHA256(S(d), "acr-day-key")``. Destroying
every day up to *d* overwrites the NV index with day *d+1* and ``S(d+1)``:
from it no earlier seed can be computed, and the TPM holds nothing else. One
small index serves any retention period, which matters on a discrete TPM
(a few kB of NV, a few dozen indices). Retention erases by day, oldest
first, so destroying a prefix of days is all it needs.

**Hold keys**: a held record (R7) outlives its day. Before a day is
destroyed its remaining records (held ones) are re-wrapped under a hold key
in one of 32 slots of a second NV index (``HOLD_INDEX``); a slot is
destroyed (overwritten with zeros by the TPM) when its last record is
erased, and erasing one record of a slot moves the others to a fresh slot
first, so each erasure is certain on its own.

The TPM is told nothing else, and is read at most once a day by the
recorder (today's key is cached) and once per erasure batch by the sweep.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import struct
from datetime import date

from appliance.errors import KeyStoreError
from appliance.store.tpm import Tpm

DAY_INDEX = 0x01500100
HOLD_INDEX = 0x01500101
DAY_BYTES = 4 + 32
HOLD_SLOTS = 32
SLOT_BYTES = 32
#: a ratchet step per day: a century is the most any retention could ask
MAX_STEPS = 40_000


class DayKeyDestroyed(KeyStoreError):
    """The key of that day (or hold slot) was destroyed in the TPM: erased for certain."""


def _step(seed: bytes) -> bytes:
    return hashlib.sha256(b"acr-day-ratchet" + seed).digest()


def _key(seed: bytes) -> bytes:
    return hmac.new(seed, b"acr-day-key", hashlib.sha256).digest()


class DayKeys:
    def __init__(self, tpm: Tpm) -> None:
        self.tpm = tpm
        self._cache: tuple[int, bytes] | None = None     # (oldest day ordinal, its seed)

    # --- set-up ------------------------------------------------------------------------
    def provision(self, today: date) -> None:
        """The two NV indices, made once at init (kept if they exist)."""
        if not self.tpm.nv_exists(DAY_INDEX):
            self.tpm.nv_define(DAY_INDEX, DAY_BYTES)
            self.tpm.nv_write(DAY_INDEX, struct.pack(">I", today.toordinal())
                              + self.tpm.random(32))
        if not self.tpm.nv_exists(HOLD_INDEX):
            self.tpm.nv_define(HOLD_INDEX, HOLD_SLOTS * SLOT_BYTES)
            zeros = bytes(HOLD_SLOTS * SLOT_BYTES)
            for off in range(0, len(zeros), 512):        # within any TPM's NV buffer
                self.tpm.nv_write(HOLD_INDEX, zeros[off:off + 512], off)

    # --- day keys ----------------------------------------------------------------------------
    def _state(self, fresh: bool = False) -> tuple[int, bytes]:
        if self._cache is None or fresh:
            raw = self.tpm.nv_read(DAY_INDEX, DAY_BYTES)
            self._cache = (struct.unpack(">I", raw[:4])[0], raw[4:])
        return self._cache

    def oldest_day(self) -> date:
        return date.fromordinal(self._state(fresh=True)[0])

    def day_key(self, day: date) -> bytes:
        oldest, seed = self._state()
        n = day.toordinal() - oldest
        if n < 0:
            # the cache may be older than the TPM's state: a day destroyed since reads fresh
            oldest, seed = self._state(fresh=True)
            n = day.toordinal() - oldest
            if n < 0:
                raise DayKeyDestroyed(f"{day}: 日鍵は TPM で破棄済みです / the day key was destroyed "
                                      "in the TPM")
        if n > MAX_STEPS:
            raise KeyStoreError(f"{day}: 日付が範囲外です / day out of range")
        for _ in range(n):
            seed = _step(seed)
        return _key(seed)

    def live_day(self, day: date) -> date:
        """``day``, or the oldest live day when ``day`` is already destroyed (clock set back)."""
        oldest = date.fromordinal(self._state()[0])
        return day if day >= oldest else oldest

    def destroy_through(self, day: date) -> bool:
        """Destroy every day key up to ``day`` in the TPM; False if nothing was left to destroy."""
        oldest, seed = self._state(fresh=True)
        n = day.toordinal() + 1 - oldest
        if n <= 0:
            return False
        if n > MAX_STEPS:
            raise KeyStoreError(f"{day}: 日付が範囲外です / day out of range")
        for _ in range(n):
            seed = _step(seed)
        self.tpm.nv_write(DAY_INDEX, struct.pack(">I", day.toordinal() + 1) + seed)
        self._cache = (day.toordinal() + 1, seed)
        return True

    # --- hold keys ---------------------------------------------------------------------------
    def _slots(self) -> bytes:
        return self.tpm.nv_read(HOLD_INDEX, HOLD_SLOTS * SLOT_BYTES)

    def new_hold_slot(self) -> tuple[int, bytes]:
        raw = self._slots()
        for slot in range(HOLD_SLOTS):
            if raw[slot * SLOT_BYTES:(slot + 1) * SLOT_BYTES] == bytes(SLOT_BYTES):
                key = secrets.token_bytes(SLOT_BYTES)
                self.tpm.nv_write(HOLD_INDEX, key, slot * SLOT_BYTES)
                return slot, key
        raise KeyStoreError("保管延長鍵の枠がありません / every hold-key slot of the TPM is in use")

    def hold_key(self, slot: int) -> bytes:
        if not 0 <= slot < HOLD_SLOTS:
            raise KeyStoreError(f"hold slot {slot} out of range")
        key = self.tpm.nv_read(HOLD_INDEX, SLOT_BYTES, slot * SLOT_BYTES)
        if key == bytes(SLOT_BYTES):
            raise DayKeyDestroyed(f"保管延長鍵 {slot} は TPM で破棄済みです / hold key {slot} was "
                                  "destroyed in the TPM")
        return key

    def destroy_hold_slot(self, slot: int) -> None:
        self.tpm.nv_write(HOLD_INDEX, bytes(SLOT_BYTES), slot * SLOT_BYTES)
