"""What a visit leaves for the EHR and for billing: an Encounter and its ChargeItems.

The booking engine reports each status the clinic records on the day (arrived,
checked-in, fulfilled, noshow) and each correction of one as an
`OutcomeChanged` event (`scheduling.events`); `visits.recorder` turns it into
stored FHIR resources inside the Appointment's own unit of work. EHRs and
billing systems then see them as any stored resource: search, history,
`$export`, and Subscriptions, which are told of every version written
(`notifications.changes`). Scheduling imports nothing from here.
"""
