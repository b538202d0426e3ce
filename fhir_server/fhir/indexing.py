"""Resource -> the `idx` sub-document that search queries, one entry per parameter.

Layout (every key is present only when the resource has a value for it):

- `s.<code>`: the value of a parameter that is single-valued by definition
  (every path element max=1) and of a scalar kind (primitive token,
  reference, date `{lo, hi}`). The embedded server can only index scalars,
  so the booking searches (Slot by schedule+status+start, Appointment by
  date) query these.
- `m.<code>`: for every other parameter, the list of normalised values
  (tokens `code`, `system|code`, `|code`, `system|`; folded strings;
  references `Type/id`; dates and numbers `{lo, hi}`; uris). Queried with
  equality/`$in` or `$elemMatch`. A value is in `s` or `m`, never both:
  the row stays small, which the embedded server pays for on every row read.
- `u.<code>.<Type>`: for multi-valued reference parameters, the one
  reference of that target type, or `*` when there are several. A search for
  `Type/id` then reads `u` (indexable) and only looks into `m` for the rare
  resources marked `*` (see `store.search_query`).
- `x.<code>`: exact (unfolded) strings, for `:exact`.
- `t.<code>`: folded display texts of codes, for `:text`.
- `o.<code>`: the sort key (lowest value) of a list-valued parameter, for
  `_sort`; scalar parameters sort on `s`, where the booking indexes are.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from fhir_server.fhir.search_params import SearchParam, search_params
from fhir_server.fhir.search_values import HIGHEST, LOWEST, date_range, fold

PRIMITIVE_TOKEN_TYPES = frozenset({"code", "boolean", "id", "string", "uri"})
MANY = "*"
# The `Type/id` at the end of any reference, ours or another server's.
_TYPED_TAIL = re.compile(r"(?:^|/)([A-Z][A-Za-z]+)/[A-Za-z0-9\-.]{1,64}(?:/_history/[^/]+)?$")
_STRING_SKIPPED = frozenset({"use", "type", "period", "extension", "id", "system"})
# Raise when the indexer writes other values for the same definitions (a new `idx` key, another
# normalisation): the fingerprints change with it, and servers ask for `fhir-server reindex`.
LAYOUT = 1


def has_scalar(param: SearchParam) -> bool:
    """Whether `s.<code>` is written for this parameter (so queries may use it)."""
    if not param.single:
        return False
    if param.type == "token":
        return param.element_type in PRIMITIVE_TOKEN_TYPES
    return param.type in ("reference", "date")


def reference_pattern(base_url: str) -> re.Pattern[str]:
    """`Type/id`, optionally prefixed by this server's base and followed by `/_history/n`."""
    return re.compile(
        rf"^(?:{re.escape(base_url.rstrip('/'))}/)?([A-Z][A-Za-z]+)/([A-Za-z0-9\-.]{{1,64}})"
        r"(?:/_history/[^/]+)?$"
    )


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [s for item in value for s in _strings(item)]
    if isinstance(value, dict):
        return [s for k, v in value.items() if k not in _STRING_SKIPPED for s in _strings(v)]
    return []


def _tokens(value: Any) -> tuple[list[str], list[str]]:
    """(token index values, folded texts) of a code, Coding, CodeableConcept, Identifier..."""
    if isinstance(value, bool):
        return ["true" if value else "false"], []
    if isinstance(value, str):
        return [value], []
    if not isinstance(value, dict):
        return [], []
    tokens: list[str] = []
    texts = [fold(value[k]) for k in ("text", "display") if isinstance(value.get(k), str)]
    for coding in value.get("coding", []):
        more_tokens, more_texts = _tokens(coding)
        tokens += more_tokens
        texts += more_texts
    code = value.get("code", value.get("value"))
    if isinstance(code, str):
        system = value.get("system")
        tokens.append(code)
        tokens += [f"{system}|{code}", f"{system}|"] if system else [f"|{code}"]
    if isinstance(value.get("type"), dict):
        texts += _tokens(value["type"])[1]
    return tokens, texts


def _date(value: Any) -> dict[str, str] | None:
    try:
        if isinstance(value, str):
            lo, hi = date_range(value)
            return {"lo": lo, "hi": hi}
        if isinstance(value, dict) and ("start" in value or "end" in value):
            lo = date_range(value["start"])[0] if "start" in value else LOWEST
            hi = date_range(value["end"])[1] if "end" in value else HIGHEST
            return {"lo": lo, "hi": hi}
    except (ValueError, TypeError):
        return None
    return None


