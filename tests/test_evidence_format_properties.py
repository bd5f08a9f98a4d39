"""Any text, fed to the metrics, GC, kernel and Kubernetes formats: no exception, and the ledger adds up."""

import datetime as dt

import pyarrow as pa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from workbench.case import new_connection
from workbench.ingest import derive, gc, kernel, kubernetes, prometheus
from workbench.ingest.base import Context
from workbench.ingest.wrappers import as_block

FORMATS = [*prometheus.FORMATS, *gc.FORMATS, *kernel.FORMATS, *kubernetes.FORMATS]

# pieces of the real texts, so the generated lines reach deep into the parsers
PIECES = [
    "# TYPE x counter", "# HELP x h", "# UNIT x_seconds seconds", "# EOF", "# scrape at 2026-11-28T06:29:00Z",
    'x_bucket{le="+Inf"} 3', 'x{a="b"} 1 1795847378000', "x 1 # {t=\"1\"} 1", "{", '"resultType": "matrix"',
    '{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"1"]}]}}',
    "library/app: marking manifest sha256:abc ", "3 blobs marked, 1 blobs and 0 manifests eligible for deletion",
    "blob eligible for deletion: sha256:abc", 'time="2026-11-28T06:29:38Z" level=info msg="Deleting blob: /x"',
    'time="2026-11-28T06:29:38Z" level=info msg="PurgeUploads starting: olderThan=x, actuallyDelete=true"',
    "2026-11-28T06:00:01Z [INFO] [/jobservice/job/impl/gc/garbage_collection.go:1]: start to run gc in job.",
    "[  12.5] Out of memory: Killed process 1 (a) total-vm:1kB, anon-rss:1kB, file-rss:1kB",
    "[  pid  ]   uid  tgid total_vm      rss name", "[   1]  0  1  5  4 a", "oom-kill:constraint=X,task=a,pid=1",
    'I1128 06:29:38.123456    1 event.go:1] "Event occurred" reason="Pulled" message="Successfully pulled image \\"a\\" in 1s"',
    "LAST SEEN   TYPE   REASON   OBJECT   MESSAGE", "2m   Normal   Pulled   pod/a   Failed to pull image \"a\": x",
    '{"kind": "Event", "items": [', "",
]
line = st.one_of(st.sampled_from(PIECES), st.text(max_size=60),
                 st.builds(lambda a, b: a + b, st.sampled_from(PIECES), st.text(max_size=20)))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(lines=st.lists(line, max_size=25), idx=st.integers(0, len(FORMATS) - 1), at=st.booleans())
def test_any_text_adds_up(lines, idx, at):
    fmt = FORMATS[idx]
    lines = [ln.replace("\n", " ").replace("\r", " ") for ln in lines]
    con = new_connection()
    derive.install(con)
    ctx = Context(con=con, source_file="metrics-20261128T062938Z.txt",
                  at=dt.datetime(2026, 11, 28, tzinfo=dt.UTC) if at else None,
                  file_mtime=dt.datetime(2026, 11, 28, 6, tzinfo=dt.UTC))
    block = as_block(pa.table({"line_no": pa.array(range(1, len(lines) + 1), pa.int64()),
                               "text": pa.array(lines, pa.string())}))
    fmt.sniff([ln for ln in lines if ln.strip()])
    held = fmt.parse(ctx, block, final=False)
    assert held.used_lines + held.n_rejects + sum(held.skipped.values()) + held.held_back == len(lines)
    res = fmt.parse(ctx, block, final=True)
    assert res.held_back == 0
    assert res.used_lines + res.n_rejects + sum(res.skipped.values()) == len(lines), fmt.name
    rows = sum(t.num_rows for t in res.tables.values())
    assert rows <= max(len(lines), 1) * 50
    con.close()
