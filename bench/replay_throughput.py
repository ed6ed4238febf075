"""Benchmark: ``exfil-detector replay`` for 1k, 10k and 100k users vs ``polars.read_csv``.

For each user count, writes a PostgreSQL 15 csvlog (26 columns, pgaudit with
relation-per-line and ``log_rows``, bound parameters) of ``--lines`` lines by replaying
the sessions of the bundled sample (detector/data/sample/postgresql.csv, a real server's
log of a simulated records office with 20 users) over and over:

- every original user maps to a pool of synthetic users of the same kind (officer02's
  sessions become ``officer000123``'s), pool sizes in proportion to the original user's
  sessions; the service accounts etl_loader/backup_agent become two synthetic service
  accounts each, so batch jobs stay batch jobs;
- sessions are cut into pieces of at most ``k`` statements, each piece its own
  connection (connect, authorize, statements renumbered from 1, disconnect), with ``k``
  chosen from the largest user count so that file has more sessions than users; the
  layout is the same for every user count (only names, addresses differ), so throughput
  is comparable across user counts;
- each piece keeps its original time of day (give or take up to 10 minutes, so the copies
  of one session do not all start in the same millisecond) and its inner timing, on one
  of ``--days`` simulated days from Monday 2026-11-02 (UTC); sessions interleave and the file is in
  time order, as a server writes it; fresh pids, ports and session ids; the client
  address is stable per synthetic user (a second one for the sample's "other host"
  sessions).

A matching config (peer roles by name pattern, the sample's catalog) is passed with
``--config``. Then, each in its own child process so peak memory is measured per step:

1. the floor: plain ``polars.read_csv`` of the file (all columns, no header);
2. ``exfil-detector replay FILE --config CFG --alerts-out X --quiet``: wall time, peak
   RSS, statements/s (statements from the replay's summary);
3. once, ``replay_files(..., state_path=...)`` in-process, then the saved state:
   model bytes per tracked user (the scorer's per-user arrays plus the first-seen keys)
   and the state file's size per user.

Floor and replay run alternately ``--repeat`` times; best times are compared. Targets
(detection issue): replay at >= 1/4 of the floor's speed; <= 4 KB model state per user.

Replay's time is measured around the CLI's ``main()`` in the child, so it includes the
lazy imports of the replay path (about 2 s: river pulls in scipy), like the parse benchmark.
The defaults (1,000,000 lines, 1k/10k/100k users, 2 runs) take about 6 minutes on 2 cores.

Usage: ``.venv/bin/python bench/replay_throughput.py [--lines N] [--users 1000,10000]``
"""

from __future__ import annotations

import argparse
import bisect
import datetime as dt
import json
import random
import re
import shutil
import statistics
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from child import run_child

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "detector" / "data" / "sample" / "postgresql.csv"
CATALOG = ROOT / "detector" / "data" / "sample" / "catalog.toml"
START = dt.datetime(2026, 11, 2, tzinfo=dt.UTC)  # a Monday
DAY_MS = 86_400_000
JITTER_MS = 600_000  # each replayed session starts up to 10 minutes off its original time
SERVICE = {"etl_loader": 2, "backup_agent": 2}  # synthetic accounts per service account
TARGET_RATIO = 0.25
TARGET_BYTES = 4096

_FIELD = re.compile(r'"(?:[^"]|"")*"|[^,"\n]*')
_AUDIT_ID = re.compile(r'^"AUDIT: (?:SESSION|OBJECT),(\d+),')
_USER = re.compile(r"user=\S+")
_HOST = re.compile(r"host=\S+ port=\d+")


def _records(text: str) -> list[list[str]]:
    """Split csvlog text into records of raw fields (quotes kept, so nulls stay nulls)."""
    records, fields, pos = [], [], 0
    while pos < len(text):
        match = _FIELD.match(text, pos)
        assert match is not None
        fields.append(match.group())
        pos = match.end()
        if pos < len(text) and text[pos] == ",":
            pos += 1
            continue
        records.append(fields)
        fields = []
        pos += 1  # the newline
    return records


