"""heatcheck: audit what an image classifier looks at, as pytest tests."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("heatcheck")
except PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0+unknown"
