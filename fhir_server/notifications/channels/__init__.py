"""Transports: each sends one rendered message or raises `DeliveryError`."""