@dataclass
class Row:
    """One template line: its time relative to its piece's start and its fixed parts."""

    offset_ms: int
    user_null: bool
    host_null: bool
    db: str
    tag: str
    tail: str  # fields 9..25; may hold the \x01 user, \x02 host/port placeholders


@dataclass
class Piece:
    """A session (or part of one) to replay: original user, time of day, lines."""

    user: str
    foreign_ip: bool
    tod_ms: int
    rows: list[Row]


def _ms(raw: str) -> int:
    stamp = dt.datetime.strptime(raw, "%Y-%m-%d %H:%M:%S.%f UTC").replace(tzinfo=dt.UTC)
    return int(stamp.timestamp() * 1000)


def _units(rows: list[list[str]]) -> tuple[list[list[str]], list[list[list[str]]], list[list[str]]]:
    """A session's leading non-audit lines, its statements (lines by id), trailing lines."""
    audit = [i for i, r in enumerate(rows) if _AUDIT_ID.match(r[13])]
    if not audit:
        return rows, [], []
    head, body, foot = rows[: audit[0]], rows[audit[0] : audit[-1] + 1], rows[audit[-1] + 1 :]
    units: list[list[list[str]]] = []
    last = None
    for row in body:
        match = _AUDIT_ID.match(row[13])
        if match is None or match.group(1) == last:
            units[-1].append(row)
        else:
            last = match.group(1)
            units.append([row])
    return head, units, foot


def _row(fields: list[str], t_ms: int, start_ms: int, base_id: int) -> Row:
    msg = fields[13]
    match = _AUDIT_ID.match(msg)
    if match:
        n = int(match.group(1)) - base_id + 1
        msg = msg[: match.start(1)] + str(n) + msg[match.end(1) :]
    elif "connection" in msg or "disconnection" in msg:
        msg = _HOST.sub("\x02", _USER.sub("user=\x01", msg))
    tail = ",".join([*fields[9:13], msg, *fields[14:]])
    return Row(t_ms - start_ms, fields[1] == "", fields[4] == "", fields[2], fields[7], tail)


def build_pieces(max_statements: int) -> list[Piece]:
    """The sample's sessions cut into pieces of at most ``max_statements`` statements."""
    sessions: dict[str, list[list[str]]] = {}
    for rec in _records(SAMPLE.read_text(encoding="utf-8")):
        sessions.setdefault(rec[5], []).append(rec)
    by_user: dict[str, Counter[str]] = {}
    for rows in sessions.values():
        for r in rows:
            if r[1]:
                by_user.setdefault(r[1], Counter())[r[4].split(":")[0]] += 1
    usual = {u: c.most_common(1)[0][0] for u, c in by_user.items()}  # usual client address
    pieces = []
    for rows in sessions.values():
        user = next(r[1] for r in rows if r[1]).strip('"')
        foreign = rows[0][4].split(":")[0] != usual[f'"{user}"']
        head, units, foot = _units(rows)
        chunks = [units[i : i + max_statements] for i in range(0, len(units), max_statements)]
        for k, chunk in enumerate(chunks or [[]]):
            body = [r for unit in chunk for r in unit]
            times = [_ms(r[0]) for r in body]
            first = times[0] if times else _ms(head[-1][0])
            last = times[-1] if times else first
            lines = [(h, first - len(head) + i if k else _ms(h[0])) for i, h in enumerate(head)]
            lines += zip(body, times, strict=True)
            final = k == len(chunks) - 1 or not chunks
            lines += [(f, _ms(f[0]) if final else last + 1 + i) for i, f in enumerate(foot)]
            start = lines[0][1]
            base = int(_AUDIT_ID.match(body[0][13]).group(1)) if body else 1  # type: ignore[union-attr]
            rendered = [_row(f, t, start, base) for f, t in lines]
            pieces.append(Piece(user, foreign, start % DAY_MS, rendered))
    return pieces


