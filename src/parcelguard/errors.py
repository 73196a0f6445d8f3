"""Errors that reach the user as one line: what went wrong and what to do."""

from __future__ import annotations


class ParcelguardError(Exception):
    """An error the CLI prints as one line (plus a hint) and exits with code 2."""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message
