"""Canonical tables: each schema is defined once here, as a pyarrow schema with field descriptions.

DuckDB DDL, polars dtypes and the appendix data dictionary are derived from these definitions.
Timestamps are microseconds marked UTC, so every engine (DuckDB, polars, Spark, Trino) reads them alike.
"""

from __future__ import annotations

import pyarrow as pa

TS = pa.timestamp("us", tz="UTC")


def _f(name: str, type_: pa.DataType, doc: str, nullable: bool = True) -> pa.Field:
    return pa.field(name, type_, nullable=nullable, metadata={"description": doc})


_PROVENANCE = [
    _f("source_file", pa.string(), "Input file the row came from (path as given to ingest)", False),
    _f("line_no", pa.int64(), "1-based line number in the (decompressed, unwrapped) input", False),
]

REQUESTS = pa.schema(
    [
        _f("ts", TS, "Request completion time, UTC", False),
        _f("layer", pa.string(), "Layer that logged it: registry, nginx, haproxy, gitlab-registry, zot, harbor", False),
        _f("instance", pa.string(), "Host, pod or file-derived instance name"),
        _f("request_id", pa.string(), "Request id (registry http.request.id, nginx $request_id, …)"),
        _f("method", pa.string(), "HTTP method"),
        _f("path", pa.string(), "Request path (query string removed)"),
        _f("repository", pa.string(), "Repository name parsed from the /v2/ path"),
        _f("route", pa.string(), "manifest, blob, blob_upload, tags, catalog, referrers, base, other"),
        _f("reference", pa.string(), "Tag or digest from the path"),
        _f("status", pa.int32(), "HTTP status code (0 when the client went away before a status)"),
        _f("duration_s", pa.float64(), "Total request time in seconds"),
        _f("bytes_out", pa.int64(), "Response body bytes sent"),
        _f("bytes_in", pa.int64(), "Request body bytes received"),
        _f("remote_ip", pa.string(), "Client address without the port"),
        _f("user_agent", pa.string(), "User-Agent header"),
        _f("client", pa.string(), "Client family from the User-Agent: docker, containerd, podman, skopeo, …"),
        _f("client_version", pa.string(), "Client version from the User-Agent"),
        _f("error_code", pa.string(), "Registry error code, normalised to upper snake case (BLOB_UNKNOWN)"),
        _f("error_message", pa.string(), "Error message as logged"),
        _f("error_detail", pa.string(), "Error detail as logged"),
        _f("storage_duration_s", pa.float64(), "Time spent in the storage backend, seconds, where logged"),
        _f("upstream_duration_s", pa.float64(), "Proxy's upstream response time, seconds, where logged"),
        _f("upstream_status", pa.string(), "Proxy's upstream status as logged (may list several)"),
        *_PROVENANCE,
    ]
)

LOG_EVENTS = pa.schema(
    [
        _f("ts", TS, "Event time, UTC", False),
        _f("layer", pa.string(), "Program that logged it", False),
        _f("instance", pa.string(), "Host, pod or file-derived instance name"),
        _f("level", pa.string(), "Log level, lower case (debug, info, warning, error, fatal, panic)"),
        _f("message", pa.string(), "The log message"),
        _f("kind", pa.string(), "Classification: storage_error, db_error, panic, gc, auth, startup, request_start, request_error (a further error of a logged request), other"),
        _f("error_code", pa.string(), "Error code where logged"),
        _f("error_detail", pa.string(), "Error text or detail"),
        _f("request_id", pa.string(), "Request id where logged"),
        _f("repository", pa.string(), "Repository where logged"),
        _f("fields", pa.string(), "All other fields of the line as a JSON object"),
        *_PROVENANCE,
    ]
)

