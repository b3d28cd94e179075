"""Registers heatcheck's pytest plugin (options, settings, report) and the audit fixtures."""

pytest_plugins = ("heatcheck.plugin", "heatcheck.fixtures.audit_fixtures")
