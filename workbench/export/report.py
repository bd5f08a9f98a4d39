"""`workbench report`: run the notebooks under papermill and export the post-mortem appendix.

Notebooks are `notebooks/NN-*.ipynb`, run in order, each with the parameters it declares in its `parameters`
cell: the report injects `case_path`, `incident_id`, `start`, `end` and `appendix_dir`, plus any `-p NAME=VALUE`.
A name no notebook declares, or a value that does not fit the declared literal's type, is an error before any
notebook runs. A failing cell stops the report with a ReportError naming the notebook and the cell, and the
executed notebook is kept beside the output folder.

The appendix is built in a staging folder and moved into place only when complete; what the notebooks
publish (tables, charts, findings) is redacted on the way out (see `redact.py`). Executed notebooks are
stripped of run-time metadata (timestamps, kernel versions, random cell ids), so the same case and parameters
give the same bytes.
"""

from __future__ import annotations

import ast
import datetime as dt
import os
import re
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..case import Case
from ..errors import ParameterError, ReportError, WorkbenchError
from .redact import Redactor

NOTEBOOK_NAME = re.compile(r"^\d\d-[A-Za-z0-9_.-]+\.ipynb$")
KERNEL = "workbench"
MARKER = ".workbench-appendix"
#: Altair's HTML output names its div with a random uuid; the cleaned notebook numbers them instead.
RANDOM_DIV = re.compile(r"altair-viz-[0-9a-f]{32}")
#: Parameters the report sets itself; users set the window with --start/--end, not -p.
REPORT_SET = ("case_path", "appendix_dir")

Progress = Callable[[str], None]


def default_notebooks_dir() -> Path:
    return Path(__file__).resolve().parent.parent.parent / "notebooks"


def discover(notebooks_dir: str | Path | None = None) -> list[Path]:
    """The report's notebooks (`NN-name.ipynb`) in their numeric order."""
    d = Path(notebooks_dir) if notebooks_dir else default_notebooks_dir()
    found = sorted(p for p in d.glob("*.ipynb") if NOTEBOOK_NAME.match(p.name))
    if not found:
        raise ReportError(f"{d}: no notebooks named NN-name.ipynb to run")
    return found


def declared_parameters(nb_path: Path) -> dict[str, Any]:
    """name -> default value of the notebook's `parameters` cell (literals only, as the house style asks)."""
    import papermill as pm

    declared = {}
    for name, p in pm.inspect_notebook(str(nb_path)).items():
        try:
            declared[name] = ast.literal_eval(p["default"])
        except (ValueError, SyntaxError):
            raise ParameterError(
                f"{nb_path.name}: parameter {name} = {p['default']} is not a literal; the parameters cell "
                "holds literals only"
            ) from None
    return declared


def coerce(name: str, value: Any, default: Any, where: str) -> Any:
    """`value` (a string from -p, or a Python value) converted to the type of the declared default."""
    want = type(default)
    if not isinstance(value, str) or want is str or default is None:
        if default is not None and not isinstance(value, want) and not (want is float and isinstance(value, int)):
            raise ParameterError(f"-p {name}: {where} declares {name} = {default!r} ({want.__name__}); "
                                 f"got {value!r} ({type(value).__name__})")
        return value
    try:
        if want is bool:
            low = value.strip().lower()
            if low not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError
            return low in ("true", "1", "yes")
        if want is int:
            return int(value)
        if want is float:
            return float(value)
        if want in (list, dict, tuple):
            v = ast.literal_eval(value)
            if not isinstance(v, want):
                raise ValueError
            return v
    except (ValueError, SyntaxError):
        pass
    raise ParameterError(f"-p {name}={value}: {where} declares {name} = {default!r}, so the value must be "
                         f"of type {want.__name__}")


def parse_assignments(pairs: list[str]) -> dict[str, str]:
    """`NAME=VALUE` strings from the command line into a dict (the value stays a string until checked)."""
    out: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        name = name.strip()
        if not sep or not name.isidentifier():
            raise ParameterError(f"-p {pair!r}: write parameters as NAME=VALUE, e.g. -p manifest_slo_ms=250")
        out[name] = value
    return out


def iso_param(value: str | dt.datetime | None, name: str, tz: str = "UTC") -> str:
    """--start/--end as the notebooks' string parameter: ISO 8601 in UTC ending in Z ("" when unset)."""
    from ..analysis.overview import parse_time

    if value is None or value == "":
        return ""
    t = value if isinstance(value, dt.datetime) else parse_time(value, name, tz)
    assert t is not None
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.UTC)
    return t.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


@dataclass
class Plan:
    """What runs: each notebook with the parameters it gets."""

    notebooks: list[Path]
    parameters: dict[str, dict[str, Any]] = field(default_factory=dict)  # notebook name -> injected values


