"""Kubernetes evidence into `events`: image pulls (with their durations), pull errors and other Kubernetes events.

Texts as the programs write them:
- kubelet (klog, often inside journald/syslog): `I1128 06:29:38.123456    1234 event.go:307] "Event occurred"
  object="default/app-7d9f" … type="Normal" reason="Pulled" message="Successfully pulled image \\"x\\" in 17.972s
  (17.972s including waiting). Image size: 3378654 bytes."`; older kubelets `Successfully pulled image "x" in
  28.7s`; `Failed to pull image "x": …`, `Back-off pulling image "x"`, `Error: ErrImagePull`,
  `Error: ImagePullBackOff`, and `"PullImage from image service failed" err="…" image="x"`.
- containerd (logrus): `msg="Pulled image \\"x\\" with image id \\"sha256:…\\", repo tag …, size \\"3378654\\" in
  1.234s"`, `msg="PullImage \\"x\\" failed" error="…"`.
- `kubectl get events` (table; ages are relative, so `--at` says when it was taken, else the file time) and
  `kubectl get events -o json`.

Kinds: `image_pull` (value = pull seconds; detail has the time including waiting and the size),
`image_pull_error`, `k8s_event` (anything else from an event source). Lines of these logs that are about
something else are counted as skipped.
"""

from __future__ import annotations

import datetime as dt
import json
import re

import pyarrow as pa

from .base import Context, Format, ParseResult
from .rows import Events, fallback_time, logrus_msg, parse_time, whole_lines

_DUR = r"[0-9.]+(?:h|ms|m|s|us|µs|ns)(?:[0-9.]+(?:h|ms|m|s|us|µs|ns))*"
PULLED = re.compile(rf'Successfully pulled image "(?P<image>[^"]+)" in (?P<d>{_DUR})'
                    rf'(?: \((?P<w>{_DUR}) including waiting\))?(?:\. Image size: (?P<size>\d+) bytes)?')
PULLED_CONTAINERD = re.compile(rf'^Pulled image "(?P<image>[^"]+)" with image id "[^"]*", repo tag "[^"]*", '
                               rf'repo digest "[^"]*"(?:, size "(?P<size>\d+)" in (?P<d>{_DUR}))?')
FAILED = re.compile(r'Failed to pull image "(?P<image>[^"]+)": (?P<err>.*)$')
PULL_FAILED_CONTAINERD = re.compile(r'^PullImage "(?P<image>[^"]+)" failed')
BACKOFF = re.compile(r'Back-off pulling image "(?P<image>[^"]+)"')
ERR_REASON = re.compile(r"Error: (?P<reason>ErrImagePull|ImagePullBackOff|ErrImageNeverPull|InvalidImageName)")
SERVICE_FAILED = re.compile(r'^PullImage from image service failed')
PULLING = re.compile(r'^Pulling image "(?P<image>[^"]+)"')

_KLOG = re.compile(r"^([IWEF])(\d\d)(\d\d) (\d\d:\d\d:\d\d\.\d+)\s+(\d+) ([^\]\s]+)\] (.*)$")
_KV = re.compile(r'([A-Za-z][\w.]*)=("(?:[^"\\]|\\.)*"|\S+)')
_UNIT = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}


def go_seconds(d: str | None) -> float | None:
    """A Go duration (1m2.5s, 17.972s, 850ms) in seconds."""
    if not d:
        return None
    parts = re.findall(r"([0-9.]+)(h|ms|m|s|us|µs|ns)", d)
    try:
        return sum(float(n) * _UNIT[u] for n, u in parts) if parts else None
    except ValueError:
        return None


def _unquote(v: str) -> str:
    if v.startswith('"') and v.endswith('"') and len(v) >= 2:
        try:
            return json.loads(v)
        except ValueError:
            return v[1:-1]
    return v


