"""What the clinic publishes beyond its FHIR API: open availability and calendar feeds.

- `public`: the flag a clinic puts on a Location or Schedule
  to publish it, and the read scopes of the anonymous caller that sees only that.
- `shape`: a published copy of a Location, Schedule or Slot (SMART Scheduling
  Links: only the listed elements, Slot extensions for the deep link, phone
  and capacity).
- `manifest`: the `$bulk-publish` manifest.
- `calendar`: an owner's appointments as an RFC 5545 calendar feed.

Pure: no I/O. The REST edge fetches through the access gate and calls these.
"""
