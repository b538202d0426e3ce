"""Who may open which clinic workspace pages, and the menu each role sees.

A page handler takes `Staff` (any clinic role) or `Admin`, or its own
`requiring(...)`; a patient or an app without a staff role gets the 403 page.
`SECTIONS` is the header menu: a new part adds its entry here.
"""

from __future__ import annotations

from typing import Annotated

from fhir_server.ui.web import Section, SignedInPage, requiring

PRACTITIONER = "practitioner"
FRONTDESK = "frontdesk"
ADMIN = "admin"
STAFF = frozenset({PRACTITIONER, FRONTDESK, ADMIN})

# The reports are for the clinic's office staff and admins (the security work's "staff" is the
# front desk); a practitioner sees their own schedule, not the clinic's figures.
REPORT_READERS = frozenset({FRONTDESK, ADMIN})

Staff = Annotated[SignedInPage, requiring(*STAFF)]
Admin = Annotated[SignedInPage, requiring(ADMIN)]
ReportReader = Annotated[SignedInPage, requiring(*REPORT_READERS)]


def _(message: str) -> str:
    """Marks a section's name for the catalogues; pages translate it when they render."""
    return message


SECTIONS: list[Section] = [
    Section("/", _("Home"), STAFF),
    Section("/schedule", _("Schedule"), STAFF),
    Section("/requests", _("Requests"), STAFF),
    Section("/desk", _("Patients and bookings"), frozenset({FRONTDESK, ADMIN})),
    Section("/desk/day", _("Day lists"), frozenset({FRONTDESK, ADMIN})),
    Section("/availability", _("Availability"), frozenset({PRACTITIONER, ADMIN})),
    Section("/closures", _("Closures and holidays"), frozenset({ADMIN})),
    Section("/admin", _("Administration"), frozenset({ADMIN})),
    Section("/reports/", _("Reports"), REPORT_READERS),
]
