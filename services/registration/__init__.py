"""Registration: the command side. Validates, resolves the account key, stamps, appends."""
