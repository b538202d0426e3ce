"""The scheduling engine: availability, holidays, slot generation and booking.

Domain code over FHIR dicts and the store; no web framework here, so the
FHIR API, the CLI and the worker all call the same functions. The booking
rules are pure (`rules`); the engine (`booking`) applies them in one unit of
work and reports what happened as domain events (`events`), which other
packages subscribe to: scheduling imports none of them.
"""
