"""Prometheus evidence into `metric_samples`: scrape files (text exposition 0.0.4 and OpenMetrics) and the
HTTP API's JSON answers (`/api/v1/query` and `/api/v1/query_range`: matrix, vector, scalar, string).

Sample lines are read with prometheus-client's own parsers, one line at a time, so every line keeps its number
and a bad sample is a reject with its line number rather than the end of the file.

Scrape time, per sample, first that applies (the file's summary says which were used, and `time_basis` keeps it):
1. the sample's own timestamp (`sample`);
2. the last `# scrape at <ISO time>` comment above it (`capture`): files made by concatenating scrapes, e.g.
   `while sleep 15; do echo "# scrape at $(date -u +%FT%TZ)"; curl -s host:5001/metrics; done >> scrapes.prom`;
3. a time in the file name (`filename`): `metrics-20261128T062938Z.prom`, `…-2026-11-28T06:29:38Z.txt`,
   `…-1764311378.txt` (Unix seconds) or 13-digit Unix milliseconds; a name without a zone is read in --tz;
4. `--at` (`at`); 5. the file's modification time (`file_mtime`).

Scrape files are small; the whole file is read before parsing (held back until the last block).
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa

from .. import schema
from .base import Context, Format, ParseResult
from .rows import reject_table

SAMPLE_RE = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*(\{.*\})?[ \t]+\S+([ \t]+\S+)?([ \t]+#.*)?[ \t]*$|^\{\".*\}[ \t]+\S+")
META_RE = re.compile(r"^#[ \t]+(HELP|TYPE|UNIT)[ \t]")
MARKER_RE = re.compile(r"^#[ \t]*scraped?[ \t]+at[ \t]+(\S+)[ \t]*$", re.IGNORECASE)

_ISO_IN_NAME = re.compile(
    r"(?<!\d)(\d{4})-?(\d\d)-?(\d\d)[T_ -]?(\d\d)[:\-]?(\d\d)[:\-]?(\d\d)(?:[.,](\d{1,9}))?(Z|[+-]\d\d:?\d\d)?"
)
_EPOCH_IN_NAME = re.compile(r"(?<![\d.])(1[5-9]\d{8}|[2-3]\d{9})(\d{3})?(?![\d])")

KINDS = ("sample", "capture", "filename", "at", "file_mtime", "unknown")


def time_from_name(name: str, tz: str = "UTC") -> dt.datetime | None:
    """A scrape time written in a file name: ISO-like (20261128T062938Z, 2026-11-28T06-29-38) or Unix seconds/ms."""
    stem = Path(name).name
    m = _ISO_IN_NAME.search(stem)
    if m:
        y, mo, d, h, mi, s, frac, zone = m.groups()
        try:
            t = dt.datetime(int(y), int(mo), int(d), int(h), int(mi), int(s),
                            int((frac or "0").ljust(6, "0")[:6]))
        except ValueError:
            t = None
        if t is not None:
            if zone and zone != "Z":
                sign = 1 if zone[0] == "+" else -1
                hh, mm = int(zone[1:3]), int(zone[-2:])
                return t.replace(tzinfo=dt.timezone(sign * dt.timedelta(hours=hh, minutes=mm))).astimezone(dt.UTC)
            if zone == "Z":
                return t.replace(tzinfo=dt.UTC)
            import zoneinfo

            return t.replace(tzinfo=zoneinfo.ZoneInfo(tz)).astimezone(dt.UTC)
    m = _EPOCH_IN_NAME.search(stem)
    if m:
        secs = int(m.group(1)) + (int(m.group(2)) / 1000 if m.group(2) else 0)
        return dt.datetime.fromtimestamp(secs, dt.UTC)
    return None


def _iso(text: str) -> dt.datetime | None:
    try:
        t = dt.datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return None
    return t if t.tzinfo else t.replace(tzinfo=dt.UTC)


@dataclass
class _Rows:
    """Columns of metric_samples being built, plus rejects and skips; shared by the scrape and API readers."""

    ts: list = field(default_factory=list)
    metric: list = field(default_factory=list)
    labels: list = field(default_factory=list)
    value: list = field(default_factory=list)
    le: list = field(default_factory=list)
    instance: list = field(default_factory=list)
    job: list = field(default_factory=list)
    basis: list = field(default_factory=list)
    line_no: list = field(default_factory=list)
    rejects: list = field(default_factory=list)
    skipped: dict = field(default_factory=dict)
    used: set = field(default_factory=set)

    def skip(self, kind: str) -> None:
        self.skipped[kind] = self.skipped.get(kind, 0) + 1

    def add(self, ctx: Context, ts: dt.datetime, basis: str, name: str, labels: dict, value, line_no: int) -> str | None:
        """Add one sample; returns a reject reason instead when the sample cannot be stored."""
        labels = dict(labels)
        le = None
        if "le" in labels:
            raw = labels.pop("le")
            try:
                le = float(raw)
            except ValueError:
                return f"le label {raw!r} is not a number"
        try:
            v = None if value is None else float(value)
        except (TypeError, ValueError):
            return f"sample value {value!r} is not a number"
        try:
            ts = ts.astimezone(dt.UTC)
            if not dt.datetime(1970, 1, 1, tzinfo=dt.UTC) <= ts <= dt.datetime(2200, 1, 1, tzinfo=dt.UTC):
                return f"sample time {ts.isoformat()} is out of range"
        except (OverflowError, ValueError, OSError):
            return "sample time is out of range"
        self.ts.append(ts)
        self.metric.append(name)
        self.labels.append(sorted(labels.items()))
        self.value.append(v)
        self.le.append(le)
        self.instance.append(labels.get("instance") or ctx.instance or ctx.options.get("instance"))
        self.job.append(labels.get("job") or ctx.options.get("job"))
        self.basis.append(basis)
        self.line_no.append(line_no)
        self.used.add(line_no)
        return None

    def mark(self) -> int:
        return len(self.ts)

    def rollback(self, mark: int) -> None:
        """Drop the samples added since `mark` (a document that turned out bad becomes rejects instead)."""
        for col in (self.ts, self.metric, self.labels, self.value, self.le, self.instance, self.job, self.basis):
            del col[mark:]
        dropped = set(self.line_no[mark:])
        del self.line_no[mark:]
        self.used -= dropped - set(self.line_no)

    def result(self, ctx: Context) -> ParseResult:
        table = pa.table(
            {
                "ts": pa.array(self.ts, schema.TS),
                "metric": pa.array(self.metric, pa.string()),
                "labels": pa.array(self.labels, pa.map_(pa.string(), pa.string())),
                "value": pa.array(self.value, pa.float64()),
                "le": pa.array(self.le, pa.float64()),
                "instance": pa.array(self.instance, pa.string()),
                "job": pa.array(self.job, pa.string()),
                "time_basis": pa.array(self.basis, pa.string()),
                "source_file": pa.array([ctx.source_file] * len(self.ts), pa.string()),
                "line_no": pa.array(self.line_no, pa.int64()),
            }
        )
        rej = reject_table(self.rejects)
        for kind in KINDS:
            if kind in self.basis:
                ctx.note(_BASIS_NOTE[kind])
        return ParseResult(tables={"metric_samples": schema.conform("metric_samples", table)}, rejects=rej,
                           skipped={k: v for k, v in self.skipped.items() if v}, used_lines=len(self.used))


_BASIS_NOTE = {
    "sample": "scrape time: the samples' own timestamps",
    "capture": "scrape time: the '# scrape at' comments in the file",
    "filename": "scrape time: the time in the file name",
    "at": "scrape time: --at (the file carries no time)",
    "file_mtime": "scrape time: the file's modification time (no time in the samples or the name; pass --at)",
    "unknown": "scrape time: unknown (no time in the samples, the name or the file; pass --at)",
}


def _default_time(ctx: Context) -> tuple[dt.datetime, str]:
    t = time_from_name(ctx.source_file, ctx.tz)
    if t is not None:
        return t, "filename"
    if ctx.at is not None:
        return ctx.at, "at"
    if ctx.file_mtime is None:
        return dt.datetime(1970, 1, 1, tzinfo=dt.UTC), "unknown"
    return ctx.file_mtime, "file_mtime"


def _parse_sample_line(line: str, openmetrics: bool):
    """One sample line through prometheus-client's parser: (name, labels, value, timestamp seconds or None)."""
    if openmetrics:
        from prometheus_client.openmetrics.parser import text_string_to_metric_families

        # Exemplars are allowed on counters and buckets, which a line read on its own cannot know; the
        # exemplar is not stored, so it is cut off before parsing.
        cut = line.find(" # {")
        families = list(text_string_to_metric_families((line[:cut] if cut > 0 else line) + "\n# EOF\n"))
    else:
        from prometheus_client.parser import text_string_to_metric_families

        families = list(text_string_to_metric_families(line + "\n"))
    samples = [s for f in families for s in f.samples]
    if len(samples) != 1:
        raise ValueError(f"{len(samples)} samples in one line")
    s = samples[0]
    ts = s.timestamp
    if ts is not None:
        ts = float(ts) if not hasattr(ts, "sec") else ts.sec + ts.nsec / 1e9
    return s.name, s.labels, s.value, ts


