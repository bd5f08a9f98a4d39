"""What a notebook hands to the appendix: tables, charts and findings, shown in the notebook and saved.

Notebooks call these with the `appendix_dir` parameter the report passes in (None when an analyst runs the
notebook by hand: then they only display). Saved names are stable so the same inputs give the same appendix.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import polars as pl

SAFE = set("abcdefghijklmnopqrstuvwxyz0123456789_-")
SIG_FIGS = 10


def _name(name: str) -> str:
    if not name or set(name) - SAFE:
        raise ValueError(f"appendix item name {name!r}: use lower-case letters, digits, _ and - only")
    return name


def _display(obj: Any) -> None:
    try:
        from IPython.display import display
    except ImportError:  # pragma: no cover - outside IPython nothing is shown
        return
    display(obj)


def table(df: pl.DataFrame, name: str, caption: str = "", appendix_dir: str | Path | None = None,
          show_rows: int = 50) -> None:
    """Show a table (returns nothing, so a notebook shows it once) and save it as tables/<name>.csv and .parquet
    (sorted as given, floats to SIG_FIGS significant digits) with its caption."""
    _name(name)
    if appendix_dir:
        d = Path(appendix_dir) / "tables"
        d.mkdir(parents=True, exist_ok=True)
        # Floats saved to 10 significant digits: DuckDB sums in parallel, and the order of a float sum moves
        # its last bits from run to run; the same case must give the same appendix, byte for byte.
        df = df.with_columns(pl.col(pl.Float32, pl.Float64).round_sig_figs(SIG_FIGS))
        df.write_parquet(d / f"{name}.parquet", compression="zstd", statistics=False)
        df.write_csv(d / f"{name}.csv")
        (d / f"{name}.json").write_text(json.dumps({"name": name, "caption": caption, "rows": df.height,
                                                     "columns": df.columns}, sort_keys=True))
    _display(df.head(show_rows))


def chart(ch: Any, name: str, caption: str = "", appendix_dir: str | Path | None = None) -> None:
    """Show an Altair chart and save its Vega-Lite spec as charts/<name>.vl.json with its caption."""
    _name(name)
    if appendix_dir:
        d = Path(appendix_dir) / "charts"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"{name}.vl.json").write_text(json.dumps(ch.to_dict(), sort_keys=True))
        (d / f"{name}.json").write_text(json.dumps({"name": name, "caption": caption}, sort_keys=True))
    _display(_svg(ch))


def _svg(ch: Any) -> Any:
    """The chart as inline SVG (vl-convert): drawn offline, the same in JupyterLab, papermill and the appendix."""
    import vl_convert as vlc

    try:
        from IPython.display import SVG
    except ImportError:  # pragma: no cover
        return ch
    return SVG(vlc.vegalite_to_svg(ch.to_dict(), vl_version=_vl_version(ch)))


def _vl_version(ch: Any) -> str:
    schema = ch.to_dict().get("$schema", "")
    import re

    m = re.search(r"/v(\d+(?:\.\d+)*)\.json", schema)
    if not m:
        return "v5_20"
    parts = m.group(1).split(".")
    return f"v{parts[0]}_{parts[1] if len(parts) > 1 else 0}"


def finding(text: str, name: str, section: str = "evidence", appendix_dir: str | Path | None = None) -> None:
    """A one-paragraph finding for the post-mortem (section: impact, timeline, evidence, contributing)."""
    _name(name)
    if appendix_dir:
        d = Path(appendix_dir) / "findings"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"{name}.json").write_text(json.dumps({"name": name, "section": section, "text": text}, sort_keys=True))
    try:
        from IPython.display import Markdown

        _display(Markdown(text))
    except ImportError:  # pragma: no cover
        pass