def plan(case: Case, notebooks: list[Path], values: dict[str, Any], defaults: dict[str, Any] | None = None) -> Plan:
    """Check `values` against every notebook's parameters cell and work out what each notebook gets;
    `defaults` go only to the notebooks that declare them."""
    declared = {nb.name: declared_parameters(nb) for nb in notebooks}
    known = sorted({n for d in declared.values() for n in d})
    for name in values:
        if name in REPORT_SET:
            raise ParameterError(f"-p {name}: the report sets {name} itself; choose the case and --out instead")
        if not any(name in d for d in declared.values()):
            raise ParameterError(f"-p {name}: no notebook declares a parameter named {name!r}; "
                                 f"known parameters: {', '.join(n for n in known if n not in REPORT_SET)}")
    p = Plan(notebooks)
    for nb in notebooks:
        d = declared[nb.name]
        given = {**(defaults or {}), **values}
        got = {n: coerce(n, v, d[n], nb.name) for n, v in given.items() if n in d}
        if "case_path" in d:
            got["case_path"] = str(case.path)
        if "appendix_dir" in d:
            got["appendix_dir"] = "."
        p.parameters[nb.name] = dict(sorted(got.items()))
    return p


def kernel_name(say: Progress) -> str:
    """The `workbench` kernel when installed, else python3 (with a note saying how to install it)."""
    from jupyter_client.kernelspec import KernelSpecManager

    specs = KernelSpecManager().find_kernel_specs()
    if KERNEL in specs:
        return KERNEL
    say(f"kernel {KERNEL!r} is not installed (python -m ipykernel install --user --name {KERNEL}); using python3")
    return "python3"


def clean_notebook(nb) -> Any:
    """Strip what changes from run to run: timings, papermill paths, kernel versions, random cell ids."""
    md = nb.metadata
    pm = md.get("papermill", {})
    md.pop("papermill", None)
    if "parameters" in pm:
        md["papermill"] = {"parameters": pm["parameters"]}
    md.get("language_info", {}).pop("version", None)
    md.pop("widgets", None)
    ids: dict[str, str] = {}

    def stable(m: re.Match) -> str:
        return ids.setdefault(m.group(0), f"altair-viz-{len(ids) + 1}")

    for i, cell in enumerate(nb.cells):
        cell["id"] = f"cell-{i:03d}"
        for out in cell.get("outputs", []):
            for mime, value in out.get("data", {}).items():
                if mime == "text/html":
                    text = "".join(value) if isinstance(value, list) else value
                    out["data"][mime] = RANDOM_DIV.sub(stable, text)
        cell.metadata.pop("execution", None)
        cell.metadata.pop("papermill", None)
        cell.metadata.pop("ExecuteTime", None)
    return nb


def _title(nb, fallback: str) -> str:
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("# "):
                    return line[2:].strip()
    return fallback


def _failure(exc: Exception, nb_path: Path, kept: Path) -> ReportError:
    src = (getattr(exc, "source", "") or "").strip().splitlines()
    first = src[0] if src else ""
    idx = getattr(exc, "cell_index", None)
    count = getattr(exc, "exec_count", None)
    what = f"{getattr(exc, 'ename', type(exc).__name__)}: {getattr(exc, 'evalue', exc)}"
    # papermill counts its injected-parameters cell (right after the parameters cell); name the cell as the
    # analyst sees it in the committed notebook, counting from 1.
    if idx is None:
        cell = "before any cell ran"
    elif idx == 1:
        cell = f"the injected parameters cell ({first})"
    else:
        cell = f"cell {idx if idx >= 2 else 1} (In [{count}]: {first})"
    return ReportError(f"{nb_path.name}: {cell} failed with {what}; the executed notebook is kept at {kept}")


@contextmanager
def same_package() -> Iterator[None]:
    """Kernels started inside import this same `workbench` package (put its root first on PYTHONPATH)."""
    root = str(Path(__file__).resolve().parent.parent.parent)
    old = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join([root, old] if old else [root])
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = old


