"""appliance.toml: read once by a front end and passed down as frozen dataclasses.

Invalid configuration is refused with the file, the line where TOML's parser
stopped or the key at fault, and the reason.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from appliance.errors import ConfigError
from appliance.store.opus import EncoderSettings


@dataclass(frozen=True)
class SiteConfig:
    name: str = "東庁舎"


@dataclass(frozen=True)
class InterfaceConfig:
    #: backend URL (tapi): ``sim://scenario.toml`` …; None = not configured (refused by run)
    url: str | None = None


@dataclass(frozen=True)
class Exclusion:
    """R5: calls matching every given key are not recorded and get no notice."""

    trunk: str | None = None
    channel: int | None = None
    called_number: str | None = None
    far_number: str | None = None
    #: keep a row without audio for an excluded call (default: no trace at all)
    keep_metadata: bool = False
    name: str = ""


@dataclass(frozen=True)
class NoticeConfig:
    #: 8 kHz 16-bit mono WAV; None = the shipped Japanese default
    file: Path | None = None
    #: the wording, for publication (R17); None = the default's text
    text: str | None = None


@dataclass(frozen=True)
class EngineConfig:
    #: a call still going after this long is ended (a line left off-hook …)
    max_call_s: float = 4 * 3600.0
    #: writer queue capacity in sealed chunks (≈ 0.8 s of one call each)
    writer_queue_chunks: int = 1024


@dataclass(frozen=True)
class Config:
    site: SiteConfig = field(default_factory=SiteConfig)
    encoder: EncoderSettings = field(default_factory=EncoderSettings)
    source: Path | None = None
    #: every table as parsed, for layers that validate their own ([policy] …)
    raw: dict = field(default_factory=dict)
    interface: InterfaceConfig = field(default_factory=InterfaceConfig)
    exclusions: tuple[Exclusion, ...] = ()
    notice: NoticeConfig = field(default_factory=NoticeConfig)
    engine: EngineConfig = field(default_factory=EngineConfig)


_KNOWN = {"site": {"name"}, "encoder": {"bitrate_per_leg", "complexity", "frames_per_page",
                                          "frames_per_encode", "helper_threads"},
          "interface": {"url"}, "notice": {"file", "text"},
          "engine": {"max_call_s", "writer_queue_chunks"}}
_EXCLUSION_KEYS = {"trunk", "channel", "called_number", "far_number", "keep_metadata", "name"}


def _line_of(text: str, table: str, index: int | None = None, key: str | None = None) -> int | None:
    """1-based line of ``[table]`` (or the index-th ``[[table]]``), or of ``key`` inside it."""
    head = re.compile(rf"^\s*\[\[?\s*{re.escape(table)}\s*\]\]?\s*(#.*)?$")
    any_head = re.compile(r"^\s*\[")
    lines = text.splitlines()
    seen, start = -1, None
    for i, ln in enumerate(lines):
        if head.match(ln):
            seen += 1
            if index is None or seen == index:
                start = i
                break
    if start is None:
        return None
    if key is not None:
        for j in range(start + 1, len(lines)):
            if any_head.match(lines[j]):
                break
            if re.match(rf"^\s*{re.escape(key)}\s*=", lines[j]):
                return j + 1
    return start + 1


class _Refuse:
    def __init__(self, path: Path, text: str) -> None:
        self.path, self.text = path, text

    def __call__(self, table: str, reason: str, *, index: int | None = None,
                 key: str | None = None) -> ConfigError:
        line = _line_of(self.text, table, index, key)
        where = f"{self.path}:{line}" if line else f"{self.path}"
        label = f"[[{table}]] #{index + 1}" if index is not None else f"[{table}]"
        return ConfigError(f"{where}: {label} 設定の誤り / invalid configuration: {reason}")


def _exclusions(raw, refuse: _Refuse) -> tuple[Exclusion, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list) or not all(isinstance(x, dict) for x in raw):
        raise refuse("exclusion", "use [[exclusion]] tables")
    out = []
    for i, t in enumerate(raw):
        for k in t:
            if k not in _EXCLUSION_KEYS:
                raise refuse("exclusion", f"不明なキー / unknown key {k!r}", index=i, key=k)
        if not any(k in t for k in ("trunk", "channel", "called_number", "far_number")):
            raise refuse("exclusion", "needs at least one of trunk, channel, called_number, "
                         "far_number (an empty exclusion would exclude every call)", index=i)
        for k in ("trunk", "called_number", "far_number", "name"):
            if k in t and (not isinstance(t[k], str) or not t[k]):
                raise refuse("exclusion", f"{k} must be a non-empty string", index=i, key=k)
        for k in ("called_number", "far_number"):
            if k in t and not re.fullmatch(r"[0-9*#]{1,20}", t[k]):
                raise refuse("exclusion", f"{k} must be digits", index=i, key=k)
        ch = t.get("channel")
        if ch is not None and (isinstance(ch, bool) or not isinstance(ch, int) or not 0 < ch <= 23):
            raise refuse("exclusion", "channel must be an integer 1–23", index=i, key="channel")
        if not isinstance(t.get("keep_metadata", False), bool):
            raise refuse("exclusion", "keep_metadata must be true or false", index=i,
                         key="keep_metadata")
        out.append(Exclusion(**t))
    return tuple(out)


def _engine_tables(raw: dict, path: Path, refuse: _Refuse):
    iface = raw.get("interface", {})
    url = iface.get("url")
    if url is not None and (not isinstance(url, str) or "://" not in url):
        raise refuse("interface", f"url must look like scheme://…, not {url!r}", key="url")
    n = raw.get("notice", {})
    file = n.get("file")
    if file is not None:
        if not isinstance(file, str) or not file:
            raise refuse("notice", "file must be a path", key="file")
        file = Path(file) if Path(file).is_absolute() else path.parent / file
        if not file.is_file():
            raise refuse("notice", f"no such notice file {file}", key="file")
    text = n.get("text")
    if text is not None and (not isinstance(text, str) or not text.strip()):
        raise refuse("notice", "text must be the notice's wording", key="text")
    e = raw.get("engine", {})
    mx = e.get("max_call_s", EngineConfig.max_call_s)
    if isinstance(mx, bool) or not isinstance(mx, (int, float)) or not 60 <= mx <= 86400:
        raise refuse("engine", "max_call_s must be within 60…86400", key="max_call_s")
    q = e.get("writer_queue_chunks", EngineConfig.writer_queue_chunks)
    if isinstance(q, bool) or not isinstance(q, int) or not 16 <= q <= 100000:
        raise refuse("engine", "writer_queue_chunks must be an integer within 16…100000",
                     key="writer_queue_chunks")
    return (InterfaceConfig(url), NoticeConfig(file, text), EngineConfig(float(mx), q),
            _exclusions(raw.get("exclusion"), refuse))


def load_config(path: Path | None) -> Config:
    if path is None:
        return Config()
    try:
        text = path.read_text(encoding="utf-8")
        raw = tomllib.loads(text)
    except FileNotFoundError:
        raise ConfigError(f"{path}: 設定ファイルがありません / no such configuration file") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: 設定ファイルの構文エラー / syntax error: {exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: UTF-8 ではありません / not UTF-8") from None
    refuse = _Refuse(path, text)
    for table, value in raw.items():
        if table not in _KNOWN:
            continue  # tables other layers validate ([retention] …) or [[exclusion]]
        if not isinstance(value, dict):
            raise refuse(table, "must be a table")
        for key in value:
            if key not in _KNOWN[table]:
                raise refuse(table, f"不明なキー / unknown key {key!r}", key=key)
    try:
        site = SiteConfig(**raw.get("site", {}))
        encoder = EncoderSettings(**raw.get("encoder", {}))
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{path}: {exc}") from None
    if not isinstance(site.name, str) or not site.name:
        raise refuse("site", "name must be a non-empty string", key="name")
    iface, notice, engine, exclusions = _engine_tables(raw, path, refuse)
    return Config(site, encoder, path, raw, iface, exclusions, notice, engine)
