"""Contact details and notification preferences, kept on the patient's own Patient resource.

The page reads `Patient/{id}` and writes it back with `If-Match` (a change made
meanwhile elsewhere is a 412, shown as an error and nothing is lost), in the
elements the notifications read (README "Notifications"): the e-mail and mobile
`telecom`, the `notification-preferences` extension (channels in order, opt-out
when none is ticked, which reminders) and the preferred `communication`
language. Other elements, other telecoms and other extensions are kept as they
were.

Push: `/preferences/push` registers this browser's PushSubscription through
`Patient/{id}/$push-subscription`; the page's script (static/preferences.js)
subscribes with the server's VAPID key, and `/sw.js` (the service worker, at the
portal's root so its scope is the portal) shows what arrives.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import APIRouter
from fastapi.responses import FileResponse, JSONResponse, Response
from starlette.datastructures import FormData

from fhir_server.ui import i18n
from fhir_server.ui.fhir_api import PortalApiError
from fhir_server.ui.web import CheckedForm, FieldError, SignedIn, SignedInPage

router = APIRouter()

PREFERENCES_EXT = (
    "https://clinic-booking.example.org/fhir/StructureDefinition/notification-preferences"
)
CHANNELS = ("email", "sms", "push")
BCP47 = "urn:ietf:bcp:47"
SERVICE_WORKER = Path(__file__).parents[1] / "static" / "sw.js"
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_PHONE = re.compile(r"\+?[0-9][0-9 .-]{5,18}[0-9]")


@dataclass
class Choices:
    """What the form shows and sends."""

    email: str = ""
    mobile: str = ""
    channels: tuple[str, ...] = ()
    reminders: tuple[int, ...] = ()
    language: str = i18n.DEFAULT


def _sub(extension: dict[str, Any], url: str) -> list[Any]:
    return [e.get("valueCode", e.get("valueInteger", e.get("valueBoolean"))) for e in
            extension.get("extension", []) if e.get("url") == url]  # fmt: skip


def _is_mobile(telecom: dict[str, Any]) -> bool:
    return telecom.get("system") == "sms" or (
        telecom.get("system") == "phone" and telecom.get("use") == "mobile"
    )


def read_choices(patient: dict[str, Any], offsets: list[int]) -> Choices:
    """The form's values from the Patient (what the notifications would use today)."""
    live = [
        t for t in patient.get("telecom", []) if t.get("value") and "end" not in t.get("period", {})
    ]
    email = next((t["value"] for t in live if t.get("system") == "email"), "")
    mobile = next((t["value"] for t in live if _is_mobile(t)), "")
    stated = [e for e in patient.get("extension", []) if e.get("url") == PREFERENCES_EXT]
    channels: tuple[str, ...] = tuple(c for e in stated for c in _sub(e, "channel"))
    if not stated:
        channels = ("email",) if email else ("sms",) if mobile else ()
    if any(True in _sub(e, "optOut") for e in stated):
        channels = ()
    wanted = [m for e in stated for m in _sub(e, "reminderOffset")]
    reminders = tuple(offsets if not wanted else [m for m in offsets if m in wanted])
    if any(True in _sub(e, "noReminders") for e in stated):
        reminders = ()
    codes = [
        c.get("code", "")
        for entry in sorted(patient.get("communication", []), key=lambda c: not c.get("preferred"))
        for c in entry.get("language", {}).get("coding", [])
    ]
    language = next((code[:2] for code in codes if code[:2] in i18n.LANGUAGES), i18n.DEFAULT)
    return Choices(email, mobile, channels, reminders, language)


def choices_of(form: FormData, offsets: list[int]) -> Choices:
    """The choices the form sent (unknown channels, reminders and languages left out)."""

    def sent(name: str) -> list[str]:
        return [v.strip() for v in form.getlist(name) if isinstance(v, str)]

    language = next(iter(sent("language")), "")
    return Choices(
        email=next(iter(sent("email")), ""),
        mobile=next(iter(sent("mobile")), ""),
        channels=tuple(c for c in CHANNELS if c in sent("channel")),
        reminders=tuple(m for m in offsets if str(m) in sent("reminder")),
        language=language if language in i18n.LANGUAGES else i18n.DEFAULT,
    )


def _errors(page: SignedInPage, choices: Choices) -> list[FieldError]:
    _ = page._
    errors = []
    if choices.email and not _EMAIL.fullmatch(choices.email):
        errors.append(FieldError(_("Enter an e-mail address like name@example.org"), "email"))
    elif "email" in choices.channels and not choices.email:
        errors.append(FieldError(_("Enter an e-mail address to get e-mails"), "email"))
    if choices.mobile and not _PHONE.fullmatch(choices.mobile):
        errors.append(FieldError(_("Enter a mobile number like +33 6 12 34 56 78"), "mobile"))
    elif "sms" in choices.channels and not choices.mobile:
        errors.append(FieldError(_("Enter a mobile number to get text messages"), "mobile"))
    return errors


def _telecom(old: list[dict[str, Any]], choices: Choices) -> list[dict[str, Any]]:
    """The Patient's telecom with its e-mail and mobile replaced (others kept, in order)."""
    kept = [t for t in old if t.get("system") != "email" and not _is_mobile(t)]
    mine = []
    if choices.email:
        mine.append({"system": "email", "value": choices.email})
    if choices.mobile:
        mine.append({"system": "phone", "use": "mobile", "value": choices.mobile})
    return mine + kept


def _preferences(choices: Choices, offsets: list[int]) -> dict[str, Any]:
    parts: list[dict[str, Any]] = [{"url": "channel", "valueCode": c} for c in choices.channels]
    if not choices.channels:
        parts.append({"url": "optOut", "valueBoolean": True})
    if not choices.reminders:
        parts.append({"url": "noReminders", "valueBoolean": True})
    elif set(choices.reminders) != set(offsets):
        parts += [{"url": "reminderOffset", "valueInteger": m} for m in choices.reminders]
    return {"url": PREFERENCES_EXT, "extension": parts}


