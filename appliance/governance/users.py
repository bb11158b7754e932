"""Staff and technicians, their roles, and signing in (R10, R11).

Roles: 管理責任者 manager, 代理 deputy (acts only while marked acting),
管理取扱者 handler, 保守 technician (diagnostics only: never a number, never
audio). Passwords are hashed with argon2id; the archive private key is
wrapped separately per staff member in the key store.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from appliance.errors import AuthError, ConfigError, Forbidden
from appliance.store.catalog import Catalog, to_utc_text


class Role(StrEnum):
    MANAGER = "manager"
    DEPUTY = "deputy"
    HANDLER = "handler"
    TECHNICIAN = "technician"


ROLE_LABELS_JA = {
    Role.MANAGER: "管理責任者", Role.DEPUTY: "代理", Role.HANDLER: "管理取扱者",
    Role.TECHNICIAN: "保守",
}

STAFF_ROLES = (Role.MANAGER, Role.DEPUTY, Role.HANDLER)
_hasher = PasswordHasher()  # argon2id with the library's current defaults


@dataclass(frozen=True)
class User:
    name: str
    role: Role
    acting: bool

    @property
    def label(self) -> str:
        return f"{self.name} ({ROLE_LABELS_JA[self.role]})"


def read_password_file(path: Path) -> bytes:
    """A password from a file (never from the command line, where ps would show it)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{path}: パスワードファイルがありません / no such password file") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read password file ({exc.strerror})") from None
    password = data.rstrip(b"\r\n")
    if not password:
        raise ConfigError(f"{path}: パスワードが空です / the password file is empty")
    return password


def add_user(catalog: Catalog, name: str, role: Role, password: bytes, now: datetime) -> User:
    if not name or len(name) > 64 or any(c.isspace() for c in name):
        raise ConfigError("利用者名が不正です / user names are 1–64 characters without spaces")
    if len(password) < 8:
        raise ConfigError("パスワードは8文字以上 / passwords need at least 8 characters")
    catalog.db["users"].insert({
        "name": name, "role": str(role), "password_hash": _hasher.hash(password),
        "acting": 0, "created_at": to_utc_text(now),
    })
    return User(name, role, False)


_WRONG = "利用者名またはパスワードが違います / wrong user name or password"
#: what a refusal names when the name typed is nobody's (it may be a password typed
#: into the wrong field: it must not become a permanent ledger entry)
UNKNOWN_NAME = "(不明な利用者名 / unknown user name)"
_decoy_hash: str | None = None


def _decoy() -> str:
    """A hash with the hasher's own parameters, for names that do not exist."""
    global _decoy_hash
    if _decoy_hash is None:
        _decoy_hash = _hasher.hash(secrets.token_bytes(16))
    return _decoy_hash


def authenticate(catalog: Catalog, name: str | None, password: bytes) -> User:
    """Check a password; an unknown name costs the same argon2 work as a known one.

    Answering an unknown name at once would tell an attacker which names
    exist (0.016 s against 0.47 s, measured): the password is verified
    against a decoy hash instead, and the message is the same.
    """
    rows = list(catalog.db["users"].rows_where("name = ?", [name or ""]))
    row = rows[0] if rows else None
    try:
        _hasher.verify(row["password_hash"] if row else _decoy(), password)
    except (VerificationError, InvalidHashError):
        raise AuthError(_WRONG) from None
    if row is None:         # a decoy never verifies; kept for clarity
        raise AuthError(_WRONG)
    return User(row["name"], Role(row["role"]), bool(row["acting"]))


def refusal_actor(catalog: Catalog, name: str | None) -> str:
    """Who a refused sign-in names on the ledger: a user (present, or removed — their
    appointment is on the ledger already), or no clear text at all."""
    if not name:
        return UNKNOWN_NAME
    known = catalog.conn.execute(
        "SELECT 1 FROM users WHERE name = ? UNION ALL SELECT 1 FROM ledger WHERE kind = 'user'"
        " AND json_extract(detail, '$.action') = 'appoint' AND json_extract(detail, '$.user') = ?"
        " LIMIT 1", (name, name)).fetchone()
    return name if known else UNKNOWN_NAME


def require_staff(user: User) -> None:
    """Only the manager, an acting deputy and handlers may see or hear records (R11)."""
    if user.role == Role.TECHNICIAN:
        raise Forbidden("保守担当者は通話記録を扱えません / technicians never see numbers or audio")
    if user.role == Role.DEPUTY and not user.acting:
        raise Forbidden("代理は職務代理中のみ操作できます / the deputy acts only while marked acting")


# --- staff administration (R10, R11) ------------------------------------------------
def get_user(catalog: Catalog, name: str) -> User:
    rows = list(catalog.db["users"].rows_where("name = ?", [name]))
    if not rows:
        raise ConfigError(f"{name}: そのような利用者はいません / no such user")
    r = rows[0]
    return User(r["name"], Role(r["role"]), bool(r["acting"]))


def list_users(catalog: Catalog) -> list[dict]:
    return [{"name": r["name"], "role": r["role"], "role_ja": ROLE_LABELS_JA[Role(r["role"])],
             "acting": bool(r["acting"]), "created_at": r["created_at"]}
            for r in catalog.db["users"].rows_where(order_by="created_at, name")]


def set_password(catalog: Catalog, name: str, password: bytes) -> None:
    if len(password) < 8:
        raise ConfigError("パスワードは8文字以上 / passwords need at least 8 characters")
    catalog.conn.execute("UPDATE users SET password_hash = ? WHERE name = ?",
                         (_hasher.hash(password), name))


def set_acting(catalog: Catalog, name: str, acting: bool) -> None:
    catalog.conn.execute("UPDATE users SET acting = ? WHERE name = ?", (int(acting), name))


def delete_user(catalog: Catalog, name: str) -> None:
    catalog.conn.execute("DELETE FROM users WHERE name = ?", (name,))
