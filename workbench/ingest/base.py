"""The shape every loader shares: a Format sniffs a file's first lines and parses blocks of numbered lines.

A block is an Arrow table with `line_no` (int64), `text` (string) and the wrapper's columns `wrap_ts`
(timestamp, UTC, may be null), `wrap_host` and `wrap_program` (may be null). `parse` returns rows per canonical
table, rejects (line_no, reason, text), counted skips, the number of lines that became (part of) rows, and
how many lines at the end of the block it holds back for the next block (multi-line records). The pipeline
checks that these add up for every block: a loader cannot lose a line silently.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import ClassVar

import duckdb
import pyarrow as pa

REJECT_COLUMNS = pa.schema([("line_no", pa.int64()), ("reason", pa.string()), ("text", pa.string())])


@dataclass
class Context:
    """What a parser knows about the file it reads."""

    con: duckdb.DuckDBPyConnection
    source_file: str
    tz: str = "UTC"
    instance: str | None = None
    at: dt.datetime | None = None
    file_mtime: dt.datetime | None = None
    options: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def note(self, text: str) -> None:
        """Something the summary should say about this file (time basis, zone assumed, …), once."""
        if text not in self.notes:
            self.notes.append(text)


@dataclass
class ParseResult:
    tables: dict[str, pa.Table] = field(default_factory=dict)
    rejects: pa.Table | None = None
    skipped: dict[str, int] = field(default_factory=dict)
    used_lines: int = 0
    held_back: int = 0

    @property
    def n_rejects(self) -> int:
        return 0 if self.rejects is None else self.rejects.num_rows


class Format:
    """Base class of every input format. Subclasses set the class attributes and implement sniff and parse."""

    name: ClassVar[str]
    family: ClassVar[str]  # module-level grouping: registry, proxy, metrics, postgres, gc, host, kernel
    tables: ClassVar[tuple[str, ...]]
    description: ClassVar[str]
    example: ClassVar[str]
    #: formats whose records span lines and that cannot be cut at arbitrary block boundaries hold back
    #: the unfinished tail; whole-file formats hold back everything until the final block.

    def sniff(self, lines: list[str]) -> float:
        """Fraction (0..1) of these first non-blank lines that look like this format."""
        raise NotImplementedError

    def parse(self, ctx: Context, block: pa.Table, final: bool) -> ParseResult:
        raise NotImplementedError


def rejects_from(con: duckdb.DuckDBPyConnection, sql: str, params: list | None = None) -> pa.Table:
    """Run a query returning (line_no, reason, text) and give it the reject shape."""
    return con.sql(sql, params=params or None).to_arrow_table().cast(REJECT_COLUMNS)


def empty_rejects() -> pa.Table:
    return REJECT_COLUMNS.empty_table()


class Empty(Format):
    """A file with no non-blank lines: every line is a counted skip."""

    name = "empty"
    family = "any"
    tables = ()
    description = "A file with nothing but blank lines (chosen automatically)"
    example = ""

    def sniff(self, lines: list[str]) -> float:
        return 0.0

    def parse(self, ctx: Context, block: pa.Table, final: bool) -> ParseResult:
        return ParseResult(rejects=empty_rejects(), skipped={"blank": block.num_rows} if block.num_rows else {})


def classified_result(con: duckdb.DuckDBPyConnection, relation: str, reasons: dict[str, str],
                      tables: dict[str, pa.Table]) -> ParseResult:
    """The result of a parse that classified each line of `relation` in a `cls` column: lines whose class is
    a key of `reasons` are rejects with that reason, class `blank` is a counted skip, and every row of
    `tables` used one line."""
    case = " ".join(f"WHEN '{k}' THEN '{v.replace(chr(39), chr(39) * 2)}'" for k, v in reasons.items())
    keys = ", ".join(f"'{k}'" for k in reasons)
    rejects = rejects_from(
        con, f"SELECT line_no, CASE cls {case} END AS reason, text FROM {relation} WHERE cls IN ({keys}) ORDER BY line_no"
    )
    blank = con.execute(f"SELECT count(*) FROM {relation} WHERE cls = 'blank'").fetchall()[0][0]
    return ParseResult(
        tables=tables,
        rejects=rejects if rejects.num_rows else empty_rejects(),
        skipped={"blank": blank} if blank else {},
        used_lines=sum(t.num_rows for t in tables.values()),
    )
