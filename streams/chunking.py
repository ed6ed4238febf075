"""Cut audit-log files into text chunks that end on record boundaries.

Parsers are vectorised over chunks, so a chunk must never split a record: each cut is
made just before a line that the format's ``record_start`` pattern says begins a new
record. Bytes that are not UTF-8 are rejected line by line (``not_utf8``) and replaced by
empty lines so line numbers stay true. A run of more than
:data:`streams.base.MAX_RECORD_CHARS` without any record start is cut anyway; the parser
rejects the pieces.
"""

from __future__ import annotations

import gzip
import io
import os
import re
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import IO

import numpy as np
import polars as pl

from streams.base import MAX_RECORD_CHARS
from streams.deadletter import empty_rejects, rejects_frame
from streams.exceptions import SourceReadError

#: Every chunk pays ~20 ms of fixed polars work (dozens of small plans); at 48 MiB that is
#: ~4% of a chunk's time, at 32 MiB ~7% (2M csvlog lines: 2.61 s vs 2.81 s, for ~300 MB
#: more peak memory: three chunks are in flight).
DEFAULT_CHUNK_BYTES = 48 * 1024 * 1024
#: How far back from a chunk's end to look for a record start before reading on.
_MAX_BACKTRACK_LINES = 20_000
#: Bytes counted per step by :func:`count_lines`.
_COUNT_BLOCK = 1 << 16
#: How much of a block's end is read first to find the cut in a plain file (the cut is
#: almost always within the last few lines).
_TAIL_BYTES = 1 << 18


@dataclass(frozen=True)
class Chunk:
    """Bytes of whole records and where they start; decoded on first use.

    Parsers with a bytes fast path (csvlog) never pay for decoding valid input.
    """

    data: bytes
    first_line: int
    source: str

    @cached_property
    def _decoded(self) -> tuple[str, pl.DataFrame]:
        return _decode(self.data, self.source, self.first_line)

    @property
    def text(self) -> str:
        """The chunk as text; lines that are not UTF-8 are blanked (see ``rejects``)."""
        return self._decoded[0]

    @property
    def rejects(self) -> pl.DataFrame:
        """The ``not_utf8`` rejects found while decoding."""
        return self._decoded[1]

    @cached_property
    def lines(self) -> int:
        """Physical lines in the chunk (a last line without newline counts)."""
        return count_lines(self.data)


def count_lines(data: bytes) -> int:
    """Physical lines in ``data`` (a last line without newline counts).

    numpy counts ~3x faster than ``bytes.count`` and releases the GIL, which matters
    because chunks are counted on the thread that feeds the parsers. It compares block by
    block into one small reused mask: a mask of the whole chunk would be a fresh
    allocation the size of the chunk, and faulting its pages in costs more than counting.
    """
    view = np.frombuffer(data, dtype=np.uint8)
    mask = np.empty(min(len(view), _COUNT_BLOCK), dtype=np.bool_)
    newlines = 0
    for start in range(0, len(view), _COUNT_BLOCK):
        block = view[start : start + _COUNT_BLOCK]
        part = mask[: len(block)]
        np.equal(block, 10, out=part)
        newlines += int(np.count_nonzero(part))
    return newlines + (0 if data.endswith(b"\n") else 1)


def open_binary(path: Path) -> IO[bytes]:
    """Open a log file, transparently gunzipping ``*.gz``."""
    try:
        if path.suffix == ".gz":
            return gzip.open(path, "rb")
        return path.open("rb")
    except OSError as exc:
        raise SourceReadError(f"cannot open {path}: {exc.strerror or exc}") from exc


def _decode(data: bytes, source: str, first_line: int) -> tuple[str, pl.DataFrame]:
    try:
        return data.decode("utf-8"), empty_rejects()
    except UnicodeDecodeError:
        pass
    lines = data.split(b"\n")
    out: list[str] = []
    bad: list[tuple[int, str, str]] = []
    for i, line in enumerate(lines):
        try:
            out.append(line.decode("utf-8"))
        except UnicodeDecodeError:
            bad.append((first_line + i, "not_utf8", line.decode("utf-8", "replace")))
            out.append("")
    return "\n".join(out), rejects_frame(source, bad)


def _cut(buffer: bytes, record_start: re.Pattern[str]) -> int:
    """Offset of the last complete line in ``buffer`` that starts a record, or -1.

    The first line is never a cut (the chunk would be empty).
    """
    end = buffer.rfind(b"\n")
    for _ in range(_MAX_BACKTRACK_LINES):
        if end <= 0:
            return -1
        newline = buffer.rfind(b"\n", 0, end)
        if newline < 0:
            return -1
        if record_start.match(buffer[newline + 1 : end].decode("utf-8", "replace")):
            return newline + 1
        end = newline
    return -1


