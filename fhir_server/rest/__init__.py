"""The FHIR HTTP edge: requests in, OperationOutcome-or-resource responses out."""
