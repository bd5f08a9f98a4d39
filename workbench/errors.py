"""One exception family. The CLI turns any WorkbenchError into a one-line message and exit code 2."""

from __future__ import annotations


class WorkbenchError(Exception):
    """Base of every error the workbench reports to a user: says what failed, where, and what to try."""

    exit_code = 2


class InputError(WorkbenchError):
    """An input file cannot be read as asked (unknown format, wrong --format, unreadable file)."""


class BadLine(InputError):
    """A bad input line under --on-bad-line raise."""

    def __init__(self, source_file: str, line_no: int, reason: str):
        self.source_file, self.line_no, self.reason = source_file, line_no, reason
        super().__init__(
            f"{source_file}:{line_no}: {reason} "
            "(rerun with --on-bad-line quarantine to keep going and collect bad lines in rejects)"
        )


class CaseError(WorkbenchError):
    """The case folder is missing, damaged, or busy."""


class CaseBusy(CaseError):
    """Another ingest holds the case."""


class ParameterError(WorkbenchError):
    """A notebook, report or query parameter is unknown or of the wrong type."""


class ReportError(WorkbenchError):
    """A notebook failed while building a report."""
