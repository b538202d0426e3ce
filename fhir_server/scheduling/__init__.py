"""The scheduling engine: availability, holidays, slot generation and booking.

Pure domain code over FHIR dicts and the store; no web framework here, so the
FHIR API, the CLI and (later) the UI all call the same functions.
"""
