"""The pure part of the command side: validation rules, account resolution choices, access
rules, request fingerprints and CloudEvents parsing. No I/O, clock or randomness here."""
