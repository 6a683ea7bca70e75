"""Adjudication: applies the rules of engagement to the intake log, exactly once."""
