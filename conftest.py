"""heatcheck's plugin (options, settings, the report) and its audit fixtures load through the
package's pytest11 entry point (``pip install -e .``), as they do in any other repository."""