def classify(msg: str, fields: dict) -> tuple[str, dict] | None:
    """(kind, detail) for an image or event message, or None when it is about something else."""
    m = PULLED.search(msg)
    if m:
        return "image_pull", {"image": m.group("image"), "pull_s": go_seconds(m.group("d")),
                              "including_waiting_s": go_seconds(m.group("w")),
                              "size_bytes": int(m.group("size")) if m.group("size") else None}
    m = PULLED_CONTAINERD.match(msg)
    if m:
        return "image_pull", {"image": m.group("image"), "pull_s": go_seconds(m.group("d")),
                              "size_bytes": int(m.group("size")) if m.group("size") else None}
    m = FAILED.search(msg)
    if m:
        return "image_pull_error", {"image": m.group("image"), "error": m.group("err"), "reason": "Failed"}
    m = PULL_FAILED_CONTAINERD.match(msg)
    if m:
        return "image_pull_error", {"image": m.group("image"), "error": fields.get("error"), "reason": "PullImage"}
    m = BACKOFF.search(msg)
    if m:
        return "image_pull_error", {"image": m.group("image"), "reason": "BackOff"}
    m = ERR_REASON.search(msg)
    if m:
        return "image_pull_error", {"image": fields.get("image"), "reason": m.group("reason")}
    if SERVICE_FAILED.match(msg):
        return "image_pull_error", {"image": fields.get("image"), "error": fields.get("err"),
                                    "reason": "PullImage from image service failed"}
    m = PULLING.match(msg)
    if m:
        return "k8s_event", {"image": m.group("image"), "reason": "Pulling"}
    return None


def _add(ctx: Context, out: Events, no: int, ts: dt.datetime, basis: str, source: str, instance: str | None,
         kind: str, detail: dict) -> None:
    value = detail.get("pull_s") if kind == "image_pull" else detail.get("count")
    out.add(ctx, ts=ts, kind=kind, source=source, line_no=no, time_basis=basis, instance=instance,
            subject=detail.get("image") or detail.get("object"), value=value,
            detail={k: v for k, v in detail.items() if v is not None})


class KubeletLog(Format):
    name = "kubelet-log"
    family = "kubernetes"
    tables = ("events",)
    description = "kubelet log (klog: I1128 06:29:38.123456 1234 file.go:42] …), plain or inside journald/syslog"
    example = ('I1128 06:29:38.123456    1234 event.go:307] "Event occurred" object="default/app-7d9f" '
               'fieldPath="spec.containers{app}" kind="Pod" apiVersion="v1" type="Normal" reason="Pulled" '
               'message="Successfully pulled image \\"registry.local/app:v1\\" in 17.972s (17.972s including waiting)"')

    def sniff(self, lines: list[str]) -> float:
        return sum(1 for ln in lines if _KLOG.match(ln.strip())) / len(lines) if lines else 0.0

    def parse(self, ctx: Context, block: pa.Table, final: bool) -> ParseResult:
        if not final:
            return ParseResult(held_back=block.num_rows)
        out = Events()
        year_from = ctx.at or ctx.file_mtime
        for no, text, wrap_ts, wrap_host in whole_lines(block):
            if not text.strip():
                out.skip("blank")
                continue
            m = _KLOG.match(text.strip())
            if not m:
                out.rejects.append((no, "not a klog line (Lmmdd hh:mm:ss.uuuuuu pid file:line] message)", text))
                continue
            level, mo, day, clock, _pid, _where, body = m.groups()
            if wrap_ts is not None:
                ts, basis = wrap_ts, "log"
            else:
                try:
                    year = year_from.year if year_from else 1970
                    ts = dt.datetime.strptime(f"{year}{mo}{day} {clock[:15]}", "%Y%m%d %H:%M:%S.%f").replace(
                        tzinfo=dt.UTC)
                except ValueError:
                    out.rejects.append((no, "klog time is not a date", text))
                    continue
                basis = "log"
                ctx.note(f"klog times have no year: used {ts.year} (from --at or the file time), read as UTC")
            fields, msg = {}, body
            if body.startswith('"'):  # structured logging: "message" key="value" …
                head = re.match(r'^("(?:[^"\\]|\\.)*")(.*)$', body)
                if head:
                    fields = {k: _unquote(v) for k, v in _KV.findall(head.group(2))}
                    msg = fields.get("message") or _unquote(head.group(1))
            c = classify(msg, fields)
            if c is None:
                if fields.get("reason") and fields.get("object"):  # any other "Event occurred" line
                    c = ("k8s_event", {})
                else:
                    out.skip("kubelet_other")
                    continue
            kind, detail = c
            detail.update(object=fields.get("object") or fields.get("pod"), reason=detail.get("reason") or
                          fields.get("reason"), type=fields.get("type"), level=level, message=msg)
            _add(ctx, out, no, ts, basis, "kubelet", ctx.instance or wrap_host, kind, detail)
            out.used += 1
        return out.result()


