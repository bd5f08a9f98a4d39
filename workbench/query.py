"""`workbench query`: read-only SQL over a case, printed as a table, CSV or JSON."""

from __future__ import annotations

import json
import os

from .remote import open_case
from .errors import ParameterError, WorkbenchError

FORMATS = ("table", "csv", "json")


def run_query(case: str | os.PathLike, sql: str, format: str = "table") -> str:
    if format not in FORMATS:
        raise ParameterError(f"--format must be one of {', '.join(FORMATS)}, not {format!r}")
    con = open_case(case).connect()
    try:
        import duckdb

        try:
            rel = con.sql(sql)
        except duckdb.Error as exc:
            first = str(exc).splitlines()[0]
            raise WorkbenchError(f"query failed: {first}") from None
        if rel is None:
            return ""
        tbl = rel.to_arrow_table()
    finally:
        con.close()
    if format == "json":
        return json.dumps(tbl.to_pylist(), default=str) + "\n"
    if format == "csv":
        import polars as pl

        return pl.from_arrow(tbl).write_csv()
    import polars as pl

    with pl.Config(tbl_rows=200, tbl_cols=50, fmt_str_lengths=80, tbl_width_chars=200):
        return str(pl.from_arrow(tbl)) + "\n"
