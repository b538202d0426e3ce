"""Browser tests of the web UI, marked `e2e` (filled by the UI issues)."""