class ContainerdLog(Format):
    name = "containerd-log"
    family = "kubernetes"
    tables = ("events",)
    description = "containerd log (logrus text or JSON): image pulls with size and duration, and pull failures"
    example = ('time="2026-11-28T06:29:38.412004795Z" level=info msg="Pulled image \\"registry.local/app:v1\\" with '
               'image id \\"sha256:9c7a…\\", repo tag \\"registry.local/app:v1\\", repo digest '
               '\\"registry.local/app@sha256:4f1c…\\", size \\"3378654\\" in 1.234567s"')

    def sniff(self, lines: list[str]) -> float:
        if not lines or not any("PullImage" in ln or "io.containerd" in ln or "Pulled image" in ln for ln in lines):
            return 0.0
        return sum(1 for ln in lines if logrus_msg(ln)) / len(lines)

    def parse(self, ctx: Context, block: pa.Table, final: bool) -> ParseResult:
        if not final:
            return ParseResult(held_back=block.num_rows)
        out = Events()
        for no, text, wrap_ts, wrap_host in whole_lines(block):
            if not text.strip():
                out.skip("blank")
                continue
            lr = logrus_msg(text)
            if lr is None:
                out.rejects.append((no, "not a logrus line (time=… level=… msg=…)", text))
                continue
            ts = lr[0] or wrap_ts
            if ts is None:
                out.rejects.append((no, "no readable time in the line", text))
                continue
            fields = ({k: _unquote(v) for k, v in _KV.findall(text)} if not text.lstrip().startswith("{")
                      else json.loads(text))
            c = classify(lr[2], {k: str(v) for k, v in fields.items()})
            if c is None:
                out.skip("containerd_other")
                continue
            kind, detail = c
            detail.update(level=lr[1], message=lr[2])
            _add(ctx, out, no, ts, "log", "containerd", ctx.instance or wrap_host, kind, detail)
            out.used += 1
        return out.result()


