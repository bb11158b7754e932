"""appliance.toml: read once by a front end and passed down as frozen dataclasses.

Invalid configuration is refused with the file, the line where TOML's parser
stopped or the key at fault, and the reason.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from appliance.errors import ConfigError
from appliance.store.opus import EncoderSettings


@dataclass(frozen=True)
class SiteConfig:
    name: str = "東庁舎"


@dataclass(frozen=True)
class Config:
    site: SiteConfig = field(default_factory=SiteConfig)
    encoder: EncoderSettings = field(default_factory=EncoderSettings)
    source: Path | None = None
    #: every table as parsed, for layers that validate their own ([policy] …)
    raw: dict = field(default_factory=dict)


_KNOWN = {"site": {"name"}, "encoder": {"bitrate_per_leg", "complexity", "frames_per_page"}}


def load_config(path: Path | None) -> Config:
    if path is None:
        return Config()
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: 設定ファイルがありません / no such configuration file") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: 設定ファイルの構文エラー / syntax error: {exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: UTF-8 ではありません / not UTF-8") from None
    for table, value in raw.items():
        if table not in _KNOWN:
            continue  # tables for later layers (interface, exclusion, notice …)
        if not isinstance(value, dict):
            raise ConfigError(f"{path}: [{table}] must be a table")
        for key in value:
            if key not in _KNOWN[table]:
                raise ConfigError(f"{path}: [{table}] 不明なキー / unknown key {key!r}")
    try:
        site = SiteConfig(**raw.get("site", {}))
        encoder = EncoderSettings(**raw.get("encoder", {}))
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{path}: {exc}") from None
    if not isinstance(site.name, str) or not site.name:
        raise ConfigError(f"{path}: [site] name must be a non-empty string")
    return Config(site, encoder, path, raw)