def choose_split(lines: int, users: int) -> tuple[int, list[Piece]]:
    """Largest statements-per-piece that gives the file 20% more sessions than ``users``."""
    for k in (1_000_000, 64, 32, 16, 8, 4, 2, 1):
        pieces = build_pieces(k)
        per_pass = sum(len(p.rows) for p in pieces)
        if lines / per_pass * len(pieces) >= 1.2 * users:
            break
    return k, pieces


def synthetic_users(pieces: list[Piece], users: int) -> dict[str, list[str]]:
    """Original user -> its pool of synthetic names (sizes in proportion to its pieces)."""
    counts = Counter(p.user for p in pieces)
    humans = {u: n for u, n in counts.items() if u not in SERVICE}
    n_human = users - sum(SERVICE[u] for u in counts if u in SERVICE)
    total = sum(humans.values())
    sizes = {u: max(1, round(n_human * n / total)) for u, n in humans.items()}
    sizes[max(humans, key=humans.__getitem__)] += n_human - sum(sizes.values())
    pools: dict[str, list[str]] = {}
    per_kind: Counter[str] = Counter()
    for user in sorted(counts):
        if user in SERVICE:
            pools[user] = [f"{user}{j:02d}" for j in range(1, SERVICE[user] + 1)]
            continue
        kind = user.rstrip("0123456789").removesuffix("_admin")
        pools[user] = [f"{kind}{per_kind[kind] + j:06d}" for j in range(1, sizes[user] + 1)]
        per_kind[kind] += sizes[user]
    return pools


def write_csvlog(path: Path, lines: int, users: int, pieces: list[Piece], days: int) -> int:
    """Write ``lines`` (or a few more) csvlog lines over ``users``; return distinct users."""
    pools = synthetic_users(pieces, users)
    index = {name: i for i, name in enumerate(n for pool in pools.values() for n in pool)}
    turn: Counter[str] = Counter()
    rng = random.Random(1)  # same draws for every user count: same times, same layout
    used: set[str] = set()
    base_ms = int(START.timestamp() * 1000)
    dates: dict[int, str] = {}
    buffer: list[tuple[int, int, str]] = []
    written = seq = session = 0
    day = 0
    with path.open("w", encoding="utf-8") as out:

        def flush(until_ms: int | None) -> None:
            nonlocal buffer
            buffer.sort()
            keep = len(buffer) if until_ms is None else bisect.bisect_left(buffer, (until_ms,))
            out.writelines(line for _, _, line in buffer[:keep])
            buffer = buffer[keep:]

        while written < lines:
            for piece in pieces:
                if written >= lines:
                    break
                now_day = min(days - 1, written * days // lines)
                if now_day != day:
                    flush(base_ms + now_day * DAY_MS)
                    day = now_day
                pool = pools[piece.user]
                user = pool[turn[piece.user] % len(pool)]
                turn[piece.user] += 1
                used.add(user)
                i = index[user] + (0x100000 if piece.foreign_ip else 0)
                ip = f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}"
                session += 1
                pid, port = 10_000 + session % 4_000_000, 1024 + session % 64_000
                tod = max(0, piece.tod_ms + rng.randint(-JITTER_MS, JITTER_MS))
                start = base_ms + day * DAY_MS + tod
                sid = f"{start // 1000:x}.{pid:x}"
                s_start = _stamp(start, dates)[:19] + " UTC"
                for n, row in enumerate(piece.rows, start=1):
                    t = start + row.offset_ms
                    tail = row.tail
                    if "\x01" in tail or "\x02" in tail:
                        tail = tail.replace("\x01", user).replace("\x02", f"host={ip} port={port}")
                    u = "" if row.user_null else f'"{user}"'
                    host = "" if row.host_null else f'"{ip}:{port}"'
                    line = f"{_stamp(t, dates)},{u},{row.db},{pid},{host},{sid},{n},{row.tag},"
                    buffer.append((t, seq, f"{line}{s_start},{tail}\n"))
                    seq += 1
                written += len(piece.rows)
        flush(None)
    return len(used)


