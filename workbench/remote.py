"""Cases on S3-compatible object storage.

`sync(case, "s3://bucket/prefix")` uploads a local case's committed Parquet files (those not there yet), then
writes `manifest.json` last; a remote reader lists only what that manifest names, so it sees a whole sync or
the one before. `open_case("s3://…")` gives a read-only case whose `connect()` reads the Parquet through
fsspec/s3fs inside DuckDB; Spark and Trino read the same layout at the same keys (`s3a://`).

The endpoint and credentials come from the usual AWS settings (AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, …).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pyarrow as pa

from . import schema
from .case import Case
from .errors import CaseError

MANIFEST = "manifest.json"


def is_remote(path: str | os.PathLike) -> bool:
    return str(path).startswith(("s3://", "s3a://"))


def _fs():
    try:
        import s3fs
    except ImportError:
        raise CaseError("cases on S3 need s3fs: pip install 'registry-workbench[s3]'") from None
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    return s3fs.S3FileSystem(endpoint_url=endpoint) if endpoint else s3fs.S3FileSystem()


def _key(url: str) -> str:
    return url.split("://", 1)[1].rstrip("/")


@dataclass
class SyncSummary:
    uploaded: int
    already_there: int
    url: str


def sync(case: str | os.PathLike | Case, url: str) -> SyncSummary:
    """Upload a local case's committed files to s3://bucket/prefix, then its manifest."""
    if not is_remote(url):
        raise CaseError(f"{url}: not an s3:// URL")
    case = case if isinstance(case, Case) else Case(case)
    files, man = case.read_catalog()
    fs = _fs()
    root = _key(url)
    bucket = root.split("/", 1)[0]
    if not fs.exists(bucket):
        raise CaseError(f"{url}: bucket {bucket!r} does not exist or is not reachable; create it first")
    up = there = 0
    for table, rels in files.items():
        for rel in rels:
            local = case.path / rel
            remote = f"{root}/{rel}"
            if fs.exists(remote) and fs.size(remote) == local.stat().st_size:
                there += 1
                continue
            fs.put_file(str(local), remote)
            up += 1
    doc = {"files": files, "manifest": json.loads(json.dumps(man.to_pylist(), default=str))}
    with fs.open(f"{root}/{MANIFEST}", "w") as fh:
        json.dump(doc, fh, sort_keys=True)
    return SyncSummary(up, there, url)


class RemoteCase(Case):
    """A read-only case at an s3:// URL, written by `sync`."""

    def __init__(self, url: str):
        self.url = url.rstrip("/").replace("s3a://", "s3://", 1)
        self.path = Path("/nonexistent-remote-case")
        self._fs = _fs()

    def exists(self) -> bool:
        return self._fs.exists(f"{_key(self.url)}/{MANIFEST}")

    def base(self) -> str:
        return self.url

    def read_catalog(self):
        try:
            with self._fs.open(f"{_key(self.url)}/{MANIFEST}", "r") as fh:
                doc = json.load(fh)
        except FileNotFoundError:
            raise CaseError(f"{self.url}: no case here (no {MANIFEST}); upload one with `workbench sync CASE {self.url}`") from None
        files = {t: doc["files"].get(t, []) for t in schema.TABLES}
        return files, pa.Table.from_pylist(doc["manifest"]) if doc["manifest"] else pa.table({"file_id": pa.array([], pa.string())})

    def prepare(self, con: duckdb.DuckDBPyConnection) -> None:
        con.register_filesystem(self._fs)

    def writer(self, wait_s: float = 300.0):
        raise CaseError(f"{self.url}: a case on S3 is read-only here; ingest into a local case and `workbench sync` it")


def open_case(path: str | os.PathLike) -> Case:
    """A local case folder, or a remote one for s3:// URLs."""
    return RemoteCase(str(path)) if is_remote(path) else Case(path)
