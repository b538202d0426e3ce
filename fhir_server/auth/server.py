"""authlib's OAuth 2.0 server classes, adapted to our async store and to SMART 2.

authlib is synchronous; the routes run it in a worker thread
(`anyio.to_thread`) and its storage hooks call back into the event loop with
`anyio.from_thread.run`. Where authlib's defaults differ from SMART App Launch
2.2 they are overridden here (see shared notes "SMART App Launch on authlib"):
S256-only PKCE required from every client (unless an admin registered a legacy
client without it), `?param=` scopes understood, refresh tokens by
`offline_access` / `online_access`, rotated on use with reuse detection,
`private_key_jwt` (RS384/ES384 only) with jti replay refusal and a 5-minute cap
on `exp`.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

import anyio.from_thread
import httpx
from authlib.oauth2.rfc6749 import (
    AuthorizationServer,
    InvalidClientError,
    InvalidGrantError,
    InvalidRequestError,
    InvalidScopeError,
    OAuth2Request,
    grants,
)
from authlib.oauth2.rfc6749.requests import OAuth2Payload
from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7523 import JWTBearerClientAssertion
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oauth2.rfc7636.challenge import compare_s256_code_challenge
from authlib.oauth2.rfc7662 import IntrospectionEndpoint
from joserfc import jwk, jwt
from joserfc.errors import JoseError

from fhir_server.auth.clients import ASSERTION_METHOD, Client
from fhir_server.auth.scopes import is_known_scope, narrow, only_contexts, split_scope
from fhir_server.auth.tokens import Tokens
from fhir_server.fhir.errors import Unauthorized
from fhir_server.settings import Settings
from fhir_server.store.auth_store import AuthStore

T = TypeVar("T")
ASSERTION_ALGORITHMS = ["RS384", "ES384"]
MAX_ASSERTION_LIFETIME = 300
_ALL_METHODS = ["client_secret_basic", "client_secret_post", ASSERTION_METHOD, "none"]


def _wait(fn: Callable[..., Coroutine[Any, Any, T]], *args: Any) -> T:
    """Run a store coroutine from authlib's worker thread on the event loop."""
    return anyio.from_thread.run(fn, *args)


# -- requests ------------------------------------------------------------------


