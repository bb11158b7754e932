"""Log lines for people who must never read a telephone number (R11).

Two things every process of the appliance shares:

* :func:`redact` masks anything that could be a telephone number. It is the
  *last* guard: log messages are written without numbers in the first place
  (reports, alarms and errors name calls by id, never by number). The text
  is first normalised (Unicode NFKC, invisible format characters dropped), so
  full-width digits, full-width or Unicode hyphens, dots, slashes,
  underscores and commas between the digits do not slip past: ``03.1234.5678``,
  ``03/1234/5678``, ``03_1234_5678``, ``03,1234,5678``, ``０３‐１２３４‐５６７８``
  are all masked. Dates and times (ISO, ``2026/12/08 10:02``,
  ``2026年12月8日``), call ids (``20260105T083012-T1c1-3f9a2b``) and request
  and export ids (``REQ-20260105-001``) stay readable: they are what a technician needs.
* :class:`JournalFormatter` stamps every line with one clock, Japan time with
  its offset (``2026-12-08 10:02:53.123+09:00``), whatever the host's time
  zone, and passes the whole line (exception text included) through
  :func:`redact`. :func:`configure_logging` installs it for a command.

Written here because no library masks Japanese telephone numbers in free text.
"""

from __future__ import annotations

import logging
import re
import sys
import unicodedata
from datetime import datetime
from zoneinfo import ZoneInfo

TOKYO = ZoneInfo("Asia/Tokyo")
MASK = "######"
#: fewer digits than this in one run is a count, a port, a time — not a number
MIN_DIGITS = 6

# separators people and systems put between the digits of a number, after NFKC:
# spaces, hyphens of every kind (ASCII, U+2010–U+2015, minus, katakana ー), dots,
# slashes, underscores, commas (ASCII and 、), parentheses, plus, tilde and wave dash
_SEP = r"[\s\-\u2010-\u2015\u2212\u30fc.\/_,\u3001()+~\u301c]"
_DATE = (r"(?<!\d)(?:19|20)\d{2}(?P<ds>[-/.])(?:0?[1-9]|1[0-2])(?P=ds)(?:0?[1-9]|[12]\d|3[01])"
         r"(?:[T ]\d{1,2}:\d{2}(?::\d{2}(?:[.,]\d{1,9})?)?(?:Z|[+-]\d{2}:?\d{2})?)?(?![\d])")
_KANJI_DATE = r"(?<!\d)(?:19|20)\d{2}年\d{1,2}月\d{1,2}日"
_CALL_ID = (r"(?<![\dA-Za-z])\d{8}T\d{6}(?:-[A-Za-z0-9]+)+"      # calls
            r"|(?<![A-Za-z0-9])(?:REQ|EXP)-\d{8}-\d{1,6}(?!\d)")     # requests, exports
_NUMBER = re.compile(
    rf"(?P<keep>{_CALL_ID}|{_DATE}|{_KANJI_DATE})"
    rf"|(?P<run>\d(?:{_SEP}*\d)+)")
# invisible characters someone could slip between digits (category Cf: ZWSP, soft hyphen …)
_FORMAT_CHARS = re.compile(r"[\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180e\u200b-\u200f"
                           r"\u202a-\u202e\u2060-\u206f\u3164\ufeff\uffa0]")


def normalise(text: str) -> str:
    """NFKC, without invisible format characters: what a mask must look at."""
    return _FORMAT_CHARS.sub("", unicodedata.normalize("NFKC", text))


def redact(text: str) -> str:
    """Mask any run of ``MIN_DIGITS`` or more digits (with separators) that is not a date."""
    def sub(m: re.Match) -> str:
        if m.group("keep"):
            return m.group()
        run = m.group("run")
        return MASK if sum(c.isdigit() for c in run) >= MIN_DIGITS else run
    return _NUMBER.sub(sub, normalise(text))


def japan_time(t: float) -> str:
    """A log stamp: Japan time with milliseconds and the offset."""
    return datetime.fromtimestamp(t, TOKYO).isoformat(sep=" ", timespec="milliseconds")


class JournalFormatter(logging.Formatter):
    """``2026-12-08 10:02:53.123+09:00 WARNING appliance.x: text``, masked."""

    def __init__(self) -> None:
        super().__init__("%(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        return f"{japan_time(record.created)} {redact(super().format(record))}"


def configure_logging(verbose: bool = False, stream=None) -> None:
    """The one log handler of a command: stderr (the journal under systemd)."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JournalFormatter())
    root = logging.getLogger()
    for h in list(root.handlers):
        if getattr(h, "_appliance_journal", False):
            root.removeHandler(h)
    handler._appliance_journal = True            # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
