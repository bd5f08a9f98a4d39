"""OOM kills and Kubernetes image-pull evidence into events."""

import datetime as dt
import json

from workbench import Case, ingest

UTC = dt.UTC


def _events(tmp_path, *paths, at=None):
    s = ingest(tmp_path / "case", list(paths), at=at).to_dict()
    con = Case(tmp_path / "case").connect()
    rows = con.sql("SELECT source_file, line_no, kind, ts, instance, subject, value, time_basis, detail FROM events "
                   "ORDER BY source_file, line_no").fetchall()
    keys = ("file", "line", "kind", "ts", "instance", "subject", "value", "basis", "detail")
    return s, [dict(zip(keys, r, strict=True)) | {"detail": json.loads(r[8])} for r in rows], con


def test_dmesg_oom_report_with_boot_time(tmp_path, fixtures):
    boot = dt.datetime(2026, 11, 27, 8, 0, tzinfo=UTC)
    s, ev, con = _events(tmp_path, fixtures / "kernel" / "dmesg-oom.txt", at=boot)
    f = s["files"][0]
    assert f["format"] == "kernel-oom" and f["balanced"] and f["skipped"] == {"kernel_other": 3}
    (oom,) = ev
    assert oom["kind"] == "oom_kill" and oom["subject"] == "registry" and oom["line"] == 10
    assert oom["ts"] == boot + dt.timedelta(seconds=81234.5673) and oom["basis"] == "boot_at"
    d = oom["detail"]
    assert (d["pid"], d["anon_rss_kb"], oom["value"], d["scope"], d["constraint"]) == (
        4242, 1048576, 1048576, "cgroup", "CONSTRAINT_MEMCG")
    assert d["task_table_rss_kb"] == 264755 * 4 and d["reaped"] is True and d["invoked_by"] == "registry"
    assert [r[0] for r in con.sql("SELECT line_no FROM rejects ORDER BY 1").fetchall()] == [12, 13]


def test_dmesg_human_times_old_kernel_and_journal(tmp_path, fixtures):
    s, ev, _ = _events(tmp_path, fixtures / "kernel" / "dmesg-T-old.txt", fixtures / "kernel" / "journal-k.txt",
                       at=dt.datetime(2026, 11, 28, 7, 0, tzinfo=UTC))
    assert all(f["balanced"] and f["format"] == "kernel-oom" for f in s["files"])
    old, journal = ev
    assert old["ts"] == dt.datetime(2026, 11, 28, 6, 29, 38, tzinfo=UTC) and old["detail"]["score"] == 912
    assert old["value"] == 1572864 and old["detail"]["pid"] == 3131
    assert journal["instance"] == "node-7" and journal["ts"] == dt.datetime(2026, 11, 28, 6, 31, 2, tzinfo=UTC)
    assert journal["detail"]["reaped"] is True and journal["detail"]["uid"] == 1000


def test_kubelet_pull_durations_and_errors(tmp_path, fixtures):
    d = fixtures / "kubernetes"
    s, ev, _ = _events(tmp_path, d / "kubelet-journal.log", d / "kubelet-old.log",
                       at=dt.datetime(2026, 11, 28, 7, 0, tzinfo=UTC))
    assert all(f["balanced"] and f["format"] == "kubelet-log" for f in s["files"])
    pulls = [e for e in ev if e["kind"] == "image_pull"]
    assert [(p["value"], p["detail"].get("including_waiting_s")) for p in pulls] == [(17.972, 28.7), (62.5, None)]
    assert pulls[0]["detail"]["size_bytes"] == 3378654 and pulls[0]["instance"] == "node-7"
    errs = [(e["line"], e["detail"]["reason"]) for e in ev if e["kind"] == "image_pull_error"]
    assert errs == [(3, "PullImage from image service failed"), (5, "ErrImagePull"), (2, "BackOff")]


def test_containerd_and_kubectl_events(tmp_path, fixtures):
    d = fixtures / "kubernetes"
    taken = dt.datetime(2026, 11, 28, 6, 32, tzinfo=UTC)
    s, ev, _ = _events(tmp_path, d / "containerd.log", d / "kubectl-events.txt", d / "kubectl-events.json", at=taken)
    fm = {f["source_file"].rsplit("/", 1)[1]: f for f in s["files"]}
    assert fm["containerd.log"]["format"] == "containerd-log" and fm["containerd.log"]["rejects"] == 1
    assert fm["kubectl-events.txt"]["format"] == "kubectl-events" and fm["kubectl-events.txt"]["rejects"] == 1
    assert fm["kubectl-events.json"]["format"] == "kubectl-events-json"
    assert all(f["balanced"] for f in s["files"])
    c = [e for e in ev if e["file"].endswith("containerd.log")]
    assert c[0]["kind"] == "image_pull" and abs(c[0]["value"] - 17.969825123) < 1e-9
    assert c[1]["kind"] == "image_pull_error" and "not found" in c[1]["detail"]["error"]
    t = [e for e in ev if e["file"].endswith(".txt")]
    assert t[1]["ts"] == taken - dt.timedelta(seconds=90) and t[1]["basis"] == "at_minus_age"
    assert [e["kind"] for e in t] == ["k8s_event", "image_pull", "image_pull_error", "image_pull_error"]
    j = [e for e in ev if e["file"].endswith(".json")]
    assert {e["kind"] for e in j} == {"image_pull", "image_pull_error"}
    assert any(e["ts"] == dt.datetime(2026, 11, 28, 6, 31, 50, tzinfo=UTC) and e["value"] == 4 for e in j)


def test_formats_command_lists_every_new_format():
    from typer.testing import CliRunner

    from workbench.cli import app

    res = CliRunner().invoke(app, ["formats"])
    assert res.exit_code == 0, res.output
    for name in ("prometheus-text", "openmetrics", "prometheus-api-json", "registry-gc", "harbor-gc", "kernel-oom",
                 "kubelet-log", "containerd-log", "kubectl-events", "kubectl-events-json"):
        assert name in res.output
    assert "[/jobservice/job/impl/gc/garbage_collection.go:480]" in res.output  # brackets print as written
