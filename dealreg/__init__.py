"""The composition root: wires services to the backend the settings choose, and the CLI."""
