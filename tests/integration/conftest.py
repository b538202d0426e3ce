"""Fixtures shared by the integration tests (real store, Redis, Celery worker, SMTP)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from fhir_server.settings import Settings
from tests.integration.notify_support import Running, start_all, stop_all


@pytest.fixture(scope="module")
def env(settings_factory: Callable[..., Settings]) -> Iterator[Running]:
    """The notification rig for one module: Redis, SMTP and HTTP stand-ins, a real worker.

    A module that needs other surroundings under this name defines its own `env`.
    """
    running = start_all(settings_factory)
    yield running
    stop_all(running)
