"""Garbage collection into `events`: one `gc_run` per run, with its start, end and counts.

- `registry-gc`: the output of distribution's `registry garbage-collect [--dry-run] [--delete-untagged] CONFIG`
  as the program writes it (2.8): a line per repository, `<repo>: marking manifest <digest> `,
  `<repo>: marking blob <digest>`, `manifest eligible for deletion: <digest>`, the summary
  `N blobs marked, M blobs and K manifests eligible for deletion`, `blob eligible for deletion: <digest>`, and in
  a real run logrus lines `msg="Deleting blob: /docker/registry/v2/blobs/…"`, `msg="deleting manifest: …"`,
  `msg="deleting manifest tag reference: …"`. The program prints no times and says nothing of --dry-run: only
  the deletion lines carry a time, and a run that lists eligible blobs but deletes none was a dry run. The
  registry's upload purge lines (`PurgeUploads starting: olderThan=…, actuallyDelete=…` and
  `Purge uploads finished.  Num deleted=N, num errors=M`) become `upload_purge` events.
- `harbor-gc`: a Harbor GC job log (jobservice `/data/job_logs/<id>.log`, or jobservice.log lines):
  `2023-01-21T23:30:19Z [INFO] [/jobservice/job/impl/gc/garbage_collection.go:355]: message`.

Times: from the log lines when they have one (`time_basis` log); otherwise `--at` (at) or the file's
modification time (file_mtime), and the summary says so. GC output is small; it is read whole.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field

import pyarrow as pa

from .base import Context, Format, ParseResult
from .rows import Events, fallback_time, logrus_msg, parse_time, whole_lines

_DIGEST = r"[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+"
_REPO = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*"

GC_LINES = {
    "repo": re.compile(rf"^({_REPO})$"),
    "mark_manifest": re.compile(rf"^({_REPO}): marking manifest ({_DIGEST})\s*$"),
    "mark_blob": re.compile(rf"^({_REPO}): marking blob ({_DIGEST})\s*$"),
    "manifest_eligible": re.compile(rf"^manifest eligible for deletion: ({_DIGEST}|\S+)\s*$"),
    "summary": re.compile(r"^(\d+) blobs marked, (\d+) blobs and (\d+) manifests eligible for deletion\s*$"),
    "blob_eligible": re.compile(rf"^blob eligible for deletion: ({_DIGEST})\s*$"),
    "failed": re.compile(r"^(?:time=\S+ level=\w+ msg=\")?failed to garbage collect: (.*?)\"?\s*$"),
}
# logrus messages of the sweep and of the registry's upload purge, in text or JSON form
SWEEP_MSGS = {
    "delete_blob": re.compile(r"^Deleting blob: (\S+)"),
    "delete_manifest": re.compile(r"^deleting manifest: (\S+)"),
    "delete_tag_ref": re.compile(r"^deleting manifest tag reference: (\S+)"),
    "purge_start": re.compile(r"^PurgeUploads starting: olderThan=(.*?), actuallyDelete=(true|false)"),
    "purge_end": re.compile(r"^Purge uploads finished\.\s+Num deleted=(\d+), num errors=(\d+)"),
    "purge_item": re.compile(r"^Upload files in \S+ have older date"),
}
@dataclass
class _Run:
    first_line: int
    repos: set = field(default_factory=set)
    manifests_marked: int = 0
    blob_marks: int = 0
    summary: tuple[int, int, int] | None = None
    blobs_eligible: int = 0
    manifests_eligible: int = 0
    blobs_deleted: int = 0
    manifests_deleted: int = 0
    tag_refs_deleted: int = 0
    times: list = field(default_factory=list)
    error: str | None = None
    lines: int = 0

    @property
    def sweeping(self) -> bool:
        return self.summary is not None or self.blobs_eligible > 0 or self.blobs_deleted > 0


class RegistryGC(Format):
    name = "registry-gc"
    family = "gc"
    tables = ("events",)
    description = ("distribution `registry garbage-collect` output (dry run or real, --delete-untagged), and the "
                   "registry's upload-purge lines")
    example = "7 blobs marked, 3 blobs and 1 manifests eligible for deletion"

    def sniff(self, lines: list[str]) -> float:
        if not lines:
            return 0.0
        own = sum(1 for ln in lines if any(rx.match(ln.strip()) for k, rx in GC_LINES.items() if k != "repo"))
        sweep = 0
        for ln in lines:
            m = logrus_msg(ln)
            if m and any(rx.match(m[2]) for rx in SWEEP_MSGS.values()):
                sweep += 1
        repo = sum(1 for ln in lines if GC_LINES["repo"].match(ln.strip()))
        if own == 0 and sweep < len(lines):
            return 0.0
        return (own + sweep + repo) / len(lines)

    def parse(self, ctx: Context, block: pa.Table, final: bool) -> ParseResult:
        if not final:
            return ParseResult(held_back=block.num_rows)
        out = Events()
        run: _Run | None = None
        purge: tuple[int, dt.datetime | None, dict] | None = None
        dry_name = bool(re.search(r"dry[-_.]?run", ctx.source_file, re.IGNORECASE))

        def close() -> None:
            nonlocal run
            if run is not None:
                self._emit(ctx, out, run, dry_name)
                out.used += run.lines
                run = None

        for no, text, wrap_ts, _host in whole_lines(block):
            line = text.strip()
            if not line:
                out.skip("blank")
                continue
            kind, m = next(((k, rx.match(line)) for k, rx in GC_LINES.items() if rx.match(line)), (None, None))
            if kind is not None:
                # a repository or marking line after the sweep section starts the next run
                if run is not None and run.sweeping and kind in ("repo", "mark_manifest", "mark_blob"):
                    close()
                if run is None:
                    run = _Run(no)
                run.lines += 1
                if wrap_ts is not None:
                    run.times.append(wrap_ts)
                self._count(run, kind, m)
                continue
            lr = logrus_msg(line)
            sk = None if lr is None else next(((k, rx.match(lr[2])) for k, rx in SWEEP_MSGS.items()
                                               if rx.match(lr[2])), None)
            if lr is None or sk is None:
                out.rejects.append((no, "not a garbage-collect output line" if lr is None else
                                    "a registry log line that is not about garbage collection or upload purge", text))
                continue
            ts = lr[0] or wrap_ts
            k, mm = sk
            if k.startswith("purge"):
                if k == "purge_start":
                    if purge is not None:  # a start without a finish: the earlier purge never reported back
                        self._purge(ctx, out, purge, None, None)
                    purge = (no, ts, {"older_than": mm.group(1), "dry_run": mm.group(2) == "false"})
                    out.used += 1
                elif k == "purge_end":
                    if purge is None:
                        purge = (no, ts, {})
                    out.used += 1
                    purge[2].update(deleted=int(mm.group(1)), errors=int(mm.group(2)))
                    self._purge(ctx, out, purge, ts, no)
                    purge = None
                else:
                    out.used += 1
                    if purge is not None:
                        purge[2]["items"] = purge[2].get("items", 0) + 1
                continue
            if run is None:
                run = _Run(no)
            run.lines += 1
            if ts is not None:
                run.times.append(ts)
            if k == "delete_blob":
                run.blobs_deleted += 1
            elif k == "delete_manifest":
                run.manifests_deleted += 1
            else:
                run.tag_refs_deleted += 1
        close()
        if purge is not None:
            self._purge(ctx, out, purge, None, None)
        return out.result()

    @staticmethod
    def _count(run: _Run, kind: str, m: re.Match) -> None:
        if kind == "repo":
            run.repos.add(m.group(1))
        elif kind == "mark_manifest":
            run.repos.add(m.group(1))
            run.manifests_marked += 1
        elif kind == "mark_blob":
            run.blob_marks += 1
        elif kind == "manifest_eligible":
            run.manifests_eligible += 1
        elif kind == "summary":
            run.summary = (int(m.group(1)), int(m.group(2)), int(m.group(3)))
        elif kind == "blob_eligible":
            run.blobs_eligible += 1
        elif kind == "failed":
            run.error = m.group(1)

    def _emit(self, ctx: Context, out: Events, run: _Run, dry_name: bool) -> None:
        marked, eligible_blobs, eligible_manifests = run.summary or (None, run.blobs_eligible, run.manifests_eligible)
        deleted_any = run.blobs_deleted + run.manifests_deleted > 0
        if deleted_any:
            dry_run, dry_basis = False, "deletion lines present"
        elif dry_name:
            dry_run, dry_basis = True, "file name says dry run"
        elif run.error:
            dry_run, dry_basis = None, "run failed"
        elif (eligible_blobs or 0) > 0:
            dry_run, dry_basis = True, "blobs eligible but no deletion lines"
        else:
            dry_run, dry_basis = None, "nothing was eligible: a dry run and a real run look the same"
        if run.times:
            start, end, basis = min(run.times), max(run.times), "log"
        else:
            start, basis = fallback_time(ctx)
            end = start
        detail = {
            "dry_run": dry_run, "dry_run_basis": dry_basis, "repositories": sorted(run.repos),
            "manifests_marked": run.manifests_marked, "blobs_marked": marked,
            "blobs_eligible": eligible_blobs, "manifests_eligible": eligible_manifests,
            "blobs_eligible_listed": run.blobs_eligible, "blobs_deleted": run.blobs_deleted,
            "manifests_deleted": run.manifests_deleted, "tag_references_deleted": run.tag_refs_deleted,
            "error": run.error,
        }
        if basis == "log":
            detail["time_note"] = "start and end are the first and last timed lines (the sweep); marking is untimed"
        deleted = run.blobs_deleted if dry_run is False else eligible_blobs
        out.add(ctx, ts=start, end_ts=end, kind="gc_run", source="registry garbage-collect", line_no=run.first_line,
                time_basis=basis, subject="registry", value=deleted, marked=marked, deleted=deleted, detail=detail)

    @staticmethod
    def _purge(ctx: Context, out: Events, purge: tuple, end: dt.datetime | None, end_line: int | None) -> None:
        no, ts, detail = purge
        basis = "log"
        if ts is None:
            ts, basis = fallback_time(ctx)
        if end_line is None:
            detail["finished"] = False
        out.add(ctx, ts=ts, end_ts=end, kind="upload_purge", source="registry", line_no=no, time_basis=basis,
                subject="uploads", value=detail.get("deleted"), deleted=detail.get("deleted"), detail=detail)


_HARBOR = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:?\d\d)) \[(\w+)\] \[([^\]]*)\]: (.*)$")
HARBOR_MSGS = {
    "params": re.compile(r"^Garbage Collection parameters: \[delete_untagged: (true|false), dry_run: (true|false)"
                         r"(?:, time_window: (\d+))?"),
    "start": re.compile(r"^start to run gc in job\."),
    "eligible": re.compile(r"^(\d+) blobs and (\d+) manifests eligible for deletion"),
    "deleted": re.compile(r"^(\d+) blobs and (\d+) manifests are actually deleted"),
    "could_free": re.compile(r"^The GC could free up (\d+) MB space"),
    "freed": re.compile(r"^The GC job actual frees up (\d+) MB space"),
    "blob_deleted": re.compile(r"^(?:\[[^\]]*\])*\s*delete blob from storage: (\S+)"),
    "manifest_deleted": re.compile(r"^(?:\[[^\]]*\])*\s*delete manifest from storage: (\S+)"),
    "success": re.compile(r"^success to run gc in job\."),
    "failed": re.compile(r"^failed to execute GC job at (\w+) phase, error: (.*)$"),
}


class HarborGC(Format):
    name = "harbor-gc"
    family = "gc"
    tables = ("events",)
    description = "Harbor GC job log (jobservice job log or jobservice.log lines of the GC job)"
    example = ("2025-06-18T14:35:21Z [INFO] [/jobservice/job/impl/gc/garbage_collection.go:480]: "
               "1230 blobs and 462 manifests are actually deleted")

    def sniff(self, lines: list[str]) -> float:
        if not lines:
            return 0.0
        ok = [m for m in (_HARBOR.match(ln.strip()) for ln in lines) if m]
        if not any("/gc/" in m.group(3) or "gc in job" in m.group(4) for m in ok):
            return 0.0
        return len(ok) / len(lines)

    def parse(self, ctx: Context, block: pa.Table, final: bool) -> ParseResult:
        if not final:
            return ParseResult(held_back=block.num_rows)
        out = Events()
        run: dict | None = None

        def close(end_ts: dt.datetime | None) -> None:
            nonlocal run
            if run is None:
                return
            d = run
            dry = d.get("dry_run")
            deleted = d.get("blobs_deleted_summary", d["blobs_deleted"]) if dry is not True else d.get("blobs_eligible")
            out.add(ctx, ts=d["start"], end_ts=end_ts or d["last"], kind="gc_run", source="harbor jobservice",
                    line_no=d["line"], time_basis="log", subject="harbor", value=deleted,
                    marked=None, deleted=deleted, detail={k: v for k, v in d.items()
                                                          if k not in ("start", "last", "line", "lines", "has_start_of")})
            out.used += d["lines"]
            run = None

        for no, text, _wrap_ts, _host in whole_lines(block):
            line = text.strip()
            if not line:
                out.skip("blank")
                continue
            m = _HARBOR.match(line)
            ts = parse_time(m.group(1)) if m else None
            if m is None or ts is None:
                out.rejects.append((no, "not a Harbor job log line (time [LEVEL] [file:line]: message)"
                                    if m is None else "unreadable time", text))
                continue
            msg = m.group(4)
            kind, mm = next(((k, rx.match(msg)) for k, rx in HARBOR_MSGS.items() if rx.match(msg)), (None, None))
            if kind in ("params", "start") and run is not None and run.get("has_start_of", kind) == kind:
                close(None)
            gc_line = "/gc/" in m.group(3) or kind is not None
            if not gc_line:
                out.skip("not_gc")
                continue
            if run is None:
                run = {"start": ts, "last": ts, "line": no, "lines": 0, "blobs_deleted": 0, "manifests_deleted": 0,
                       "has_start_of": kind if kind in ("params", "start") else "params"}
            run["lines"] += 1
            run["last"] = max(run["last"], ts)
            if m.group(2).upper() in ("ERROR", "FATAL"):
                run["errors"] = run.get("errors", 0) + 1
            if kind == "params":
                run.update(delete_untagged=mm.group(1) == "true", dry_run=mm.group(2) == "true",
                           time_window_h=int(mm.group(3)) if mm.group(3) else None)
            elif kind == "eligible":
                run.update(blobs_eligible=int(mm.group(1)), manifests_eligible=int(mm.group(2)))
            elif kind == "deleted":
                run.update(blobs_deleted_summary=int(mm.group(1)), manifests_deleted_summary=int(mm.group(2)))
            elif kind == "could_free":
                run["could_free_mb"] = int(mm.group(1))
            elif kind == "freed":
                run["freed_mb"] = int(mm.group(1))
            elif kind == "blob_deleted":
                run["blobs_deleted"] += 1
            elif kind == "manifest_deleted":
                run["manifests_deleted"] += 1
            elif kind == "success":
                run["outcome"] = "success"
                close(ts)
            elif kind == "failed":
                run.update(outcome="failed", failed_phase=mm.group(1), error=mm.group(2))
                close(ts)
        close(None)
        return out.result()


FORMATS: list[Format] = [RegistryGC(), HarborGC()]
