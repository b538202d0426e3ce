"""The address a request came from, for the AuditEvents recorded while it is served.

Set by the HTTP middleware (`logs.RequestIdMiddleware`) from the ASGI client,
which is the proxy's `X-Forwarded-For` client only when the proxy is trusted
(see `cli.uvicorn_options`); Bundle entries run in the same task and see it too.
"""

from __future__ import annotations

import contextvars

client_address: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "client_address", default=None
)
