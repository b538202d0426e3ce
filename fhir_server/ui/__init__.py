"""The server-rendered web UI: a SMART-on-FHIR confidential client of this same server.

It reads and writes only through the FHIR API (in process, over an ASGI
transport) with the signed-in user's own token, and imports nothing from
`store/`, `scheduling/` or `auth/`: it can never see more than that token
allows. `web.create_portal` builds the patient portal mounted at `/portal`.
"""
