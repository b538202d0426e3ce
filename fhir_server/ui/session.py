"""Server-side sessions of the web UI: the browser holds only a random id.

The tokens, the CSRF token and the sign-in in progress live in Redis (the
store every API process already shares, so any replica serves any request),
under a digest of the cookie's id: a copy of Redis holds no usable cookie.
A session lives `portal_idle_timeout` seconds after the last page the user
opened (Redis expires it), so a forgotten browser signs itself out; pages
warn shortly before (see `static/idle.js`).

The cookie is HttpOnly (no script reads it), SameSite=Lax (not sent on
cross-site posts), limited to its site's path (`/portal` or `/clinic`, each
with its own cookie name and Redis keys, so a portal session never opens the
clinic workspace), and Secure outside development.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import orjson
from redis.exceptions import RedisError
from starlette.responses import Response

from fhir_server.settings import Settings

# A sign-in in progress (the user is on the authorization server's pages) waits this long.
SIGN_IN_SECONDS = 900
TOUCH_EVERY = 30


class SessionsUnavailable(Exception):
    """Redis did not answer: the portal cannot tell who is signed in (a 503 page)."""


@dataclass
class Tokens:
    access_token: str
    expires_at: float
    refresh_token: str | None = None
    patient: str | None = None
    fhir_user: str | None = None
    role: str | None = None  # patient, practitioner, frontdesk or admin (introspected)


@dataclass
class Session:
    id: str
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    seen: float = field(default_factory=time.time)
    # The authorization request under way: its state, PKCE verifier and where to go after.
    pending: dict[str, str] | None = None
    tokens: Tokens | None = None

    @classmethod
    def new(cls) -> Session:
        return cls(id=secrets.token_urlsafe(32))

    @property
    def signed_in(self) -> bool:
        return self.tokens is not None


RedisConnect = Callable[[], Awaitable[Any]]


class SessionStore:
    def __init__(self, connect: RedisConnect, settings: Settings, site: str) -> None:
        """Sessions of one site of the UI (`portal` or `clinic`), mounted at `/{site}`."""
        self._connect = connect
        self.idle_timeout = settings.portal_idle_timeout
        self.secure = settings.environment != "development"
        self.cookie = f"{site}_session"
        self.path = f"/{site}"
        self._prefix = f"{site}-session|{settings.database}|"

    def _key(self, session_id: str) -> str:
        return self._prefix + hashlib.sha256(session_id.encode()).hexdigest()

    async def load(self, session_id: str) -> Session | None:
        if not session_id:
            return None
        try:
            raw = await (await self._connect()).get(self._key(session_id))
        except (RedisError, OSError) as error:
            raise SessionsUnavailable from error
        if raw is None:
            return None
        data = orjson.loads(raw)
        tokens = data.pop("tokens")
        session = Session(**data, tokens=Tokens(**tokens) if tokens else None)
        if time.time() - session.seen > self.idle_timeout:
            return None  # Redis normally expired it already; never trust a late key
        return session

    async def touch(self, session: Session) -> None:
        """Restart the idle clock of a session in use; written at most every `TOUCH_EVERY`
        seconds (a page costs one Redis round trip, not two; the clock is that coarse)."""
        if time.time() - session.seen >= TOUCH_EVERY:
            await self.save(session)

    def remaining(self, session: Session) -> int:
        """Seconds until the session ends if nothing happens."""
        return max(0, round(session.seen + self.idle_timeout - time.time()))

    async def save(self, session: Session) -> None:
        """Store the session and restart its idle clock."""
        session.seen = time.time()
        lifetime = self.idle_timeout if session.signed_in else SIGN_IN_SECONDS
        try:
            client = await self._connect()
            await client.set(self._key(session.id), orjson.dumps(asdict(session)), ex=lifetime)
        except (RedisError, OSError) as error:
            raise SessionsUnavailable from error

    async def delete(self, session: Session) -> None:
        try:
            await (await self._connect()).delete(self._key(session.id))
        except (RedisError, OSError) as error:
            raise SessionsUnavailable from error

    def set_cookie(self, response: Response, session: Session) -> None:
        response.set_cookie(
            self.cookie,
            session.id,
            path=self.path,
            secure=self.secure,
            httponly=True,
            samesite="lax",
        )

    def clear_cookie(self, response: Response) -> None:
        response.delete_cookie(
            self.cookie, path=self.path, secure=self.secure, httponly=True, samesite="lax"
        )