def _check_meta_line(line: str, openmetrics: bool) -> None:
    if openmetrics:
        from prometheus_client.openmetrics.parser import text_string_to_metric_families

        list(text_string_to_metric_families(line + "\n# EOF\n"))
    else:
        from prometheus_client.parser import text_string_to_metric_families

        list(text_string_to_metric_families(line + "\n"))


def _sections(lines: list[str]) -> list[tuple[int, int]]:
    """(start, end) index ranges of the scrapes in a file: a `# scrape at` marker starts a new one."""
    starts = [i for i, ln in enumerate(lines) if MARKER_RE.match(ln.strip())]
    if not starts or starts[0] != 0:
        starts = [0, *starts]
    return [(a, b) for a, b in zip(starts, [*starts[1:], len(lines)], strict=True)]


class _Exposition(Format):
    family = "metrics"
    tables = ("metric_samples",)
    force_openmetrics = False

    def parse(self, ctx: Context, block: pa.Table, final: bool) -> ParseResult:
        if not final:
            return ParseResult(held_back=block.num_rows)
        nos = block.column("line_no").to_pylist()
        texts = [t if t is not None else "" for t in block.column("text").to_pylist()]
        out = _Rows()
        default_ts, default_basis = _default_time(ctx)
        for a, b in _sections(texts):
            sec = [t.strip() for t in texts[a:b]]
            om = self.force_openmetrics or any(t == "# EOF" or t.startswith("# UNIT ") for t in sec)
            scrape_ts, basis = default_ts, default_basis
            for no, line, raw in zip(nos[a:b], sec, texts[a:b], strict=True):
                self._line(ctx, out, no, line, raw, om, scrape_ts, basis)
                m = MARKER_RE.match(line)
                if m and (t := _iso(m.group(1))) is not None:
                    scrape_ts, basis = t, "capture"
        return out.result(ctx)

    def _line(self, ctx: Context, out: _Rows, no: int, line: str, raw: str, om: bool, scrape_ts: dt.datetime,
              basis: str) -> None:
        if not line:
            out.skip("blank")
            return
        m = MARKER_RE.match(line)
        if m:
            if _iso(m.group(1)) is None:
                out.rejects.append((no, f"scrape marker time {m.group(1)!r} is not an ISO time", raw))
            else:
                out.skip("scrape_marker")
            return
        if line == "# EOF":
            out.skip("eof")
            return
        if META_RE.match(line):
            try:
                _check_meta_line(line, om)
            except Exception as exc:  # the parser raises bare ValueError, IndexError and others on bad input
                out.rejects.append((no, f"bad {line.split()[1]} line: {exc or type(exc).__name__}", raw))
                return
            out.skip("metadata")
            return
        if line.startswith("#"):
            out.skip("comment")
            return
        try:
            name, labels, value, ts = _parse_sample_line(line, om)
        except Exception as exc:  # counted: every failure becomes a reject with the parser's reason
            kind = "OpenMetrics" if om else "exposition"
            out.rejects.append((no, f"not a valid {kind} sample: {exc or type(exc).__name__}", raw))
            return
        if ts is not None:
            if not math.isfinite(ts):
                out.rejects.append((no, "sample timestamp is not finite", raw))
                return
            try:
                when, b = dt.datetime.fromtimestamp(ts, dt.UTC), "sample"
            except (OverflowError, ValueError, OSError):
                out.rejects.append((no, f"sample timestamp {ts} is out of range", raw))
                return
        else:
            when, b = scrape_ts, basis
        reason = out.add(ctx, when, b, name, labels, value, no)
        if reason:
            out.rejects.append((no, reason, raw))


