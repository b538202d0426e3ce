"""Persistence: the only package that imports pymongo."""
