"""The audit suite: one module per audit family (shipped as ``heatcheck.suite``: run it from any
folder with ``pytest --pyargs heatcheck.suite`` or ``heatcheck audit``)."""
