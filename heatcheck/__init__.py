"""heatcheck: audit what an image classifier looks at, as pytest tests."""

__version__ = "0.1.0"