def updated_patient(
    patient: dict[str, Any], choices: Choices, offsets: list[int]
) -> dict[str, Any]:
    """The Patient as the form asks it to be."""
    others = [e for e in patient.get("extension", []) if e.get("url") != PREFERENCES_EXT]
    spoken = [
        {key: value for key, value in entry.items() if key != "preferred"}
        for entry in patient.get("communication", [])
        if not any(
            c.get("code", "")[:2] == choices.language
            for c in entry.get("language", {}).get("coding", [])
        )
    ]
    preferred = {
        "language": {"coding": [{"system": BCP47, "code": choices.language}]},
        "preferred": True,
    }
    changed = {
        **patient,
        "telecom": _telecom(patient.get("telecom", []), choices),
        "extension": [*others, _preferences(choices, offsets)],
        "communication": [preferred, *spoken],
    }
    if not changed["telecom"]:
        del changed["telecom"]
    return changed


_UNITS = (
    (1440, "%(num)d day before", "%(num)d days before"),
    (60, "%(num)d hour before", "%(num)d hours before"),
    (1, "%(num)d minute before", "%(num)d minutes before"),
)


def _offset_words(page: SignedInPage, minutes: int) -> str:
    """A reminder offset in words ("1 day before"), in the largest unit that divides it."""
    size, one, many = next(unit for unit in _UNITS if minutes % unit[0] == 0)
    count = minutes // size
    return i18n.translations(page.lang).ngettext(one, many, count) % {"num": count}


_PUSH_KEY = "$push-subscription"
"""Answers (GET) the server's web-push application key the browser subscribes with."""


def _push_key(found: dict[str, Any]) -> str:
    return next(
        (
            p.get("valueString", "")
            for p in found.get("parameter", [])
            if p.get("name") == "applicationServerKey"
        ),
        "",
    )


async def _patient_and_push_key(page: SignedInPage) -> tuple[dict[str, Any], str]:
    """The patient's own record and the push key, in one batch (one call instead of two)."""
    me = f"Patient/{page.api.patient}"
    patient, push = await page.api.batch(me, f"{me}/{_PUSH_KEY}")
    return patient, _push_key(push)


async def _show(
    page: SignedInPage,
    choices: Choices,
    errors: list[FieldError] | None = None,
    status: int = 200,
    saved: bool = False,
    push_key: str | None = None,
) -> Response:
    offsets = sorted(page.settings.notify_reminder_offsets, reverse=True)
    return page.render(
        "portal/preferences.html",
        title=page._("Contact details and notifications"),
        status=status,
        errors=errors,
        choices=choices,
        offsets=[(m, _offset_words(page, m)) for m in offsets],
        languages=list(i18n.LANGUAGES.items()),
        push_key=await _fetched_push_key(page) if push_key is None else push_key,
        saved=saved,
    )


async def _fetched_push_key(page: SignedInPage) -> str:
    return _push_key(await page.api.request("GET", f"Patient/{page.api.patient}/{_PUSH_KEY}"))


@router.get("/preferences")
async def preferences(page: SignedIn) -> Response:
    patient, push_key = await _patient_and_push_key(page)
    offsets = list(page.settings.notify_reminder_offsets)
    saved = page.request.query_params.get("saved") == "1"
    return await _show(page, read_choices(patient, offsets), saved=saved, push_key=push_key)


@router.post("/preferences")
async def save_preferences(page: SignedIn, form: CheckedForm) -> Response:
    offsets = list(page.settings.notify_reminder_offsets)
    choices = choices_of(form, offsets)
    errors = _errors(page, choices)
    if errors:
        return await _show(page, choices, errors, status=400)
    patient = await page.api.read("Patient", str(page.api.patient))
    version = patient.get("meta", {}).get("versionId", "")
    try:
        await page.api.request(
            "PUT",
            f"Patient/{page.api.patient}",
            json_body=updated_patient(patient, choices, offsets),
            headers={"If-Match": f'W/"{version}"'},
        )
    except PortalApiError as error:
        if error.status not in (400, 409, 412, 422):
            raise
        message = page._("Your details changed elsewhere meanwhile. Check them and save again.")
        if error.status != 412:
            message = page._("These details could not be saved. Check them and try again.")
        return await _show(page, choices, [FieldError(message, "email")], status=400)
    return page.redirect(page.url("/preferences", saved="1"))


@router.post("/preferences/push")
async def register_push(page: SignedIn, form: CheckedForm) -> Response:
    """This browser's PushSubscription (sent by preferences.js) registered for the patient."""
    values = {name: form.get(name) for name in ("endpoint", "p256dh", "auth")}
    if not all(isinstance(v, str) and v for v in values.values()):
        return JSONResponse({"registered": False}, status_code=400)
    parameters = {
        "resourceType": "Parameters",
        "parameter": [
            {"name": "endpoint", "valueUrl": values["endpoint"]},
            {"name": "p256dh", "valueString": values["p256dh"]},
            {"name": "auth", "valueString": values["auth"]},
        ],
    }
    try:
        await page.api.operation(f"Patient/{page.api.patient}/$push-subscription", parameters)
    except PortalApiError as error:
        if error.status >= 500:
            raise
        return JSONResponse({"registered": False}, status_code=error.status)
    return JSONResponse({"registered": True})


@router.get("/sw.js")
async def service_worker() -> Response:
    """The service worker, served from the portal's root so it may handle the portal."""
    return FileResponse(
        SERVICE_WORKER, media_type="text/javascript", headers={"Cache-Control": "no-cache"}
    )
