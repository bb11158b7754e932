"""Keyless integrity check of every recording against the catalog (R9).

Anyone may run it: it needs no key and reveals no number or audio. A
recording is *intact* when its file exists, its SHA-256 equals the one the
catalog took when it was closed, and its clear framing is whole (complete
files end in a final chunk). Calls still being recorded are reported as such.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass

from appliance.errors import SealedFileError
from appliance.store import sealed
from appliance.store.catalog import Catalog
from appliance.store.datadir import DataDir


@dataclass(frozen=True)
class Finding:
    call_id: str
    status: str          # intact | altered | truncated | missing | recording
    detail: str

    def as_dict(self) -> dict:
        return asdict(self)


STATUS_JA = {"intact": "正常", "altered": "改変あり", "truncated": "途中で切断",
             "missing": "ファイルなし", "recording": "録音中"}


def verify_recordings(datadir: DataDir, catalog: Catalog) -> list[Finding]:
    out = []
    for row in catalog.calls(states=("complete", "truncated", "recording")):
        cid = row["id"]
        if row["state"] == "recording":
            out.append(Finding(cid, "recording", "still being recorded"))
            continue
        path = datadir.path_of(row["recording_path"])
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            out.append(Finding(cid, "missing", f"{row['recording_path']} does not exist"))
            continue
        if hashlib.sha256(data).hexdigest() != row["sha256"] or len(data) != row["size"]:
            out.append(Finding(cid, "altered", "SHA-256 differs from the catalog"))
            continue
        try:
            layout = sealed.read_layout(data)
        except SealedFileError as exc:
            out.append(Finding(cid, "altered" if row["state"] == "complete" else "truncated",
                               str(exc)))
            continue
        if layout.call_id != cid or layout.key_id != row["key_id"]:
            out.append(Finding(cid, "altered", "file header names another call or key"))
        elif row["state"] == "truncated":
            out.append(Finding(cid, "truncated",
                               f"cut by a crash; {layout.samples / 8000:.1f} s recoverable"))
        elif not layout.complete:
            out.append(Finding(cid, "altered", "marked complete but not closed"))
        else:
            out.append(Finding(cid, "intact", ""))
    return out