class FormPayload(OAuth2Payload):  # type: ignore[misc]
    def __init__(self, pairs: list[tuple[str, str]]) -> None:
        self._pairs = pairs

    @property
    def data(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for key, value in self._pairs:
            out.setdefault(key, value)
        return out

    @property
    def datalist(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for key, value in self._pairs:
            out.setdefault(key, []).append(value)
        return out


class StarletteOAuth2Request(OAuth2Request):  # type: ignore[misc]
    """An authlib request from what the route already read: query and form merged."""

    def __init__(
        self,
        method: str,
        uri: str,
        headers: Any,
        query: list[tuple[str, str]],
        form: list[tuple[str, str]],
    ) -> None:
        super().__init__(method=method, uri=uri, headers=headers)
        self._query = FormPayload(query).data
        self._form = FormPayload(form).data
        self.payload = FormPayload(query + form)

    @property
    def args(self) -> dict[str, str]:
        return self._query

    @property
    def form(self) -> dict[str, str]:
        return self._form


# -- what stands behind a token ----------------------------------------------------


@dataclass
class Subject:
    """The user (or none, for backend services) and launch context behind a grant."""

    sub: str | None
    role: str | None = None
    fhir_user: str | None = None
    patient: str | None = None
    ehr_launch: bool = False
    nonce: str | None = None
    auth_time: int = field(default_factory=lambda: int(time.time()))
    family: str = field(default_factory=lambda: secrets.token_hex(16))

    def grant_fields(self) -> dict[str, Any]:
        return {
            "sub": self.sub,
            "role": self.role,
            "fhir_user": self.fhir_user,
            "patient": self.patient,
            "ehr_launch": self.ehr_launch,
            "auth_time": self.auth_time,
            "family": self.family,
        }

    @classmethod
    def of(cls, doc: dict[str, Any]) -> Subject:
        return cls(
            sub=doc.get("sub"),
            role=doc.get("role"),
            fhir_user=doc.get("fhir_user"),
            patient=doc.get("patient"),
            ehr_launch=bool(doc.get("ehr_launch")),
            nonce=doc.get("nonce"),
            auth_time=int(doc.get("auth_time") or time.time()),
            family=doc.get("family") or secrets.token_hex(16),
        )


@dataclass
class CodeRecord:
    doc: dict[str, Any]

    def get_redirect_uri(self) -> str:
        return str(self.doc["redirect_uri"])

    def get_scope(self) -> str:
        return str(self.doc["scope"])

    @property
    def code_challenge(self) -> str | None:
        return self.doc.get("code_challenge")

    @property
    def code_challenge_method(self) -> str | None:
        return self.doc.get("code_challenge_method")


@dataclass
class TokenRecord:
    """An access or refresh token as introspection and revocation see it."""

    kind: str
    doc: dict[str, Any]

    def check_client(self, client: Client) -> bool:
        return bool(self.doc.get("client_id") == client.client_id)

    def get_scope(self) -> str:
        return str(self.doc.get("scope", ""))

    def is_expired(self) -> bool:
        return int(self.doc.get("expires_at", 0)) <= int(time.time())

    def is_revoked(self) -> bool:
        used = self.kind == "refresh" and bool(self.doc.get("used"))
        return bool(self.doc.get("revoked")) or used


# -- the server ---------------------------------------------------------------------


class SmartAuthorizationServer(AuthorizationServer):  # type: ignore[misc]
    def __init__(self, store: AuthStore, tokens: Tokens, settings: Settings) -> None:
        super().__init__()
        self.store = store
        self.tokens = tokens
        self.settings = settings
        self.register_token_generator("default", self._generate)
        self.register_client_auth_method(ASSERTION_METHOD, PrivateKeyJwt(self))
        self.register_grant(CodeGrant, [SmartPkce()])
        self.register_grant(RefreshGrant)
        self.register_grant(BackendGrant)
        self.register_endpoint(Introspection(self))
        self.register_endpoint(Revocation(self))

    @property
    def token_url(self) -> str:
        return f"{auth_base(self.settings)}/token"

    def query_client(self, client_id: str) -> Client | None:
        doc = _wait(self.store.client, client_id)
        return Client.of(doc) if doc else None

    def create_oauth2_request(self, request: OAuth2Request) -> OAuth2Request:
        """The routes build the request (`StarletteOAuth2Request`) before calling in."""
        return request

    def validate_requested_scope(self, scope: str | None) -> None:
        if not any(is_known_scope(s) for s in split_scope(scope)):
            raise InvalidScopeError("None of the requested scopes is known here.")

    def handle_response(
        self, status: int, body: Any, headers: list[tuple[str, str]]
    ) -> tuple[int, Any, list[tuple[str, str]]]:
        return status, body, headers

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        """authlib's signals are not used: the routes record audit events."""

    def _generate(
        self,
        grant_type: str,
        client: Client,
        user: Subject | None = None,
        scope: str | None = None,
        expires_in: int | None = None,
        include_refresh_token: bool = True,
    ) -> dict[str, Any]:
        subject = user or Subject(sub=None)
        granted = split_scope(scope)
        grant = {
            **subject.grant_fields(),
            "client_id": client.client_id,
            "scope": " ".join(granted),
        }
        issued = self.tokens.access_token(grant)
        token: dict[str, Any] = {
            "access_token": issued.token,
            "token_type": "Bearer",
            "expires_in": issued.expires_at - int(time.time()),
            "scope": grant["scope"],
        }
        if subject.patient and ("launch/patient" in granted or "launch" in granted):
            token["patient"] = subject.patient
        if subject.ehr_launch:
            token["need_patient_banner"] = True
            token["smart_style_url"] = f"{auth_base(self.settings)}/style"
        if subject.fhir_user and "fhirUser" in granted:
            token["fhirUser"] = f"{self.settings.base_url}/{subject.fhir_user}"
        if "openid" in granted and subject.sub:
            token["id_token"] = self.tokens.id_token(grant, subject.nonce)
        refresh = None
        if include_refresh_token and ({"offline_access", "online_access"} & set(granted)):
            refresh = secrets.token_urlsafe(48)
            token["refresh_token"] = refresh
        # Private to save_token, removed before the response is sent.
        token["_record"] = {"grant": grant, "jti": issued.jti, "exp": issued.expires_at}
        token["_refresh"] = refresh
        return token

    def save_token(self, token: dict[str, Any], request: OAuth2Request) -> None:
        record = token.pop("_record")
        refresh = token.pop("_refresh")
        grant = record["grant"]
        _wait(
            self.store.save_access,
            {**grant, "_id": record["jti"], "expires_at": record["exp"], "kind": "access"},
        )
        if refresh:
            lifetime = self.settings.refresh_token_lifetime
            _wait(
                self.store.save_refresh,
                refresh,
                {**grant, "expires_at": int(time.time()) + lifetime},
            )


def scope_for(subject: Subject, scope: str) -> str:
    """The client-allowed scope cut to what this user may hold.

    A patient account gets only `patient/` scopes (a `user/` scope would open
    every patient's records); `patient/` scopes and `launch/patient` need a
    patient in context; `system/` scopes are for backend services only.
    """
    granted = split_scope(scope)
    contexts: tuple[str, ...] = ("patient",) if subject.role == "patient" else ("patient", "user")
    if subject.patient is None:
        contexts = tuple(c for c in contexts if c != "patient")
        granted = [s for s in granted if s != "launch/patient"]
    return " ".join(only_contexts(granted, contexts))


def auth_base(settings: Settings) -> str:
    """The authorization server's base URL: `/auth` beside the FHIR base."""
    base = settings.base_url
    root = base[: -len("/fhir")] if base.endswith("/fhir") else base
    return f"{root}/auth"


# -- grants -----------------------------------------------------------------------


class SmartPkce(CodeChallenge):  # type: ignore[misc]
    """PKCE as SMART 2 wants it: S256 only, and a verifier from every client."""

    DEFAULT_CODE_CHALLENGE_METHOD = "S256"
    SUPPORTED_CODE_CHALLENGE_METHOD: ClassVar[list[str]] = ["S256"]
    CODE_CHALLENGE_METHODS: ClassVar[dict[str, Callable[[str, str], bool]]] = {
        "S256": compare_s256_code_challenge
    }

    def validate_code_challenge(self, grant: Any, redirect_uri: str) -> None:
        data = grant.request.payload.data
        client: Client = grant.request.client
        if not data.get("code_challenge") and not client.require_pkce:
            return
        if not data.get("code_challenge"):
            raise InvalidRequestError("PKCE is required: send code_challenge (S256).")
        if data.get("code_challenge_method") != "S256":
            raise InvalidRequestError("code_challenge_method must be S256.")
        super().validate_code_challenge(grant, redirect_uri)

    def validate_code_verifier(self, grant: Any, result: Any) -> None:
        client: Client = grant.request.client
        code: CodeRecord = grant.request.authorization_code
        if client.require_pkce or code.code_challenge:
            if not grant.request.form.get("code_verifier"):
                raise InvalidRequestError("Missing 'code_verifier'.")
            if not code.code_challenge:
                raise InvalidGrantError("The authorization had no code_challenge.")
        super().validate_code_verifier(grant, result)


class CodeGrant(grants.AuthorizationCodeGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = _ALL_METHODS
    AUTHORIZATION_CODE_LENGTH = 48

    def validate_authorization_request(self) -> str:
        redirect_uri: str = super().validate_authorization_request()
        aud = self.request.payload.data.get("aud")
        if aud is not None and aud.rstrip("/") != self.server.settings.base_url:
            raise InvalidRequestError(
                "aud must be this server's FHIR base URL.", redirect_uri=redirect_uri
            )
        if aud is None and not self.request.payload.data.get("launch"):
            raise InvalidRequestError("aud is required.", redirect_uri=redirect_uri)
        return redirect_uri

    def save_authorization_code(self, code: str, request: OAuth2Request) -> None:
        subject: Subject = request.user
        data = request.payload.data
        doc = {
            **subject.grant_fields(),
            "client_id": request.client.client_id,
            "redirect_uri": request.payload.redirect_uri,
            "scope": scope_for(subject, request.scope),
            "code_challenge": data.get("code_challenge"),
            "code_challenge_method": data.get("code_challenge_method"),
            "nonce": data.get("nonce"),
            "expires_at": int(time.time()) + self.server.settings.authorization_code_lifetime,
        }
        _wait(self.server.store.save_code, code, doc)

    def query_authorization_code(self, code: str, client: Client) -> CodeRecord | None:
        doc = _wait(self.server.store.code, code)
        if doc is None or doc["client_id"] != client.client_id:
            return None
        if not _wait(self.server.store.claim_code, code):
            _wait(self.server.store.revoke_family, doc["family"])  # a replayed code
            return None
        if doc["expires_at"] <= int(time.time()):
            return None
        return CodeRecord(doc)

    def delete_authorization_code(self, authorization_code: CodeRecord) -> None:
        """Nothing to do: the code was claimed (single use) when it was looked up."""

    def authenticate_user(self, authorization_code: CodeRecord) -> Subject:
        return Subject.of(authorization_code.doc)


class RefreshGrant(grants.RefreshTokenGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = _ALL_METHODS
    INCLUDE_NEW_REFRESH_TOKEN = True

    def authenticate_refresh_token(self, refresh_token: str) -> TokenRecord | None:
        doc = _wait(self.server.store.refresh_token, refresh_token)
        if doc is None or doc.get("revoked"):
            return None
        if doc.get("used"):
            _wait(self.server.store.revoke_family, doc["family"])  # reuse of a rotated token
            return None
        record = TokenRecord("refresh", doc)
        return None if record.is_expired() else record

    def _validate_token_scope(self, token: TokenRecord) -> None:
        scope = self.request.payload.scope
        if scope and not narrow(split_scope(scope), split_scope(token.get_scope())):
            raise InvalidScopeError("A refresh may narrow the scope, never widen it.")

    def validate_token_request(self) -> None:
        super().validate_token_request()
        if not _wait(self.server.store.claim_refresh, self.request.form["refresh_token"]):
            _wait(self.server.store.revoke_family, self.request.refresh_token.doc["family"])
            raise InvalidGrantError("The refresh token was already used.")

    def issue_token(self, user: Subject, refresh_token: TokenRecord) -> dict[str, Any]:
        original = split_scope(refresh_token.get_scope())
        asked = self.request.payload.scope
        scope = " ".join(narrow(split_scope(asked), original)) if asked else " ".join(original)
        token: dict[str, Any] = self.generate_token(
            user=user, scope=scope, include_refresh_token=True
        )
        return token

    def authenticate_user(self, refresh_token: TokenRecord) -> Subject:
        return Subject.of(refresh_token.doc)

    def revoke_old_credential(self, refresh_token: TokenRecord) -> None:
        """Nothing to do: the old token was marked used before the new one was made."""


class BackendGrant(grants.ClientCredentialsGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS: ClassVar[list[str]] = [ASSERTION_METHOD]

    def create_token_response(self) -> tuple[int, Any, Any]:
        scope = self.client.get_allowed_scope(self.request.payload.scope)
        if not scope:
            raise InvalidScopeError("None of the requested scopes is allowed for this client.")
        token = self.generate_token(scope=scope, include_refresh_token=False)
        self.save_token(token)
        return 200, token, self.TOKEN_RESPONSE_HEADER


# -- client authentication with a signed JWT ------------------------------------------


class PrivateKeyJwt(JWTBearerClientAssertion):  # type: ignore[misc]
    CLIENT_AUTH_METHOD = ASSERTION_METHOD

    def __init__(self, server: SmartAuthorizationServer) -> None:
        super().__init__(validate_jti=True, leeway=30)
        self.server = server

    def __call__(self, query_client: Any, request: OAuth2Request) -> Client | None:
        assertion = request.form.get("client_assertion")
        if request.form.get("client_assertion_type") == self.CLIENT_ASSERTION_TYPE and assertion:
            headers, claims = self.extract_assertion(assertion)
            if headers.get("alg") not in ASSERTION_ALGORITHMS:
                raise InvalidClientError(description="The assertion must be signed RS384 or ES384.")
            form_id = request.form.get("client_id")
            if form_id is not None and form_id != claims.get("iss"):
                raise InvalidClientError(description="client_id does not match the assertion.")
            client = query_client(claims.get("sub")) if isinstance(claims.get("sub"), str) else None
            if client is not None and headers.get("jku") and headers["jku"] != client.jwks_uri:
                raise InvalidClientError(description="jku is not the registered JWKS URL.")
            exp = claims.get("exp")
            if isinstance(exp, int | float) and exp > time.time() + MAX_ASSERTION_LIFETIME:
                raise InvalidClientError(description="exp must be at most 5 minutes ahead.")
        found: Client | None = super().__call__(query_client, request)
        return found

    def get_audiences(self) -> list[str]:
        return [self.server.token_url]

    def process_assertion_claims(self, assertion: str, resolve_key: Any) -> dict[str, Any]:
        try:
            token = jwt.decode(assertion, resolve_key, algorithms=ASSERTION_ALGORITHMS)
        except (JoseError, ValueError) as error:
            raise InvalidClientError(description="The assertion signature is not valid.") from error
        self.verify_claims(token.claims)
        return token.claims

    def validate_jti(self, claims: dict[str, Any], jti: str) -> bool:
        # kept past exp + leeway, so a replay is caught for as long as exp would pass
        expires = int(claims.get("exp", time.time() + MAX_ASSERTION_LIFETIME)) + 120
        return _wait(self.server.store.remember_assertion, str(claims["sub"]), str(jti), expires)

    def resolve_client_public_key(self, client: Client) -> jwk.KeySet:
        keys = client.jwks
        if keys is None and client.jwks_uri:
            try:
                response = httpx.get(client.jwks_uri, timeout=5.0)
                response.raise_for_status()
                keys = response.json()
            except (httpx.HTTPError, ValueError) as error:
                raise InvalidClientError(
                    description="The client's JWKS URL cannot be read."
                ) from error
        usable = [
            k for k in (keys or {}).get("keys", []) if k.get("alg") in (None, *ASSERTION_ALGORITHMS)
        ]
        try:
            return jwk.KeySet.import_key_set({"keys": usable})
        except (JoseError, ValueError) as error:
            raise InvalidClientError(description="The client's JWKS is not usable.") from error


# -- introspection and revocation ----------------------------------------------------------


def find_token(
    server: SmartAuthorizationServer, token: str, hint: str | None
) -> TokenRecord | None:
    """An access token (a JWT we issued) or a refresh token, from the store."""
    if hint != "refresh_token":
        try:
            claims = _wait(server.tokens.verify, token)
        except Unauthorized:
            claims = None
        if claims is not None:
            doc = _wait(server.store.access, str(claims["jti"]))
            if doc is not None:
                return TokenRecord("access", {**doc, "iss": server.tokens.issuer})
    doc = _wait(server.store.refresh_token, token)
    return TokenRecord("refresh", doc) if doc else None


def describe(record: TokenRecord | None, settings: Settings) -> dict[str, Any]:
    """RFC 7662 introspection answer; a dead or unknown token is exactly {"active": false}."""
    if record is None or record.is_expired() or record.is_revoked():
        return {"active": False}
    doc = record.doc
    out: dict[str, Any] = {
        "active": True,
        "scope": doc.get("scope", ""),
        "client_id": doc.get("client_id"),
        "exp": int(doc.get("expires_at", 0)),
        "iss": settings.base_url,
        "token_type": "Bearer" if record.kind == "access" else "refresh_token",
    }
    if doc.get("sub"):
        out["sub"] = doc["sub"]
    if doc.get("patient"):
        out["patient"] = doc["patient"]
    if doc.get("fhir_user"):
        out["fhirUser"] = f"{settings.base_url}/{doc['fhir_user']}"
    return out


class Introspection(IntrospectionEndpoint):  # type: ignore[misc]
    CLIENT_AUTH_METHODS: ClassVar[list[str]] = [
        "client_secret_basic",
        "client_secret_post",
        ASSERTION_METHOD,
    ]

    def query_token(self, token_string: str, token_type_hint: str | None) -> TokenRecord | None:
        return find_token(self.server, token_string, token_type_hint)

    def check_permission(self, token: TokenRecord, client: Client, request: OAuth2Request) -> bool:
        return True  # any authenticated client (a resource server) may introspect

    def create_introspection_payload(self, token: TokenRecord | None) -> dict[str, Any]:
        return describe(token, self.server.settings)


class Revocation(RevocationEndpoint):  # type: ignore[misc]
    CLIENT_AUTH_METHODS = _ALL_METHODS

    def query_token(self, token_string: str, token_type_hint: str | None) -> TokenRecord | None:
        return find_token(self.server, token_string, token_type_hint)

    def revoke_token(self, token: TokenRecord, request: OAuth2Request) -> None:
        family = token.doc.get("family")
        if family:
            _wait(self.server.store.revoke_family, family)
        elif token.kind == "access":
            _wait(self.server.store.revoke_access, token.doc["_id"])