def _exposition_score(lines: list[str]) -> float:
    if not lines:
        return 0.0
    ok = sum(1 for ln in lines if META_RE.match(ln.strip()) or MARKER_RE.match(ln.strip()) or ln.strip() == "# EOF"
             or (SAMPLE_RE.match(ln.strip()) and not ln.lstrip().startswith("#")))
    has_meta = any(META_RE.match(ln.strip()) or MARKER_RE.match(ln.strip()) for ln in lines)
    # bare `name value` lines alone are too common in other text to claim a file without a HELP/TYPE line
    return ok / len(lines) if has_meta else 0.5 * ok / len(lines)


class PrometheusText(_Exposition):
    name = "prometheus-text"
    description = ("Prometheus scrape (/metrics), text exposition format; several scrapes per file with "
                   "'# scrape at <ISO time>' lines; OpenMetrics sections (ending '# EOF') are read as such")
    example = 'registry_http_request_duration_seconds_bucket{handler="manifest",method="get",le="0.005"} 16'

    def sniff(self, lines: list[str]) -> float:
        return _exposition_score(lines)


class OpenMetrics(_Exposition):
    name = "openmetrics"
    description = "Prometheus scrape in OpenMetrics text format (application/openmetrics-text, ends with # EOF)"
    example = 'registry_http_requests_total{code="200",method="get"} 21.0 1764311378.412'
    force_openmetrics = True

    def sniff(self, lines: list[str]) -> float:
        if not any(ln.strip() == "# EOF" or ln.startswith("# UNIT ") for ln in lines):
            return 0.0
        return _exposition_score(lines)


