"""dealreg common package: event catalogue, event log, read-model store, settings, logging."""
