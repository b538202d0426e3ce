"""Custom FHIR operations, one module each with its OperationDefinition beside its handler."""
