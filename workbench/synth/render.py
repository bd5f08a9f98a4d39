"""Vectorised text building: Go durations and times, logrus quoting, and a time-ordered streaming file sink.

Every builder takes polars expressions over a chunk's columns and returns an expression, so a chunk of
hundreds of thousands of lines is formatted inside polars, never line by line in Python.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import polars as pl

_SAFE = re.compile(r"^[A-Za-z0-9\-._/@^+]+$")  # logrus text: values of only these characters go unquoted
_SAFE_RX = r"^[A-Za-z0-9\-._/@^+]+$"


def go_quote(s: str) -> str:
    """Go's strconv.Quote for the strings the registry logs (printable Unicode kept as is)."""
    out = ['"']
    for ch in s:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def logrus_value(s: str) -> str:
    """A value as logrus' TextFormatter writes it: bare when safe, else Go-quoted."""
    return s if s and _SAFE.match(s) else go_quote(s)


def json_str(s: str) -> str:
    """A JSON string as Go's encoding/json writes it (HTML characters escaped, non-ASCII kept)."""
    return json.dumps(s, ensure_ascii=False).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def nginx_escape(s: str) -> str:
    """nginx access-log escaping of a header value: `"`, `\\` and non-printables as \\xHH."""
    return "".join(f"\\x{ord(c):02X}" if c in '"\\' or ord(c) < 0x20 or ord(c) >= 0x7F else c for c in s)


def text_quoted(expr: pl.Expr) -> pl.Expr:
    """logrus text quoting for per-row values that never hold `"`, `\\` or control characters."""
    return pl.when(expr.str.contains(_SAFE_RX)).then(expr).otherwise(pl.concat_str([pl.lit('"'), expr, pl.lit('"')]))


def _frac(expr: pl.Expr, width: int) -> pl.Expr:
    """'.ddd' with trailing zeros removed (empty when the fraction is zero), from an integer < 10**width."""
    digits = expr.cast(pl.String).str.zfill(width).str.strip_chars_end("0")
    return pl.when(digits == "").then(pl.lit("")).otherwise(pl.concat_str([pl.lit("."), digits]))


def go_duration(ns: pl.Expr) -> pl.Expr:
    """Go's time.Duration.String() of an Int64 nanosecond column: 850µs, 1.168018ms, 1m51.900179248s."""
    s_total = ns // 1_000_000_000
    h, m, s = s_total // 3600, (s_total % 3600) // 60, s_total % 60
    hours = pl.when(h > 0).then(pl.concat_str([h.cast(pl.String), pl.lit("h")])).otherwise(pl.lit(""))
    mins = pl.when(s_total >= 60).then(pl.concat_str([m.cast(pl.String), pl.lit("m")])).otherwise(pl.lit(""))
    long = pl.concat_str([hours, mins, s.cast(pl.String), _frac(ns % 1_000_000_000, 9), pl.lit("s")])
    return (
        pl.when(ns == 0).then(pl.lit("0s"))
        .when(ns < 1_000).then(pl.concat_str([ns.cast(pl.String), pl.lit("ns")]))
        .when(ns < 1_000_000).then(pl.concat_str([(ns // 1_000).cast(pl.String), _frac(ns % 1_000, 3), pl.lit("µs")]))
        .when(ns < 1_000_000_000).then(
            pl.concat_str([(ns // 1_000_000).cast(pl.String), _frac(ns % 1_000_000, 6), pl.lit("ms")]))
        .otherwise(long)
    )


def rfc3339nano(ns: pl.Expr) -> pl.Expr:
    """Go's RFC3339Nano in UTC (logrus' default time stamp): 2026-11-23T06:00:01.25328957Z."""
    t = ns.cast(pl.Datetime("ns", "UTC"))
    return pl.concat_str([t.dt.strftime("%Y-%m-%dT%H:%M:%S"), _frac(ns % 1_000_000_000, 9), pl.lit("Z")])


def clf_time(ns: pl.Expr) -> pl.Expr:
    """nginx $time_local for a server in UTC: 23/Nov/2026:06:00:01 +0000."""
    return ns.cast(pl.Datetime("ns", "UTC")).dt.strftime("%d/%b/%Y:%H:%M:%S +0000")


def seconds_3(ms: pl.Expr) -> pl.Expr:
    """nginx's $request_time style: integer milliseconds as 0.123."""
    return pl.concat_str([(ms // 1000).cast(pl.String), pl.lit("."), (ms % 1000).cast(pl.String).str.zfill(3)])


def pick(catalogue: list[str], idx: pl.Expr) -> pl.Expr:
    """catalogue[idx] for an integer column (taken modulo its length: branches of a when() see every row)."""
    return pl.lit(pl.Series(catalogue, dtype=pl.String)).gather(idx % len(catalogue))


def hex_strings(rng: np.random.Generator, n: int, groups: tuple[int, ...] = (8, 4, 4, 4, 12)) -> pl.Series:
    """n random lowercase-hex identifiers (UUID v4 shape by default), built as one byte array."""
    hexd = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
    width = sum(groups) + len(groups) - 1
    buf = np.empty((n, width), dtype=np.uint8)
    nib = hexd[rng.integers(0, 16, size=(n, sum(groups)), dtype=np.uint8)]
    pos = 0
    src = 0
    for i, g in enumerate(groups):
        buf[:, pos:pos + g] = nib[:, src:src + g]
        pos += g
        src += g
        if i < len(groups) - 1:
            buf[:, pos] = ord("-")
            pos += 1
    if groups == (8, 4, 4, 4, 12):
        buf[:, 14] = ord("4")
        buf[:, 19] = np.frombuffer(b"89ab", dtype=np.uint8)[rng.integers(0, 4, n)]
    return pl.Series(buf.view(f"S{width}").ravel()).cast(pl.String)


class SortedSink:
    """A file written in time order from chunks whose lines may complete after the chunk's end.

    `push(t_ns, lines, boundary)`: lines with a time before `boundary` (no later chunk can hold anything earlier)
    are written now, sorted; the rest wait for the next push. `close()` writes what is left."""

    def __init__(self, path: Path):
        self.path = path
        self._fh = open(path, "wb")
        self._carry = pl.DataFrame({"t": pl.Series([], dtype=pl.Int64), "line": pl.Series([], dtype=pl.String)})
        self.lines = 0

    def push(self, t_ns: np.ndarray | pl.Series, lines: pl.Series, boundary: int | None) -> None:
        new = pl.DataFrame({"t": pl.Series(t_ns, dtype=pl.Int64), "line": lines.cast(pl.String)})
        df = pl.concat([self._carry, new]) if self._carry.height else new
        if boundary is None:
            now, self._carry = df, self._carry.clear()
        else:
            early = df["t"] < boundary
            now, self._carry = df.filter(early), df.filter(~early)
        if now.height:
            now = now.sort("t", maintain_order=True)
            self._fh.write(now["line"].str.join("\n").cast(pl.Binary).item())
            self._fh.write(b"\n")
            self.lines += now.height

    def close(self) -> None:
        self.push(np.zeros(0, dtype=np.int64), pl.Series([], dtype=pl.String), None)
        self._fh.close()
