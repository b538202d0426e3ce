"""Web push (RFC 8030 with VAPID, RFC 8292) to the browsers a person registered.

The VAPID key is the file FHIR_PUSH_VAPID_KEY_FILE names (one key for every
api and worker container), else generated on first use and kept in the data
dir (`vapid-private.pem`, enough when one machine runs everything); the portal
fetches the public key (`application_server_key`) to subscribe a browser. A push service answering
404 or 410 means the browser subscription is gone: it is dropped.

A push endpoint is a URL a patient's browser gave us, so it is checked and
called like a rest-hook endpoint (`channels.outbound`): public https only,
pinned to the address checked at delivery, no redirects. A failure is
recorded on the patient-readable Communication as one fixed sentence, so it
cannot be used to probe which addresses or ports answer.
"""

from __future__ import annotations

import base64
import hashlib
import threading
from pathlib import Path
from typing import Any

import requests
from cryptography.hazmat.primitives import serialization
from py_vapid import Vapid02
from pywebpush import WebPushException, webpush

from fhir_server.notifications.channels import outbound
from fhir_server.notifications.channels.base import DeliveryError
from fhir_server.settings import Settings

_lock = threading.Lock()
FAILED = "The push service did not take the message."
REFUSED_ENDPOINT = "The push endpoint must be a public https URL of a browser's push service."


def _key_path(settings: Settings) -> Path:
    return settings.data_dir / "vapid-private.pem"


def vapid_key(settings: Settings) -> Vapid02:
    """The server's VAPID key pair: the configured file, else generated and saved once."""
    if settings.push_vapid_key_file is not None:
        return Vapid02.from_file(str(settings.push_vapid_key_file))
    path = _key_path(settings)
    with _lock:
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            key = Vapid02()
            key.generate_keys()
            key.save_key(str(path))
            path.chmod(0o600)
        return Vapid02.from_file(str(path))


def application_server_key(settings: Settings) -> str:
    """The public key as the browser's PushManager.subscribe wants it (base64url, raw point)."""
    raw = vapid_key(settings).public_key.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def subscription_key(info: dict[str, Any]) -> str:
    """A stable id for one browser subscription (its endpoint is unique)."""
    return hashlib.sha256(str(info.get("endpoint", "")).encode()).hexdigest()[:32]


def check_subscription(info: dict[str, Any]) -> None:
    keys = info.get("keys") or {}
    if not str(info.get("endpoint", "")).startswith(("https://", "http://")) or not (
        keys.get("p256dh") and keys.get("auth")
    ):
        raise ValueError("A push subscription needs an endpoint URL and keys p256dh and auth.")


async def endpoint_refused(settings: Settings, info: dict[str, Any]) -> bool:
    """Is this browser subscription's endpoint one the server must not call?"""
    endpoint = str(info.get("endpoint", ""))
    return await outbound.endpoint_problem(endpoint, outbound.Reach.of(settings)) is not None


class _Pinned(requests.Session):
    """pywebpush's HTTP session, sending through `outbound.post` (checked, pinned)."""

    def __init__(self, reach: outbound.Reach) -> None:
        super().__init__()
        self.reach = reach

    def post(  # type: ignore[override]
        self, url: str, data: bytes | None = None, **kwargs: Any
    ) -> requests.Response:
        headers = {str(k): str(v) for k, v in (kwargs.get("headers") or {}).items()}
        sent = outbound.post(url, data, headers, self.reach, float(kwargs.get("timeout") or 10))
        response = requests.Response()
        response.status_code = sent.status_code
        response.reason = sent.reason_phrase
        response._content = sent.content
        return response


def send_push(settings: Settings, info: dict[str, Any], payload: str) -> bool:
    """Send to one browser; False when the subscription is gone (drop it)."""
    try:
        webpush(
            info,
            data=payload,
            vapid_private_key=vapid_key(settings),
            vapid_claims={"sub": settings.push_contact},
            timeout=10,
            ttl=24 * 3600,
            requests_session=_Pinned(outbound.Reach.of(settings)),
        )
    except WebPushException as exc:
        status = exc.response.status_code if exc.response is not None else None
        if status in (404, 410):
            return False
        raise DeliveryError(FAILED) from None
    except DeliveryError as exc:
        raise DeliveryError(FAILED, permanent=exc.permanent) from None
    except Exception:  # connection errors and the like
        raise DeliveryError(FAILED) from None
    return True
