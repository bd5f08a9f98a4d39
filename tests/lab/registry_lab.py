"""Real registry evidence: a throw-away distribution registry on 127.0.0.1 with a filesystem store and its
Prometheus endpoint on, small images pushed with skopeo, one manifest deleted through the API, `/metrics`
scraped along the way, then `registry garbage-collect` runs (dry run and real, with and without
--delete-untagged).

`python -m tests.lab.registry_lab OUT_DIR` writes OUT_DIR/gc/*.txt and OUT_DIR/prometheus/*.prom (the committed
fixtures under data/fixtures/gc/ and data/fixtures/prometheus/ came from it); `capture(out_dir)` is what the
tests call.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.request
from pathlib import Path

REGISTRY = "/usr/bin/docker-registry"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _blob(layout: Path, data: bytes) -> tuple[str, int]:
    digest = hashlib.sha256(data).hexdigest()
    (layout / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
    (layout / "blobs" / "sha256" / digest).write_bytes(data)
    return f"sha256:{digest}", len(data)


def _layer(files: dict[str, bytes]) -> tuple[bytes, str]:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, body in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(body), 1764300000, 0o644
            tar.addfile(info, io.BytesIO(body))
    diff_id = "sha256:" + hashlib.sha256(raw.getvalue()).hexdigest()
    return gzip.compress(raw.getvalue(), mtime=0), diff_id


def make_oci_image(layout: Path, tag: str, layers: list[dict[str, bytes]]) -> None:
    """Add a tagged image with these layers to an OCI layout directory (created if needed)."""
    layout.mkdir(parents=True, exist_ok=True)
    (layout / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    descs, diff_ids = [], []
    for files in layers:
        blob, diff_id = _layer(files)
        d, n = _blob(layout, blob)
        descs.append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": d, "size": n})
        diff_ids.append(diff_id)
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {"Labels": {"tag": tag}},
                         "rootfs": {"type": "layers", "diff_ids": diff_ids}}).encode()
    cd, cn = _blob(layout, config)
    manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                           "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd,
                                      "size": cn},
                           "layers": descs}).encode()
    md, mn = _blob(layout, manifest)
    index_path = layout / "index.json"
    index = json.loads(index_path.read_text()) if index_path.exists() else {"schemaVersion": 2, "manifests": []}
    index["manifests"] = [m for m in index["manifests"]
                          if m.get("annotations", {}).get("org.opencontainers.image.ref.name") != tag]
    index["manifests"].append({"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": md, "size": mn,
                               "annotations": {"org.opencontainers.image.ref.name": tag}})
    index_path.write_text(json.dumps(index))


def _config(root: Path, port: int, debug_port: int) -> Path:
    cfg = root / "config.yml"
    cfg.write_text(
        "version: 0.1\n"
        "log:\n  level: info\n  formatter: text\n"
        f"storage:\n  filesystem:\n    rootdirectory: {root / 'store'}\n  delete:\n    enabled: true\n"
        f"http:\n  addr: 127.0.0.1:{port}\n"
        f"  debug:\n    addr: 127.0.0.1:{debug_port}\n    prometheus:\n      enabled: true\n      path: /metrics\n"
    )
    return cfg


def _wait_up(port: int, proc: subprocess.Popen, timeout_s: float = 15.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"registry exited with {proc.returncode}")
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/", timeout=1).read()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("registry did not answer on /v2/ in time")


def _push(layout: Path, tag: str, port: int, repo: str, dest_tag: str) -> None:
    subprocess.run(["skopeo", "copy", "--quiet", "--dest-tls-verify=false", f"oci:{layout}:{tag}",
                    f"docker://127.0.0.1:{port}/{repo}:{dest_tag}"], check=True, timeout=60,
                   capture_output=True)


def _digest(port: int, repo: str, tag: str) -> str:
    req = urllib.request.Request(f"http://127.0.0.1:{port}/v2/{repo}/manifests/{tag}", method="HEAD",
                                 headers={"Accept": "application/vnd.oci.image.manifest.v1+json"})
    with urllib.request.urlopen(req, timeout=5) as r:
        return r.headers["Docker-Content-Digest"]


def _delete(port: int, repo: str, digest: str) -> int:
    req = urllib.request.Request(f"http://127.0.0.1:{port}/v2/{repo}/manifests/{digest}", method="DELETE")
    with urllib.request.urlopen(req, timeout=5) as r:
        return r.status


def _gc(cfg: Path, *flags: str) -> str:
    p = subprocess.run([REGISTRY, "garbage-collect", *flags, str(cfg)], capture_output=True, text=True, timeout=60)
    return p.stdout + p.stderr


def _scrape(debug_port: int, out: Path) -> str:
    """One /metrics scrape, saved as metrics-<UTC time>.prom; returns the time written in the name."""
    with urllib.request.urlopen(f"http://127.0.0.1:{debug_port}/metrics", timeout=5) as r:
        body = r.read().decode()
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    (out / f"metrics-{stamp}.prom").write_text(body)
    return stamp


def capture(out_dir: Path) -> dict[str, str]:
    """Run the scenario; write GC output to out_dir/gc and scrapes to out_dir/prometheus. Returns {file: note}."""
    gc_dir, prom_dir = out_dir / "gc", out_dir / "prometheus"
    gc_dir.mkdir(parents=True, exist_ok=True)
    prom_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        port, debug_port = _free_port(), _free_port()
        cfg = _config(root, port, debug_port)
        layout = root / "oci"
        base = {"etc/os-release": b"ID=lab\n"}
        make_oci_image(layout, "v1", [base, {"app/v1.txt": b"one\n"}])
        make_oci_image(layout, "v2", [base, {"app/v2.txt": b"two\n" * 64}])
        make_oci_image(layout, "tool", [{"bin/tool": b"#!/bin/sh\necho tool\n"}])
        make_oci_image(layout, "v1b", [base, {"app/v1.txt": b"one, rebuilt\n"}])
        log = open(root / "registry.log", "w")
        proc = subprocess.Popen([REGISTRY, "serve", str(cfg)], stdout=log, stderr=subprocess.STDOUT)
        what = {}
        try:
            _wait_up(port, proc)
            what[_scrape(debug_port, prom_dir)] = "scrape before any push"
            _push(layout, "v1", port, "library/app", "v1")
            _push(layout, "v2", port, "library/app", "v2")
            time.sleep(1.1)  # scrapes a second apart get distinct names
            what[_scrape(debug_port, prom_dir)] = "scrape after two pushes"
            _push(layout, "tool", port, "tools/base", "1")
            v2 = _digest(port, "library/app", "v2")
            _delete(port, "library/app", v2)
            # re-push v1 with new content: the old v1 manifest stays, untagged
            _push(layout, "v1b", port, "library/app", "v1")
            for _ in range(20):
                req = urllib.request.Request(f"http://127.0.0.1:{port}/v2/library/app/manifests/v1",
                                             headers={"Accept": "application/vnd.oci.image.manifest.v1+json"})
                urllib.request.urlopen(req, timeout=5).read()
            time.sleep(1.1)
            what[_scrape(debug_port, prom_dir)] = "scrape after the delete, a re-push and 20 manifest GETs"
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
            log.close()
        runs = [
            ("gc-dry-run.txt", ["--dry-run"], f"dry run after deleting library/app@{v2}"),
            ("gc.txt", [], "real run: the deleted manifest's own blobs go"),
            ("gc-untagged-dry-run.txt", ["--dry-run", "--delete-untagged"], "dry run, untagged manifests too"),
            ("gc-untagged.txt", ["--delete-untagged"], "real run removing the untagged old v1"),
            ("gc-nothing.txt", [], "real run with nothing left to delete"),
        ]
        for name, flags, note in runs:
            (gc_dir / name).write_text(_gc(cfg, *flags))
            what[name] = note
        (gc_dir / "registry-serve.log").write_text((root / "registry.log").read_text())
    return what


if __name__ == "__main__":
    for k, v in capture(Path(sys.argv[1])).items():
        print(k, "-", v)
