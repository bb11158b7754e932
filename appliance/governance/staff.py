"""Appointing and removing staff, passwords, and the deputy's acting state.

Rules (要綱 第3条, 第4条; R10, R11):
- only the manager appoints and removes staff (handlers, the deputy,
  technicians);
- appointing a staff member re-wraps the archive private key for them, which
  needs someone who holds it: the manager unlocks it with their own password;
  technicians get no wrapped key at all;
- removal deletes the person's wrapped copy with their account, so their old
  password opens nothing;
- the deputy marks themselves acting when the manager is absent (and only
  then may act); the deputy or the manager ends it.
Every change is an entry of the ledger.
"""

from __future__ import annotations

from appliance.errors import ConfigError, Forbidden
from appliance.governance.access import Action, Session
from appliance.governance.ledger import EntryKind
from appliance.governance.users import (ROLE_LABELS_JA, STAFF_ROLES, Role, add_user, delete_user,
                                        get_user, set_acting, set_password)


def appoint(session: Session, name: str, role: Role, password: bytes, reference: str | None) -> None:
    session.authorize(Action.USERS, reference=reference)
    if role == Role.MANAGER:
        raise Forbidden("管理責任者は初期設定でのみ作成します / the manager is created by "
                        "'appliance init' only")
    private = session.archive_key() if role in STAFF_ROLES else None
    cat = session.catalog
    with cat.transaction():
        add_user(cat, name, role, password, session.now())
        session.ledger.append(EntryKind.USER, session.now(), actor=session.user.name,
                              reference=reference,
                              detail={"action": "appoint", "user": name, "role": str(role),
                                      "role_ja": ROLE_LABELS_JA[role]})
    if private is not None:
        # after the row exists: a crash here leaves an account without a key
        # (it can be re-appointed), never a key without an account
        session.datadir.keys.wrap_for_user(name, password, private)


def remove(session: Session, name: str, reference: str | None) -> None:
    session.authorize(Action.USERS, reference=reference)
    target = get_user(session.catalog, name)
    if target.name == session.user.name:
        raise Forbidden("自分自身は削除できません / you cannot remove yourself")
    if target.role == Role.MANAGER:
        raise Forbidden("管理責任者は削除できません / the manager cannot be removed")
    # the wrapped key goes first: a crash leaves an account that opens nothing
    session.datadir.keys.remove_user_wrap(name)
    cat = session.catalog
    with cat.transaction():
        delete_user(cat, name)
        session.ledger.append(EntryKind.USER, session.now(), actor=session.user.name,
                              reference=reference,
                              detail={"action": "remove", "user": name, "role": str(target.role)})


def change_password(session: Session, name: str, new_password: bytes) -> None:
    """Own password, or (manager) someone else's; the wrapped key follows the password."""
    target = get_user(session.catalog, name)
    if name != session.user.name:
        session.authorize(Action.USERS)
    private = session.archive_key() if target.role in STAFF_ROLES else None
    cat = session.catalog
    with cat.transaction():
        set_password(cat, name, new_password)
        session.ledger.append(EntryKind.USER, session.now(), actor=session.user.name,
                              detail={"action": "password", "user": name})
    if private is not None:
        session.datadir.keys.wrap_for_user(name, new_password, private)


def acting(session: Session, on: bool, reference: str | None) -> None:
    user = session.user
    if on and user.role != Role.DEPUTY:
        raise Forbidden("職務代理は代理のみ開始できます / only the deputy can start acting")
    if not on and user.role not in (Role.DEPUTY, Role.MANAGER):
        raise Forbidden("職務代理の終了は代理または管理責任者のみ / only the deputy or the manager")
    deputies = [user.name] if user.role == Role.DEPUTY else [
        r["name"] for r in session.catalog.db["users"].rows_where("role = 'deputy' AND acting = 1")]
    if not deputies:
        raise ConfigError("職務代理中の代理はいません / no deputy is acting")
    with session.catalog.transaction():
        for name in deputies:
            set_acting(session.catalog, name, on)
        session.ledger.append(EntryKind.USER, session.now(), actor=user.name, reference=reference,
                              detail={"action": "acting on" if on else "acting off",
                                      "deputies": deputies})