def _stamp(t_ms: int, dates: dict[int, str]) -> str:
    day, ms = divmod(t_ms, DAY_MS)
    if day not in dates:
        dates[day] = dt.datetime.fromtimestamp(day * 86_400, dt.UTC).strftime("%Y-%m-%d")
    s, ms = divmod(ms, 1000)
    return f"{dates[day]} {s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}.{ms:03d} UTC"


def write_config(path: Path) -> None:
    path.write_text(
        "# Written by bench/replay_throughput.py: roles of the synthetic users.\n"
        f"[catalog]\npath = {json.dumps(str(CATALOG))}\n\n"
        "[detection]\nalerts_per_day = 5.0\nlearning_hours = 24.0\n\n"
        '[peers]\nservice_roles = ["etl", "backup"]\n[peers.users]\n'
        '"officer*" = "desk_officer"\n"investigator*" = "investigator"\n'
        '"analyst*" = "analyst"\n"etl_loader*" = "etl"\n"backup_agent*" = "backup"\n'
        '"dba*" = "dba"\n',
        encoding="utf-8",
    )


def _summary_value(text: str, label: str) -> int:
    match = re.search(rf"^{label}\s+([\d,]+)", text, re.MULTILINE)
    if match is None:
        sys.exit(f"no {label!r} line in the replay's output:\n{text[-2000:]}")
    return int(match.group(1).replace(",", ""))


def measure(log: Path, cfg: Path, tmp: Path, repeat: int) -> dict[str, float]:
    """Floor and replay alternately ``repeat`` times, then the state run; the figures."""
    floor_code = (
        "import polars as pl, time\nt = time.perf_counter()\n"
        f"df = pl.read_csv({str(log)!r}, has_header=False, infer_schema=False)\n"
        "print(df.height, time.perf_counter() - t)"
    )
    replay_code = (
        "import time\nfrom detector.commands.cli import main\nt = time.perf_counter()\n"
        f"rc = main(['replay', {str(log)!r}, '--config', {str(cfg)!r}, "
        f"'--alerts-out', {str(tmp / 'alerts.jsonl')!r}, '--quiet'])\n"
        "assert rc == 0, rc\nprint('SECONDS', time.perf_counter() - t)"
    )
    state = tmp / "state.bin"
    state_code = (
        "import json, pathlib\nfrom detector.config import load_config\n"
        "from detector.replay import STATE_KIND, STATE_VERSION, replay_files\n"
        "from models.state import load_state\n"
        f"p = pathlib.Path({str(state)!r})\np.unlink(missing_ok=True)\n"
        f"cfg = load_config(pathlib.Path({str(cfg)!r}))\n"
        f"replay_files([pathlib.Path({str(log)!r})], cfg, state_path=p, progress=None)\n"
        "st = load_state(p, kind=STATE_KIND, version=STATE_VERSION)\n"
        "nb = st.scorer.nbytes()\n"
        "print(json.dumps({'users': st.scorer.users(), 'per_user': nb['per_user'], "
        "'shared': nb['shared'], 'seen': int(sum(p.seen.nbytes for p in st.parts.values())), "
        "'file': p.stat().st_size}))"
    )
    floors: list[float] = []
    replays: list[float] = []
    floor_rss = replay_rss = 0
    summary = ""
    for _ in range(repeat):
        out, rss = run_child(floor_code)
        floors.append(float(out.split()[1]))
        floor_rss = max(floor_rss, rss)
        out, rss = run_child(replay_code)
        summary, seconds = out.rsplit("SECONDS", 1)
        replays.append(float(seconds))
        replay_rss = max(replay_rss, rss)
    out, state_rss = run_child(state_code)
    mem = json.loads(out)
    tracked = max(mem["users"], 1)
    return {
        "statements": _summary_value(summary, "statements"),
        "tracked": _summary_value(summary, "users tracked"),
        "alerts": _summary_value(summary, "alerts"),
        "windows": _summary_value(summary, "windows decided"),
        "floor": min(floors),
        "floor_median": statistics.median(floors),
        "replay": min(replays),
        "replay_median": statistics.median(replays),
        "floor_rss": floor_rss,
        "replay_rss": replay_rss,
        "state_rss": state_rss,
        "model_per_user": (mem["per_user"] + mem["seen"]) / tracked,
        "seen_per_user": mem["seen"] / tracked,
        "shared": mem["shared"],
        "file_per_user": mem["file"] / tracked,
    }


