"""One read of the appliance's state for the console and the staff web.

``appliance_status(data_dir, catalog)`` combines the recorder's live answer
(line states, levels, devices, counters; None when the recorder is not
running) with the active alarms from the catalog. Nothing in it names a
telephone number.
"""

from __future__ import annotations

from pathlib import Path

from appliance.ops.alarms import read_alarms
from appliance.ops.live import RecorderUnavailable, query, socket_path
from appliance.store.catalog import Catalog


def live_status(data_dir: Path, timeout: float = 1.0) -> dict | None:
    """The recorder's live snapshot, or None when it is not running."""
    try:
        answer = query(socket_path(data_dir), {"cmd": "status"}, timeout)
    except RecorderUnavailable:
        return None
    return None if "error" in answer else answer


ERASURE_CERTAIN = ("TPM の日鍵で消去: フラッシュ上の残骸も開けません / erasure destroys day keys "
                   "in the TPM: flash remnants no longer open")
ERASURE_NOT_CERTAIN = ("TPM なし: 消去はフラッシュ上で確実ではありません / no TPM fitted: erasure is "
                       "NOT certain on flash (old copies of key files open with the archive key)")


def evidence_status(data_dir: Path) -> dict:
    """Whether erasure is certain on flash (a TPM holds the day keys); no secret, no number."""
    fitted = (Path(data_dir) / "keys" / "tpm.json").exists()
    return {"tpm_fitted": fitted, "erasure": ERASURE_CERTAIN if fitted else ERASURE_NOT_CERTAIN}


def appliance_status(data_dir: Path, catalog: Catalog, timeout: float = 1.0) -> dict:
    live = live_status(data_dir, timeout)
    return {"recorder_running": live is not None,
            "live": live,
            "alarms": [a.as_dict() for a in read_alarms(catalog)],
            **evidence_status(data_dir)}
