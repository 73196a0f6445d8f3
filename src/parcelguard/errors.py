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


def one_line(exc: BaseException) -> str:
    """An exception's message on one line; for YAML errors, the problem and its position."""
    problem = getattr(exc, "problem", None)
    mark = getattr(exc, "problem_mark", None)
    if problem and mark is not None:
        return f"{problem} at line {mark.line + 1}, column {mark.column + 1}"
    return " ".join(str(exc).split())
