"""One exception tree for the whole appliance.

Front ends catch :class:`ApplianceError` and print its message (Japanese
first, English after) with a non-zero exit; anything else is a bug and gets
a traceback. Leaves also inherit the matching builtin, the way gpiozero's
exceptions do, so callers may catch either.
"""

from __future__ import annotations


class ApplianceError(Exception):
    """Root of every error the appliance reports to a person."""

    #: process exit status a front end uses for this error
    exit_code = 2


# --- configuration and data directory -------------------------------------
class ConfigError(ApplianceError, ValueError):
    """The configuration file or a command-line value is invalid."""


class DataDirError(ApplianceError, FileNotFoundError):
    """The data directory is missing, not initialised, or unusable."""


# --- records -----------------------------------------------------------------
class StoreError(ApplianceError):
    """Base for recording and catalog problems."""


class CatalogError(StoreError):
    """The catalog database cannot be used."""


class CatalogCorrupt(CatalogError, ValueError):
    """The catalog file is damaged or is not a catalog."""


class UnknownCall(StoreError, KeyError):
    """No call with that id in the catalog."""

    def __str__(self) -> str:  # KeyError quotes its argument; we don't
        return str(self.args[0]) if self.args else "unknown call"


class OggError(StoreError, ValueError):
    """Bytes that are not a valid Ogg Opus stream."""


class SealedFileError(StoreError, ValueError):
    """A sealed recording is malformed, altered or cannot be opened."""


class KeyStoreError(StoreError):
    """A data key is missing or cannot be unsealed."""


# --- credentials and rules ---------------------------------------------------
class AuthError(ApplianceError, PermissionError):
    """Wrong user name, password or recovery key."""


class Forbidden(ApplianceError, PermissionError):
    """The person is known but their role may not do this."""


class GroundError(ApplianceError, ValueError):
    """A missing or unknown ground (根拠) for using a record."""


# --- line interfaces and the call engine ---------------------------------------
class LineInterfaceError(ApplianceError):
    """A line interface cannot be opened or has failed."""


class UnknownInterface(LineInterfaceError, ValueError):
    """The interface URL names no known backend."""


class ScenarioError(LineInterfaceError, ValueError):
    """A simulator scenario file is invalid (file, line and reason in the message)."""
