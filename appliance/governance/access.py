"""Who may do what, on which ground (R10–R12); every refusal lands on the ledger.

A :class:`Session` is a signed-in person acting on the data directory. Front
ends open one, then ask ``session.authorize(action, ground=…)`` before
touching a record: the answer is either silence or :class:`Forbidden`, and a
refusal is itself an entry of the 通話記録管理簿 (R14).

Which role may use which ground is configuration (``[policy]`` in
appliance.toml) with safe defaults: the manager and an acting deputy may use
every ground; handlers act on the manager's instructions within the
installation's purpose and for disclosure requests; technicians never see a
number nor hear audio.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from nacl.public import PrivateKey

from appliance.errors import ConfigError, Forbidden
from appliance.governance.grounds import Ground
from appliance.governance.ledger import EntryKind, Ledger
from appliance.governance.users import Role, User
from appliance.store.catalog import Catalog
from appliance.store.datadir import DataDir


class Action(StrEnum):
    LIST = "list"              # see call records (numbers)
    LISTEN = "listen"          # 閲覧: hear a recording
    EXTRACT = "extract"        # 複製: a plain copy
    EXPORT = "export"          # 提供: a bundle for a third party
    HOLD = "hold"              # 保管延長
    RELEASE = "release"        # 延長解除
    REQUEST = "request"        # 開示請求 handling
    USERS = "users"            # appoint and remove staff
    LEDGER = "ledger"          # read the ledger


ACTION_LABELS_JA = {
    Action.LIST: "通話記録の検索", Action.LISTEN: "閲覧", Action.EXTRACT: "複製",
    Action.EXPORT: "提供", Action.HOLD: "保管延長", Action.RELEASE: "延長解除",
    Action.REQUEST: "開示請求の処理", Action.USERS: "利用者管理", Action.LEDGER: "管理簿の閲覧",
}

ACTION_LABELS_EN = {
    Action.LIST: "search call records", Action.LISTEN: "listen to recordings",
    Action.EXTRACT: "copy recordings", Action.EXPORT: "provide records to third parties",
    Action.HOLD: "hold records", Action.RELEASE: "release holds",
    Action.REQUEST: "handle disclosure requests", Action.USERS: "appoint or remove staff",
    Action.LEDGER: "read the ledger",
}

_ALL = frozenset(Ground)
_LEADERS = frozenset({Role.MANAGER, Role.DEPUTY})
_STAFF = frozenset({Role.MANAGER, Role.DEPUTY, Role.HANDLER})

#: actions each role may take at all (a deputy only while acting)
DEFAULT_ACTIONS: dict[Action, frozenset[Role]] = {
    Action.LIST: _STAFF, Action.LISTEN: _STAFF, Action.EXTRACT: _STAFF,
    Action.EXPORT: _STAFF, Action.HOLD: _STAFF, Action.RELEASE: _LEADERS,
    Action.REQUEST: _STAFF, Action.USERS: frozenset({Role.MANAGER}),
    Action.LEDGER: _STAFF,
}

#: grounds each role may name
DEFAULT_GROUNDS: dict[Role, frozenset[Ground]] = {
    Role.MANAGER: _ALL,
    Role.DEPUTY: _ALL,
    Role.HANDLER: frozenset({Ground.DUTY, Ground.DISCLOSURE}),
    Role.TECHNICIAN: frozenset(),
}


@dataclass(frozen=True)
class Policy:
    grounds: dict[Role, frozenset[Ground]] = field(default_factory=lambda: dict(DEFAULT_GROUNDS))
    actions: dict[Action, frozenset[Role]] = field(default_factory=lambda: dict(DEFAULT_ACTIONS))

    @classmethod
    def from_config(cls, table: dict | None) -> "Policy":
        """``[policy.grounds] handler = ["duty", "disclosure", "law"]``; technicians stay empty."""
        policy = cls()
        if not table:
            return policy
        grounds = dict(policy.grounds)
        for role_name, codes in (table.get("grounds") or {}).items():
            try:
                role = Role(role_name)
                chosen = frozenset(Ground(c) for c in codes)
            except (ValueError, TypeError):
                raise ConfigError(f"[policy.grounds] {role_name} = {codes!r}: unknown role or ground")
            if role == Role.TECHNICIAN and chosen:
                raise ConfigError("[policy.grounds] technicians may use no ground (R11)")
            grounds[role] = chosen
        return cls(grounds=grounds, actions=policy.actions)


class Session:
    """A signed-in person, the data they act on, and the clock of the front end."""

    def __init__(self, user: User, password: bytes, datadir: DataDir, catalog: Catalog,
                 now: Callable[[], datetime], policy: Policy | None = None) -> None:
        self.user = user
        self._password = password
        self.datadir = datadir
        self.catalog = catalog
        self.ledger = Ledger(catalog)
        self.now = now
        self.policy = policy or Policy()

    def authorize(self, action: Action, *, ground: Ground | None = None,
                  call_ids: Iterable[str] = (), reference: str | None = None) -> None:
        """Allow silently, or put the refusal on the ledger and raise Forbidden."""
        reason = self._refusal(action, ground)
        if reason is None:
            return
        self.ledger.append(EntryKind.REFUSED, self.now(), call_ids=list(call_ids),
                           ground=str(ground) if ground else None, reference=reference,
                           actor=self.user.name,
                           detail={"action": str(action), "reason": reason})
        raise Forbidden(reason)

    def _refusal(self, action: Action, ground: Ground | None) -> str | None:
        role = self.user.role
        if role == Role.TECHNICIAN:
            return "保守担当者は通話記録を扱えません / technicians never see numbers or audio"
        if role == Role.DEPUTY and not self.user.acting:
            return "代理は職務代理中のみ操作できます / the deputy acts only while marked acting"
        if role not in self.policy.actions.get(action, frozenset()):
            return (f"{ACTION_LABELS_JA[action]}は{role.value}の権限外です / "
                    f"a {role.value} may not {ACTION_LABELS_EN[action]}")
        if ground is not None and ground not in self.policy.grounds.get(role, frozenset()):
            return (f"根拠 {ground.value} は{role.value}には使えません / "
                    f"a {role.value} may not act on the ground {ground.value}")
        return None

    def archive_key(self) -> PrivateKey:
        """Unwrap the archive private key with this person's own password (in memory only)."""
        return self.datadir.keys.unwrap_with_password(self.user.name, self._password)
