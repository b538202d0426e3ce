"""Notifications: appointment events become stored Communications, sent by Celery workers.

The scheduling engine calls `events.record_event` inside its booking unit of
work (the transactional outbox); workers claim, send and settle each message
(`delivery`); beat relays stranded messages and enqueues due reminders.
"""
