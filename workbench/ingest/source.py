"""Reading input files: compression, hashing, and streaming them as numbered lines in bounded blocks."""

from __future__ import annotations

import hashlib
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..errors import InputError

READ_BYTES = 1 << 20  # compressed bytes per read
BLOCK_BYTES = 8 << 20  # decoded text per block handed to a parser
BATCH_ROWS = 32 * 1024  # lines per record batch (DuckDB scans batches in parallel)
MAX_RAW = 64 * 1024  # longest raw text kept in rejects


@dataclass
class Damage:
    """Set when a compressed file ends early or is corrupt: the lines before the damage are kept."""

    message: str | None = None


def compression_of(path: Path) -> str | None:
    with open(path, "rb") as fh:
        magic = fh.read(4)
    if magic[:2] == b"\x1f\x8b":
        return "gzip"
    if magic == b"\x28\xb5\x2f\xfd":
        return "zstd"
    return None


@dataclass
class FileScan:
    """What one pass over a file's stored bytes tells: its digest, its line count (a last line without a
    newline counts) and whether it holds bytes that DuckDB's line reader treats differently (CR, NUL)."""

    sha256: str
    lines: int
    has_cr: bool
    has_nul: bool


def scan_file(path: Path) -> FileScan:
    """One pass over the stored bytes. With the compiled module, each chunk is hashed on another thread while
    its lines are counted (both release the GIL), so the pass costs about what hashing alone does."""
    try:
        from ._native import scan
    except ImportError:
        scan = None
    h = hashlib.sha256()
    newlines = 0
    last = b""
    cr = nul = False
    with open(path, "rb") as fh, ThreadPoolExecutor(1, thread_name_prefix="workbench-sha256") as pool:
        hashing = None
        while chunk := fh.read(4 << 20):
            if scan is None:
                h.update(chunk)
                newlines += chunk.count(b"\n")
                cr = cr or b"\r" in chunk
                nul = nul or b"\x00" in chunk
            else:
                if hashing is not None:
                    hashing.result()
                hashing = pool.submit(h.update, chunk)
                n, c, z = scan(chunk)
                newlines, cr, nul = newlines + n, cr or c, nul or z
            last = chunk[-1:]
        if hashing is not None:
            hashing.result()
    return FileScan(h.hexdigest(), newlines + (1 if last not in (b"", b"\n") else 0), cr, nul)


def _raw_chunks(fh: BinaryIO, compression: str | None, damage: Damage) -> Iterator[bytes]:
    """Decompressed bytes; on damage, yields what decoded cleanly and records what went wrong."""
    if compression is None:
        while chunk := fh.read(READ_BYTES):
            yield chunk
        return
    if compression == "gzip":
        d = zlib.decompressobj(zlib.MAX_WBITS | 16)
        fed = False  # the current member has received input
        offset = 0
        while chunk := fh.read(READ_BYTES):
            offset += len(chunk)
            try:
                while chunk:
                    fed = True
                    out = d.decompress(chunk)
                    if out:
                        yield out
                    if d.eof:  # next gzip member (concatenated .gz files are valid)
                        chunk = d.unused_data
                        d = zlib.decompressobj(zlib.MAX_WBITS | 16)
                        fed = False
                    else:
                        chunk = b""
            except zlib.error as exc:
                damage.message = f"gzip data corrupt near compressed byte {offset} ({exc}); lines before the damage were kept"
                return
        if fed and not d.eof:
            tail = d.flush()
            if tail:
                yield tail
            damage.message = "gzip stream truncated (ended before its end marker); lines before the damage were kept"
        return
    if compression == "zstd":
        import zstandard

        dctx = zstandard.ZstdDecompressor()
        dobj = dctx.decompressobj()
        try:
            while chunk := fh.read(READ_BYTES):
                out = dobj.decompress(chunk)
                if out:
                    yield out
                while dobj.eof and dobj.unused_data:
                    rest = dobj.unused_data
                    dobj = dctx.decompressobj()
                    out = dobj.decompress(rest)
                    if out:
                        yield out
        except zstandard.ZstdError as exc:
            damage.message = f"zstd data corrupt: {exc}; lines before the damage were kept"
            return
        if not dobj.eof:
            damage.message = "zstd stream truncated (frame incomplete); lines before the damage were kept"
        return
    raise InputError(f"unknown compression {compression}")


