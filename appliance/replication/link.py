"""The appliance's side of its enrolment: where the centre is and how to prove who we are.

::

    DATA_DIR/central/link.json     centre URL (mutual TLS), site code and name, enrolled at
    DATA_DIR/central/client.key    this appliance's TLS private key (made here, never sent)
    DATA_DIR/central/client.pem    its certificate, issued by the city CA at enrolment
    DATA_DIR/central/ca.pem        the city CA: the only issuer the appliance trusts for the centre

A data directory without ``link.json`` is not enrolled: it keeps no outbox
and talks to no centre.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from appliance.errors import ConfigError

LINK_DIR = "central"


@dataclass(frozen=True)
class SiteLink:
    root: Path
    url: str                 # https://host:port of the centre's site listener (mutual TLS)
    site: str                # site code (ASCII), the certificate's common name
    site_name: str           # 東庁舎 …
    enrolled_at: str

    @property
    def client_key(self) -> Path:
        return self.root / "client.key"

    @property
    def client_cert(self) -> Path:
        return self.root / "client.pem"

    @property
    def ca_cert(self) -> Path:
        return self.root / "ca.pem"


def link_dir(data_dir: Path) -> Path:
    return data_dir / LINK_DIR


def load_link(data_dir: Path) -> SiteLink | None:
    root = link_dir(data_dir)
    try:
        doc = json.loads((root / "link.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except ValueError:
        raise ConfigError(f"{root / 'link.json'}: 登録情報が壊れています / the enrolment file "
                          "is damaged") from None
    try:
        return SiteLink(root, doc["url"], doc["site"], doc["site_name"], doc["enrolled_at"])
    except KeyError as exc:
        raise ConfigError(f"{root / 'link.json'}: missing {exc}") from None
