"""The console: a web UI over the public /v1 API (see app.py)."""
