"""A real JupyterLab on loopback, driven by Debian's Chromium through Playwright (no browser download)."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@contextmanager
def jupyterlab(root: Path, timeout_s: float = 90):
    """Start JupyterLab serving `root` on 127.0.0.1 with a token; yield its base URL and token; stop it."""
    port, token = free_port(), secrets.token_hex(16)
    settings = root / ".jupyter-settings"
    notif = settings / "@jupyterlab" / "apputils-extension"
    notif.mkdir(parents=True, exist_ok=True)
    (notif / "notification.jupyterlab-settings").write_text(json.dumps({"fetchNews": "false", "checkForUpdates": False}))
    # every cell in the page, not only those on screen, so the test can read every prompt and output
    nbset = settings / "@jupyterlab" / "notebook-extension"
    nbset.mkdir(parents=True, exist_ok=True)
    (nbset / "tracker.jupyterlab-settings").write_text(json.dumps({"windowingMode": "none"}))
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(root / ".jupyter-config"),
           "JUPYTER_RUNTIME_DIR": str(root / ".jupyter-runtime"), "JUPYTERLAB_SETTINGS_DIR": str(settings)}
    log = open(root / "jupyterlab.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root", "--ServerApp.ip=127.0.0.1",
         f"--ServerApp.port={port}", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
         "--ServerApp.port_retries=0", "--LabApp.news_url=", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"],
        stdout=log, stderr=subprocess.STDOUT, env=env,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                with urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2) as r:
                    json.load(r)
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"JupyterLab did not start: {(root / 'jupyterlab.log').read_text()[-2000:]}")
                time.sleep(0.5)
        yield base, token
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def have_browser() -> bool:
    return Path(CHROMIUM).exists() and shutil.which("jupyter") is not None


def run_notebook_in_lab(page, base: str, token: str, name: str, timeout_s: float = 240) -> dict:
    """Open a notebook, run all cells from the Run menu, wait for the kernel, and report what rendered."""
    # a workspace of its own, reset: only this notebook open (JupyterLab otherwise restores earlier tabs)
    ws = "".join(ch if ch.isalnum() else "-" for ch in name)
    page.goto(f"{base}/lab/workspaces/{ws}/tree/{name}?token={token}&reset")
    page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=60_000)
    select = page.get_by_role("button", name="Select", exact=True)
    try:
        select.wait_for(timeout=5_000)
        select.click()
    except Exception:
        pass  # no kernel dialog: the notebook's kernel started by itself
    page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=90_000)
    n_code = page.locator(".jp-CodeCell").count()
    page.locator(".jp-Notebook").first.click()  # focus the notebook, so the Run menu acts on it
    page.get_by_role("menuitem", name="Run", exact=True).click()
    page.get_by_role("menuitem", name="Run All Cells", exact=True).click()
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        prompts = page.locator(".jp-CodeCell .jp-InputArea-prompt").all_inner_texts()
        done = [p for p in prompts if p.strip().startswith("[") and "*" not in p and p.strip() != "[ ]:"]
        if len(done) == n_code and n_code > 0:
            break
        time.sleep(0.5)
    else:
        raise TimeoutError(f"{name}: not every cell finished in {timeout_s:.0f} s ({prompts})")
    return {
        "code_cells": n_code,
        "errors": page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']").all_inner_texts(),
        "tracebacks": page.locator(".jp-RenderedText[data-mime-type='application/vnd.jupyter.error'], "
                                   ".jp-OutputArea-output .ansi-red-fg").count(),
        "svg_charts": page.locator(".jp-OutputArea-output svg .mark-group, .jp-OutputArea-output svg g.mark-symbol, "
                                   ".jp-OutputArea-output img[src^='data:image/svg'], .jp-RenderedSVG svg").count(),
        "tables": page.locator(".jp-OutputArea-output table").count(),
    }


def shutdown_kernels(base: str, token: str) -> None:
    """Stop every kernel the lab started (one per notebook opened), to keep the machine's load down."""
    req = urllib.request.Request(f"{base}/api/kernels?token={token}")
    with urllib.request.urlopen(req, timeout=10) as r:
        kernels = json.load(r)
    for k in kernels:
        urllib.request.urlopen(urllib.request.Request(f"{base}/api/kernels/{k['id']}?token={token}",
                                                      method="DELETE"), timeout=10).close()