def _unique(values: list[Any]) -> list[Any]:
    """The values without repeats, in first-seen order. A set holds the hashable ones: a list
    alone made indexing quadratic, and an AuditEvent naming the 400 resources of a search
    page spent milliseconds here on every search."""
    hashed: set[Any] = set()
    others: list[Any] = []  # dicts (date ranges): compared one by one, they are few
    out = []
    for value in values:
        try:
            if value in hashed:
                continue
            hashed.add(value)
        except TypeError:
            if value in others:
                continue
            others.append(value)
        out.append(value)
    return out


class ResourceIndexer:
    """The store's `indexer`: knows this server's base URL to shorten absolute references."""

    def __init__(self, base_url: str) -> None:
        self._reference = reference_pattern(base_url)

    def reference(self, text: str) -> str:
        """`Type/id` for a reference to this server, else the text unchanged."""
        match = self._reference.match(text)
        return f"{match.group(1)}/{match.group(2)}" if match else text

    def _references(self, param: SearchParam, raw: list[Any]) -> list[str]:
        out = []
        for item in raw:
            text = item.get("reference") if isinstance(item, dict) else item
            if not isinstance(text, str) or text.startswith(("#", "urn:")):
                continue
            ref = self.reference(text)
            typed = _TYPED_TAIL.search(ref)
            kind = typed.group(1) if typed else None
            if kind is None or not param.targets or kind in param.targets:
                out.append(ref)
        return out

    def _values(self, param: SearchParam, raw: list[Any]) -> tuple[list[Any], list[str]]:
        """(index values, folded texts)."""
        if param.type == "string":
            return _unique([fold(s) for s in _strings(raw)]), []
        if param.type == "token":
            tokens: list[str] = []
            texts: list[str] = []
            for item in raw:
                more_tokens, more_texts = _tokens(item)
                tokens += more_tokens
                texts += more_texts
            return _unique(tokens), _unique(texts)
        if param.type == "reference":
            return _unique(self._references(param, raw)), []
        if param.type == "date":
            return _unique([d for d in map(_date, raw) if d]), []
        if param.type == "number":
            numbers = [v for v in raw if isinstance(v, int | float) and not isinstance(v, bool)]
            return _unique([{"lo": float(v), "hi": float(v)} for v in numbers]), []
        return _unique([v for v in raw if isinstance(v, str)]), []

    def __call__(self, resource: dict[str, Any]) -> dict[str, Any]:
        idx: dict[str, dict[str, Any]] = {k: {} for k in ("m", "s", "u", "x", "t", "o")}
        for code, param in search_params(resource["resourceType"]).items():
            if code == "_id":
                continue
            raw = param.values(resource)
            values, texts = self._values(param, raw)
            if not values:
                continue
            if has_scalar(param):
                idx["s"][code] = values[0]
            else:
                idx["m"][code] = values
                idx["o"][code] = _sort_key(param, values)
            if texts:
                idx["t"][code] = texts
            if param.type == "string":
                idx["x"][code] = _unique(_strings(raw))
            if param.type == "reference" and not param.single:
                idx["u"][code] = _sole_per_type(values)
        return {k: v for k, v in idx.items() if v}


def fingerprint(resource_type: str) -> str:
    """A digest of what indexing a `resource_type` reads: its parameter definitions and the
    layout. Rows indexed under another digest may miss values a search now expects, so the
    store keeps the digest its rows were indexed with (`store.reindex`)."""
    described = [
        f"{p.code}\t{p.type}\t{p.url}\t{p.expression}\t{','.join(p.targets)}\t{p.single}"
        f"\t{p.element_type}"
        for p in search_params(resource_type).values()
    ]
    text = "\n".join([f"layout {LAYOUT}", *sorted(described)])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _sole_per_type(references: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for ref in references:
        kind = ref.split("/", 1)[0]
        if "/" in ref and ":" not in ref:
            out[kind] = MANY if kind in out else ref
    return out


def _sort_key(param: SearchParam, values: list[Any]) -> Any:
    """Lowest value (the first code for tokens) of a list-valued parameter."""
    if param.type in ("date", "number"):
        return min(v["lo"] for v in values)
    if param.type == "token":
        return values[0]
    return min(values)
