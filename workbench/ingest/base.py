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
from typing import TYPE_CHECKING, ClassVar

import duckdb
import pyarrow as pa

if TYPE_CHECKING:
    from .wholefile import WholeRun

INGEST_MEMORY = "256MB"  # DuckDB memory for one file's parse
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

    #: True when `parse_whole` can parse a plain file read whole by DuckDB (see `wholefile`)
    whole_file: ClassVar[bool] = False

    def parse_whole(self, ctx: Context, run: WholeRun) -> dict:
        """Parse the lines of the view `_in` (a whole file) and stage the results through `run`. Returns
        {"rows": {table: n}, "used_lines", "rejects", "blank"}; must give the rows that `parse` gives."""
        raise NotImplementedError


def sql_literal(value: str | None) -> str:
    """A string as an SQL literal (for views, which cannot take parameters)."""
    return "NULL" if value is None else "'" + str(value).replace("'", "''") + "'"


class SqlFormat(Format):
    """A format parsed by SQL alone, one line at a time, holding nothing back.

    The same SQL reads a block of numbered lines (an Arrow table) or a whole file read by DuckDB itself
    (see `wholefile`). `classify` is one SELECT over the lines `_in` (line_no, text, wrap_ts, wrap_host,
    wrap_program) giving, per line, a `cls` ('blank', an output class, or a key of `reasons`: a reject) and
    whatever columns the outputs need; it is materialized as `_cls` (a temp table for a block, a Parquet file
    for a whole file), so each line is parsed once. `relations` are then built in order over `_cls`, and
    `outputs` gives, per canonical table, a SELECT over them with every canonical column.
    """

    reasons: ClassVar[dict[str, str]]
    whole_file = True

    def classify(self, ctx: Context) -> str:
        raise NotImplementedError

    def relations(self, ctx: Context) -> list[tuple[str, str, str]]:
        """(name, SELECT, "view" or "table") over `_cls`, built in order; keep "table" ones small."""
        return []

    def outputs(self, ctx: Context) -> dict[str, str]:
        raise NotImplementedError

    def build(self, ctx: Context) -> None:
        """Create `relations` (once `_cls` exists)."""
        con = ctx.con
        for name, sql, kind in self.relations(ctx):
            drop_relation(con, name)
            con.execute(f"CREATE TEMP {'TABLE' if kind == 'table' else 'VIEW'} {name} AS {sql}")

    def parse_whole(self, ctx: Context, run: WholeRun) -> dict:
        from .wholefile import parse_sql_format

        return parse_sql_format(self, ctx, run)

    def parse(self, ctx: Context, block: pa.Table, final: bool) -> ParseResult:
        from .. import schema

        con = ctx.con
        con.register("_in", block)
        try:
            drop_relation(con, "_cls")
            con.execute(f"CREATE TEMP TABLE _cls AS {self.classify(ctx)}")
            self.build(ctx)
            tables = {t: schema.conform(t, con.sql(f"SELECT * FROM ({sql}) ORDER BY ts, line_no").to_arrow_table())
                      for t, sql in self.outputs(ctx).items()}
            return classified_result(con, "_cls", self.reasons, tables)
        finally:
            con.unregister("_in")


def drop_relation(con: duckdb.DuckDBPyConnection, name: str) -> None:
    """Drop a temp table or view of this name, whichever it is (a file read whole makes views, blocks tables)."""
    for (kind,) in con.execute(
            "SELECT 'VIEW' FROM duckdb_views() WHERE view_name = $n AND temporary "
            "UNION ALL SELECT 'TABLE' FROM duckdb_tables() WHERE table_name = $n AND temporary", {"n": name}).fetchall():
        con.execute(f"DROP {kind} {name}")


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
