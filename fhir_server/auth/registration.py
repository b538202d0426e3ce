"""Patient self-registration: a Patient resource and a patient account, together."""

from __future__ import annotations

import re
from typing import Any

from fhir_server.auth.users import (
    AccountError,
    Accounts,
    hash_secret,
    password_problem,
    username_problem,
)
from fhir_server.fhir.errors import FhirError
from fhir_server.fhir.validation import validate_resource
from fhir_server.store.resources import ResourceStore

_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class Registration:
    def __init__(self, accounts: Accounts, resources: ResourceStore) -> None:
        self.accounts = accounts
        self.resources = resources

    async def register_patient(self, form: dict[str, str]) -> str | None:
        """Create the Patient and its account; the new Patient id, or None when the user
        name is taken. The caller answers both the same way, and a taken name costs the
        same password hashing, so registration does not tell which names exist."""
        username, password = form.get("username", "").strip(), form.get("password", "")
        email = form.get("email", "").strip()
        if not (form.get("given") and form.get("family") and email and username):
            raise AccountError("Fill in every field.")
        if not _DATE.match(form.get("birthDate", "")):
            raise AccountError("Give the date of birth as YYYY-MM-DD.")
        # Checked before the Patient is written: a refused registration stores nothing.
        problem = username_problem(username) or password_problem(password, username)
        if problem:
            raise AccountError(problem)
        if await self.accounts.store.user(username) is not None:
            await hash_secret(password, self.accounts.settings)  # the work a new account costs
            return None
        patient: dict[str, Any] = {
            "resourceType": "Patient",
            "name": [{"family": form["family"].strip(), "given": [form["given"].strip()]}],
            "birthDate": form["birthDate"],
            "telecom": [{"system": "email", "value": email}],
        }
        try:
            validate_resource(patient)
        except FhirError:
            raise AccountError("Some of the details are not valid.") from None
        version = await self.resources.create(patient)
        await self.accounts.add(username, password, "patient", f"Patient/{version.id}", email)
        return version.id
