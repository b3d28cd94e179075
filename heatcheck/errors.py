"""Errors that stop an audit with one line naming the input and what is wrong."""

from __future__ import annotations


class HeatcheckError(Exception):
    """The base of every error heatcheck shows a user: its message is one line naming the file,
    row, setting or shard and what is wrong (catch this to catch them all)."""


class ModelError(HeatcheckError, ValueError):
    """A model that cannot be audited; the message names the file or layer and the problem."""


def one_line(exc: BaseException) -> str:
    """An exception's message on one line: its first two non-empty lines, at most 300 characters."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    text = " ".join(lines[:2]) or type(exc).__name__
    return text if len(text) <= 300 else text[:297] + "..."
