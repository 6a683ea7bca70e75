"""Registration: the command side. Validates, resolves the account key, stamps, appends.

Importing the package registers the reference-data event types (`shared.events.reference`)
in the catalogue, so this service can decode the reference topic it writes.
"""

import shared.events.reference  # noqa: F401
