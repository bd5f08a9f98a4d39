"""PostgreSQL log times to UTC: `2026-11-28 14:14:40.779 CET`, `… CEST`, `… +02`, `… -0530`, `… UTC`.

PostgreSQL writes `%m`/`%t`, csvlog and jsonlog times in `log_timezone`, with the zone as an abbreviation when the
zone database has one and as a numeric offset otherwise (America/Sao_Paulo gives `-03`). An abbreviation names an
offset, DST included, so it is turned into UTC with the table below. Abbreviations that mean different offsets in
different places (IST, CST, BST, AST) follow `--tz` when it is given; a zone the table does not know is read in
`--tz`, or rejected when no `--tz` was given.
"""

from __future__ import annotations

import re

import duckdb

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


def zone_offset(zone: str, tz: str) -> int | str | None:
    """Seconds east of UTC for a zone as PostgreSQL wrote it; "tz" to read the time in --tz; None if unknown."""
    z = zone.strip()
    m = re.fullmatch(r"([+-])(\d\d):?(\d\d)?", z)
    if m:
        return (-1 if m[1] == "-" else 1) * (int(m[2]) * 3600 + int(m[3] or 0) * 60)
    up = z.upper()
    if not z or (tz != "UTC" and (up not in ABBREVIATIONS or up in AMBIGUOUS)):
        return "tz"
    return ABBREVIATIONS.get(up)


_LOCAL = "TRY_CAST(split_part({c}, ' ', 1) || ' ' || split_part({c}, ' ', 2) AS TIMESTAMP)"


def ts_sql(con: duckdb.DuckDBPyConnection, table: str, col: str, tz: str) -> str:
    """SQL giving TIMESTAMPTZ (UTC) for `col` of `table`, or NULL when the time or its zone cannot be read.

    The zones in a log are few, so each distinct one is resolved here once and the expression is a CASE over
    them: no per-row lookup.
    """
    zones = [z for (z,) in con.sql(f"SELECT DISTINCT split_part({col}, ' ', 3) FROM {table}").fetchall()
             if z is not None]
    local = _LOCAL.format(c=col)
    tzq = tz.replace("'", "''")
    arms = []
    for z in zones:
        off = zone_offset(z, tz)
        zq = z.replace("'", "''")
        if off == "tz":
            arms.append(f"WHEN '{zq}' THEN timezone('{tzq}', {local})")
        elif off is not None:
            arms.append(f"WHEN '{zq}' THEN timezone('UTC', {local} - to_seconds({off}))")
    if not arms:
        return "NULL::TIMESTAMPTZ"
    return f"(CASE split_part({col}, ' ', 3) {' '.join(arms)} END)"
