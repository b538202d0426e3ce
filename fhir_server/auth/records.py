"""What stands behind a grant: subject and launch context; codes and tokens for authlib."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from fhir_server.auth.clients import Client
from fhir_server.auth.scopes import only_contexts, split_scope

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