def _table(results: list[tuple[int, int, int, dict[str, float]]]) -> None:
    head = (
        f"{'users':>8}{'in file':>9}{'lines':>11}{'statements':>12}{'floor s':>9}{'replay s':>10}"
        f"{'stmts/s':>9}{'ratio':>7}{'RSS floor/replay MB':>21}{'model B/user':>14}"
        f"{'state B/user':>14}"
    )
    print(head)
    for users, in_file, lines, r in results:
        ratio = r["floor"] / r["replay"]
        print(
            f"{users:>8,}{in_file:>9,}{lines:>11,}{int(r['statements']):>12,}{r['floor']:>9.2f}"
            f"{r['replay']:>10.2f}{r['statements'] / r['replay']:>9,.0f}{ratio:>7.3f}"
            f"{r['floor_rss'] / 2**20:>11,.0f} / {r['replay_rss'] / 2**20:>6,.0f}"
            f"{r['model_per_user']:>14,.0f}{r['file_per_user']:>14,.0f}"
        )
    print()
    for users, _, _, r in results:
        ratio, median = r["floor"] / r["replay"], r["floor_median"] / r["replay_median"]
        model = r["model_per_user"]
        print(
            f"{users:>7,} users: speed ratio {ratio:.3f} best, {median:.3f} median "
            f"(target >= {TARGET_RATIO}) {'PASS' if ratio >= TARGET_RATIO else 'MISS'}; "
            f"model state {model:,.0f} B/user (first-seen {r['seen_per_user']:,.0f}; shared "
            f"{r['shared'] / 1e3:,.0f} kB; target <= {TARGET_BYTES:,}) "
            f"{'PASS' if model <= TARGET_BYTES else 'MISS'}; {int(r['tracked']):,} tracked, "
            f"{int(r['windows']):,} windows decided, {int(r['alerts']):,} alerts, "
            f"state-run peak RSS {r['state_rss'] / 2**20:,.0f} MB"
        )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lines", type=int, default=1_000_000, help="lines per file")
    ap.add_argument("--users", default="1000,10000,100000", help="comma-separated counts")
    ap.add_argument("--days", type=int, default=3, help="simulated days per file")
    ap.add_argument("--repeat", type=int, default=2, help="alternating runs of each")
    ap.add_argument("--keep", action="store_true", help="keep the generated files")
    args = ap.parse_args()
    counts = [int(u) for u in args.users.split(",")]
    if min(counts) < 100:
        ap.error("--users: at least 100 users per file (20 original users map to pools)")

    tmp = Path(tempfile.mkdtemp(prefix="exfil-replay-bench-"))
    cfg = tmp / "config.toml"
    write_config(cfg)
    k, pieces = choose_split(args.lines, max(counts))
    print(
        f"sample sessions cut into pieces of <= {k} statements: {len(pieces):,} sessions, "
        f"{sum(len(p.rows) for p in pieces):,} lines per pass; {args.days} simulated days"
    )
    results = []
    for users in counts:
        log = tmp / f"postgresql-{users}.csv"
        t0 = time.perf_counter()
        in_file = write_csvlog(log, args.lines, users, pieces, args.days)
        with log.open("rb") as f:
            lines = sum(block.count(b"\n") for block in iter(lambda: f.read(1 << 24), b""))
        print(
            f"{users:,} users: generated {lines:,} lines, {log.stat().st_size / 1e6:,.0f} MB, "
            f"{in_file:,} distinct users, in {time.perf_counter() - t0:.1f} s",
            flush=True,
        )
        results.append((users, in_file, lines, measure(log, cfg, tmp, args.repeat)))
        if not args.keep:
            log.unlink()
    print()
    print(f"best of {args.repeat} alternating runs; RSS = peak of each child process")
    _table(results)
    if args.keep:
        print(f"files kept in {tmp}")
    else:
        shutil.rmtree(tmp)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
