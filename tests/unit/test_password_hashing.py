"""The cost of password hashes: RFC 9106's profile by default, a test-only minimum on request."""

from __future__ import annotations

import asyncio

import pytest
from argon2 import extract_parameters, profiles
from pydantic import ValidationError

from fhir_server.auth.users import dummy_hash, hash_secret, verify_secret
from fhir_server.settings import Settings

SECRET = "k" * 48


def test_the_default_cost_is_rfc_9106_low_memory() -> None:
    hashed = asyncio.run(hash_secret("blue-harbour-lantern-42", Settings()))
    params = extract_parameters(hashed)
    wanted = profiles.RFC_9106_LOW_MEMORY
    assert (params.time_cost, params.memory_cost, params.parallelism) == (
        wanted.time_cost,
        wanted.memory_cost,
        wanted.parallelism,
    )
    assert verify_secret(hashed, "blue-harbour-lantern-42")


def test_a_cheap_hash_is_checked_at_its_own_cost() -> None:
    cheap = Settings(password_hashing="cheapest-for-tests")
    hashed = asyncio.run(hash_secret("blue-harbour-lantern-42", cheap))
    assert extract_parameters(hashed).memory_cost == profiles.CHEAPEST.memory_cost
    assert verify_secret(hashed, "blue-harbour-lantern-42")
    assert not verify_secret(hashed, "blue-harbour-lantern-43")
    assert extract_parameters(dummy_hash("cheapest-for-tests")).memory_cost == 8


def test_production_refuses_the_test_only_cost() -> None:
    with pytest.raises(ValidationError, match="cheapest-for-tests"):
        Settings(environment="production", secret_key=SECRET, password_hashing="cheapest-for-tests")
    assert Settings(environment="production", secret_key=SECRET).password_hashing == (
        "rfc9106-low-memory"
    )
