"""The one list of input formats. The CLI (`workbench formats`), detection and the notebooks loop over it."""

from __future__ import annotations

from ..errors import InputError
from .base import Context, Format
from .wrappers import WRAPPERS, Wrapper, as_block


def _formats() -> list[Format]:
    from . import (distribution, gc, gitlab, harbor, haproxy, kernel, kubernetes, netstat, nginx, pg_snapshots,
                   postgres, prometheus, redis, sysstat, tls, zot)
    from .base import Empty

    # more specific formats first: on equal scores the earlier one wins
    return [
        *gc.FORMATS,  # before the registry logs: a file of upload-purge lines alone is GC evidence, and a
        # Harbor GC job log is written in Harbor's core line format
        *kubernetes.FORMATS,  # before the registry logs: containerd writes logrus lines too
        *gitlab.FORMATS,
        *zot.FORMATS,
        *harbor.FORMATS,
        *distribution.FORMATS,
        *nginx.FORMATS,
        *haproxy.FORMATS,
        *prometheus.FORMATS,
        *kernel.FORMATS,
        *sysstat.FORMATS,
        *netstat.FORMATS,
        *redis.FORMATS,
        *tls.FORMATS,
        *postgres.FORMATS,
        *pg_snapshots.FORMATS,
        Empty(),
    ]


FORMATS: list[Format] = _formats()
SNIFF_MIN = 0.5


def get_format(name: str) -> Format:
    for f in FORMATS:
        if f.name == name:
            return f
    names = ", ".join(f.name for f in FORMATS)
    raise InputError(f"unknown format {name!r}; known formats: {names} (see `workbench formats`)")


def detect(ctx: Context, head: list[str], forced: str | None = None) -> tuple[list[Wrapper], Format]:
    """Peel wrappers off the first lines (up to three deep), then pick the best-scoring format.

    With `forced`, the format is checked against the head: if none of the lines fit, that is one clear error
    instead of a file's worth of rejects.
    """
    import pyarrow as pa

    wrappers: list[Wrapper] = []
    lines = head
    # a format may know its own wrapped form (Harbor's `registry[pid]:` syslog lines): it gets the file even
    # though the wrapper is removed before parsing
    raw_scores = [(f.sniff_raw(head), f) for f in FORMATS if hasattr(f, "sniff_raw")]
    claimed = max(raw_scores, key=lambda x: x[0], default=(0.0, None))
    for _ in range(3):
        scored = sorted(((w().sniff(lines), w) for w in WRAPPERS), key=lambda x: -x[0])
        if not scored or scored[0][0] < 0.6:
            break
        w = scored[0][1]()
        tbl = as_block(pa.table({"line_no": pa.array(range(1, len(lines) + 1), pa.int64()),
                                 "text": pa.array(lines, pa.string())}))
        res = w.unwrap(ctx, tbl, True)
        wrappers.append(w)
        lines = [t for t in res.lines.column("text").to_pylist() if t and t.strip()]
    where = f" inside {'/'.join(w.name for w in wrappers)}" if wrappers else ""
    if forced:
        fmt = get_format(forced)
        if lines and fmt.sniff(lines) == 0:
            raise InputError(
                f"{ctx.source_file}: none of the first {len(lines)} lines{where} look like {forced}; "
                f"drop --format to detect it, or see `workbench formats`"
            )
        return wrappers, fmt
    if not lines:
        return wrappers, get_format("empty")
    if claimed[0] >= 0.6:
        return wrappers, claimed[1]
    scores = sorted(((f.sniff(lines), i, f) for i, f in enumerate(FORMATS)), key=lambda x: (-x[0], x[1]))
    best_score, _, best = scores[0]
    if best_score < SNIFF_MIN:
        raise InputError(
            f"{ctx.source_file}: format not recognised{where} (best guess {best.name}, {best_score:.0%} of the "
            f"first {len(lines)} lines); pass --format NAME (see `workbench formats`)"
        )
    return wrappers, best
