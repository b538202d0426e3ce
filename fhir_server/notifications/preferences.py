"""A person's notification preferences, read from FHIR elements an EHR understands.

- Language: `Patient.communication` (the `preferred` one first, then the
  first listed), or `Practitioner.communication`; BCP-47 codes, so `fr-CA`
  counts as French.
- Channels and opt-out: the `notification-preferences` extension
  (profiles/StructureDefinition-notification-preferences.json) on Patient or
  Practitioner: repeated `channel` (valueCode email | sms | push) in order of
  preference, and `optOut` (valueBoolean). Without it, e-mail is used when the
  person has an e-mail address, else SMS to a mobile number.
- Reminders: repeated `reminderOffset` (valueInteger, minutes before the
  start) names the reminders wanted, `noReminders` (valueBoolean) turns them
  off; without either, every reminder the server sends
  (`FHIR_NOTIFY_REMINDER_OFFSETS`). The patient portal writes all of these.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fhir_server.notifications.codes import PERSON_CHANNELS, PREFERENCES_EXT, SUPPORTED_LANGUAGES


@dataclass(frozen=True)
class Preferences:
    channels: tuple[str, ...]
    opted_out: bool
    language: str | None
    reminders: tuple[int, ...] | None = None  # offsets (minutes) wanted; None: every one

    def wants_reminder(self, offset: int | None) -> bool:
        return self.reminders is None or offset in self.reminders


def _sub(extension: dict[str, Any], name: str) -> list[dict[str, Any]]:
    return [e for e in extension.get("extension", []) if e.get("url") == name]


def _language_codes(resource: dict[str, Any]) -> list[str]:
    entries = resource.get("communication", [])
    if resource.get("resourceType") == "Patient":
        ordered = sorted(entries, key=lambda c: not c.get("preferred", False))
        concepts = [c.get("language", {}) for c in ordered]
    else:
        concepts = entries
    return [
        coding["code"]
        for concept in concepts
        for coding in concept.get("coding", [])
        if coding.get("code")
    ]


def language_of(resource: dict[str, Any]) -> str | None:
    """The first stated language this server has templates for (base language of a tag)."""
    for code in _language_codes(resource):
        base = code.split("-")[0].lower()
        if base in SUPPORTED_LANGUAGES:
            return base
    return None


def read_preferences(resource: dict[str, Any]) -> Preferences:
    stated = [e for e in resource.get("extension", []) if e.get("url") == PREFERENCES_EXT]
    channels: list[str] = []
    opted_out = False
    offsets: list[int] = []
    no_reminders = False
    for extension in stated:
        channels += [
            c["valueCode"]
            for c in _sub(extension, "channel")
            if c.get("valueCode") in PERSON_CHANNELS
        ]
        opted_out = opted_out or any(o.get("valueBoolean") for o in _sub(extension, "optOut"))
        offsets += [
            r["valueInteger"]
            for r in _sub(extension, "reminderOffset")
            if isinstance(r.get("valueInteger"), int)
        ]
        no_reminders = no_reminders or any(
            o.get("valueBoolean") for o in _sub(extension, "noReminders")
        )
    if not channels:
        channels = _default_channels(resource)
    reminders = () if no_reminders else tuple(offsets) if offsets else None
    return Preferences(tuple(dict.fromkeys(channels)), opted_out, language_of(resource), reminders)


def _default_channels(resource: dict[str, Any]) -> list[str]:
    if email_of(resource):
        return ["email"]
    if mobile_of(resource):
        return ["sms"]
    return []


def _telecom(resource: dict[str, Any]) -> list[dict[str, Any]]:
    return sorted(
        (
            t
            for t in resource.get("telecom", [])
            if t.get("value") and not t.get("period", {}).get("end")
        ),
        key=lambda t: t.get("rank", 1_000_000),
    )


def email_of(resource: dict[str, Any]) -> str | None:
    return next((t["value"] for t in _telecom(resource) if t.get("system") == "email"), None)


def mobile_of(resource: dict[str, Any]) -> str | None:
    """An SMS number: telecom `sms`, else a `phone` whose use is `mobile`."""
    for telecom in _telecom(resource):
        if telecom.get("system") == "sms" or (
            telecom.get("system") == "phone" and telecom.get("use") == "mobile"
        ):
            return str(telecom["value"])
    return None


def preferences_extension(
    channels: list[str], *, opted_out: bool = False, reminders: list[int] | None = None
) -> dict[str, Any]:
    """The extension as a client writes it (used by the demo, tests and docs); `reminders`:
    the offsets wanted (None: every one, []: none)."""
    parts: list[dict[str, Any]] = [{"url": "channel", "valueCode": c} for c in channels]
    if opted_out:
        parts.append({"url": "optOut", "valueBoolean": True})
    if reminders == []:
        parts.append({"url": "noReminders", "valueBoolean": True})
    parts += [{"url": "reminderOffset", "valueInteger": m} for m in reminders or []]
    return {"url": PREFERENCES_EXT, "extension": parts}
