"""Registers heatcheck's pytest plugin (options, settings, report) and the audit fixtures."""

pytest_plugins = ("heatcheck.plugin", "fixtures.audit_fixtures")
