"""A real registry stack on loopback that leaves behind the evidence an incident would, and its own record of it.

From nothing, `run_lab(root)`:
- starts /usr/bin/docker-registry (CNCF distribution 2.8) twice: instance `json` (log.formatter json) and
  instance `text` (the default text formatter), each with its debug listener serving Prometheus `/metrics`,
  filesystem storage in `root/work`, deletes enabled; stdout (access log) and stderr (app log) into one file;
- starts nginx (temp prefix, no daemon) with one server in front of each registry, writing a `combined` log with
  `$request_time $upstream_response_time` appended and a JSON log (`escape=json`);
- builds OCI images by hand (random layers, 10 KB .. 20 MB) and drives traffic through nginx as five clients,
  each from its own loopback address: two skopeo clients through a recording forwarder (`tap.py`: skopeo cannot
  bind a source address, the forwarder connects from it) and three curl clients (`--interface`) with docker,
  containerd and kubelet User-Agents;
- makes failing requests (missing manifests, wrong digests, bad uploads, invalid manifests), deletes manifests,
  stops the `text` registry for a few seconds (nginx 502s), restarts each registry read-only and runs
  `garbage-collect --dry-run` and `garbage-collect` on it (clients get 405s), scrapes `/metrics` every two
  seconds into `metrics-<instance>-<UTC stamp>.prom`;
- records every request it made, as the client saw it, in `truth/requests.jsonl`, and what it did when in
  `truth/timeline.json`; stops every process it started, by pid.

Evidence lands in `root/out` (what an SRE would collect), working files in `root/work`, the lab's own record in
`root/truth`. Every wait and loop is bounded in count and time; all traffic stays on 127.0.0.0/8.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.request
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from .images import Layout, build_layout
from .tap import Tap

REGISTRY_BIN = "/usr/bin/docker-registry"
NGINX_BIN = shutil.which("nginx") or "/usr/sbin/nginx"
SKOPEO_BIN = shutil.which("skopeo") or "/usr/bin/skopeo"
CURL_BIN = shutil.which("curl") or "/usr/bin/curl"
BINARIES = (REGISTRY_BIN, NGINX_BIN, SKOPEO_BIN, CURL_BIN)

INSTANCES = {"json": "json", "text": "text"}  # instance name -> log.formatter

# The clients: name -> (source address, how it talks, User-Agent for curl clients)
CLIENTS = {
    "ci": ("127.0.0.2", "skopeo", None),
    "puller": ("127.0.0.3", "skopeo", None),
    "kubelet": ("127.0.0.4", "curl", "kubelet/v1.28.2 (linux/amd64) kubernetes/89a4ea3"),
    "docker": ("127.0.0.5", "curl",
               "docker/24.0.7 go/go1.20.10 git-commit/311b9ff kernel/6.1.0 os/linux arch/amd64 "
               "UpstreamClient(Docker-Client/24.0.7 \\(linux\\))"),
    "containerd": ("127.0.0.6", "curl", "containerd/v1.7.2"),
}

KB, MB = 1024, 1024 * 1024
IMAGES = {
    "small": ("app/small", "v1", [10 * KB, 100 * KB]),
    "medium": ("app/medium", "v1", [1 * MB, 4 * MB]),
    "large": ("app/large", "v1", [20 * MB]),
    "victim": ("app/victim", "v1", [512 * KB, 64 * KB]),
}

NGINX_TIMED = ('$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent '
               '"$http_referer" "$http_user_agent" $request_time $upstream_response_time')
NGINX_JSON = ('{"time_iso8601":"$time_iso8601","remote_addr":"$remote_addr","request_id":"$request_id",'
              '"request_method":"$request_method","request_uri":"$request_uri","status":"$status",'
              '"body_bytes_sent":"$body_bytes_sent","request_length":"$request_length",'
              '"request_time":"$request_time","upstream_response_time":"$upstream_response_time",'
              '"upstream_status":"$upstream_status","http_user_agent":"$http_user_agent",'
              '"http_referer":"$http_referer","request":"$request"}')

KUBELET_POLLS = 150  # more requests than the skopeo pushes make, so kubelet is the top talker by requests
SCRAPE_EVERY_S = 2.0
MAX_SCRAPES = 80
LAB_DEADLINE_S = 150.0


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def iso(t: dt.datetime) -> str:
    return t.isoformat(timespec="microseconds").replace("+00:00", "Z")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout_s: float = 10.0) -> None:
    """Wait until something accepts on 127.0.0.1:port (a bare connect: no request that a log would show)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout_s}s")


