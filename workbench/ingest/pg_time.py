"""PostgreSQL log times to UTC: `2026-11-28 14:14:40.779 CET`, `… CEST`, `… +02`, `… -0530`, `… UTC`.

PostgreSQL writes `%m`/`%t`, csvlog and jsonlog times in `log_timezone`, with the zone as an abbreviation when the
zone database has one and as a numeric offset otherwise (America/Sao_Paulo gives `-03`). An abbreviation names an
offset, DST included, so it is turned into UTC with the table below. Abbreviations that mean different offsets in
different places (IST, CST, BST, AST) follow `--tz` when it is given; a zone the table does not know is read in
`--tz`, or rejected when no `--tz` was given.
"""

from __future__ import annotations

#: abbreviation -> offset east of UTC, seconds (the usual meaning; see AMBIGUOUS)
ABBREVIATIONS: dict[str, int] = {
    "UTC": 0, "GMT": 0, "UT": 0, "Z": 0, "WET": 0, "WEST": 3600, "BST": 3600, "IST": 19800,
    "CET": 3600, "CEST": 7200, "MET": 3600, "MEST": 7200, "EET": 7200, "EEST": 10800, "MSK": 10800,
    "SAST": 7200, "CAT": 7200, "EAT": 10800, "WAT": 3600, "PKT": 18000, "HKT": 28800, "SGT": 28800,
    "CST": -21600, "CDT": -18000, "EST": -18000, "EDT": -14400, "MST": -25200, "MDT": -21600,
    "PST": -28800, "PDT": -25200, "AKST": -32400, "AKDT": -28800, "HST": -36000, "AST": -14400,
    "ADT": -10800, "NST": -12600, "NDT": -9000, "JST": 32400, "KST": 32400, "AWST": 28800,
    "ACST": 34200, "ACDT": 37800, "AEST": 36000, "AEDT": 39600, "NZST": 43200, "NZDT": 46800,
    "WIB": 25200, "PHT": 28800, "IDT": 10800,
}
AMBIGUOUS = ("IST", "CST", "BST", "AST")


def _map_literal() -> str:
    return "MAP {" + ", ".join(f"'{k}': {v}" for k, v in ABBREVIATIONS.items()) + "}"


def macros(tz: str) -> list[str]:
    """DuckDB macros: pg_ts_utc(text) -> TIMESTAMPTZ or NULL; pg_ts_zone(text) -> the zone as written.

    `tz` is a validated IANA name (the pipeline checks --tz before parsing).
    """
    tzq = tz.replace("'", "''")
    use_tz = "true" if tz != "UTC" else "false"
    return [
        r"""CREATE OR REPLACE MACRO pg_ts_zone(s) AS
            trim(regexp_extract(s, '^\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d(?:\.\d+)?\s*(.*)$', 1))""",
        r"""CREATE OR REPLACE MACRO pg_ts_local(s) AS
            TRY_CAST(regexp_extract(s, '^(\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d(?:\.\d+)?)', 1) AS TIMESTAMP)""",
        rf"""CREATE OR REPLACE MACRO pg_ts_offset(z) AS (
            CASE WHEN regexp_full_match(z, '[+-]\d\d(:?\d\d)?')
                 THEN (CASE WHEN starts_with(z, '-') THEN -1 ELSE 1 END)
                      * (CAST(substr(z, 2, 2) AS INTEGER) * 3600
                         + coalesce(TRY_CAST(nullif(right(replace(z, ':', ''), -3), '') AS INTEGER), 0) * 60)
                 ELSE {_map_literal()}[upper(z)] END)""",
        rf"""CREATE OR REPLACE MACRO pg_ts_utc(s) AS (
            CASE
                WHEN pg_ts_local(s) IS NULL THEN NULL
                WHEN {use_tz} AND (pg_ts_offset(pg_ts_zone(s)) IS NULL OR upper(pg_ts_zone(s)) IN {AMBIGUOUS!r})
                    THEN timezone('{tzq}', pg_ts_local(s))
                WHEN pg_ts_zone(s) = '' THEN timezone('{tzq}', pg_ts_local(s))
                WHEN pg_ts_offset(pg_ts_zone(s)) IS NULL THEN NULL
                ELSE timezone('UTC', pg_ts_local(s) - to_seconds(pg_ts_offset(pg_ts_zone(s))))
            END)""",
    ]
