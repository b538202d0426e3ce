"""A refusal carries what it withheld for the audit trail, and nothing of it anywhere else."""

from __future__ import annotations

from fhir_server.audit.trail import Withheld, WithheldForbidden
from fhir_server.fhir.errors import operation_outcome

PATIENT = {"resourceType": "Patient", "id": "p1", "name": [{"family": "Withheld-Secret"}]}


def test_what_a_refusal_withheld_is_in_neither_its_text_nor_its_repr_nor_its_outcome() -> None:
    for error in (Withheld("Not known.", withheld=(PATIENT,)), WithheldForbidden("No.")):
        shown = f"{error} {error!r} {operation_outcome(error.issues)}"
        assert "Withheld-Secret" not in shown and "p1" not in shown
    assert Withheld("Not known.", withheld=(PATIENT,)).withheld == (PATIENT,)
