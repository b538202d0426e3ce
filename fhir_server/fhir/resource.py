"""The shape every layer passes a FHIR resource around in."""

from __future__ import annotations

from typing import Any, TypeAlias

Resource: TypeAlias = dict[str, Any]
"""A FHIR resource (or element) as parsed JSON: what is stored, validated and served."""
