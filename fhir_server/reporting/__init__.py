"""Reports: appointment metrics kept as rollups and published as FHIR MeasureReports.

- `channel`: the booking channel and cancellation side recorded on an
  Appointment when it is written (pure; called by the REST write hooks).
- `facts`: what one Appointment or Slot version adds to the rollups (pure).
- `suppression`: small-number suppression and rounding of report cells (pure).
- `rollups`: the rollups kept from the history, exactly once, and rebuilt.
- `metrics`: each metric computed from the rollups.
- `measures`: the Measure resources and the MeasureReport of an evaluation.

Imports `store/` and `fhir/` only: no web framework.
"""