def _age_s(text: str) -> float | None:
    parts = re.findall(r"(\d+)([dhms])", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        return None
    return sum(int(n) * {"d": 86400, "h": 3600, "m": 60, "s": 1}[u] for n, u in parts)


class KubectlEvents(Format):
    name = "kubectl-events"
    family = "kubernetes"
    tables = ("events",)
    description = "`kubectl get events [-A] [-o wide]` table (relative ages: --at is when it was taken)"
    example = ('2m          Warning   Failed    pod/app-7d9f   Failed to pull image "registry.local/app:v2": '
               'rpc error: code = NotFound desc = failed to pull and unpack image')
    _head = re.compile(r"^(NAMESPACE\s+)?LAST SEEN\s+.*\bREASON\b.*\bMESSAGE\s*$")

    def sniff(self, lines: list[str]) -> float:
        return 1.0 if lines and self._head.match(lines[0]) else 0.0

    def parse(self, ctx: Context, block: pa.Table, final: bool) -> ParseResult:
        if not final:
            return ParseResult(held_back=block.num_rows)
        out = Events()
        taken, basis = fallback_time(ctx)
        cols: list[tuple[str, int]] = []
        for no, text, _ts, _host in whole_lines(block):
            if not text.strip():
                out.skip("blank")
                continue
            if self._head.match(text):
                cols = [(m.group(0).strip(), m.start()) for m in re.finditer(r"\S+(?: \S+)?(?=\s{2,}|\s*$)", text)]
                out.skip("header")
                continue
            if not cols:
                out.rejects.append((no, "a row before the table's header line", text))
                continue
            row = {}
            for i, (name, start) in enumerate(cols):
                end = cols[i + 1][1] if i + 1 < len(cols) else None
                row[name] = text[start:end].strip() if name != "MESSAGE" else text[start:].strip()
            age_txt = row.get("LAST SEEN", "").split(" ")[0]
            age = _age_s(age_txt)
            if age is None or not row.get("REASON"):
                out.rejects.append((no, f"LAST SEEN {age_txt!r} is not an age like 45s, 3m12s or 2d", text))
                continue
            msg = row.get("MESSAGE", "")
            c = classify(msg, {}) or ("k8s_event", {})
            kind, detail = c
            count = re.search(r"\(x(\d+) over", row.get("LAST SEEN", ""))
            detail.update(reason=detail.get("reason") or row.get("REASON"), type=row.get("TYPE"),
                          object=row.get("OBJECT") or row.get("NAME"), namespace=row.get("NAMESPACE"),
                          message=msg, count=int(count.group(1)) if count else (int(row["COUNT"])
                          if row.get("COUNT", "").isdigit() else None), age=row.get("LAST SEEN"))
            _add(ctx, out, no, taken - dt.timedelta(seconds=age), f"{basis}_minus_age", "kubectl", ctx.instance,
                 kind, detail)
            out.used += 1
        return out.result()


class KubectlEventsJSON(Format):
    name = "kubectl-events-json"
    family = "kubernetes"
    tables = ("events",)
    description = "`kubectl get events -o json` (a List of Event objects; events.k8s.io/v1 fields too)"
    example = '{"apiVersion": "v1", "items": [{"kind": "Event", "reason": "Pulled", "message": "Successfully pulled …"}]}'

    def sniff(self, lines: list[str]) -> float:
        text = "\n".join(lines[:60])
        event = '"kind": "Event"' in text or '"kind":"Event"' in text
        return 1.0 if text.lstrip().startswith("{") and event else 0.0

    def parse(self, ctx: Context, block: pa.Table, final: bool) -> ParseResult:
        if not final:
            return ParseResult(held_back=block.num_rows)
        out = Events()
        rows = [(no, t) for no, t, _w, _h in whole_lines(block)]
        content = [(no, t) for no, t in rows if t.strip()]
        out.skip("blank", len(rows) - len(content))
        if not content:
            return out.result()
        try:
            doc = json.loads("\n".join(t for _, t in content))
            items = doc.get("items", [doc]) if isinstance(doc, dict) else None
            if not isinstance(items, list):
                raise ValueError("no items list")
        except (ValueError, AttributeError) as exc:
            out.rejects.extend((no, f"not a kubectl JSON event list: {exc}", t) for no, t in content)
            return out.result()
        first = content[0][0]
        added = 0
        for item in items:
            if not isinstance(item, dict):
                continue
            series = item.get("series") or {}
            when = (item.get("lastTimestamp") or series.get("lastObservedTime") or item.get("eventTime")
                    or item.get("firstTimestamp") or (item.get("metadata") or {}).get("creationTimestamp"))
            ts = parse_time(str(when)) if when else None
            if ts is None:
                ctx.note("some events carry no readable time and were left out")
                continue
            obj = item.get("involvedObject") or item.get("regarding") or {}
            msg = item.get("message") or item.get("note") or ""
            kind, detail = classify(msg, {}) or ("k8s_event", {})
            src = item.get("source") or {}
            detail.update(reason=detail.get("reason") or item.get("reason"), type=item.get("type"),
                          object=f"{obj.get('kind', '')}/{obj.get('name', '')}".lower().strip("/"),
                          namespace=obj.get("namespace"), message=msg,
                          count=item.get("count") or series.get("count"))
            _add(ctx, out, first, ts, "log", "kubernetes", src.get("host") or item.get("reportingInstance")
                 or ctx.instance, kind, detail)
            added += 1
        if added:
            out.used += len(content)
        else:
            out.skip("no_events", len(content))
        return out.result()


FORMATS: list[Format] = [KubeletLog(), ContainerdLog(), KubectlEvents(), KubectlEventsJSON()]
