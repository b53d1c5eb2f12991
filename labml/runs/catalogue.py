"""The run catalogue: an SQLite index of every run under a runs root (docs/runs.md "The catalogue").

run.json stays the source of truth. It is written first (atomically, labml.runs.store); the
catalogue is updated after it, idempotently, from the one place run.json is written
(`store.Run._write_meta` calls `index_run`), so a run is in the index from its start and its end
is there when it ends. `labml runs` (`query`) reconciles the index with the folders before it
answers: every run.json or sweep manifest whose modification time or size differs from what the
index recorded is read again, folders that are gone are dropped, and runs still recorded as
running get their last checkpoint step again. `labml runs --reindex` (`rebuild`) reads every folder
afresh.

Where it lives: one file per runs root, on the local disk of the machine that lists it
(``$LABML_CATALOGUE_DIR``, else ``platformdirs.user_cache_dir("labml")/catalogues``), named after the
root's last component and a hash of its real path (`catalogue_path`). Not inside the root: a runs
root may be a network share, where SQLite's locking is unreliable; the catalogue is a cache that any
machine rebuilds from the run folders, so every machine keeps its own.

Schema (``PRAGMA application_id`` = `APPLICATION_ID`, ``user_version`` = `SCHEMA`):

    runs(id, rel UNIQUE, sweep, mtime_ns, size, uid, kind, status, reason, start_time, stop_time,
         sample, device, operator, notes, layout, pid, pid_host, resumable, coil_at_zero, steps,
         summary)      one row per run folder (rel: its path relative to the root, "." for the root
                       itself) and per sweep folder; summary: JSON of parameters, results, plan, ...
    vals(run, src, key, num, txt)
                       every parameter (src "p") and result (src "r"), nested dicts flattened with
                       "." ("final.test_accuracy"); num holds the value as a number where it is one
                       (bools 1/0, numeric text too), txt as text: `--where` compares numbers with
                       num and anything else with txt, through the indexes (key, num) and (key, txt)
    info(key, value)   the root the catalogue indexes

A key/value table rather than JSON1 expressions over the summary: a `--where` on one key is then an
index range scan instead of parsing 10,000 JSON documents per query (measured in
benchmarks/README.md "Run catalogue").

Concurrency: WAL journal, a 30 s busy timeout, every change in one ``BEGIN IMMEDIATE`` transaction;
two processes writing runs at once queue, never corrupt it. A file that is not this catalogue
(corrupt, foreign, an older schema) is replaced and rebuilt with a one-line warning. Listing reads
run.json and manifest.json as JSON and checkpoint headers as text only: nothing in a run folder is
executed.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
import re
import sqlite3
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from labml.errors import UserError, did_you_mean
from labml.runs.store import RACY_NS

log = logging.getLogger(__name__)

SCHEMA = 1
APPLICATION_ID = 0x4C424D4C  # "LBML"
BUSY_TIMEOUT_MS = 30_000

#: run.json fields kept as columns (filters, sorting, the table)
FIELDS = ("uid", "kind", "status", "reason", "start_time", "stop_time", "sample", "device", "operator",
          "notes")
#: further keys a `--where` or `--sort` may name besides parameters and results
COLUMN_KEYS = (*FIELDS, "layout", "steps", "path")
#: what a listing entry holds besides the columns (from the summary JSON)
SUMMARY_KEYS = ("parameters", "results", "plan", "points", "points_done", "identities", "rig_identities",
                "git_revision")
OPERATORS = ("<=", ">=", "!=", "==", "=", "<", ">")
_WHERE = re.compile(r"^\s*([^\s<>=!]+)\s*(<=|>=|!=|==|=|<|>)\s*(.*?)\s*$")
# other languages' spellings of an operator
_SWAPPED = {"=>": ">=", "=<": "<=", "<>": "!=", "=!": "!=", "~=": "!=", "===": "="}
_TXT_MAX = 1000  # a list or text longer than this is kept in the summary only, not compared

_SCHEMA_SQL = """
CREATE TABLE IF NOT EXISTS info(key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS runs(
    id INTEGER PRIMARY KEY, rel TEXT NOT NULL UNIQUE, sweep INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL, size INTEGER NOT NULL,
    uid TEXT, kind TEXT, status TEXT, reason TEXT, start_time TEXT, stop_time TEXT, sample TEXT,
    device TEXT, operator TEXT, notes TEXT, layout TEXT, pid INTEGER, pid_host TEXT,
    resumable INTEGER, coil_at_zero INTEGER, steps INTEGER, summary TEXT);
CREATE INDEX IF NOT EXISTS runs_start ON runs(start_time, rel);
CREATE INDEX IF NOT EXISTS runs_kind ON runs(kind);
CREATE TABLE IF NOT EXISTS vals(
    run INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE, src TEXT NOT NULL, key TEXT NOT NULL,
    num REAL, txt TEXT, PRIMARY KEY(run, src, key)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS vals_num ON vals(key, num);
CREATE INDEX IF NOT EXISTS vals_txt ON vals(key, txt);
CREATE TABLE IF NOT EXISTS dirs(rel TEXT PRIMARY KEY, mtime_ns INTEGER NOT NULL, marker INTEGER NOT NULL,
    subs TEXT NOT NULL) WITHOUT ROWID;
"""


# ======================================================================================= the file
def catalogue_dir() -> Path:
    """``$LABML_CATALOGUE_DIR``, else ``platformdirs.user_cache_dir("labml")/catalogues``."""
    env = os.environ.get("LABML_CATALOGUE_DIR")
    if env:
        return Path(env)
    import platformdirs

    return Path(platformdirs.user_cache_dir("labml", appauthor=False)) / "catalogues"


def catalogue_path(root: str | os.PathLike) -> Path:
    """The catalogue file of the runs root `root`: `catalogue_dir()` / <last component>-<hash of its
    real path>.sqlite."""
    real = os.path.realpath(root)
    digest = hashlib.sha256(real.encode("utf-8", "surrogateescape")).hexdigest()[:16]
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", os.path.basename(real) or "root")[:40]
    return catalogue_dir() / f"{name}-{digest}.sqlite"


class _NotOurs(Exception):
    """The file is no catalogue of this schema (corrupt, foreign, older)."""


def _open(path: Path) -> sqlite3.Connection:
    """A connection to the catalogue file `path` (made with its schema when new); _NotOurs when the
    file holds something else."""
    path.parent.mkdir(parents=True, exist_ok=True)
    con = sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
    try:
        con.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        app, version = (con.execute(f"PRAGMA {p}").fetchone()[0] for p in ("application_id", "user_version"))
        if (app, version) != (APPLICATION_ID, SCHEMA):
            _create_schema(con)
        con.execute("PRAGMA journal_mode=WAL")  # readers never wait for a writer; stays set in the file
        con.execute("PRAGMA synchronous=NORMAL")  # a cache: a power cut may lose the last change, never
        con.execute("PRAGMA foreign_keys=ON")  #       corrupt it (and the next listing re-reads it)
    except sqlite3.OperationalError:  # locked past the busy timeout, no permission: not damage
        con.close()
        raise
    except sqlite3.DatabaseError as exc:
        con.close()
        raise _NotOurs(str(exc)) from None
    except _NotOurs:
        con.close()
        raise
    return con


def _create_schema(con: sqlite3.Connection) -> None:
    con.execute("BEGIN IMMEDIATE")
    try:
        app, version = (con.execute(f"PRAGMA {p}").fetchone()[0] for p in ("application_id", "user_version"))
        if (app, version) == (APPLICATION_ID, SCHEMA):  # another process made it meanwhile
            con.execute("COMMIT")
            return
        if app != 0 or version != 0 or con.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]:
            raise _NotOurs(f"application_id {app:#x}, schema {version}, not a labml run catalogue "
                           f"of schema {SCHEMA}")
        for statement in _SCHEMA_SQL.split(";"):
            if statement.strip():
                con.execute(statement)
        con.execute(f"PRAGMA application_id={APPLICATION_ID}")
        con.execute(f"PRAGMA user_version={SCHEMA}")
        con.execute("COMMIT")
    except BaseException:
        with contextlib.suppress(sqlite3.Error):
            con.execute("ROLLBACK")
        raise


def _remove(path: Path) -> None:
    for f in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        with contextlib.suppress(FileNotFoundError):
            f.unlink()


def connect(root: str | os.PathLike, *, fresh: bool = False) -> sqlite3.Connection:
    """The catalogue of `root`, opened (made when missing). A file that is not a catalogue of this
    schema is replaced with a one-line warning on stderr; `fresh`: start from an empty one."""
    path = catalogue_path(root)
    try:
        return _connect(path, fresh)
    except (sqlite3.OperationalError, OSError) as exc:  # locked for 30 s, no permission, disk full
        raise UserError(f"run catalogue {path}: {exc}") from None


def _connect(path: Path, fresh: bool) -> sqlite3.Connection:
    if fresh:
        _remove(path)
    con = None
    try:
        con = _open(path)
        con.execute("SELECT count(*) FROM runs").fetchone()  # a damaged file fails here at the latest
        return con
    except sqlite3.OperationalError:
        if con is not None:
            con.close()
        raise
    except (_NotOurs, sqlite3.DatabaseError) as exc:
        if con is not None:
            with contextlib.suppress(Exception):
                con.close()
        print(f"labml: warning: run catalogue {path} is unreadable ({exc}); rebuilding it from the run "
              "folders", file=sys.stderr)
        _remove(path)
        return _open(path)


@contextlib.contextmanager
def _transaction(con: sqlite3.Connection) -> Iterator[None]:
    con.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")


# ======================================================================================= rows
def _num_txt(v: Any) -> tuple[float | None, str | None]:
    """(number, text) of a parameter or result value for `vals`."""
    if isinstance(v, bool):
        return (1.0 if v else 0.0), ("true" if v else "false")
    if isinstance(v, int | float):
        return (float(v) if math.isfinite(v) else None), json.dumps(v)
    if isinstance(v, str):
        try:
            num = float(v)
        except ValueError:
            num = None
        return (num if num is not None and math.isfinite(num) else None), v[:_TXT_MAX]
    if v is None:
        return None, None
    text = json.dumps(v, sort_keys=True, default=str)
    return None, (text if len(text) <= _TXT_MAX else None)


def _flatten(d: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    if not isinstance(d, dict):
        return
    for k, v in d.items():
        if isinstance(v, dict):
            yield from _flatten(v, f"{prefix}{k}.")
        else:
            yield f"{prefix}{k}", v


def _steps(folder: Path) -> int | str | None:
    """The step of the run's newest checkpoint (its header, read as text), "corrupt", or None."""
    from labml.runs import checkpoints

    files = checkpoints.list_checkpoints(folder)
    if not files:
        return None
    try:
        return checkpoints.read_header(files[-1]).get("step")
    except UserError:
        return "corrupt"


def _entry(folder: Path, meta: dict, sweep: bool) -> dict:
    """What the catalogue records of a run folder (or sweep folder) whose run.json is `meta`."""
    from labml.runs.store import legacy_layout

    entry = {k: meta.get(k) for k in FIELDS}
    entry.update(
        layout="sweep" if sweep else legacy_layout(folder, meta),
        pid=meta.get("pid") if isinstance(meta.get("pid"), int) else None,
        pid_host=meta.get("pid_host"), resumable=meta.get("resumable") is True,
        coil_at_zero=None if meta.get("coil_at_zero") is None else bool(meta.get("coil_at_zero")),
        steps=None if sweep else _steps(folder), sweep=sweep,
    )
    entry.update({k: meta[k] for k in SUMMARY_KEYS if meta.get(k) is not None})
    return entry


def _text(v: Any) -> str | None:
    return None if v is None else str(v)


def _upsert(con: sqlite3.Connection, rel: str, stamp: tuple[int, int], entry: dict) -> None:
    """Write one entry (idempotent: the same entry twice leaves the same rows)."""
    summary = json.dumps({k: entry[k] for k in SUMMARY_KEYS if k in entry}, sort_keys=True, default=str)
    steps = entry.get("steps")
    row = (rel, int(entry["sweep"]), *stamp, *(_text(entry.get(k)) for k in FIELDS),
           entry["layout"], entry.get("pid"), _text(entry.get("pid_host")), int(bool(entry.get("resumable"))),
           None if entry.get("coil_at_zero") is None else int(entry["coil_at_zero"]),
           steps if isinstance(steps, int) else (-1 if steps == "corrupt" else None), summary)
    cols = ("rel", "sweep", "mtime_ns", "size", *FIELDS, "layout", "pid", "pid_host", "resumable",
            "coil_at_zero", "steps", "summary")
    run_id = con.execute(
        f"INSERT INTO runs({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))}) "
        f"ON CONFLICT(rel) DO UPDATE SET {', '.join(f'{c}=excluded.{c}' for c in cols[1:])} RETURNING id",
        row).fetchone()[0]
    con.execute("DELETE FROM vals WHERE run=?", (run_id,))
    vals = {}
    for src, d in (("p", entry.get("parameters")), ("r", entry.get("results"))):
        for key, v in _flatten(d):
            vals[(src, key)] = (run_id, src, key, *_num_txt(v))
    con.executemany("INSERT INTO vals(run, src, key, num, txt) VALUES (?,?,?,?,?)", vals.values())


# ======================================================================================= writing
def _roots_holding(run_dir: Path) -> list[Path]:
    """Runs roots whose catalogue should hold `run_dir`: every ancestor (up to the discovery depth)
    that has a catalogue already, and the runs root ($LABML_RUNS, ./runs) when the run lies under it."""
    from labml.runs.store import MAX_DEPTH, runs_root

    real = Path(os.path.realpath(run_dir))
    roots = [p for p in real.parents[:MAX_DEPTH] if catalogue_path(p).is_file()]
    default = Path(os.path.realpath(runs_root()))
    if default in real.parents[:MAX_DEPTH] and default not in roots:
        roots.append(default)
    return roots


def index_run(run_dir: str | os.PathLike, meta: dict) -> None:
    """Record a run whose run.json was just written (`store.Run`): in the catalogue of every runs
    root that holds it (`_roots_holding`). Never fails the run: a catalogue that cannot be written
    is left to the next `labml runs`, which reconciles it with the folders (logged at DEBUG)."""
    run_dir = Path(run_dir)
    try:
        roots = _roots_holding(run_dir)
        if not roots:
            return
        st = os.stat(run_dir / "run.json")
        entry = _entry(run_dir, meta, sweep=False)
        real = Path(os.path.realpath(run_dir))
        for root in roots:
            con = _open(catalogue_path(root))
            try:
                rel = real.relative_to(root).as_posix() or "."
                parts = rel.split("/")
                above = [".", *("/".join(parts[:i]) for i in range(1, len(parts)))]
                with _transaction(con):
                    _upsert(con, rel, (st.st_mtime_ns, st.st_size), entry)
                    # a sweep's status follows its points: its entry is read again at the next listing
                    con.execute(f"UPDATE runs SET mtime_ns=-1 WHERE sweep=1 AND rel IN "
                                f"({', '.join('?' * len(above))})", above)
            finally:
                con.close()
    except (_NotOurs, sqlite3.Error, OSError, ValueError) as exc:
        log.debug("run catalogue not updated for %s: %s", run_dir, exc)


# ======================================================================================= reconcile
def _read(folder: Path, sweep: bool) -> dict | None:
    """The entry of a folder from its run.json (or sweep manifest); None (with a warning) when it
    cannot be read, as `labml runs` always did."""
    from labml.runs import store

    try:
        meta = store.sweep_entry(folder).meta if sweep else store.load(folder).meta
    except (UserError, OSError) as exc:
        log.warning("skipping %s", exc)
        return None
    return _entry(folder, meta, sweep)


def _load_dirs(con: sqlite3.Connection) -> dict:
    """The folder listings cached by the last walk (labml.runs.store._discover's cache)."""
    return {rel: (mtime, marker, tuple(tuple(s) for s in json.loads(subs)) if subs else ())
            for rel, mtime, marker, subs in con.execute("SELECT rel, mtime_ns, marker, subs FROM dirs")}


def _save_dirs(con: sqlite3.Connection, before: dict, after: dict) -> None:
    con.executemany("DELETE FROM dirs WHERE rel=?", [(r,) for r in before if r not in after])
    con.executemany("INSERT OR REPLACE INTO dirs(rel, mtime_ns, marker, subs) VALUES (?,?,?,?)",
                    [(rel, m, marker, json.dumps(subs) if subs else "")
                     for rel, (m, marker, subs) in after.items() if before.get(rel) != (m, marker, subs)])


def _changed(known: dict, seen: dict, now: int) -> list[tuple[str, bool, tuple[int, int]]]:
    """(rel, is sweep, (mtime, size) to record) of every folder whose record must be read again."""
    out = []
    for rel, (is_run, st) in seen.items():
        old = known.get(rel)
        stamp = (st.st_mtime_ns if now - st.st_mtime_ns > RACY_NS else -1, st.st_size)
        if old is None or old[:3] != (st.st_mtime_ns, st.st_size, int(not is_run)) or (
                is_run and old[3] == "running"):  # a live run's checkpoints move without run.json
            out.append((rel, not is_run, stamp))
    runs = [rel for rel, sweep, _stamp in out if not sweep]
    listed = {rel for rel, _sweep, _stamp in out}
    for rel, (is_run, st) in seen.items():  # a sweep whose points changed is read again too
        if not is_run and rel not in listed and any(r.startswith(rel + "/") or rel == "." for r in runs):
            out.append((rel, True, (st.st_mtime_ns, st.st_size)))
    return out


def reconcile(con: sqlite3.Connection, root: Path) -> dict:
    """Bring the catalogue of `root` up to date with the folders (see the module docstring); returns
    counts {"folders", "read", "dropped"}."""
    import time

    from labml.runs.store import _discover

    now = time.time_ns()
    known = {rel: (mtime, size, sweep, status) for rel, mtime, size, sweep, status in
             con.execute("SELECT rel, mtime_ns, size, sweep, status FROM runs")}
    dirs = _load_dirs(con)
    before = dict(dirs)
    seen = {rel: (is_run, st) for rel, is_run, st in _discover(root, dirs)}
    changed = _changed(known, seen, now)
    entries = [(rel, stamp, _read(root if rel == "." else root / rel, sweep))
               for rel, sweep, stamp in changed]
    gone = [rel for rel in known if rel not in seen]
    unreadable = [rel for rel, _st, e in entries if e is None and rel in known]
    if entries or gone or dirs != before:
        with _transaction(con):
            for rel, stamp, entry in entries:
                if entry is not None:
                    _upsert(con, rel, stamp, entry)
            con.executemany("DELETE FROM runs WHERE rel=?", [(r,) for r in gone + unreadable])
            _save_dirs(con, before, dirs)
            con.execute("INSERT OR REPLACE INTO info(key, value) VALUES ('root', ?)",
                        (os.path.realpath(root),))
    return {"folders": len(seen), "read": len(entries), "dropped": len(gone) + len(unreadable)}


def rebuild(root: str | os.PathLike | None = None) -> dict:
    """`labml runs --reindex`: a new catalogue of `root`, every folder read afresh."""
    from labml.runs.store import runs_root

    root = runs_root(root)
    con = connect(root, fresh=True)
    try:
        return reconcile(con, root)
    finally:
        con.close()


# ======================================================================================= query
def parse_where(expr: str) -> tuple[str, str, str]:
    """'n=8', 'test_accuracy>0.85', 'sample != S1' -> (key, operator, value); UserError otherwise."""
    m = _WHERE.match(str(expr))
    if not m or not m.group(3) or m.group(3)[0] in "<>=!":
        bad = re.search(r"[<>=!~]+", str(expr))
        op = bad.group(0) if bad else ""
        hint = (f" (did you mean {_SWAPPED[op]!r}?)" if op in _SWAPPED
                else did_you_mean(op, OPERATORS) if op else "")
        raise UserError(f"--where {expr!r}: expected KEY OP VALUE with OP one of = != < <= > >="
                        f"{f'; unknown operator {op!r}' if op else ''}{hint}")
    key, op, value = m.groups()
    return key, ("=" if op == "==" else op), value


def _as_number(text: str) -> float | None:
    try:
        v = float(text)
    except ValueError:
        return None
    return v if math.isfinite(v) else None


def _split_key(key: str) -> tuple[str | None, str]:
    """'params.n' -> ("p", "n"), 'results.x' -> ("r", "x"), 'n' -> (None, "n")."""
    for prefix, src in (("params.", "p"), ("parameters.", "p"), ("results.", "r")):
        if key.startswith(prefix):
            return src, key[len(prefix):]
    return None, key


def _check_key(con: sqlite3.Connection, key: str, what: str, root: Path) -> None:
    """UserError (with a did-you-mean) when no run of the catalogue records `key`."""
    if key in COLUMN_KEYS:
        return
    src, name = _split_key(key)
    sql = "SELECT 1 FROM vals WHERE key=?" + (" AND src=?" if src else "") + " LIMIT 1"
    if con.execute(sql, (name, src) if src else (name,)).fetchone():
        return
    if not con.execute("SELECT 1 FROM vals LIMIT 1").fetchone():
        return  # an empty catalogue: nothing matches, no key is wrong
    known = sorted({k for (k,) in con.execute("SELECT DISTINCT key FROM vals")})
    shown = ", ".join(known[:12]) + (", ..." if len(known) > 12 else "")
    raise UserError(f"{what}: no run under {root} records a parameter or result {name!r}"
                    f"{did_you_mean(name, [*known, *COLUMN_KEYS])}; keys: {shown}; columns: "
                    f"{', '.join(COLUMN_KEYS)}")


def _where_sql(key: str, op: str, value: str) -> tuple[str, list]:
    if key in COLUMN_KEYS:
        col = "rel" if key == "path" else key
        num = _as_number(value) if key == "steps" else None
        return f"r.{col} {op} ?", [value if num is None else num]
    src, name = _split_key(key)
    num = _as_number(value)
    cond = f"key=?{' AND src=?' if src else ''} AND {'num' if num is not None else 'txt'} {op} ?"
    args: list = [name, *([src] if src else []), value if num is None else num]
    return f"r.id IN (SELECT run FROM vals WHERE {cond})", args


def _filter_sql(filters: dict) -> tuple[list[str], list]:
    conds: list[str] = []
    args: list = []
    kind = filters.get("kind")
    if kind:
        conds.append("(substr(r.kind, 1, length(?)) = ? OR substr(r.kind, 1, length(?)) = ?)")
        args += [kind, kind, f"protocol-{kind}", f"protocol-{kind}"]
    for key in ("status", "sample", "device", "operator"):
        if filters.get(key) is not None:
            conds.append(f"r.{key} = ?")
            args.append(str(filters[key]))
    if filters.get("since"):
        conds.append("r.start_time >= ?")
        args.append(str(filters["since"]))
    if filters.get("until"):
        conds.append("r.start_time <= ?")
        args.append(str(filters["until"]))
    if filters.get("text"):
        conds.append("instr(lower(coalesce(r.notes, '') || ' ' || coalesce(r.reason, '') || ' ' || "
                     "coalesce(r.kind, '')), lower(?)) > 0")
        args.append(str(filters["text"]))
    return conds, args


def _param_wheres(param: Any) -> list[str]:
    """The old `param=("n", 4)` filter (or a list of pairs) as --where expressions."""
    if param is None:
        return []
    pairs = param if isinstance(param, list) else [param]
    return [f"params.{name}={value}" for name, value in pairs]


_FILTERS = ("kind", "status", "sample", "device", "operator", "since", "until", "text", "param", "where",
            "sort", "desc", "limit")


def query(root: str | os.PathLike | None = None, *, reconcile_first: bool = True,
          **filters: Any) -> list[dict]:
    """Runs under `root` (default: the runs root) from its catalogue, reconciled with the folders
    first: a list of entries (dicts: path, uid, kind, status, layout, reason, start_time, stop_time,
    sample, device, operator, notes, steps, parameters, results, coil_at_zero, sweep, ...), oldest
    first unless sorted.

    Filters (combined with AND): kind (the kind, a prefix of it, or a protocol's name:
    "hysteresis" finds "protocol-hysteresis"), status (as recorded), sample, device, operator, since,
    until (ISO dates compared with the start time), text (in the notes, reason or kind), where (a list
    of 'KEY OP VALUE', OP one of = != < <= > >=: KEY a parameter or result, "params.KEY" or
    "results.KEY" for one of them, or a column of `COLUMN_KEYS`; numbers compare as numbers, other
    values as text), param (("name", value) pairs, as `params.name=value`); sort (a key), desc, limit.
    A key no run records is a one-line UserError naming the closest one."""
    from labml.runs.store import runs_root

    unknown = sorted(set(filters) - set(_FILTERS))
    if unknown:
        raise UserError(f"unknown run filter(s) {unknown}{did_you_mean(unknown[0], _FILTERS)}; filters: "
                        f"{', '.join(_FILTERS)}")
    root = runs_root(root)
    if not root.exists():
        return []
    con = connect(root)
    try:
        if reconcile_first:
            reconcile(con, root)
        return _select(con, root, filters)
    finally:
        con.close()


def _select(con: sqlite3.Connection, root: Path, filters: dict) -> list[dict]:
    conds, args = _filter_sql(filters)
    wheres = list(filters.get("where") or []) + _param_wheres(filters.get("param"))
    for expr in wheres:
        key, op, value = parse_where(expr)
        _check_key(con, key, f"--where {expr!r}", root)
        c, a = _where_sql(key, op, value)
        conds.append(c)
        args += a
    sort = filters.get("sort")
    direction = "DESC" if filters.get("desc") else "ASC"
    order = f"r.start_time {direction}, r.rel {direction}"  # ties: by start time, then folder
    if sort:
        _check_key(con, sort, f"--sort {sort!r}", root)
        if sort in COLUMN_KEYS:
            col = "r.rel" if sort == "path" else f"r.{sort}"
            order = f"{col} IS NULL, {col} {direction}, {order}"
        else:
            src, name = _split_key(sort)
            sub = "(SELECT {} FROM vals WHERE run=r.id AND key=?" + (" AND src=?" if src else "") + \
                  " ORDER BY src LIMIT 1)"
            order = (f"{sub.format('num')} IS NULL, {sub.format('num')} {direction}, "
                     f"{sub.format('txt')} {direction}, {order}")
            args += [name, *([src] if src else [])] * 3
    cols = ", ".join("r." + c for c in _SELECTED)
    sql = f"SELECT {cols} FROM runs r {'WHERE ' + ' AND '.join(conds) if conds else ''} ORDER BY {order}"
    if filters.get("limit") is not None:
        sql += " LIMIT ?"
        args.append(int(filters["limit"]))
    return [_as_entry(root, row) for row in con.execute(sql, args)]


_SELECTED = (*FIELDS, "rel", "layout", "pid", "pid_host", "resumable", "coil_at_zero", "steps", "sweep",
             "summary")


def _as_entry(root: Path, row: tuple) -> dict:
    n = len(FIELDS)
    entry = dict(zip(FIELDS, row[:n], strict=True))
    rel, layout, pid, pid_host, resumable, coil, steps, sweep, summary = row[n:]
    entry.update(path=str(root) if rel == "." else f"{root}{os.sep}{rel}", layout=layout, pid=pid,
                 pid_host=pid_host, resumable=bool(resumable),
                 coil_at_zero=None if coil is None else bool(coil),
                 steps="corrupt" if steps == -1 else steps, sweep=bool(sweep))
    entry.update({"parameters": None, "results": None, **json.loads(summary or "{}")})
    return entry