@dataclass
class LineBlock:
    """A block of whole lines: numbers (1-based) and text, as an Arrow table (line_no, text)."""

    table: pa.Table
    first_line: int


@dataclass
class LineReader:
    """Streams a file as blocks of numbered lines, decoding UTF-8 (invalid bytes become U+FFFD and are counted)."""

    path: Path
    compression: str | None = None
    damage: Damage = field(default_factory=Damage)
    lines: int = 0
    invalid_utf8_lines: int = 0

    def head(self, max_bytes: int = 256 * 1024, max_lines: int = 400) -> list[str]:
        """The first lines of the decoded stream, for format detection."""
        buf = b""
        with open(self.path, "rb") as fh:
            for chunk in _raw_chunks(fh, self.compression, Damage()):
                buf += chunk
                if len(buf) >= max_bytes:
                    break
        lines = buf[:max_bytes].decode("utf-8", errors="replace").replace("\r\n", "\n").split("\n")
        if len(buf) >= max_bytes:
            lines = lines[:-1]  # last one may be cut
        return [ln for ln in lines if ln.strip()][:max_lines]

    def blocks(self, block_bytes: int = BLOCK_BYTES) -> Iterator[LineBlock]:
        pending = b""
        with open(self.path, "rb") as fh:
            buf: list[bytes] = []
            size = 0
            for chunk in _raw_chunks(fh, self.compression, self.damage):
                buf.append(chunk)
                size += len(chunk)
                if size >= block_bytes:
                    data = pending + b"".join(buf)
                    cut = data.rfind(b"\n")
                    if cut < 0:  # one enormous line: keep reading
                        pending, buf, size = data, [], 0
                        if len(pending) > 16 * block_bytes:
                            # cap memory: emit it as a line of its own
                            yield self._block(pending, final_line=True)
                            pending = b""
                        continue
                    yield self._block(data[: cut + 1])
                    pending, buf, size = data[cut + 1 :], [], 0
            data = pending + b"".join(buf)
            if data:
                yield self._block(data, final_line=True)

    def _block(self, data: bytes, final_line: bool = False) -> LineBlock:
        """Split decoded text into numbered lines inside Arrow (no Python string per line), as several record
        batches so that DuckDB can parse them on every core."""
        try:
            whole = pa.array([data], pa.large_binary()).cast(pa.large_string())  # validates UTF-8
        except pa.ArrowInvalid:
            text = data.decode("utf-8", errors="replace")
            self.invalid_utf8_lines += _count_invalid(data)
            data = text.encode("utf-8")
            whole = None
        if b"\x00" in data:
            data, whole = data.replace(b"\x00", "\ufffd".encode()), None
        if b"\r\n" in data:
            data, whole = data.replace(b"\r\n", b"\n"), None
        if data.endswith(b"\n"):
            data, whole = data[:-1], None
        if whole is None:
            whole = pa.array([data], pa.large_binary()).cast(pa.large_string())
        lines = pc.split_pattern(whole, "\n").flatten().cast(pa.string())
        first = self.lines + 1
        self.lines += len(lines)
        table = pa.table({"line_no": pa.array(np.arange(first, first + len(lines), dtype=np.int64)), "text": lines})
        return LineBlock(pa.Table.from_batches(table.to_batches(max_chunksize=BATCH_ROWS), table.schema), first)


def _count_invalid(data: bytes) -> int:
    n = 0
    for line in data.split(b"\n"):
        try:
            line.decode("utf-8")
        except UnicodeDecodeError:
            n += 1
    return n


def clip_raw(text: str) -> str:
    if text is None:
        return text
    if len(text) > MAX_RAW:
        return text[:MAX_RAW] + f"… [line was {len(text)} characters]"
    return text


def open_text_head(path: Path) -> list[str]:
    """Convenience for tests: first lines of a file, decompressed."""
    return LineReader(path, compression_of(path)).head()


__all__ = ["LineReader", "LineBlock", "Damage", "compression_of", "scan_file", "FileScan", "clip_raw"]
