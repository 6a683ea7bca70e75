"""Projections: fold the log into read models and serve the query API."""
