"""`python -m dealreg` runs the CLI."""

from dealreg.cli import app

app()
