"""`PortalApi`: the web UI's only way to data, the FHIR API with the user's own token.

Calls go to this same application in process (`InProcessApi`: one ASGI call
straight into the app, through all its middleware and the access gate, with
the browser's address as the client, so per-address limits and audit see the
user and not the portal). Each page gets its own `PortalApi`, which counts its
calls (`calls`; the page's `X-Portal-Fhir-Calls` header and the speed benchmark
report it).

Errors, and when to catch them:

    PortalApiError        the API answered an error; `status` and the
     |                    `outcome` (its OperationOutcome) say why: show
     |                    `messages`, or handle a status the page expects
     +-- SignInRequired   401: the token is no longer accepted; the portal
                          sends the user to sign in again (web.py does)
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx
import orjson
from starlette.types import ASGIApp, Message

from fhir_server.settings import Settings

FHIR_JSON = "application/fhir+json"
Params = Mapping[str, str] | Sequence[tuple[str, str]]


class PortalApiError(Exception):
    """The FHIR API refused a call or failed; carries its OperationOutcome."""

    def __init__(self, status: int, outcome: dict[str, Any]) -> None:
        super().__init__(f"FHIR API answered {status}")
        self.status = status
        self.outcome = outcome

    @property
    def messages(self) -> list[str]:
        """The issues' texts, fit to show to the user (the API never puts PHI in them)."""
        texts = []
        for issue in self.outcome.get("issue", []):
            text = issue.get("details", {}).get("text") or issue.get("diagnostics")
            if text:
                texts.append(str(text))
        return texts


class SignInRequired(PortalApiError):
    """The API no longer accepts the session's token (401)."""


def in_process_client(app: ASGIApp, settings: Settings, address: str) -> httpx.AsyncClient:
    """An HTTP client to `app` itself, at its public host, as seen from `address`."""
    public = urlsplit(settings.base_url)
    transport = httpx.ASGITransport(app=app, client=(address, 0))
    return httpx.AsyncClient(
        transport=transport, base_url=f"{public.scheme}://{public.netloc}", trust_env=False
    )


@dataclass(frozen=True)
class Answer:
    """What the API answered one call: its status, its media type and its body."""

    status: int
    content_type: str
    body: bytes


class InProcessApi:
    """Calls `app` itself through ASGI, at its public address, as seen from `address`.

    A page makes several calls; an HTTP client library in between (URL parsing,
    request and response objects) cost about a tenth of a page's time, and none of
    it is needed for an app in the same process. The call still enters at the top
    of the app, so every middleware, the rate limits, the gate and the audit see it
    as they see a call from outside.
    """

    def __init__(self, app: ASGIApp, settings: Settings, address: str) -> None:
        public = urlsplit(settings.base_url)
        self._app = app
        self._scheme = public.scheme
        self._host = public.netloc.encode("latin-1")
        self._server = (
            public.hostname or "",
            public.port or (443 if public.scheme == "https" else 80),
        )
        self._client = (address, 0)

    async def __call__(
        self, method: str, path: str, query: str, headers: Mapping[str, str], body: bytes
    ) -> Answer:
        sent = [(b"host", self._host)]
        sent += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
        if body:
            sent.append((b"content-length", str(len(body)).encode()))
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": method,
            "scheme": self._scheme,
            "path": path,
            "raw_path": path.encode(),
            "query_string": query.encode("latin-1"),
            "root_path": "",
            "headers": sent,
            "server": self._server,
            "client": self._client,
        }
        pending = [{"type": "http.request", "body": body, "more_body": False}]
        answered = asyncio.Event()
        status, content_type, parts = 500, "", []

        async def receive() -> Message:
            if pending:
                return pending.pop()
            # The caller stays "connected" until the whole answer is sent, as a browser
            # does: a response that listens for a disconnect is never cut short.
            await answered.wait()
            return {"type": "http.disconnect"}

        async def send(message: Message) -> None:
            nonlocal status, content_type
            if message["type"] == "http.response.start":
                status = message["status"]
                for name, value in message.get("headers", []):
                    if name.lower() == b"content-type":
                        content_type = value.decode("latin-1")
            elif message["type"] == "http.response.body":
                parts.append(message.get("body", b""))
                if not message.get("more_body", False):
                    answered.set()

        try:
            await self._app(scope, receive, send)
        finally:
            answered.set()
        return Answer(status, content_type, b"".join(parts))


