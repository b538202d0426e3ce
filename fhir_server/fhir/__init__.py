"""The FHIR model layer: pure functions and data, no I/O beyond reading packaged files."""
