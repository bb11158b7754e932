"""Grounds (根拠) for using a record: the closed list of R12 and R18.

Every listen, extract, export, hold, release and erasure names one of these
codes, a reference (document number, case) and the actor. The labels are the
seed's own words (要綱 第7条第3項, 第8条第1項, 第9条).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from appliance.errors import GroundError


class Ground(StrEnum):
    DUTY = "duty"                    # 設置目的内の確認 (第7条第3項)
    LAW = "law"                      # 法令に基づく場合 (第8条第1項第1号)
    INVESTIGATION = "investigation"  # 捜査機関からの照会 (第8条第1項第2号)
    MAYOR = "mayor"                  # 市長が特に必要と認めた場合 (第8条第1項第3号)
    DISCLOSURE = "disclosure"        # 開示請求 (第9条)


@dataclass(frozen=True)
class GroundInfo:
    ground: Ground
    label_ja: str
    label_en: str
    article: str


GROUNDS: dict[Ground, GroundInfo] = {
    Ground.DUTY: GroundInfo(Ground.DUTY, "設置目的内の確認", "check within the installation's purpose", "第7条第3項"),
    Ground.LAW: GroundInfo(Ground.LAW, "法令に基づく場合", "required by law", "第8条第1項第1号"),
    Ground.INVESTIGATION: GroundInfo(Ground.INVESTIGATION, "捜査機関からの照会",
                                     "request from an investigating authority", "第8条第1項第2号"),
    Ground.MAYOR: GroundInfo(Ground.MAYOR, "市長が特に必要と認めた場合",
                             "specially approved by the mayor", "第8条第1項第3号"),
    Ground.DISCLOSURE: GroundInfo(Ground.DISCLOSURE, "開示請求",
                                  "disclosure request about one's own record", "第9条"),
}


def parse_ground(code: str | None, reference: str | None) -> tuple[Ground, str]:
    """Validate a ground and its reference; both are required for any use of a record."""
    if not code:
        raise GroundError("根拠を指定してください / a ground is required (--ground): "
                          + ", ".join(g.value for g in Ground))
    try:
        ground = Ground(code)
    except ValueError:
        raise GroundError(f"不明な根拠 / unknown ground {code!r}: choose one of "
                          + ", ".join(g.value for g in Ground)) from None
    if not reference or not reference.strip():
        raise GroundError("参照番号を指定してください / a reference (document number, case) "
                          "is required (--reference)")
    return ground, reference.strip()
