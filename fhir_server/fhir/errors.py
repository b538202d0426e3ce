"""FHIR errors, each carrying the OperationOutcome the edge will return.

Hierarchy (catch the narrowest class that you can handle)::

    FhirError                 any failure that becomes an OperationOutcome
    ├── BadRequest            400  malformed syntax, bad search value
    ├── Unauthorized          401  no or invalid credentials
    ├── Forbidden             403  authenticated but not allowed
    ├── NotFound              404  unknown type or id
    ├── MethodNotAllowed      405  interaction not supported on this type
    ├── NotAcceptable         406  format we do not produce (XML)
    ├── Conflict              409  version or state conflict (e.g. slot taken)
    ├── Gone                  410  logically deleted
    ├── PreconditionFailed    412  If-Match / conditional mismatch
    ├── PayloadTooLarge       413  body or Bundle over the limit
    ├── UnsupportedMediaType  415  body in a format we do not read
    ├── Unprocessable         422  valid syntax, invalid resource or rule
    ├── TooManyRequests       429  throttled
    └── ServiceUnavailable    503  store unreachable

Diagnostics are written by us and never echo exception text or resource
content, so nothing private leaks into a response or a log line.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar


@dataclass(frozen=True)
class Issue:
    """One OperationOutcome.issue: what went wrong and where (FHIRPath)."""

    code: str
    diagnostics: str
    severity: str = "error"
    expression: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "severity": self.severity,
            "code": self.code,
            "diagnostics": self.diagnostics,
        }
        if self.expression:
            out["expression"] = list(self.expression)
        return out


def operation_outcome(issues: list[Issue]) -> dict[str, Any]:
    return {"resourceType": "OperationOutcome", "issue": [i.to_json() for i in issues]}


@dataclass
class FhirError(Exception):
    """Base of every error that is answered with an OperationOutcome."""

    diagnostics: str
    expression: tuple[str, ...] = ()
    issues: list[Issue] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)

    status: ClassVar[int] = 500
    issue_code: ClassVar[str] = "exception"

    def __post_init__(self) -> None:
        super().__init__(self.diagnostics)
        if not self.issues:
            self.issues = [Issue(self.issue_code, self.diagnostics, expression=self.expression)]

    def outcome(self) -> dict[str, Any]:
        return operation_outcome(self.issues)


class BadRequest(FhirError):
    status = 400
    issue_code = "invalid"


class Unauthorized(FhirError):
    status = 401
    issue_code = "login"


class Forbidden(FhirError):
    status = 403
    issue_code = "forbidden"


class NotFound(FhirError):
    status = 404
    issue_code = "not-found"


class MethodNotAllowed(FhirError):
    status = 405
    issue_code = "not-supported"


class NotAcceptable(FhirError):
    status = 406
    issue_code = "not-supported"


class Conflict(FhirError):
    status = 409
    issue_code = "conflict"


class Gone(FhirError):
    status = 410
    issue_code = "deleted"


class PreconditionFailed(FhirError):
    status = 412
    issue_code = "conflict"


class PayloadTooLarge(FhirError):
    status = 413
    issue_code = "too-costly"


class UnsupportedMediaType(FhirError):
    status = 415
    issue_code = "not-supported"


class Unprocessable(FhirError):
    status = 422
    issue_code = "processing"


class TooManyRequests(FhirError):
    status = 429
    issue_code = "throttled"


class ServiceUnavailable(FhirError):
    status = 503
    issue_code = "transient"
