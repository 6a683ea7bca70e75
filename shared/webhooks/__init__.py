"""Webhooks: the URL policy shared by the API that stores URLs and the sender."""
