"""Write the appendix folder from what the notebooks published: one self-contained HTML page, Markdown with SVG
images, every table as CSV and Parquet, the chart specs, the executed notebooks and the data dictionary.

Layout follows a post-mortem: impact, timeline, evidence (by failure domain), contributing factors, then the
evidence each notebook produced. Finding sections come from `publish.finding(section=…)`; a section written
`evidence:<domain>` (or `evidence/<domain>`) files the finding under that failure domain. Items are ordered by
notebook, then by name. Charts are rendered to SVG with vl-convert (no JavaScript, nothing fetched), so the
page opens offline and the bytes are the same on every run.
"""

from __future__ import annotations

import datetime as dt
import html
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow.parquet as pq

from .. import schema
from ..errors import ReportError
from .redact import Redactor

SECTIONS = [("impact", "Impact"), ("timeline", "Timeline"), ("evidence", "Evidence by failure domain"),
            ("contributing", "Contributing factors")]
HTML_ROWS = 100
MD_ROWS = 30


@dataclass
class Meta:
    incident_id: str
    case_name: str
    start: dt.datetime
    end: dt.datetime
    parameters: dict[str, Any] = field(default_factory=dict)
    pseudonymised: bool = False


@dataclass
class Published:
    notebook: str
    title: str
    tables: list[dict] = field(default_factory=list)  # name, caption, frame
    charts: list[dict] = field(default_factory=list)  # name, caption, spec, svg
    findings: list[dict] = field(default_factory=list)  # name, section, text


def _read_json(p: Path) -> dict:
    return json.loads(p.read_text())


def collect(runs: list[tuple[str, str, Any, Path]], redactor: Redactor) -> list[Published]:
    """Read each notebook's appendix_dir: redacted tables, chart specs (rendered) and findings, by name."""
    seen: dict[str, str] = {}
    result = []
    for stem, title, _nb, workdir in runs:
        pub = Published(stem, redactor.text(title))
        for kind in ("tables", "charts", "findings"):
            d = workdir / kind
            if not d.is_dir():
                continue
            names = sorted(p.name.split(".")[0] for p in d.glob("*.json") if not p.name.endswith(".vl.json"))
            for name in names:
                key = f"{kind}/{name}"
                if key in seen:
                    raise ReportError(f"{stem} and {seen[key]} both publish {key}; give one of them another name")
                seen[key] = stem
                meta = _read_json(d / f"{name}.json")
                if kind == "tables":
                    frame = redactor.frame(pl.read_parquet(d / f"{name}.parquet"))
                    pub.tables.append({"name": name, "caption": redactor.text(meta.get("caption", "")), "frame": frame})
                elif kind == "charts":
                    spec = redactor.obj(_read_json(d / f"{name}.vl.json"))
                    pub.charts.append({"name": name, "caption": redactor.text(meta.get("caption", "")), "spec": spec,
                                       "svg": render_svg(spec, name)})
                else:
                    pub.findings.append({"name": name, "section": str(meta.get("section", "evidence")),
                                         "text": redactor.text(meta.get("text", ""))})
        result.append(pub)
    return result


def render_svg(spec: dict, name: str) -> str:
    """A Vega-Lite spec as SVG, with no data fetched from anywhere, its element ids prefixed with the chart's
    name so several charts can sit inline in one page."""
    import vl_convert as vlc

    m = re.search(r"/v(\d+)\.(\d+)", str(spec.get("$schema", "")))
    version = f"{m.group(1)}.{m.group(2)}" if m else None
    if version not in vlc.get_vegalite_versions():
        version = None
    try:
        svg = vlc.vegalite_to_svg(spec, vl_version=version, allowed_base_urls=[])
    except Exception as exc:  # vl-convert raises ValueError for bad specs; keep the chart's name in the message
        raise ReportError(f"chart {name}: cannot render ({' '.join(str(exc).split())[:300]})") from None
    ids = set(re.findall(r'\bid="([^"]+)"', svg))
    for i in sorted(ids, key=len, reverse=True):
        svg = svg.replace(f'id="{i}"', f'id="{name}-{i}"').replace(f"url(#{i})", f"url(#{name}-{i})")
        svg = svg.replace(f'href="#{i}"', f'href="#{name}-{i}"')
    return svg


