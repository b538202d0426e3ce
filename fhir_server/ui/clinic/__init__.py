"""The clinic workspace's pages (`/clinic`): providers, front desk and admins.

As in the portal, every module of this package that defines `router` is
included (`web.routers_of`, in name order). Pages take `web.requiring(...)`
for the roles that may open them (`Staff`, `Admin` in `clinic.roles`); the
API refuses anything the user's token may not see whatever the page asks.
"""
