"""Analysis engines: an ibis backend with one table per canonical table over a case's committed Parquet.

Every analysis in `workbench.analysis` takes what `connect` returns, so the same expressions run on DuckDB
here and on a distributed engine over the same Parquet. Each backend's session is pinned to UTC, because
hour-of-day and date truncation follow the session zone on every engine.
"""

from __future__ import annotations

import os

import ibis

from . import schema
from .case import Case, view_sql
from .errors import WorkbenchError

ENGINES = ("duckdb",)


def connect(case: Case | str | os.PathLike, engine: str = "duckdb") -> ibis.BaseBackend:
    """An ibis backend (session in UTC) with a table per canonical table over the case's committed files.

    Partitioned tables keep the Hive `date` column (a DATE), so a `date` filter beside a `ts` range skips
    partitions. Tables with no committed file are there, typed and empty.
    """
    case = case if isinstance(case, Case) else Case(case)
    if not case.exists():
        raise WorkbenchError(f"{case.path}: no case here; create one with `workbench ingest {case.path} FILES…`")
    if engine not in ENGINES:
        raise WorkbenchError(f"engine {engine!r} is not available; choose one of {', '.join(ENGINES)}")
    con = ibis.duckdb.connect()
    con.raw_sql("SET TimeZone='UTC'")
    files = case.committed_files()
    for table in schema.TABLES:
        con.raw_sql(f'CREATE OR REPLACE VIEW "{table}" AS {view_sql(case.path, table, files.get(table, []))}')
    return con