class LabError(RuntimeError):
    pass


@dataclass
class Proc:
    """A process the lab started: stopped by its pid, never by name."""

    name: str
    popen: subprocess.Popen
    log: Path

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 10.0) -> int | None:
        if self.popen.poll() is None:
            try:
                os.kill(self.popen.pid, sig)
            except ProcessLookupError:
                pass
            try:
                self.popen.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                os.kill(self.popen.pid, signal.SIGKILL)
                self.popen.wait(timeout=5)
        return self.popen.returncode


@dataclass
class Registry:
    instance: str
    formatter: str
    port: int
    debug_port: int
    storage: Path
    config: Path
    readonly_config: Path
    log: Path
    proc: Proc | None = None
    nginx_port: int = 0


@dataclass
class LabRun:
    """What the lab left: `out` holds the evidence, `truth` the lab's own record."""

    root: Path
    out: Path
    truth_dir: Path
    requests: list[dict]
    timeline: dict
    layout: Layout | None = None

    @classmethod
    def load(cls, root: Path) -> LabRun:
        truth = root / "truth"
        reqs = [json.loads(ln) for ln in (truth / "requests.jsonl").read_text().splitlines() if ln.strip()]
        return cls(root, root / "out", truth, reqs, json.loads((truth / "timeline.json").read_text()))


class Recorder:
    """The lab's client-side record: one JSON line per request, written as each request completes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fh = path.open("a", encoding="utf-8")
        self._lock = threading.Lock()
        self.rows: list[dict] = []
        self.op = "setup"

    def add(self, row: dict) -> None:
        with self._lock:
            row.setdefault("op", self.op)
            self.rows.append(row)
            self._fh.write(json.dumps(row, sort_keys=True) + "\n")
            self._fh.flush()

    def close(self) -> None:
        self._fh.close()


class Lab:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.out = root / "out"
        self.work = root / "work"
        self.truth_dir = root / "truth"
        for d in (self.out, self.out / "metrics", self.work, self.truth_dir):
            d.mkdir(parents=True, exist_ok=True)
        self.recorder = Recorder(self.truth_dir / "requests.jsonl")
        self.registries: dict[str, Registry] = {}
        self.nginx: Proc | None = None
        self.taps: dict[tuple[str, str], Tap] = {}
        self.timeline: dict = {"events": [], "gc_runs": [], "outages": [], "readonly": [], "scrapes": []}
        self.secret = secrets.token_hex(16)
        self._scrape_stop = threading.Event()
        self._scraper: threading.Thread | None = None
        self._scraped = threading.Condition()
        self.scrape_rounds = 0
        self._started = time.monotonic()
        self._curl_no = 0

    # ---- processes -------------------------------------------------------------------------------------

    def _event(self, kind: str, **kw) -> None:
        self.timeline["events"].append({"time": iso(utcnow()), "kind": kind, **kw})

    def _check_deadline(self) -> None:
        if time.monotonic() - self._started > LAB_DEADLINE_S:
            raise LabError(f"lab ran past its {LAB_DEADLINE_S:.0f}s budget")

    def _registry_config(self, reg: Registry, readonly: bool) -> str:
        ro = "true" if readonly else "false"
        log = f"  formatter: {reg.formatter}\n" if reg.formatter != "text" else ""
        return (
            "version: 0.1\n"
            "log:\n  level: info\n" + log +
            "  accesslog:\n    disabled: false\n"
            "storage:\n"
            f"  filesystem:\n    rootdirectory: {reg.storage}\n"
            "  delete:\n    enabled: true\n"
            "  maintenance:\n    uploadpurging:\n      enabled: false\n"
            f"    readonly:\n      enabled: {ro}\n"
            "http:\n"
            f"  addr: 127.0.0.1:{reg.port}\n"
            f"  secret: {self.secret}\n"
            "  debug:\n"
            f"    addr: 127.0.0.1:{reg.debug_port}\n"
            "    prometheus:\n      enabled: true\n      path: /metrics\n"
        )

    def add_registry(self, instance: str, formatter: str) -> Registry:
        reg = Registry(instance, formatter, free_port(), free_port(), self.work / f"storage-{instance}",
                       self.work / f"registry-{instance}.yml", self.work / f"registry-{instance}-readonly.yml",
                       self.out / f"registry-{instance}.log")
        reg.storage.mkdir(parents=True, exist_ok=True)
        reg.config.write_text(self._registry_config(reg, False))
        reg.readonly_config.write_text(self._registry_config(reg, True))
        self.registries[instance] = reg
        return reg

    def start_registry(self, reg: Registry, readonly: bool = False) -> None:
        fh = reg.log.open("ab")
        cfg = reg.readonly_config if readonly else reg.config
        p = subprocess.Popen([REGISTRY_BIN, "serve", str(cfg)], stdout=fh, stderr=subprocess.STDOUT,
                             stdin=subprocess.DEVNULL, cwd=self.work)
        fh.close()
        reg.proc = Proc(f"registry-{reg.instance}", p, reg.log)
        try:
            wait_port(reg.port)
            wait_port(reg.debug_port)
        except TimeoutError as exc:
            raise LabError(f"registry {reg.instance} did not start: {reg.log.read_text()[-2000:]}") from exc
        self._event("registry_start", instance=reg.instance, readonly=readonly, pid=p.pid)

    def stop_registry(self, reg: Registry) -> None:
        assert reg.proc is not None
        pid = reg.proc.popen.pid
        reg.proc.stop()
        reg.proc = None
        self._event("registry_stop", instance=reg.instance, pid=pid)

    def start_nginx(self) -> None:
        prefix = self.work / "nginx"
        for d in ("logs", "tmp/body", "tmp/proxy", "tmp/fastcgi", "tmp/uwsgi", "tmp/scgi"):
            (prefix / d).mkdir(parents=True, exist_ok=True)
        servers = []
        for inst, reg in self.registries.items():
            reg.nginx_port = free_port()
            servers.append(f"""
    server {{
        listen 127.0.0.1:{reg.nginx_port};
        access_log {self.out}/nginx-{inst}-access.log timed;
        access_log {self.out}/nginx-{inst}-access.json.log jsonlog;
        client_max_body_size 0;
        chunked_transfer_encoding on;
        location / {{
            proxy_pass http://127.0.0.1:{reg.port};
            proxy_http_version 1.1;
            proxy_set_header Host $http_host;
            proxy_set_header X-Real-IP $remote_addr;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_buffering off;
            proxy_request_buffering off;
            proxy_read_timeout 60s;
        }}
    }}""")
        user = "user root;\n" if os.geteuid() == 0 else ""
        conf = f"""{user}worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/logs/error.log warn;
