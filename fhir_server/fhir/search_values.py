"""Normal forms shared by indexing and querying, so both sides agree exactly.

- strings are folded (Unicode NFKD, combining marks dropped, case-folded), so
  "Müller" matches "muller" and "José" matches "jose" (R4 search, string);
- dates and instants become closed ranges [lo, hi] of fixed-width UTC digit
  strings "YYYYMMDDhhmmssffffff": a partial date is the range it covers
  ("2026-03" is the whole of March), which is how R4 compares dates. Digits,
  not ISO text, because the embedded server reads ISO-looking strings as
  dates and compares them to the second only;
- numbers become the range their significant digits imply ("100" is
  [99.5, 100.5]).
"""

from __future__ import annotations

import calendar
import re
import unicodedata
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation

from fhir_server.fhir.instants import in_utc

LOWEST = "0" * 20
HIGHEST = "9" * 20

_DATE = re.compile(
    r"^(?P<y>\d{4})(-(?P<m>\d{2})(-(?P<d>\d{2})"
    r"(T(?P<H>\d{2}):(?P<M>\d{2})(:(?P<S>\d{2})(?P<f>\.\d{1,9})?)?"
    r"(?P<tz>Z|[+-]\d{2}:\d{2})?)?)?)?$"
)


def fold(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


def digits(moment: datetime) -> str:
    utc = in_utc(moment)  # not strftime: glibc writes year 1 as "1", breaking the fixed width
    return f"{utc.year:04d}{utc:%m%d%H%M%S%f}"


def date_range(text: str) -> tuple[str, str]:
    """The [lo, hi] a FHIR date, dateTime or instant covers; ValueError if malformed.

    A time without a zone is read as UTC (this server's zone).
    """
    match = _DATE.match(text)
    if not match:
        raise ValueError(text)
    g = match.groupdict()
    year = int(g["y"])
    if g["m"] is None:
        return f"{year:04d}0101000000000000", f"{year:04d}1231235959999999"
    month = int(g["m"])
    if not 1 <= month <= 12:
        raise ValueError(text)
    if g["d"] is None:
        last = calendar.monthrange(year, month)[1]
        return (
            f"{year:04d}{month:02d}01000000000000",
            f"{year:04d}{month:02d}{last:02d}235959999999",
        )
    day = int(g["d"])
    if g["H"] is None:
        datetime(year, month, day)  # validates the day
        stem = f"{year:04d}{month:02d}{day:02d}"
        return stem + "000000000000", stem + "235959999999"
    fraction = (g["f"] or ".")[1:]
    zone = g["tz"] or "Z"
    start = datetime.fromisoformat(
        f"{g['y']}-{g['m']}-{g['d']}T{g['H']}:{g['M']}:{g['S'] or '00'}"
        f".{(fraction or '0')[:6].ljust(6, '0')}" + ("+00:00" if zone == "Z" else zone)
    )
    if g["S"] is None:
        width = timedelta(minutes=1)
    elif not fraction:
        width = timedelta(seconds=1)
    else:
        width = timedelta(microseconds=10 ** max(0, 6 - len(fraction)))
    try:
        end = digits(start + width - timedelta(microseconds=1))
    except OverflowError:  # the last minute of year 9999 in its local time
        end = HIGHEST
    return digits(start), end


def shift(value: str, delta: timedelta) -> str:
    """A digit instant moved by `delta`, clamped to the representable years."""
    moment = datetime.strptime(value, "%Y%m%d%H%M%S%f").replace(tzinfo=UTC)
    try:
        return digits(moment + delta)
    except OverflowError:
        return LOWEST if delta < timedelta(0) else HIGHEST


def number_range(text: str) -> tuple[float, float]:
    """The [lo, hi] the significant digits of a number imply; ValueError if malformed."""
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise ValueError(text) from None
    if not value.is_finite():
        raise ValueError(text)
    half = Decimal(5).scaleb(value.as_tuple().exponent - 1)  # type: ignore[operator]
    return float(value - half), float(value + half)


def split_escaped(text: str, separator: str) -> list[str]:
    """Split on `separator` unless escaped with a backslash; unescape `\\,` `\\|` `\\$` `\\\\`."""
    parts, current, escaped = [], "", False
    for char in text:
        if escaped:
            current += char
            escaped = False
        elif char == "\\":
            escaped = True
            current += char
        elif char == separator:
            parts.append(current)
            current = ""
        else:
            current += char
    parts.append(current)
    return parts


def unescape(text: str) -> str:
    return re.sub(r"\\([\\,|$])", r"\1", text)
