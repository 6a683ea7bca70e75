"""The composition root: wires services to the backend the settings choose, and the CLI."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("dealreg")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0.0.0+unknown"
