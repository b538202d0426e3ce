"""The request and response values of the REST edge (defined in `fhir.messages`)."""

from fhir_server.fhir.messages import FhirRequest, FhirResponse

__all__ = ["FhirRequest", "FhirResponse"]