class PrometheusAPI(Format):
    """/api/v1/query and /api/v1/query_range answers: one pretty-printed document, or one document per line."""

    name = "prometheus-api-json"
    family = "metrics"
    tables = ("metric_samples",)
    description = "Prometheus HTTP API JSON (/api/v1/query, /api/v1/query_range): matrix, vector, scalar, string"
    example = ('{"status":"success","data":{"resultType":"matrix","result":[{"metric":{"__name__":"up",'
               '"instance":"registry:5001","job":"registry"},"values":[[1764311378,"1"],[1764311393,"0"]]}]}}')

    def sniff(self, lines: list[str]) -> float:
        text = "\n".join(lines)
        if '"resultType"' in text and '"data"' in text and text.lstrip().startswith("{"):
            return 1.0
        return 0.0

    def parse(self, ctx: Context, block: pa.Table, final: bool) -> ParseResult:
        if not final:
            return ParseResult(held_back=block.num_rows)
        nos = block.column("line_no").to_pylist()
        texts = [t if t is not None else "" for t in block.column("text").to_pylist()]
        out = _Rows()
        content = [(no, t) for no, t in zip(nos, texts, strict=True) if t.strip()]
        for _ in range(len(texts) - len(content)):
            out.skip("blank")
        if not content:
            return out.result(ctx)
        whole_error = None
        try:
            doc = json.loads("\n".join(t for _, t in content))
            docs = [(doc, [no for no, _ in content])]
        except ValueError as exc:
            whole_error = str(exc)
            docs = []
            for no, t in content:
                try:
                    docs.append((json.loads(t), [no]))
                except ValueError:
                    reason = ("not a JSON document" if len(content) == 1 else
                              f"not a JSON document on its own, and the file is not one document ({whole_error})")
                    out.rejects.append((no, reason, t))
        for d, line_nos in docs:
            mark = out.mark()
            reason = self._doc(ctx, out, d, line_nos[0])
            if reason:
                out.rollback(mark)
                out.rejects.extend((no, reason, t) for no, t in content if no in set(line_nos))
                continue
            if line_nos[0] not in out.used:  # a valid answer with no samples (empty result): its lines are skipped
                out.skipped["empty_result"] = out.skipped.get("empty_result", 0) + len(line_nos)
            else:
                out.used.update(line_nos)
        return out.result(ctx)

    def _doc(self, ctx: Context, out: _Rows, d, line_no: int) -> str | None:
        """Samples of one API answer; returns a reason when the document is not a usable answer."""
        if not isinstance(d, dict) or not isinstance(d.get("data"), dict):
            if isinstance(d, dict) and d.get("status") == "error":
                return f"the API answered an error: {d.get('errorType')}: {d.get('error')}"
            return "JSON but not a Prometheus API answer (no data object)"
        data = d["data"]
        rtype, result = data.get("resultType"), data.get("result")
        fallback = Path(ctx.source_file).stem
        n_native = 0
        try:
            if rtype in ("scalar", "string"):
                ts, v = result
                labels = {"value": v} if rtype == "string" else {}
                bad = out.add(ctx, dt.datetime.fromtimestamp(float(ts), dt.UTC), "sample", rtype, labels,
                              None if rtype == "string" else v, line_no)
                return bad
            if rtype not in ("matrix", "vector") or not isinstance(result, list):
                return f"unknown resultType {rtype!r}"
            for series in result:
                metric = dict(series.get("metric") or {})
                name = metric.pop("__name__", None) or fallback
                if name == fallback:
                    ctx.note(f"series without __name__ (query results) are named {fallback!r} after the file")
                pairs = series.get("values") if rtype == "matrix" else [series["value"]] if "value" in series else []
                n_native += len(series.get("histograms") or []) + (1 if "histogram" in series else 0)
                for ts, v in pairs or []:
                    bad = out.add(ctx, dt.datetime.fromtimestamp(float(ts), dt.UTC), "sample", name, metric,
                                  v, line_no)
                    if bad:
                        return bad
        except (TypeError, ValueError, KeyError, AttributeError, OverflowError, OSError) as exc:
            return f"malformed {rtype} result: {type(exc).__name__}: {exc}"
        if n_native:
            ctx.note(f"{n_native} native-histogram samples are not loaded (only classic buckets are)")
        return None


FORMATS: list[Format] = [OpenMetrics(), PrometheusText(), PrometheusAPI()]
