"""The patient portal's pages: one module per part, each with a `router`.

Every module of this package that defines `router` is included in the portal
(`web.routers_of`, in name order), so a new part adds its own file and
touches no list.
"""
