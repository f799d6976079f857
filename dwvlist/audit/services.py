"""Record what staff (or an API token, or the system) did: `audit_record(...)`.

Who did it and from where come from the request being answered (bound
by AuditMiddleware) unless the caller names them, so services need no
request argument: a call from a Celery task or beat records "system".
Called inside the transaction that does the action, the entry is
committed with it or not at all.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from dwvlist.audit.models import AuditEntry

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Actor:
    user: Any = None  # a user, or a lazy request.user
    token_label: str = ""
    ip: str | None = None


_actor: ContextVar[Actor | None] = ContextVar("dwvlist_audit_actor", default=None)


@contextmanager
def audit_actor(*, user: Any = None, token_label: str = "", ip: str | None = None) -> Iterator[None]:
    """Name who acts, and from where, for every audit_record inside the block (a request, an API call)."""
    reset = _actor.set(Actor(user=user, token_label=token_label, ip=ip))
    try:
        yield
    finally:
        _actor.reset(reset)


def _valid_ip(value: str | None) -> str | None:
    if not value:
        return None
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        return None


def audit_record(
    *,
    action: str,
    object_id: object = "",
    summary: str = "",
    user: Any = None,
    token_label: str | None = None,
    ip: str | None = None,
) -> AuditEntry:
    """Append one entry to the audit trail and return it.

    `action` is one of AuditEntry.Action (its prefix is the object type);
    `object_id` names the object (never a reader's address); `user`,
    `token_label` and `ip` default to the actor bound by audit_actor.
    """
    if action not in AuditEntry.Action.values:
        raise ValueError(f"unknown audit action {action!r}")
    bound = _actor.get() or Actor()
    user = user if user is not None else bound.user
    if user is not None and not getattr(user, "is_authenticated", False):
        user = None
    entry = AuditEntry.objects.create(
        actor=user,
        actor_name=(user.get_username() if user is not None else "")[:150],
        token_label=(token_label if token_label is not None else bound.token_label)[:200],
        action=action,
        object_type=action.partition(".")[0],
        object_id=str(object_id if object_id is not None else "")[:64],
        summary=summary[:500],
        ip=_valid_ip(ip if ip is not None else bound.ip),
    )
    log.info(
        "audit: %s %s %s",
        entry.who,
        action,
        entry.object_id,
        extra={"audit_action": action, "object_id": entry.object_id, "actor": entry.who},
    )
    return entry
