"""SMART App Launch 2 authorization server, accounts and the access policy."""