@contextmanager
def _ipc_kernels() -> Iterator[type]:
    """A kernel manager whose kernel talks over Unix sockets in a private folder rather than TCP on loopback: no
    port another local user could reach, and no warning from the kernel about unencrypted TCP on every run."""
    import tempfile

    from jupyter_client.manager import AsyncKernelManager

    folder = Path(tempfile.mkdtemp(prefix="workbench-kernel-"))  # mode 0700
    if len(str(folder)) > 80:  # a Unix socket's path has at most 107 bytes: TCP on loopback, as by default
        shutil.rmtree(folder, ignore_errors=True)
        yield AsyncKernelManager
        return

    class IpcKernelManager(AsyncKernelManager):
        def __init__(self, **kw: Any) -> None:
            super().__init__(**{"transport": "ipc", "ip": str(folder / "kernel"), **kw})

    try:
        yield IpcKernelManager
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def run_notebook(nb_path: Path, params: dict[str, Any], workdir: Path, kernel: str, redactor: Redactor,
                 keep_failed: Path) -> tuple[Any, str]:
    """Execute one notebook in `workdir` (its appendix_dir); returns (cleaned, redacted notebook, title)."""
    import nbformat
    import papermill as pm
    from papermill.exceptions import PapermillExecutionError

    workdir.mkdir(parents=True, exist_ok=True)
    executed = workdir / nb_path.name
    try:
        with same_package(), _ipc_kernels() as manager:
            pm.execute_notebook(str(nb_path), str(executed), parameters=params, kernel_name=kernel, cwd=str(workdir),
                                progress_bar=False, log_output=False, kernel_manager_class=manager)
    except (PapermillExecutionError, RuntimeError, OSError) as exc:
        keep_failed.mkdir(parents=True, exist_ok=True)
        kept = keep_failed / nb_path.name
        if executed.exists():
            nb = redactor.notebook(clean_notebook(nbformat.read(executed, as_version=4)))
            nbformat.write(nb, kept)
        raise _failure(exc, nb_path, kept) from None
    nb = redactor.notebook(clean_notebook(nbformat.read(executed, as_version=4)))
    return nb, _title(nb, nb_path.stem)


def incident_id_default(case: Case) -> str:
    name = case.path.name
    return case.path.parent.name if name == "case" else name


def run_report(
    case_path: str | Path,
    start: str | dt.datetime | None = None,
    end: str | dt.datetime | None = None,
    out: str | Path | None = None,
    params: dict[str, Any] | None = None,
    notebooks_dir: str | Path | None = None,
    notebooks: list[Path] | None = None,
    defaults: dict[str, Any] | None = None,
    ip_key: str | None = None,
    progress: Progress | None = None,
) -> Path:
    """Run the notebooks over a case and export the appendix; returns the appendix's index.html."""
    from ..analysis.overview import window
    from .appendix import Meta, write_appendix

    say = progress or (lambda m: None)
    case = Case(case_path)
    if not case.exists():
        raise WorkbenchError(f"{case.path}: no case here; ingest evidence first with `workbench ingest`")
    out_dir = Path(out).resolve() if out else case.path / "report"
    if out_dir.exists() and any(out_dir.iterdir()) and not (out_dir / MARKER).exists():
        raise ReportError(f"{out_dir}: exists and is not an appendix folder; choose an empty or new --out")
    values: dict[str, Any] = dict(params or {})
    tz = str(values.get("tz", "UTC"))
    for name, v in (("start", start), ("end", end)):
        if v not in (None, ""):
            if name in values:
                raise ParameterError(f"give the {name} once: --{name} or -p {name}=…, not both")
            values[name] = iso_param(v, name, tz)
    nbs = notebooks or discover(notebooks_dir)
    todo = plan(case, nbs, values, {"incident_id": incident_id_default(case), **(defaults or {})})
    values.setdefault("incident_id", incident_id_default(case))
    redactor = Redactor.from_key(ip_key)
    kernel = kernel_name(say)

    con = case.connect()
    try:
        w0, w1 = window(con, str(values.get("start", "")), str(values.get("end", "")), tz)
    finally:
        con.close()

    staging = out_dir.parent / f".{out_dir.name}.partial"
    shutil.rmtree(staging, ignore_errors=True)
    failed = out_dir.parent / f"{out_dir.name}.failed"
    shutil.rmtree(failed, ignore_errors=True)
    try:
        runs = []
        for i, nb_path in enumerate(todo.notebooks, 1):
            say(f"running {nb_path.name} ({i}/{len(todo.notebooks)}) on kernel {kernel}")
            workdir = staging / "runs" / nb_path.stem
            nb, title = run_notebook(nb_path, todo.parameters[nb_path.name], workdir, kernel, redactor, failed)
            runs.append((nb_path.stem, title, nb, workdir))
        say("exporting the appendix (tables, charts, HTML, Markdown)")
        meta = Meta(incident_id=str(values["incident_id"]), case_name=f"{case.path.parent.name}/{case.path.name}", start=w0, end=w1,
                    parameters={k: v for k, v in sorted(values.items())}, pseudonymised=redactor.ip_key is not None)
        build = staging / "appendix"
        write_appendix(build, runs, meta, redactor)
        (build / MARKER).write_text("workbench appendix\n")
        if out_dir.exists():
            old = staging / "previous"
            out_dir.rename(old)
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        build.rename(out_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out_dir / "index.html"