events {{ worker_connections 512; }}
http {{
    log_format timed '{NGINX_TIMED}';
    log_format jsonlog escape=json '{NGINX_JSON}';
    client_body_temp_path {prefix}/tmp/body;
    proxy_temp_path {prefix}/tmp/proxy;
    fastcgi_temp_path {prefix}/tmp/fastcgi;
    uwsgi_temp_path {prefix}/tmp/uwsgi;
    scgi_temp_path {prefix}/tmp/scgi;
    sendfile on;
    keepalive_timeout 30s;
{''.join(servers)}
}}
"""
        (prefix / "nginx.conf").write_text(conf)
        log = self.work / "nginx-stderr.log"
        fh = log.open("ab")
        p = subprocess.Popen([NGINX_BIN, "-p", str(prefix), "-e", str(prefix / "logs" / "startup-error.log"),
                              "-c", str(prefix / "nginx.conf"), "-g", "daemon off;"],
                             stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        fh.close()
        self.nginx = Proc("nginx", p, log)
        for reg in self.registries.values():
            try:
                wait_port(reg.nginx_port)
            except TimeoutError as exc:
                raise LabError(f"nginx did not start: {log.read_text()[-2000:]}") from exc
        self._event("nginx_start", pid=p.pid)

    # ---- metrics scraping ------------------------------------------------------------------------------

    def _scrape_loop(self) -> None:
        for _ in range(MAX_SCRAPES):
            t0 = time.monotonic()
            self.scrape_once()
            if self._scrape_stop.wait(max(0.0, SCRAPE_EVERY_S - (time.monotonic() - t0))):
                return

    def scrape_once(self) -> None:
        now = utcnow()
        stamp = now.strftime("%Y%m%dT%H%M%SZ")
        for inst, reg in list(self.registries.items()):
            row = {"time": iso(now), "instance": inst, "ok": False, "file": None}
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{reg.debug_port}/metrics", timeout=1.5) as r:
                    body = r.read()
                path = self.out / "metrics" / f"metrics-{inst}-{stamp}.prom"
                if not path.exists():
                    path.write_bytes(body)
                    row.update(ok=True, file=path.name)
            except OSError as exc:
                row["error"] = str(exc)
            self.timeline["scrapes"].append(row)
        with self._scraped:
            self.scrape_rounds += 1
            self._scraped.notify_all()

    def wait_for_scrape(self, timeout_s: float = 2 * SCRAPE_EVERY_S + 2) -> list[dict]:
        """Block until the scraper finishes its next round; return that round's rows (a quiet point's scrape)."""
        with self._scraped:
            start = self.scrape_rounds
            if not self._scraped.wait_for(lambda: self.scrape_rounds > start, timeout=timeout_s):
                raise LabError(f"no metrics scrape within {timeout_s}s")
            return self.timeline["scrapes"][-len(self.registries):]

    def start_scraper(self) -> None:
        self._scraper = threading.Thread(target=self._scrape_loop, name="scraper", daemon=True)
        self._scraper.start()

    def stop_scraper(self) -> None:
        self._scrape_stop.set()
        if self._scraper is not None:
            self._scraper.join(timeout=10)

    # ---- clients ---------------------------------------------------------------------------------------

    def tap(self, client: str, instance: str) -> Tap:
        key = (client, instance)
        if key not in self.taps:
            src = CLIENTS[client][0]
            reg = self.registries[instance]

            def record(row: dict, client=client, src=src, instance=instance) -> None:
                self.recorder.add({**row, "client": client, "src": src, "instance": instance, "via": "skopeo",
                                   "expected": None})

            self.taps[key] = Tap(src, ("127.0.0.1", reg.nginx_port), record).start()
        return self.taps[key]

    def skopeo(self, client: str, args: list[str], timeout_s: float = 60.0) -> subprocess.CompletedProcess:
        self._check_deadline()
        p = subprocess.run([SKOPEO_BIN, "--insecure-policy", *args], capture_output=True, text=True,
                           timeout=timeout_s, stdin=subprocess.DEVNULL)
        if p.returncode != 0:
            raise LabError(f"skopeo {' '.join(args)} failed: {p.stderr[-2000:]}")
        return p

    def push(self, client: str, instance: str, layout: Layout, name: str) -> None:
        img = layout.images[name]
        tap = self.tap(client, instance)
        self.recorder.op = f"push {img.repository}:{img.tag}"
        self.skopeo(client, ["copy", "--dest-tls-verify=false", layout.ref(name),
                             f"docker://127.0.0.1:{tap.port}/{img.repository}:{img.tag}"])

    def pull(self, client: str, instance: str, repo_tag: str, dest: Path) -> None:
        tap = self.tap(client, instance)
        self.recorder.op = f"pull {repo_tag}"
        if dest.exists():
            shutil.rmtree(dest)
        self.skopeo(client, ["copy", "--src-tls-verify=false", f"docker://127.0.0.1:{tap.port}/{repo_tag}",
                             f"dir:{dest}"])
        pulled = sum(f.stat().st_size for f in dest.iterdir() if f.is_file())
        self.timeline.setdefault("pulls", []).append({"client": client, "instance": instance, "ref": repo_tag,
                                                      "bytes_on_disk": pulled})
        shutil.rmtree(dest)  # only the traffic matters; keep the lab's footprint small

    def inspect(self, client: str, instance: str, repo_tag: str) -> dict:
        tap = self.tap(client, instance)
        self.recorder.op = f"inspect {repo_tag}"
        p = self.skopeo(client, ["inspect", "--tls-verify=false", f"docker://127.0.0.1:{tap.port}/{repo_tag}"])
        return json.loads(p.stdout)

    def curl(self, client: str, instance: str, method: str, path: str, expected: int, *,
             data: bytes | None = None, headers: dict[str, str] | None = None, op: str | None = None,
             url: str | None = None) -> dict:
        """One request with curl from the client's own address; returns the record row (with `location`)."""
        self._check_deadline()
        src, _, ua = CLIENTS[client]
        reg = self.registries[instance]
        self._curl_no += 1
        tmp = self.work / "curl"
        tmp.mkdir(exist_ok=True)
        hdr, body = tmp / f"{self._curl_no}.hdr", tmp / f"{self._curl_no}.body"
        target = url or f"http://127.0.0.1:{reg.nginx_port}{path}"
        args = [CURL_BIN, "-sS", "--interface", src, "-A", ua, "-o", str(body), "-D", str(hdr),
                "--max-time", "20", "-w", "%{http_code} %{size_download} %{size_upload}"]
        if method == "HEAD":
            args.append("--head")
        elif method != "GET" or data is not None:
            args += ["-X", method]
        for k, v in (headers or {}).items():
            args += ["-H", f"{k}: {v}"]
        if data is not None:
            dfile = tmp / f"{self._curl_no}.data"
            dfile.write_bytes(data)
            args += ["--data-binary", f"@{dfile}"]
        args.append(target)
        start = utcnow()
        p = subprocess.run(args, capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
        end = utcnow()
        code, down, up = (p.stdout.split() + ["0", "0", "0"])[:3]
        location = None
        if hdr.exists():
            for line in hdr.read_text("latin-1").splitlines():
                if line.lower().startswith("location:"):
                    location = line.split(":", 1)[1].strip()
        req_path = target.split(f"{reg.nginx_port}", 1)[1] if str(reg.nginx_port) in target else target
        if location and location.startswith("/"):
            location = f"http://127.0.0.1:{reg.nginx_port}{location}"
        row = {"start": iso(start), "time": iso(end), "client": client, "src": src, "instance": instance,
               "via": "curl", "method": method, "path": req_path, "status": int(code), "expected": expected,
               "bytes_out": int(down), "bytes_in": int(up), "user_agent": ua}
        if op:
            row["op"] = op
        self.recorder.add(row)
        return {**row, "location": location}

    # ---- storage ---------------------------------------------------------------------------------------

    def blobs_on_disk(self, reg: Registry) -> set[str]:
        root = reg.storage / "docker" / "registry" / "v2" / "blobs" / "sha256"
        if not root.exists():
            return set()
        return {"sha256:" + d.name for sub in root.iterdir() for d in sub.iterdir() if (d / "data").exists()}

    def garbage_collect(self, reg: Registry, dry_run: bool) -> dict:
        stamp = utcnow().strftime("%Y%m%dT%H%M%SZ")
        name = f"gc-{reg.instance}-{'dry-run-' if dry_run else ''}{stamp}.log"
        before = self.blobs_on_disk(reg)
        start = utcnow()
        with (self.out / name).open("wb") as fh:
            args = [REGISTRY_BIN, "garbage-collect", *(["--dry-run"] if dry_run else []), str(reg.readonly_config)]
            p = subprocess.run(args, stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, timeout=60)
        end = utcnow()
        after = self.blobs_on_disk(reg)
        run = {"instance": reg.instance, "dry_run": dry_run, "file": name, "start": iso(start), "end": iso(end),
               "returncode": p.returncode, "blobs_before": len(before), "blobs_after": len(after),
               "deleted_on_disk": sorted(before - after)}
        self.timeline["gc_runs"].append(run)
        if p.returncode != 0:
            raise LabError(f"garbage-collect failed: {(self.out / name).read_text()[-2000:]}")
        return run

    # ---- shutdown --------------------------------------------------------------------------------------

    def close(self) -> None:
        self.stop_scraper()
        for tap in self.taps.values():
            tap.stop()
        if self.nginx is not None:
            self.nginx.stop(signal.SIGQUIT)
            self._event("nginx_stop", pid=self.nginx.popen.pid)
            self.nginx = None
        for reg in self.registries.values():
            if reg.proc is not None:
                self.stop_registry(reg)
        self.recorder.close()
        (self.truth_dir / "timeline.json").write_text(json.dumps(self.timeline, indent=1, sort_keys=True))


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def run_lab(root: Path) -> LabRun:
    """Build the stack, drive the scenario, stop everything; return what it left and what it knows."""
    missing = [b for b in BINARIES if not Path(b).exists()]
    if missing:
        raise LabError(f"missing programs: {', '.join(missing)} (run .ci/install)")
    root.mkdir(parents=True, exist_ok=True)
    lab = Lab(root)
    t0 = time.monotonic()
    with ExitStack() as stack:
        stack.callback(lab.close)
        layout = build_layout(lab.work / "oci", IMAGES)
        lab.timeline["images"] = {
            name: {"repository": im.repository, "tag": im.tag, "manifest": im.manifest.digest,
                   "manifest_size": im.manifest.size, "config": im.config.digest,
                   "layers": [[b.digest, b.size] for b in im.layers], "pull_bytes": im.pull_bytes}
            for name, im in layout.images.items()
        }
        for inst, fmt in INSTANCES.items():
            lab.add_registry(inst, fmt)
        for reg in lab.registries.values():
            lab.start_registry(reg)
        lab.start_nginx()
        lab.start_scraper()
        scenario(lab, layout)
        lab.timeline["ports"] = {i: {"registry": r.port, "debug": r.debug_port, "nginx": r.nginx_port}
                                 for i, r in lab.registries.items()}
        lab.timeline["clients"] = {c: {"src": s, "via": v, "user_agent": ua} for c, (s, v, ua) in CLIENTS.items()}
    lab.timeline["elapsed_s"] = round(time.monotonic() - t0, 2)
    (lab.truth_dir / "timeline.json").write_text(json.dumps(lab.timeline, indent=1, sort_keys=True))
    run = LabRun.load(root)
    run.layout = layout
    return run


def scenario(lab: Lab, layout: Layout) -> None:
    """The incident the lab plays out, step by step."""
    rj, rt = lab.registries["json"], lab.registries["text"]
    small, victim = layout.images["small"], layout.images["victim"]

    # 1. CI pushes every image to both registries (skopeo, through nginx, from 127.0.0.2)
    for inst in ("json", "text"):
        for name in ("small", "medium", "large", "victim"):
            lab.push("ci", inst, layout, name)

    # 2. A puller inspects and pulls the large image again and again: the top talker by bytes
    lab.inspect("puller", "json", "app/large:v1")
    for i in range(3):
        lab.pull("puller", "json", "app/large:v1", lab.work / f"pull-large-{i}")
    lab.pull("puller", "text", "app/medium:v1", lab.work / "pull-medium")

    # 3. kubelet polls manifests (HEAD and GET) on both registries: the top talker by requests
    accept = {"Accept": "application/vnd.oci.image.manifest.v1+json"}
    lab.recorder.op = "kubelet poll"
    for i in range(KUBELET_POLLS):
        inst = "json" if i % 2 == 0 else "text"
        if i % 10 == 9:
            lab.curl("kubelet", inst, "GET", "/v2/app/small/manifests/v2-missing", 404, headers=accept)
        else:
            lab.curl("kubelet", inst, "HEAD" if i % 3 else "GET", "/v2/app/small/manifests/v1", 200, headers=accept)

    # 4. containerd pulls the small image from the text registry blob by blob
    lab.recorder.op = "containerd pull"
    lab.curl("containerd", "text", "GET", "/v2/", 200)
    lab.curl("containerd", "text", "GET", f"/v2/app/small/manifests/{small.manifest.digest}", 200, headers=accept)
    for b in small.blobs:
        lab.curl("containerd", "text", "GET", f"/v2/app/small/blobs/{b.digest}", 200)

    # 5. docker makes mistakes: unknown blobs, bad digests, bad uploads, an invalid manifest; and one good upload
    lab.recorder.op = "docker errors"
    zero = "sha256:" + "0" * 64
    for inst in ("json", "text"):
        lab.curl("docker", inst, "GET", "/v2/", 200)
        lab.curl("docker", inst, "GET", f"/v2/app/small/blobs/{zero}", 404)
        lab.curl("docker", inst, "HEAD", f"/v2/app/nope/blobs/{small.layers[0].digest}", 404)
        lab.curl("docker", inst, "GET", "/v2/app/small/blobs/sha256:not-a-digest", 400)
        lab.curl("docker", inst, "GET", "/v2/app/ghost/manifests/latest", 404)
        lab.curl("docker", inst, "GET", "/v2/app/small/tags/list", 200)
        data = os.urandom(3000)
        up = lab.curl("docker", inst, "POST", "/v2/app/small/blobs/uploads/", 202)
        lab.curl("docker", inst, "PUT", "", 400, url=f"{up['location']}&digest={zero}", data=data,
                 headers={"Content-Type": "application/octet-stream"}, op="bad upload")
        up = lab.curl("docker", inst, "POST", "/v2/app/small/blobs/uploads/", 202)
        good = sha256_digest(data)
        lab.curl("docker", inst, "PUT", "", 201, url=f"{up['location']}&digest={good}", data=data,
                 headers={"Content-Type": "application/octet-stream"}, op="orphan upload")
        lab.timeline.setdefault("orphans", {})[inst] = good
        lab.curl("docker", inst, "PUT", "/v2/app/small/manifests/broken", 400, data=b'{"schemaVersion": 2,',
                 headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"})
        lab.curl("docker", inst, "PATCH", "/v2/app/small/blobs/uploads/00000000-0000-0000-0000-000000000000",
                 404, data=b"x" * 100, headers={"Content-Type": "application/octet-stream"})
        # delete the victim image's manifest: its blobs become garbage
        lab.curl("docker", inst, "DELETE", f"/v2/app/victim/manifests/{victim.manifest.digest}", 202,
                 op="delete manifest")
        lab.curl("docker", inst, "GET", f"/v2/app/victim/manifests/{victim.manifest.digest}", 404,
                 headers=accept, op="delete manifest")
        lab.curl("docker", inst, "DELETE", f"/v2/app/victim/manifests/{zero}", 404, op="delete manifest")

    # a quiet point: no request in flight while both registries are scraped, so the scrape's histograms
    # count exactly the requests each registry has logged since it started
    time.sleep(0.3)
    lab.timeline["quiet_scrape"] = {r["instance"]: r for r in lab.wait_for_scrape()}

    # 6. the text registry goes away for a few seconds: nginx answers 502
    lab.stop_registry(rt)
    out_start = utcnow()
    lab.recorder.op = "outage"
    deadline = time.monotonic() + 3.0
    n = 0
    while time.monotonic() < deadline and n < 20:
        lab.curl("containerd", "text", "GET", "/v2/app/small/manifests/v1", 502, headers=accept)
        n += 1
        time.sleep(0.25)
    out_end = utcnow()
    lab.start_registry(rt)
    lab.timeline["outages"].append({"instance": "text", "start": iso(out_start), "end": iso(out_end), "requests": n})
    lab.recorder.op = "after outage"
    lab.curl("containerd", "text", "GET", "/v2/app/small/manifests/v1", 200, headers=accept)

    # 7. maintenance: each registry restarted read-only, garbage-collect dry run then real, restarted writable
    for reg, dry in ((rj, True), (rt, False)):
        lab.stop_registry(reg)
        lab.start_registry(reg, readonly=True)
        ro_start = utcnow()
        lab.recorder.op = "read-only"
        lab.curl("containerd", reg.instance, "POST", "/v2/app/small/blobs/uploads/", 405)
        lab.curl("docker", reg.instance, "DELETE", f"/v2/app/small/manifests/{zero}", 405)
        lab.curl("kubelet", reg.instance, "GET", "/v2/app/small/manifests/v1", 200, headers=accept)
        if dry:
            lab.garbage_collect(reg, dry_run=True)
        lab.garbage_collect(reg, dry_run=False)
        lab.curl("containerd", reg.instance, "POST", "/v2/app/medium/blobs/uploads/", 405)
        lab.curl("kubelet", reg.instance, "HEAD", "/v2/app/small/manifests/v1", 200, headers=accept)
        ro_end = utcnow()
        lab.stop_registry(reg)
        lab.start_registry(reg)
        lab.timeline["readonly"].append({"instance": reg.instance, "start": iso(ro_start), "end": iso(ro_end)})

    # 8. afterwards: the victim is gone for good, the rest still pulls
    lab.recorder.op = "after gc"
    for inst in ("json", "text"):
        lab.curl("containerd", inst, "GET", f"/v2/app/victim/blobs/{victim.layers[0].digest}", 404)
        lab.curl("containerd", inst, "GET", f"/v2/app/small/blobs/{small.layers[1].digest}", 200)
    lab.pull("puller", "json", "app/small:v1", lab.work / "pull-small")
    # let the scraper see the last requests
    time.sleep(SCRAPE_EVERY_S + 0.2)
