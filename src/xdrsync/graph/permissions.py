"""What our own access token says we may do: the ``roles`` claim of an Entra app-only token.

Entra lists the application permissions granted to an app registration in the ``roles`` claim
of every client-credentials token it issues. Reading that claim without verifying the token's
signature is fine here because the answer is advisory only: it lets xdrsync explain up front
that a tenant is read-only (and not try writes bound to fail), while Microsoft Graph itself
verifies the token and enforces the permissions on every call, whatever we conclude. The token
came to us from Entra over TLS; we never trust a token for anything but describing ourselves.

An opaque or malformed token (or one without the claim) gives an empty set, which
``can_write`` reports as unknown rather than as "no".
"""

from __future__ import annotations

import base64
import json
from collections.abc import Collection, Mapping
from typing import Final, Literal

INCIDENT_READ: Final = "SecurityIncident.Read.All"
INCIDENT_READ_WRITE: Final = "SecurityIncident.ReadWrite.All"
ALERT_READ: Final = "SecurityAlert.Read.All"
ALERT_READ_WRITE: Final = "SecurityAlert.ReadWrite.All"

Entity = Literal["incident", "alert"]

# The application permission Graph requires to PATCH an entity or post a comment on it.
WRITE_PERMISSION: Final[Mapping[Entity, str]] = {
    "incident": INCIDENT_READ_WRITE,
    "alert": ALERT_READ_WRITE,
}

# A JWT is a few hundred bytes to a few KB; anything far larger is not one we would read.
_MAX_TOKEN_CHARS = 64_000


def token_roles(access_token: str) -> frozenset[str]:
    """The ``roles`` claim of a JWT access token, decoded without verification.

    Never raises: an opaque token, a malformed one or one without a ``roles`` list gives an
    empty set. Entries that are not strings are ignored.
    """
    try:
        if len(access_token) > _MAX_TOKEN_CHARS:
            return frozenset()
        parts = access_token.strip().split(".")
        if len(parts) != 3:  # a JWS; an encrypted JWE (five parts) cannot be read
            return frozenset()
        payload_b64 = parts[1]
        raw = base64.urlsafe_b64decode(payload_b64 + "=" * (-len(payload_b64) % 4))
        payload = json.loads(raw)
    except (ValueError, TypeError, AttributeError, RecursionError):
        return frozenset()
    if not isinstance(payload, dict):
        return frozenset()
    roles = payload.get("roles")
    if not isinstance(roles, list):
        return frozenset()
    return frozenset(role for role in roles if isinstance(role, str) and role)


def can_write(roles: Collection[str], entity: Entity) -> bool | None:
    """Whether ``roles`` allow PATCHing ``entity`` and commenting on it; None if unknown.

    An empty collection means the roles are unknown (the token could not be read), not that
    none were granted, so the caller can say "unknown" instead of "read-only".
    """
    permission = WRITE_PERMISSION.get(entity)
    if permission is None:
        raise ValueError(f"entity is 'incident' or 'alert', not {entity!r}")
    if not roles:
        return None
    return permission in roles
