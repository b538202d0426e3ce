"""ETag, Last-Modified and conditional-request headers."""

from __future__ import annotations

import re
from datetime import datetime
from email.utils import format_datetime, parsedate_to_datetime

from fhir_server.fhir.errors import BadRequest
from fhir_server.store.clock import parse_instant
from fhir_server.store.resources import Version

_ETAG = re.compile(r'^(?:W/)?"(\d+)"$')


def parse_etag(value: str, header: str = "If-Match") -> int:
    match = _ETAG.match(value.strip())
    if not match:
        raise BadRequest(
            f'{header} must be a version ETag such as W/"3".', expression=(f"header:{header}",)
        )
    return int(match.group(1))


def http_date(instant: str) -> str:
    return format_datetime(parse_instant(instant), usegmt=True)


def version_headers(version: Version) -> dict[str, str]:
    return {"ETag": version.etag, "Last-Modified": http_date(version.updated)}


def not_modified(
    version: Version, if_none_match: str | None, if_modified_since: str | None
) -> bool:
    """True when a conditional read may answer 304."""
    if if_none_match:
        tags = {t.strip() for t in if_none_match.split(",")}
        return "*" in tags or version.etag in tags or f'"{version.version}"' in tags
    if if_modified_since:
        try:
            since: datetime = parsedate_to_datetime(if_modified_since)
        except (TypeError, ValueError):
            return False
        return parse_instant(version.updated).replace(microsecond=0) <= since
    return False