METRIC_SAMPLES = pa.schema(
    [
        _f("ts", TS, "Sample time, UTC", False),
        _f("metric", pa.string(), "Metric name as exposed (with _bucket/_sum/_count suffixes)", False),
        _f("labels", pa.map_(pa.string(), pa.string()), "All labels of the series except le"),
        _f("value", pa.float64(), "Sample value"),
        _f("le", pa.float64(), "Histogram bucket upper bound (le label), +Inf as infinity"),
        _f("instance", pa.string(), "instance label or source-derived instance"),
        _f("job", pa.string(), "job label or source-derived job"),
        _f("time_basis", pa.string(), "Where the time came from: sample, filename, at, file_mtime, capture"),
        *_PROVENANCE,
    ]
)

DB_LOCK_WAITS = pa.schema(
    [
        _f("ts", TS, "Log record time, UTC", False),
        _f("event", pa.string(), "waiting, acquired, deadlock (the victim), deadlock_peer (another process of the same deadlock report), lock_timeout, statement_timeout, slow_statement, connection_error, error", False),
        _f("pid", pa.int64(), "Backend pid that logged it"),
        _f("lock_mode", pa.string(), "Lock mode (AccessExclusiveLock, ShareLock, …)"),
        _f("lock_type", pa.string(), "relation, transaction, tuple, advisory, virtual transaction, …"),
        _f("lock_object", pa.string(), "The locked object as logged (relation 16385 of database 5, tuple (0,1) …)"),
        _f("relation", pa.string(), "Relation name or oid where known"),
        _f("wait_ms", pa.float64(), "Wait so far (still waiting) or total wait (acquired), or statement duration, ms"),
        _f("holders", pa.list_(pa.int64()), "Pids holding the lock"),
        _f("waiters", pa.list_(pa.int64()), "Pids in the wait queue"),
        _f("statement", pa.string(), "Statement text"),
        _f("fingerprint", pa.string(), "Statement fingerprint (normalised, constants removed)"),
        _f("user_name", pa.string(), "Database user"),
        _f("database", pa.string(), "Database name"),
        _f("application", pa.string(), "application_name"),
        _f("sqlstate", pa.string(), "SQLSTATE error code"),
        _f("message", pa.string(), "Whole primary message"),
        _f("detail", pa.string(), "DETAIL / CONTEXT / HINT text"),
        *_PROVENANCE,
    ]
)

DB_LOCK_SNAPSHOTS = pa.schema(
    [
        _f("ts", TS, "Snapshot time, UTC", False),
        _f("pid", pa.int64(), "Backend pid", False),
        _f("locktype", pa.string(), "pg_locks.locktype"),
        _f("mode", pa.string(), "pg_locks.mode"),
        _f("granted", pa.bool_(), "pg_locks.granted"),
        _f("relation", pa.string(), "Relation name or oid"),
        _f("blocking_pids", pa.list_(pa.int64()), "pg_blocking_pids(pid)"),
        _f("state", pa.string(), "pg_stat_activity.state"),
        _f("wait_event_type", pa.string(), "pg_stat_activity.wait_event_type"),
        _f("wait_event", pa.string(), "pg_stat_activity.wait_event"),
        _f("query", pa.string(), "pg_stat_activity.query"),
        _f("xact_start", TS, "Transaction start, UTC"),
        _f("query_start", TS, "Query start, UTC"),
        _f("xact_age_s", pa.float64(), "Transaction age at the snapshot, seconds"),
        _f("application", pa.string(), "application_name"),
        _f("user_name", pa.string(), "usename"),
        *_PROVENANCE,
    ]
)

EVENTS = pa.schema(
    [
        _f("ts", TS, "Start (or instant) of the event, UTC", False),
        _f("end_ts", TS, "End of the event for intervals, UTC"),
        _f("kind", pa.string(), "gc_run, oom_kill, restart, deploy, throttle, image_pull, image_pull_error, k8s_event, disk_saturation, …", False),
        _f("source", pa.string(), "Program or capture that reported it"),
        _f("instance", pa.string(), "Host, pod or process"),
        _f("subject", pa.string(), "What it is about: process, image, repository, device"),
        _f("value", pa.float64(), "Main number: blobs deleted, anon-rss kB, pull seconds, …"),
        _f("marked", pa.int64(), "GC: blobs marked"),
        _f("deleted", pa.int64(), "GC: blobs (and manifests) deleted or eligible"),
        _f("detail", pa.string(), "Free text or JSON with the rest"),
        _f("time_basis", pa.string(), "Where the time came from: log, file_mtime, at"),
        *_PROVENANCE,
    ]
)

