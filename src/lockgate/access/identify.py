"""The identify stage: the caller's credential becomes a principal.

Until virtual keys exist (see the access-control issue) the only credential is the
operator's admin key. With `gateway.admin_key` set, a request without it is refused
(401); without an admin key the gateway is open and callers are `anonymous`.
"""

from __future__ import annotations

import hmac

from lockgate.core.context import Principal, RequestContext
from lockgate.errors import AuthenticationFailed

__all__ = ["IdentifyStage"]


class IdentifyStage:
    name = "identify"

    def __init__(self, admin_key: str | None) -> None:
        self._admin_key = admin_key.encode() if admin_key else None
        self._admin = Principal("admin", "operator")
        self._anonymous = Principal("anonymous", "anonymous")

    async def admit(self, ctx: RequestContext) -> None:
        if self._admin_key is None:
            ctx.principal = self._anonymous
            return
        credential = ctx.credential
        if not credential:
            raise AuthenticationFailed(
                "Missing credentials: send your key as 'Authorization: Bearer KEY' or 'x-api-key: KEY'."
            )
        if not hmac.compare_digest(credential.encode(), self._admin_key):
            raise AuthenticationFailed("Incorrect API key provided.")
        ctx.principal = self._admin

    async def complete(self, ctx: RequestContext) -> None:
        return None
