"""What the two stores' auth tables share: their column lists.

The SQL around them differs by dialect (placeholders, time types, prefix
matching), so each store keeps its own statements.
"""

from __future__ import annotations

USER_COLUMNS = "name, role, password_hash, disabled, created_at, updated_at"
CLIENT_COLUMNS = (
    "id, secret_hash, roles, name, allow_networks, deny_networks, disabled,"
    " created_at, updated_at"
)
FAMILY_COLUMNS = "id, subject, scope, client, created_at, revoked_at, revoked_reason"
AUDIT_COLUMNS = (
    "time, kind, request_id, actor, role, client, address, method, path, query,"
    " status, duration_ms, detail, id"
)