def iter_chunks(
    path: Path,
    record_start: re.Pattern[str],
    *,
    source: str | None = None,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
) -> Iterator[Chunk]:
    """Yield :class:`Chunk` objects covering every line of ``path`` exactly once.

    >>> import tempfile, re
    >>> d = Path(tempfile.mkdtemp()); f = d / "x.log"
    >>> _ = f.write_bytes(b"A 1\\n cont\\nA 2\\nA 3\\n")
    >>> [(c.first_line, c.text) for c in iter_chunks(f, re.compile("A"), chunk_bytes=6)]
    [(1, 'A 1\\n cont\\nA 2\\n'), (4, 'A 3\\n')]
    """
    name = source or str(path)
    line = 1
    with open_binary(path) as fh:
        if _is_plain_file(fh):
            pieces = _file_pieces(fh.fileno(), path, record_start, chunk_bytes)
        else:
            pieces = _stream_pieces(fh, path, record_start, chunk_bytes)
        for piece, last in pieces:
            chunk = Chunk(piece, line, name)
            yield chunk
            if not last:
                line += chunk.lines - (0 if piece.endswith(b"\n") else 1)


def _is_plain_file(fh: IO[bytes]) -> bool:
    if isinstance(fh, gzip.GzipFile):
        return False
    try:
        return stat.S_ISREG(os.fstat(fh.fileno()).st_mode)
    except (OSError, AttributeError, io.UnsupportedOperation):
        return False


def _step(carry: bytes, block: bytes, record_start: re.Pattern[str]) -> tuple[bytes | None, bytes]:
    """One cutting step on a full read: ``(piece or None, new carry)``."""
    # A cut inside the block is the one _cut would find in carry + block: it scans back
    # from the same end and stops at the same limit.
    cut = _cut(block, record_start)
    if cut >= 0:
        return b"".join((carry, memoryview(block)[:cut])), block[cut:]
    buffer = carry + block
    cut = _cut(buffer, record_start)
    if cut < 0:
        if len(buffer) <= 2 * MAX_RECORD_CHARS:
            return None, buffer
        cut = buffer.rfind(b"\n") + 1 or len(buffer)
    return buffer[:cut], buffer[cut:]


def _stream_pieces(
    fh: IO[bytes], path: Path, record_start: re.Pattern[str], chunk_bytes: int
) -> Iterator[tuple[bytes, bool]]:
    """``(piece, is_last)`` of a stream read front to back (gzip)."""
    # Bytes after the last cut; a new block is appended to it only when the cut is not
    # found inside the block itself, so each chunk is copied once, not three times.
    carry = b""
    while True:
        try:
            block = fh.read(chunk_bytes)
        except (OSError, EOFError) as exc:
            raise SourceReadError(f"cannot read {path}: {exc}") from exc
        if not block:
            if carry:
                yield carry, True
            return
        if len(carry) + len(block) < chunk_bytes:
            carry += block
            continue
        piece, carry = _step(carry, block, record_start)
        if piece is not None:
            yield piece, False


def _pread(fd: int, size: int, offset: int, path: Path) -> bytes:
    """Up to ``size`` bytes at ``offset`` (fewer only at the end of the file)."""
    try:
        data = os.pread(fd, size, offset)
        if len(data) == size or not data:
            return data
        parts = [data]
        got = len(data)
        while got < size:
            more = os.pread(fd, size - got, offset + got)
            if not more:
                break
            parts.append(more)
            got += len(more)
        return b"".join(parts)
    except OSError as exc:
        raise SourceReadError(f"cannot read {path}: {exc}") from exc


def _file_pieces(
    fd: int, path: Path, record_start: re.Pattern[str], chunk_bytes: int
) -> Iterator[tuple[bytes, bool]]:
    """The pieces :func:`_stream_pieces` cuts, read from a plain file by offset.

    The cut is found in the last :data:`_TAIL_BYTES` of the block, then the piece is read
    in one copy straight from the file (a stream needs a read and a join: two chunk-sized
    copies, each faulting in fresh pages). Where the tail does not settle the cut (no
    record start in it, or the end of the file) the block is read whole and cut exactly
    as a stream is.
    """
    pos = 0  # next offset a stream would read from
    carry_len = 0  # bytes before ``pos`` not in a chunk yet (a stream's carry)
    tail_len = min(_TAIL_BYTES, chunk_bytes)
    while True:
        block_end = pos + chunk_bytes
        tail = _pread(fd, tail_len, block_end - tail_len, path)
        if len(tail) == tail_len:
            # The whole block exists and _cut scans back from its end through the same
            # lines: a cut found in the tail is the block's cut.
            cut = _cut(tail, record_start)
            if cut >= 0:
                start, end = pos - carry_len, block_end - tail_len + cut
                piece = _pread(fd, end - start, start, path)
                if len(piece) == end - start:
                    yield piece, False
                    pos, carry_len = block_end, block_end - end
                    continue
        carry = _pread(fd, carry_len, pos - carry_len, path) if carry_len else b""
        block = _pread(fd, chunk_bytes, pos, path)
        pos += len(block)
        if not block:
            if carry:
                yield carry, True
            return
        if len(carry) + len(block) < chunk_bytes:
            carry_len += len(block)
            continue
        piece, carry = _step(carry, block, record_start)
        carry_len = len(carry)
        if piece is not None:
            yield piece, False