def _cell(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, dt.datetime):
        return v.isoformat().replace("+00:00", "Z")
    if isinstance(v, float):
        return f"{v:.6g}"
    return str(v)


def _section_of(f: dict) -> tuple[str, str]:
    base, _, domain = f["section"].strip().lower().replace("/", ":").partition(":")
    return base.strip(), domain.strip()


# ---- HTML ----------------------------------------------------------------------------------------

CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0 auto;max-width:1100px;padding:1rem 2rem;color:#1b1f24}
h1{font-size:1.6rem;margin-bottom:.2rem} h2{border-bottom:1px solid #d0d7de;padding-bottom:.2rem;margin-top:2rem}
.meta{color:#57606a} nav ol{columns:2} .finding{background:#f6f8fa;border-left:4px solid #0969da;padding:.5rem .8rem;margin:.5rem 0}
.finding .src{color:#57606a;font-size:.85em} figure{margin:1rem 0} figcaption{color:#57606a;font-size:.9em}
table{border-collapse:collapse;font-size:12px;margin:.4rem 0} th,td{border:1px solid #d0d7de;padding:2px 6px;text-align:left;vertical-align:top}
th{background:#f6f8fa} td.num{text-align:right;font-variant-numeric:tabular-nums} .scroll{overflow-x:auto}
.none{color:#57606a;font-style:italic}
"""


def _e(s: Any) -> str:
    return html.escape(str(s), quote=True)


def _para(text: str) -> str:
    """A finding's text as HTML paragraphs (escaped; `code` spans and **bold** kept)."""
    out = []
    for para in re.split(r"\n\s*\n", text.strip()):
        p = _e(para)
        p = re.sub(r"`([^`]+)`", r"<code>\1</code>", p)
        p = re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", p)
        out.append(f"<p>{p}</p>")
    return "".join(out)


def html_table(df: pl.DataFrame, rows: int = HTML_ROWS) -> str:
    num = [dt_.is_numeric() for dt_ in df.dtypes]
    head = "".join(f"<th>{_e(c)}</th>" for c in df.columns)
    body = []
    for r in df.head(rows).iter_rows():
        body.append("<tr>" + "".join(f'<td class="num">{_e(_cell(v))}</td>' if n else f"<td>{_e(_cell(v))}</td>"
                                     for v, n in zip(r, num, strict=True)) + "</tr>")
    more = f'<p class="none">{df.height - rows} more rows in the CSV.</p>' if df.height > rows else ""
    return f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table></div>{more}'


def _findings_html(pubs: list[Published]) -> list[str]:
    by: dict[str, dict[str, list[tuple[str, dict]]]] = {}
    for pub in pubs:
        for f in pub.findings:
            base, domain = _section_of(f)
            by.setdefault(base, {}).setdefault(domain, []).append((pub.notebook, f))
    known = [s for s, _ in SECTIONS]
    order = SECTIONS + [(s, s.replace("_", " ").capitalize()) for s in sorted(by) if s not in known]
    parts = []
    for key, title in order:
        parts.append(f'<section id="{_e(key)}"><h2>{_e(title)}</h2>')
        groups = by.get(key, {})
        if not groups:
            parts.append('<p class="none">No finding in this section.</p>')
        for domain in sorted(groups):
            if domain:
                parts.append(f"<h3>{_e(domain)}</h3>")
            for nb, f in groups[domain]:
                parts.append(f'<div class="finding" id="finding-{_e(f["name"])}">{_para(f["text"])}'
                             f'<div class="src">{_e(nb)} · {_e(f["name"])}</div></div>')
        parts.append("</section>")
    return parts


def dictionary_frame() -> pl.DataFrame:
    return pl.DataFrame(schema.data_dictionary())


def write_html(path: Path, pubs: list[Published], meta: Meta, notebooks: list[str], redactor: Redactor) -> None:
    fmt = "%Y-%m-%d %H:%M:%S UTC"
    title = f"Post-mortem appendix: {meta.incident_id}"
    nav = [f'<li><a href="#{k}">{_e(t)}</a></li>' for k, t in SECTIONS]
    nav += [f'<li><a href="#nb-{_e(p.notebook)}">{_e(p.title)}</a></li>' for p in pubs]
    nav += ['<li><a href="#dictionary">Data dictionary</a></li>', '<li><a href="#files">Files</a></li>']
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; style-src \'unsafe-inline\'; '
        'img-src data:">',
        f"<title>{_e(title)}</title><style>{CSS}</style></head><body>",
        f"<header><h1>{_e(title)}</h1>",
        f'<p class="meta">Incident window {meta.start.strftime(fmt)} to {meta.end.strftime(fmt)} · case '
        f"{_e(meta.case_name)} · {len(notebooks)} notebook(s)"
        + (" · IP addresses pseudonymised" if meta.pseudonymised else "") + "</p>",
        '<p class="meta">Parameters: ' + ", ".join(f"<code>{_e(k)}={_e(v)}</code>" for k, v in meta.parameters.items())
        + "</p></header>",
        f"<nav><ol>{''.join(nav)}</ol></nav>",
        *_findings_html(pubs),
    ]
    for pub in pubs:
        parts.append(f'<section id="nb-{_e(pub.notebook)}" class="notebook"><h2>{_e(pub.title)}</h2>'
                     f'<p class="meta">From <a href="notebooks/{_e(pub.notebook)}.ipynb">{_e(pub.notebook)}.ipynb</a></p>')
        for c in pub.charts:
            parts.append(f'<figure class="chart" id="chart-{_e(c["name"])}">{_svg_inline(c["svg"])}'
                         f'<figcaption>{_e(c["caption"] or c["name"])}</figcaption></figure>')
        for t in pub.tables:
            parts.append(f'<figure class="table" id="table-{_e(t["name"])}"><figcaption>{_e(t["caption"] or t["name"])} '
                         f'({t["frame"].height} rows; <a href="tables/{_e(t["name"])}.csv">CSV</a>, '
                         f'<a href="tables/{_e(t["name"])}.parquet">Parquet</a>)</figcaption>{html_table(t["frame"])}</figure>')
        if not (pub.charts or pub.tables):
            parts.append('<p class="none">This notebook published no table or chart.</p>')
        parts.append("</section>")
    parts.append('<section id="dictionary"><h2>Data dictionary</h2>'
                 '<p class="meta">Columns of the case tables (<a href="data-dictionary.csv">CSV</a>).</p>'
                 f"{html_table(dictionary_frame(), rows=10_000)}</section>")
    files = "".join(f'<li><a href="notebooks/{_e(n)}.ipynb">notebooks/{_e(n)}.ipynb</a></li>' for n in notebooks)
    parts.append(f'<section id="files"><h2>Files</h2><ul>{files}<li><a href="appendix.md">appendix.md</a></li>'
                 "</ul></section>")
    parts.append(f'<footer class="meta"><p>Stamped with the incident time: {meta.end.strftime(fmt)}.</p></footer>')
    parts.append("</body></html>\n")
    path.write_text(redactor.text("\n".join(parts)), encoding="utf-8")


def _svg_inline(svg: str) -> str:
    return re.sub(r"^<\?xml[^>]*>\s*", "", svg.strip())


# ---- Markdown ------------------------------------------------------------------------------------

def _md_escape(s: str) -> str:
    return s.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ").replace("<", "&lt;").replace(">", "&gt;")


def md_table(df: pl.DataFrame, rows: int = MD_ROWS) -> str:
    lines = ["| " + " | ".join(_md_escape(c) for c in df.columns) + " |",
             "| " + " | ".join("---:" if d.is_numeric() else "---" for d in df.dtypes) + " |"]
    for r in df.head(rows).iter_rows():
        lines.append("| " + " | ".join(_md_escape(_cell(v)) for v in r) + " |")
    if df.height > rows:
        lines.append(f"\n{df.height - rows} more rows in the CSV.")
    return "\n".join(lines)


def write_markdown(path: Path, pubs: list[Published], meta: Meta, redactor: Redactor) -> None:
    fmt = "%Y-%m-%d %H:%M:%S UTC"
    out = [f"# Post-mortem appendix: {meta.incident_id}", "",
           f"Incident window {meta.start.strftime(fmt)} to {meta.end.strftime(fmt)}; case {meta.case_name}."
           + (" IP addresses pseudonymised." if meta.pseudonymised else ""), ""]
    by: dict[str, list[tuple[str, str, dict]]] = {}
    for pub in pubs:
        for f in pub.findings:
            base, domain = _section_of(f)
            by.setdefault(base, []).append((domain, pub.notebook, f))
    known = [s for s, _ in SECTIONS]
    for key, title in SECTIONS + [(s, s.capitalize()) for s in sorted(by) if s not in known]:
        out += [f"## {title}", ""]
        items = sorted(by.get(key, []), key=lambda x: x[0])
        if not items:
            out += ["_No finding in this section._", ""]
        for domain, nb, f in items:
            out += [(f"**{domain}**: " if domain else "") + f["text"].strip(), "", f"<sub>{nb} · {f['name']}</sub>", ""]
    for pub in pubs:
        out += [f"## {pub.title}", "", f"From [notebooks/{pub.notebook}.ipynb](notebooks/{pub.notebook}.ipynb).", ""]
        for c in pub.charts:
            out += [f"![{_md_escape(c['caption'] or c['name'])}](images/{c['name']}.svg)", ""]
        for t in pub.tables:
            out += [f"**{_md_escape(t['caption'] or t['name'])}** ({t['frame'].height} rows; "
                    f"[CSV](tables/{t['name']}.csv), [Parquet](tables/{t['name']}.parquet))", "", md_table(t["frame"]), ""]
    out += ["## Data dictionary", "", md_table(dictionary_frame(), rows=10_000), ""]
    path.write_text(redactor.text("\n".join(out)), encoding="utf-8")


# ---- the folder ----------------------------------------------------------------------------------

def write_table(frame: pl.DataFrame, base: Path) -> None:
    """CSV and zstd Parquet, both deterministic (no statistics, no timestamps in the file)."""
    frame.write_csv(base.with_suffix(".csv"))
    pq.write_table(frame.to_arrow(), base.with_suffix(".parquet"), compression="zstd", write_statistics=False)


def write_appendix(dst: Path, runs: list[tuple[str, str, Any, Path]], meta: Meta, redactor: Redactor) -> None:
    import nbformat

    pubs = collect(runs, redactor)
    for sub in ("tables", "charts", "images", "notebooks"):
        (dst / sub).mkdir(parents=True, exist_ok=True)
    for pub in pubs:
        for t in pub.tables:
            write_table(t["frame"], dst / "tables" / t["name"])
        for c in pub.charts:
            (dst / "charts" / f"{c['name']}.vl.json").write_text(json.dumps(c["spec"], sort_keys=True, indent=1))
            (dst / "images" / f"{c['name']}.svg").write_text(c["svg"])
    for stem, _title, nb, _w in runs:
        nbformat.write(nb, dst / "notebooks" / f"{stem}.ipynb")
    write_table(dictionary_frame(), dst / "data-dictionary")
    (dst / "data-dictionary.md").write_text("# Data dictionary\n\n" + md_table(dictionary_frame(), rows=10_000) + "\n")
    write_html(dst / "index.html", pubs, meta, [r[0] for r in runs], redactor)
    write_markdown(dst / "appendix.md", pubs, meta, redactor)
