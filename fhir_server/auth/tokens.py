"""Access tokens and id_tokens: signed JWTs we issue and check.

An access token is self-describing (scope, patient, fhirUser) and short-lived,
but it is also recorded by `jti`, so revocation and introspection work and a
token we never issued (or one whose family was killed) is refused even when
its signature is good.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

from joserfc import jws, jwt
from joserfc.errors import JoseError

from fhir_server.auth.keys import ALGORITHM, KeyRing, load_keyring
from fhir_server.auth.policy import TokenContext
from fhir_server.auth.scopes import ScopeSet
from fhir_server.fhir.errors import Unauthorized
from fhir_server.recent import Recent
from fhir_server.settings import Settings
from fhir_server.store.auth_store import AuthStore

_RELOAD_SECONDS = 5.0


def unauthorized(reason: str, error: str = "invalid_token") -> Unauthorized:
    challenge = f'Bearer realm="fhir", error="{error}"' if error else 'Bearer realm="fhir"'
    return Unauthorized(reason, headers={"WWW-Authenticate": challenge})


@dataclass
class Issued:
    token: str
    jti: str
    expires_at: int


class Tokens:
    def __init__(self, store: AuthStore, settings: Settings, keyring: KeyRing) -> None:
        self.store = store
        self.settings = settings
        self.keyring = keyring
        self._loaded_at = time.monotonic()
        self._looked_for_kid_at = -_RELOAD_SECONDS  # last reload made for an unknown key id
        # Tokens whose signature was checked: their key id and claims (`recent.py`).
        self._checked: Recent[str, tuple[str, dict[str, Any]]] = Recent(300, 4096)

    async def reload_keys_if_stale(self, max_age: float = 60.0) -> None:
        """Pick up a key rotated by the CLI (or another replica) within a minute."""
        if time.monotonic() - self._loaded_at > max_age:
            self.keyring = await load_keyring(self.store, self.settings.secret_key)
            self._loaded_at = time.monotonic()

    @property
    def issuer(self) -> str:
        return self.settings.base_url

    def _sign(self, claims: dict[str, Any]) -> str:
        header = {"alg": ALGORITHM, "kid": self.keyring.signing.kid, "typ": "JWT"}
        return jwt.encode(header, claims, self.keyring.signing, algorithms=[ALGORITHM])

    def access_token(self, grant: dict[str, Any], lifetime: int | None = None) -> Issued:
        now = int(time.time())
        expires = now + (lifetime or self.settings.access_token_lifetime)
        jti = uuid.uuid4().hex
        claims = {
            "iss": self.issuer,
            "aud": self.issuer,
            "sub": grant.get("sub") or grant["client_id"],
            "client_id": grant["client_id"],
            "scope": grant["scope"],
            "jti": jti,
            "iat": now,
            "exp": expires,
        }
        for name, key in (("patient", "patient"), ("fhirUser", "fhir_user"), ("role", "role")):
            if grant.get(key):
                claims[name] = grant[key]
        return Issued(self._sign(claims), jti, expires)

    def id_token(self, grant: dict[str, Any], nonce: str | None) -> str:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": grant["client_id"],
            "sub": grant["sub"],
            "iat": now,
            "exp": now + self.settings.access_token_lifetime,
            "auth_time": grant.get("auth_time", now),
        }
        if grant.get("fhir_user"):
            claims["fhirUser"] = f"{self.issuer}/{grant['fhir_user']}"
        if nonce:
            claims["nonce"] = nonce
        return self._sign(claims)

    def _kid(self, token: str) -> str | None:
        """The key id a token's header names; None when the header cannot be read."""
        try:
            kid = jws.extract_compact(token.encode("ascii")).protected.get("kid")
        except (JoseError, ValueError, UnicodeError):
            return None
        return kid if isinstance(kid, str) else None

    async def _decode(self, token: str) -> dict[str, Any]:
        """Check the signature against the key ring held in memory.

        The ring is read from the store again only for a key id it does not hold (a
        rotation by the CLI or another replica), and at most once per
        `_RELOAD_SECONDS`: a forged or garbled token costs a header parse or one
        signature check, never a store read, so invalid tokens are no dearer than
        valid ones.
        """
        checked = self._checked.get(token)
        if checked is not None and checked[0] in self.keyring.public:
            claims = dict(checked[1])  # signed by a key still held: no second check
        else:
            claims = await self._check_signature(token)
        registry = jwt.JWTClaimsRegistry(
            leeway=0,
            iss={"essential": True, "value": self.issuer},
            aud={"essential": True, "value": self.issuer},
            exp={"essential": True},
            jti={"essential": True},
        )
        try:
            registry.validate(claims)
        except JoseError:
            raise unauthorized("The access token is expired or not for this server.") from None
        return claims

    async def _check_signature(self, token: str) -> dict[str, Any]:
        kid = self._kid(token)
        if kid is None:
            raise unauthorized("The access token is not valid.")
        now = time.monotonic()
        if kid not in self.keyring.public and now - self._looked_for_kid_at >= _RELOAD_SECONDS:
            self._looked_for_kid_at = now
            self.keyring = await load_keyring(self.store, self.settings.secret_key)
            self._loaded_at = time.monotonic()
        try:
            decoded = jwt.decode(token, self.keyring.key_set(), algorithms=[ALGORITHM])
        except (JoseError, ValueError):
            raise unauthorized("The access token is not valid.") from None
        self._checked.put(token, (kid, dict(decoded.claims)))
        return decoded.claims

    async def verify(self, token: str) -> dict[str, Any]:
        """The claims of a live access token we issued; 401 otherwise."""
        claims = await self._decode(token)
        record = await self.store.access(str(claims["jti"]))
        if record is None or record.get("revoked"):
            raise unauthorized("The access token has been revoked.")
        return claims

    async def authenticate(self, authorization: str | None) -> TokenContext:
        if not authorization:
            raise unauthorized("This server needs a SMART access token (Bearer).", error="")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise unauthorized("The Authorization header must be 'Bearer <token>'.", error="")
        claims = await self.verify(token.strip())
        return context_of(claims)


def context_of(claims: dict[str, Any]) -> TokenContext:
    fhir_user = claims.get("fhirUser")
    return TokenContext(
        scopes=ScopeSet.parse(str(claims.get("scope", ""))),
        client_id=str(claims.get("client_id", "")),
        sub=claims.get("sub"),
        patient=claims.get("patient"),
        fhir_user=fhir_user,
        jti=claims.get("jti"),
        role=claims.get("role"),
    )
