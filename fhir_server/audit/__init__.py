"""Security audit trail recorded as FHIR AuditEvent resources."""
