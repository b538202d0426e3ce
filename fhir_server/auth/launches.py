"""EHR launch contexts: an opaque `launch` value standing for a chosen patient."""

from __future__ import annotations

import secrets
import time

from fhir_server.settings import Settings
from fhir_server.store.auth_store import AuthStore


class Launches:
    def __init__(self, store: AuthStore, settings: Settings) -> None:
        self.store = store
        self.settings = settings

    async def create(self, patient: str, created_by: str | None) -> str:
        launch = secrets.token_urlsafe(24)
        await self.store.save_launch(
            launch,
            {
                "patient": patient,
                "created_by": created_by,
                "expires_at": int(time.time()) + self.settings.launch_lifetime,
            },
        )
        return launch