REJECTS = pa.schema(
    [
        _f("source_file", pa.string(), "Input file", False),
        _f("line_no", pa.int64(), "1-based line number", False),
        _f("format", pa.string(), "Format the line was parsed as"),
        _f("reason", pa.string(), "Why it did not become a row", False),
        _f("raw", pa.string(), "The line (first 64 KiB; longer lines say how long they were)"),
    ]
)

TABLES: dict[str, pa.Schema] = {
    "requests": REQUESTS,
    "log_events": LOG_EVENTS,
    "metric_samples": METRIC_SAMPLES,
    "db_lock_waits": DB_LOCK_WAITS,
    "db_lock_snapshots": DB_LOCK_SNAPSHOTS,
    "events": EVENTS,
    "rejects": REJECTS,
}

#: Tables partitioned by date=YYYY-MM-DD of their ts column. rejects has no time and is not partitioned.
PARTITIONED = tuple(name for name, schema in TABLES.items() if "ts" in schema.names)

_DUCK_TYPES = {
    pa.string(): "VARCHAR",
    pa.int64(): "BIGINT",
    pa.int32(): "INTEGER",
    pa.float64(): "DOUBLE",
    pa.bool_(): "BOOLEAN",
    TS: "TIMESTAMPTZ",
}


def duckdb_type(t: pa.DataType) -> str:
    """DuckDB type name for an arrow type used in the canonical schemas."""
    if t in _DUCK_TYPES:
        return _DUCK_TYPES[t]
    if pa.types.is_list(t):
        return duckdb_type(t.value_type) + "[]"
    if pa.types.is_map(t):
        return f"MAP({duckdb_type(t.key_type)}, {duckdb_type(t.item_type)})"
    raise TypeError(f"no DuckDB type for {t}")


def duckdb_columns(table: str) -> str:
    """`name TYPE, …` for a table, for CREATE TABLE or read_parquet(columns=…)."""
    return ", ".join(f'"{f.name}" {duckdb_type(f.type)}' for f in TABLES[table])


def select_list(table: str) -> str:
    """A SELECT list that casts a relation's columns to the canonical types, in order."""
    return ", ".join(f'CAST("{f.name}" AS {duckdb_type(f.type)}) AS "{f.name}"' for f in TABLES[table])


def polars_schema(table: str) -> dict:
    """polars dtypes for a table (derived from the arrow schema)."""
    import polars as pl

    empty = pl.from_arrow(TABLES[table].empty_table())
    assert isinstance(empty, pl.DataFrame)
    return dict(empty.schema)


def data_dictionary() -> list[dict[str, str]]:
    """One row per column of every table: table, column, type, nullable, description."""
    rows = []
    for name, schema in TABLES.items():
        for f in schema:
            rows.append(
                {
                    "table": name,
                    "column": f.name,
                    "type": duckdb_type(f.type),
                    "nullable": "yes" if f.nullable else "no",
                    "description": (f.metadata or {}).get(b"description", b"").decode(),
                }
            )
    return rows


def conform(table: str, data: pa.Table) -> pa.Table:
    """Enforce the canonical schema: same columns, same order, same types. A mismatch is a bug."""
    schema = TABLES[table]
    missing = [n for n in schema.names if n not in data.column_names]
    extra = [n for n in data.column_names if n not in schema.names]
    if missing or extra:
        raise TypeError(f"{table}: columns missing {missing}, unexpected {extra}")
    data = data.select(schema.names)
    return data.cast(schema)
