"""The portal's booking pages, served in the clinic workspace to the front desk for a patient.

The same router as the patient's (`ui/portal/booking.py`: service, clinician,
day, time, check your answers; `$hold`, `$book`, a reschedule in one `$book`,
the nearest free times when a time is taken meanwhile), mounted at
`/clinic/book/...` behind `for_patient`: only the front desk and admins, and
only with `patient=<Patient id>` in the flow, which the pages carry from step
to step. The pages then act for that patient (`PortalApi.patient`) with the
desk user's own token, and require a reason on the booking or the change.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from starlette.exceptions import HTTPException as StarletteHTTPException

from fhir_server.ui.clinic import desk_patients as patients
from fhir_server.ui.clinic.desk import DESK
from fhir_server.ui.portal import booking
from fhir_server.ui.web import RoleRefused, SignedIn


async def for_patient(request: Request, page: SignedIn) -> None:
    """Let the booking pages act for the patient the flow names (FastAPI hands the booking
    handler this same page: `signed_in` is solved once per request)."""
    if page.role not in DESK:
        raise RoleRefused
    values = request.query_params if request.method == "GET" else await request.form()
    patient_id = str(values.get("patient") or "")
    if not patients.is_fhir_id(patient_id):
        raise StarletteHTTPException(404)
    page.shown["acting_for"] = patients.label(await patients.patient(page.api, patient_id))
    page.api.patient = patient_id


router = APIRouter()
router.include_router(booking.router, dependencies=[Depends(for_patient)])