class PortalApi:
    """A FHIR client bound to one signed-in user's access token, for one page."""

    def __init__(self, api: InProcessApi, access_token: str, patient: str | None) -> None:
        self._api = api
        self._headers = {"Authorization": f"Bearer {access_token}", "Accept": FHIR_JSON}
        # The patient the page acts for: the token's launch context in the portal, the patient
        # the front desk chose in the clinic workspace (the API's gate decides either way).
        self.patient = patient
        self.calls = 0

    async def read(self, resource_type: str, resource_id: str) -> dict[str, Any]:
        return await self.request("GET", f"{resource_type}/{resource_id}")

    async def search(self, resource_type: str, params: Params | None = None) -> dict[str, Any]:
        """A searchset Bundle (one page of it)."""
        return await self.request("GET", resource_type, params=params)

    async def operation(
        self, path: str, parameters: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """POST `path` (e.g. `Appointment/$book`) with a Parameters resource."""
        body = parameters or {"resourceType": "Parameters"}
        return await self.request("POST", path, json_body=body)

    async def batch(self, *paths: str) -> list[dict[str, Any]]:
        """Independent GETs (`Patient/1`, `Slot?start=...`) in one batch Bundle, their answers
        in order. One HTTP round and one token check for all, where separate calls pay
        each; every entry still passes the access gate and the audit on its own. An
        entry the API refused raises as a call would (its status and OperationOutcome)."""
        entries = [{"request": {"method": "GET", "url": path}} for path in paths]
        body = {"resourceType": "Bundle", "type": "batch", "entry": entries}
        answer = await self.request("POST", "", json_body=body)
        results = []
        for entry in answer.get("entry", []):
            response = entry.get("response") or {}
            status = int(str(response.get("status", "500")).split(" ")[0])
            if status >= 400:
                outcome = response.get("outcome") or {}
                raise (SignInRequired if status == 401 else PortalApiError)(status, outcome)
            results.append(entry.get("resource") or {})
        if len(results) != len(paths):
            raise PortalApiError(502, {"resourceType": "OperationOutcome", "issue": []})
        return results

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Params | None = None,
        json_body: dict[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        """Any FHIR interaction on a path relative to the FHIR base; the body it answers."""
        sent = dict(self._headers, **(headers or {}))
        content = None
        if json_body is not None:
            content = orjson.dumps(json_body)
            sent["Content-Type"] = FHIR_JSON
        self.calls += 1
        answer = await self._api(
            method, f"/fhir/{path}", urlencode(params) if params else "", sent, content or b""
        )
        body = _json_of(answer)
        if answer.status == 401:
            raise SignInRequired(401, body)
        if answer.status >= 400:
            raise PortalApiError(answer.status, body)
        return body


def _json_of(answer: Answer) -> dict[str, Any]:
    """The JSON object an answer carries; {} for an empty or non-JSON body (a bare 500)."""
    if "json" not in answer.content_type:
        return {}
    try:
        body = orjson.loads(answer.body)
    except orjson.JSONDecodeError:
        return {}
    return body if isinstance(body, dict) else {}


def entries(bundle: dict[str, Any], resource_type: str | None = None) -> list[dict[str, Any]]:
    """The resources of a Bundle (of one type, when given; includes and outcomes left out)."""
    found = [e["resource"] for e in bundle.get("entry", []) if "resource" in e]
    return [r for r in found if resource_type is None or r.get("resourceType") == resource_type]
