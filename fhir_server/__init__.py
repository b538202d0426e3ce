"""FHIR R4 clinic booking server."""

__version__ = "0.1.0"
