"""Combined (NCSA) access-log lines, shared by the registry's own access log and nginx.

`COMBINED_RE` captures: remote, user, time, request line, status, bytes, referer, user agent, and whatever
follows (nginx adds `$request_time $upstream_response_time` or other fields there).
"""

from __future__ import annotations

import re

# Request lines may be binary junk (a TLS ClientHello sent to a plain-HTTP port): keep them as they are.
COMBINED_RE = (
    r'^(\S+) (\S+) (\S+) \[([^\]]+)\] "((?:[^"\\]|\\.)*)" (\d{3}) (\d+|-) "((?:[^"\\]|\\.)*)" "((?:[^"\\]|\\.)*)"(.*)$'
)
COMBINED_FIELDS = ["remote", "ident", "user", "time", "request", "status", "bytes", "referer", "ua", "rest"]
COMBINED_PY = re.compile(COMBINED_RE)
# "combined" without the trailing referer/user agent (common log format)
COMMON_RE = r'^(\S+) (\S+) (\S+) \[([^\]]+)\] "((?:[^"\\]|\\.)*)" (\d{3}) (\d+|-)(.*)$'


def combined_sql(text_col: str = "text") -> str:
    """SQL expression: a struct of the combined fields (empty strings when the line does not match)."""
    names = ", ".join(f"'{n}'" for n in COMBINED_FIELDS)
    return f"regexp_extract({text_col}, '{COMBINED_RE.replace(chr(39), chr(39) * 2)}', [{names}])"


def clf_time_sql(expr: str) -> str:
    """SQL: [28/Nov/2026:06:29:38 +0000] time -> TIMESTAMPTZ."""
    return f"TRY_STRPTIME({expr}, '%d/%b/%Y:%H:%M:%S %z')"


def request_parts_sql(expr: str) -> tuple[str, str, str]:
    """SQL expressions for method, uri, protocol of a request line like `GET /v2/ HTTP/1.1`."""
    method = f"CASE WHEN regexp_matches({expr}, '^[A-Z]+ \\S+') THEN split_part({expr}, ' ', 1) END"
    uri = f"CASE WHEN regexp_matches({expr}, '^[A-Z]+ \\S+') THEN split_part({expr}, ' ', 2) END"
    proto = f"CASE WHEN regexp_matches({expr}, '^[A-Z]+ \\S+ ') THEN split_part({expr}, ' ', 3) END"
    return method, uri, proto
