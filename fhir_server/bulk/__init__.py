"""FHIR Bulk Data Access 2.0 (`$export`): requests, jobs run by the Celery worker, cohorts.

- `request`: a kick-off's parameters checked and read into an `ExportRequest` (pure);
- `jobs`: the stored job document, its manifest and its progress (pure);
- `selection`: which stored rows a job exports, per type, as store filters;
- `runner`: one slice of a job's work, checkpointed, resumable after a crash;
- `queue` and `tasks`: publishing work, and the Celery tasks that run slices and resume
  stalled jobs;
- `groups` and `cli`: Groups of a practitioner's or a location's patients
  (`fhir-server export group`).
"""
