"""A run's series and arrays: one HDF5 file per run (``RUN_DIR/run.h5``) fed by an append-only
journal (``RUN_DIR/run.journal``); the layout and the journal format are in docs/records.md.

HDF5 is not crash-safe by itself: a writer killed while it updates the file can leave it damaged
(and SWMR forbids new datasets). So every row and every array goes first to the journal, a plain
append-only file of checksummed records (written at once, fsync'd at most once a second and before
every merge), and the journal is merged into run.h5 at each checkpoint and at the end of the run.
The journal holds the whole run, so a damaged run.h5 is rebuilt from it (`rebuild`), and a reader
can follow a running run: the rows of run.h5 plus the journal records written after its last
merge (`read_series`).

Why one dataset per column (not one compound dataset per series): reading one column (a plot, an
xarray variable) reads only that column's chunks, and a column comes back as a contiguous numpy
array without copying fields out of records; units and descriptions sit on the dataset they
describe. The codec (`CODEC`) was chosen by measurement (benchmarks/bench_records.py).

The journal is hand-written (struct + zlib.crc32): no library offers an append-only, torn-write
tolerant record log that numpy arrays go into without pickling, and its reader must never execute
anything from the file.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import struct
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from labml.errors import UserError

log = logging.getLogger(__name__)

RECORDS_FILE = "run.h5"
JOURNAL_FILE = "run.journal"
FORMAT = "labml-run-records"  # run.h5 attribute "format"
FORMAT_VERSION = 1
CODEC: str | None = None  # chunk compression of the series: None (measured fastest to reload) or "lzf"
SYNC_INTERVAL_S = 1.0  # the journal is fsync'd at most this often (and before every merge)
MERGE_BLOCK_BYTES = 64 << 20  # a merge writes to run.h5 in blocks of about this many journal bytes
# rows per chunk, from the first merge's size (1 M float64 = 8 MB: bigger than HDF5's chunk cache, so
# a whole-column read goes straight into the numpy array)
CHUNK_ROWS_MIN, CHUNK_ROWS_MAX = 1024, 1 << 20

# journal record: magic, type, header length, body length, crc32 of header+body; then header (JSON), body
_PREFIX = struct.Struct("<4sBIQI")
MAGIC = b"LJR1"
T_OPEN, T_ROWS, T_ARRAYS = 0, 1, 2
JOURNAL_FORMAT = "labml-run-journal"
# column kinds in the journal, in promotion order: bool < int64 < float64 < text
KINDS = ("b1", "i8", "f8", "str")


# ======================================================================================= columns
def _kind_of(values: list) -> str:
    """The narrowest column kind that holds `values` (None and "" are missing values)."""
    present = [v for v in values if v is not None and not (isinstance(v, str) and v == "")]
    missing = len(present) < len(values)
    if all(isinstance(v, bool | np.bool_) for v in present):
        return "f8" if missing and present else "b1" if present else "f8"
    if all(isinstance(v, int | np.integer) and not isinstance(v, bool | np.bool_) for v in present):
        return "f8" if missing else "i8"
    if all(isinstance(v, int | float | np.integer | np.floating) for v in present):
        return "f8"
    return "str"


def _text(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, np.generic):
        v = v.item()
    return v if isinstance(v, str) else repr(v) if isinstance(v, float) else str(v)


def column_array(values: list | np.ndarray, kind: str | None = None) -> tuple[str, np.ndarray | list[str]]:
    """(kind, data) of one column: a numpy array (b1, i8, f8; missing values NaN) or a list of str."""
    if isinstance(values, np.ndarray) and values.dtype.kind in "biuf" and kind is None:
        k = {"b": "b1", "i": "i8", "u": "i8", "f": "f8"}[values.dtype.kind]
        return k, np.ascontiguousarray(values, dtype=np.dtype(k).newbyteorder("<"))
    values = list(values)
    kind = kind or _kind_of(values)
    if kind == "str":
        return kind, [_text(v) for v in values]
    if kind == "f8":
        return kind, np.array([np.nan if v is None or v == "" else float(v) for v in values], dtype="<f8")
    try:
        return kind, np.array(values, dtype=np.dtype(kind).newbyteorder("<"))
    except OverflowError:  # an integer beyond int64
        return "str", [_text(v) for v in values]


def promote(kind: str, data: np.ndarray | list[str], to: str) -> np.ndarray | list[str]:
    """Column `data` of `kind` as kind `to` (a wider one, `KINDS` order)."""
    if kind == to:
        return data
    if to == "str":
        return [_text(v) for v in (data.tolist() if isinstance(data, np.ndarray) else data)]
    return np.asarray(data).astype(to)


def wider(a: str, b: str) -> str:
    return KINDS[max(KINDS.index(a), KINDS.index(b))]


# ======================================================================================= journal
def _record(typ: int, header: dict, body: bytes) -> bytes:
    h = json.dumps(header, separators=(",", ":")).encode()
    crc = zlib.crc32(body, zlib.crc32(h))
    return _PREFIX.pack(MAGIC, typ, len(h), len(body), crc) + h + body


def open_record(uid: str) -> bytes:
    """The first record of a journal: its format and the run it belongs to."""
    return _record(T_OPEN, {"format": JOURNAL_FORMAT, "version": FORMAT_VERSION, "uid": uid}, b"")


def rows_record(series: str, start: int, columns: dict[str, tuple[str, Any]],
                units: dict[str, tuple[str, str]] | None = None) -> bytes:
    """A block of rows of `series` whose first row has index `start`: per column its kind and data
    (numeric: little-endian bytes; text: a JSON list of strings), and its declared (units,
    description) where `units` names it."""
    parts, cols, n = [], [], None
    for name, (kind, data) in columns.items():
        raw = json.dumps(data).encode() if kind == "str" else np.asarray(data).tobytes()
        count = len(data)
        if n is not None and count != n:
            raise ValueError(f"series {series!r}: column {name!r} has {count} values, not {n}")
        n = count
        cols.append([name, kind, len(raw), *([list(units[name])] if units and name in units else [])])
        parts.append(raw)
    return _record(T_ROWS, {"series": series, "start": int(start), "rows": int(n or 0), "columns": cols},
                   b"".join(parts))


def arrays_record(name: str, arrays: dict[str, np.ndarray]) -> bytes:
    """Named arrays (a map, a histogram) of any shape; numbers and text only."""
    parts, meta = [], []
    for key, a in arrays.items():
        a = np.ascontiguousarray(a)
        if a.dtype.hasobject:
            raise ValueError(f"array {name}/{key} holds Python objects; a run folder holds numbers and text")
        raw = a.tobytes()
        meta.append([key, a.dtype.str, list(a.shape), len(raw)])
        parts.append(raw)
    return _record(T_ARRAYS, {"name": name, "arrays": meta}, b"".join(parts))


def decode_rows(header: dict, body: bytes | memoryview) -> dict[str, tuple[str, Any]]:
    out, pos = {}, 0
    for name, kind, nbytes, *_units in header["columns"]:
        raw = body[pos : pos + nbytes]
        pos += nbytes
        if kind == "str":
            out[name] = (kind, [str(s) for s in json.loads(bytes(raw))])
        elif kind in KINDS:
            out[name] = (kind, np.frombuffer(raw, dtype=np.dtype(kind).newbyteorder("<")))
        else:
            raise ValueError(f"unknown column kind {kind!r}")
    return out


def decode_arrays(header: dict, body: bytes | memoryview) -> dict[str, np.ndarray]:
    out, pos = {}, 0
    for key, dtype, shape, nbytes in header["arrays"]:
        dt = np.dtype(dtype)
        if dt.hasobject:
            raise ValueError(f"array {key} has an object dtype")
        out[key] = np.frombuffer(body[pos : pos + nbytes], dtype=dt).reshape(shape).copy()
        pos += nbytes
    return out


def iter_journal(path: Path, start: int = 0,
                 stop: int | None = None) -> Iterator[tuple[int, int, int, dict, bytes]]:
    """(offset, end, type, header, body) of every whole, intact record in [start, stop) of the
    journal; it stops at the first torn or damaged record (the tail a killed writer left)."""
    with open(path, "rb") as fh:
        fh.seek(start)
        off = start
        while stop is None or off < stop:
            prefix = fh.read(_PREFIX.size)
            if len(prefix) < _PREFIX.size:
                return
            magic, typ, hlen, blen, crc = _PREFIX.unpack(prefix)
            if magic != MAGIC or hlen > 1 << 26:
                return
            head = fh.read(hlen)
            body = fh.read(blen)
            if len(head) < hlen or len(body) < blen or zlib.crc32(body, zlib.crc32(head)) != crc:
                return
            end = off + _PREFIX.size + hlen + blen
            if stop is not None and end > stop:
                return
            try:
                header = json.loads(head)
            except (json.JSONDecodeError, UnicodeDecodeError):
                return
            yield off, end, typ, header, body
            off = end


def last_rows(path: Path, start: int = 0) -> tuple[int, dict[str, dict[str, Any]]]:
    """(end of the last intact record, {series: its last row as column -> value}) of the journal
    records from byte `start` on: a reader following a running run (the dashboard's rig panel)
    passes the end it got last time, so each call reads only what was appended since."""
    end, last = start, {}
    if not path.exists():
        return end, last
    for _off, end, typ, header, body in iter_journal(path, start):  # noqa: B007 - end: the last record's
        if typ == T_ROWS and int(header.get("rows", 0)) > 0:
            cols = decode_rows(header, body)
            last[header["series"]] = {name: data[-1] for name, (_kind, data) in cols.items()}
    return end, last


def check_journal(path: Path, uid: str | None = None) -> None:
    """UserError unless `path` begins with the open record of a labml journal (of run `uid`)."""
    first = next(iter_journal(path, 0), None)
    if first is None or first[2] != T_OPEN or first[3].get("format") != JOURNAL_FORMAT:
        raise UserError(f"{path} is not a labml run journal (no valid first record)")
    if uid is not None and first[3].get("uid") != uid:
        raise UserError(f"{path} belongs to run {first[3].get('uid')!r}, not to this run ({uid!r})")


def scan_journal(path: Path) -> tuple[int, dict[str, int], dict[str, dict[str, str]]]:
    """(valid length in bytes, rows per series, column kinds per series) of a journal."""
    end, rows, kinds = 0, {}, {}
    if not path.exists():
        return 0, rows, kinds
    for _off, end, typ, header, _body in iter_journal(path):  # noqa: B007 - end: the last record's
        if typ == T_ROWS:
            s = header["series"]
            rows[s] = int(header["start"]) + int(header["rows"])
            k = kinds.setdefault(s, {})
            for name, kind, *_rest in header["columns"]:
                k[name] = wider(k.get(name, kind), kind)
    return end, rows, kinds


# ======================================================================================= units
_UNIT_IN_NAME = re.compile(r"^(?P<label>.*?)\s*\((?P<unit>[^()]+)\)\s*$")
_SUFFIX_UNITS = {"mT": "mT", "T": "T", "A": "A", "mA": "mA", "V": "V", "mV": "mV", "s": "s", "ms": "ms",
                 "us": "us", "ns": "ns", "Hz": "Hz", "J": "J", "W": "W", "K": "K", "ohm": "ohm",
                 "Ohm": "ohm", "m": "m", "nm": "nm", "um": "um"}
_NAMED_UNITS = {"sec": "s", "seconds": "s", "time_s": "s"}


def units_of(column: str) -> tuple[str, str]:
    """(units, description) of a column from its name: "Field (mT)" -> ("mT", "Field"),
    "bench_time_s" -> ("s", "bench time"), "sec" -> ("s", "sec"); "" when the name states none."""
    m = _UNIT_IN_NAME.match(column)
    if m:
        return m.group("unit").strip(), m.group("label").strip()
    if column in _NAMED_UNITS:
        return _NAMED_UNITS[column], column
    stem, _, suffix = column.rpartition("_")
    if stem and suffix in _SUFFIX_UNITS:
        return _SUFFIX_UNITS[suffix], stem.replace("_", " ")
    return "", column.replace("_", " ")


def dataset_name(column: str) -> str:
    """The HDF5 dataset name of a column ('/' is not allowed in a name; '.' alone neither)."""
    name = column.replace("/", "\u2215")
    return name if name not in ("", ".", "..") else f"_{name}"


# ======================================================================================= run.h5
def _h5py():
    """h5py, imported on first use (so that listing runs stays light) with the termination signals
    held back meanwhile: a SIGTERM turned into an exception in the middle of importing h5py's Cython
    modules leaves them half-initialised, and every later import in that process fails
    (KeyError: '__reduce_cython__'; found by the fault campaign). A signal that comes meanwhile is
    recorded and raised again, to the handler in place, as soon as the import is done. (Blocking the
    signals with pthread_sigmask is not enough: numpy's BLAS threads receive them.)"""
    import sys

    if "h5py" in sys.modules:
        return sys.modules["h5py"]
    import signal
    import threading

    held: dict = {}
    came: list[int] = []
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT):
            old = signal.getsignal(sig)
            if old is not None:  # None: a handler not set from Python, left alone
                held[sig] = signal.signal(sig, lambda signum, frame: came.append(signum))
    try:
        import h5py
    finally:
        for sig, old in held.items():
            signal.signal(sig, old)
        for sig in came:
            signal.raise_signal(sig)
    return h5py


def _chunk_rows(n: int) -> int:
    c = CHUNK_ROWS_MIN
    while c < n and c < CHUNK_ROWS_MAX:
        c *= 2
    return c


def _text_width(values: list[str]) -> int:
    """Bytes per value of a fixed-length UTF-8 text dataset that holds `values` (a power of two >= 8).
    Fixed-length, not variable-length strings: each merge of variable-length strings opens a new
    global heap collection (4 KB or more), which made a 42-row run's file 250 kB."""
    need = max((len(v.encode()) for v in values), default=1)
    width = 8
    while width < need:
        width *= 2
    return width


def _create_column(g, column: str, kind: str, first_rows: int, units: dict, width: int = 8):
    if kind == "str":
        dtype, fill = _h5py().string_dtype("utf-8", length=width), b""
    else:
        dtype, fill = np.dtype(kind), (np.nan if kind == "f8" else 0)
    ds = g.create_dataset(dataset_name(column), shape=(0,), maxshape=(None,), dtype=dtype, fillvalue=fill,
                          chunks=(_chunk_rows(first_rows),), compression=CODEC)
    unit, description = units.get(column) or units_of(column)
    ds.attrs["column"] = column
    ds.attrs["units"] = unit
    ds.attrs["description"] = description
    ds.attrs["kind"] = kind
    return ds


def _read_column(ds, n: int | None = None) -> np.ndarray:
    """A column dataset as a numpy array (its first `n` rows; text as str)."""
    sel = slice(None) if n is None else slice(0, n)
    return ds.asstr()[sel].astype(str) if ds.attrs.get("kind") == "str" else ds[sel]


def _promote_column(g, ds, column: str, kind: str, units: dict, width: int = 8):
    """Re-create dataset `ds` with the wider `kind` (a later row had e.g. a float in an int column) or,
    for text, a width of at least `width` bytes."""
    old_kind = str(ds.attrs.get("kind"))
    data = _read_column(ds)
    attrs = dict(ds.attrs)
    chunks = ds.chunks[0] if ds.chunks else CHUNK_ROWS_MIN
    del g[ds.name.rsplit("/", 1)[-1]]
    values = promote(old_kind, data if old_kind != "str" else list(data), kind)
    if kind == "str":
        width = max(width, _text_width(values))
    new = _create_column(g, column, kind, chunks, units, width)
    for k, v in attrs.items():
        if k != "kind":
            new.attrs[k] = v
    new.resize((len(values),))
    if len(values):
        new[:] = _encoded(values, width) if kind == "str" else values
    return new


def _encoded(values: list[str], width: int) -> np.ndarray:
    """UTF-8 bytes of `values` typed as HDF5 UTF-8 text of `width` bytes (HDF5 will not convert
    numpy's ASCII-tagged bytes into a UTF-8 dataset)."""
    return np.array([v.encode() for v in values], dtype=_h5py().string_dtype("utf-8", length=width))


def _column_dataset(g, column: str, kind: str, values: list[str], total: int, n0: int, units: dict):
    """The dataset of `column` of `kind`, made or re-made so that it takes the new rows (a wider kind;
    text `values` longer than its width)."""
    ds = g.get(dataset_name(column))
    width = _text_width(values) if kind == "str" else 8
    if ds is None:
        ds = _create_column(g, column, kind, total, units, width)
        ds.resize((n0,))
    elif ds.attrs["kind"] != kind or (kind == "str" and ds.dtype.itemsize < width):
        ds = _promote_column(g, ds, column, kind, units, width)
    return ds


def _append_block(h5, series: str, blocks: list[tuple[int, dict]], units: dict) -> None:
    """Append row blocks [(start, {column: (kind, data)})] of one series to run.h5."""
    g = h5.require_group("series").require_group(dataset_name(series))
    _set_attr(g, "series", series)
    columns = json.loads(g.attrs.get("columns", "[]"))
    n0 = int(g.attrs.get("rows", 0))
    if blocks[0][0] != n0:
        raise ValueError(f"series {series!r}: journal block starts at row {blocks[0][0]}, the file has {n0}")
    for b in blocks:
        columns += [c for c in b[1] if c not in columns]
    total = sum(len(next(iter(b[1].values()))[1]) if b[1] else 0 for b in blocks)
    for column in columns:
        parts = [cols.get(column, ("f8", np.full(len(next(iter(cols.values()))[1]), np.nan)))
                 for _s, cols in blocks]
        ds = g.get(dataset_name(column))
        kind = str(ds.attrs["kind"]) if ds is not None else parts[0][0]
        for k, _d in parts:
            kind = wider(kind, k)
        data = [promote(k, d, kind) for k, d in parts]
        values = [v for p in data for v in p] if kind == "str" else []
        ds = _column_dataset(g, column, kind, values, total, n0, units.get(series, {}))
        ds.resize((n0 + total,))
        if kind == "str":
            ds[n0:] = _encoded(values, ds.dtype.itemsize)
        else:
            ds[n0:] = data[0] if len(data) == 1 else np.concatenate(data)
    _set_attr(g, "columns", json.dumps(columns))
    g.attrs["rows"] = n0 + total


def _set_attr(obj, key: str, value: Any) -> None:
    """Set an attribute only when it changes: rewriting a text attribute of a group, even with the
    same value, costs 4 kB of file space per merge (measured: 42 merges, 65 kB -> 237 kB)."""
    if obj.attrs.get(key) != value:
        obj.attrs[key] = value


def _write_arrays(h5, name: str, arrays: dict[str, np.ndarray]) -> None:
    g = h5.require_group("arrays")
    key = dataset_name(name)
    if key in g:
        del g[key]
    sub = g.create_group(key)
    sub.attrs["name"] = name
    for k, a in arrays.items():
        if a.dtype.kind == "U":  # UTF-8, fixed length (see `_text_width`)
            flat = [str(v) for v in a.ravel().tolist()]
            width = _text_width(flat)
            ds = sub.create_dataset(dataset_name(k), data=_encoded(flat, width).reshape(a.shape),
                                    dtype=_h5py().string_dtype("utf-8", length=width))
        else:
            ds = sub.create_dataset(dataset_name(k), data=a)
        ds.attrs["name"] = k
        ds.attrs["dtype"] = a.dtype.str


def merge(h5, journal: Path, start: int, stop: int, units: dict) -> int:
    """Merge the journal records in [start, stop) into the open run.h5 `h5`; returns where it ended."""
    pending: dict[str, list[tuple[int, dict]]] = {}
    size = 0
    end = start

    def flush() -> None:
        nonlocal size
        for series, blocks in pending.items():
            _append_block(h5, series, blocks, units)
        pending.clear()
        size = 0

    for _off, end, typ, header, body in iter_journal(journal, start, stop):  # noqa: B007 - returned
        if typ == T_ROWS:
            pending.setdefault(header["series"], []).append((int(header["start"]), decode_rows(header, body)))
            _declared_units(header, units)
            size += len(body)
            if size >= MERGE_BLOCK_BYTES:
                flush()
        elif typ == T_ARRAYS:
            _write_arrays(h5, header["name"], decode_arrays(header, body))
    flush()
    return end


def _declared_units(header: dict, units: dict) -> None:
    """The (units, description) a rows record declares for its columns, into `units[series]`."""
    for name, _kind, _n, *declared in header["columns"]:
        if declared:
            units.setdefault(header["series"], {})[name] = tuple(declared[0])


def write_attrs(h5, meta: dict) -> None:
    """The run's identity, parameters and rig snapshot as attributes of run.h5's root (JSON text
    for the nested ones)."""
    attrs: dict[str, Any] = {"format": FORMAT, "format_version": FORMAT_VERSION, "codec": CODEC or "none"}
    for key in ("uid", "kind", "start_time", "sample", "device", "operator"):
        if meta.get(key) is not None:
            attrs[key] = str(meta[key])
    attrs["parameters"] = json.dumps(meta.get("parameters") or {}, sort_keys=True)
    rig = {k: v for k, v in meta.items() if k.startswith("rig") or k == "calibration"}
    attrs["rig"] = json.dumps(rig, sort_keys=True, default=str)
    for key, value in attrs.items():
        _set_attr(h5, key, value)


def open_h5(path: Path, mode: str = "r"):
    """h5py.File without HDF5's file lock: a reader (a notebook holding a lazy dataset) never blocks
    the writer's merge; readers check the "merging" flag instead (`healthy`)."""
    return _h5py().File(path, mode, locking=False)


def healthy(path: Path, journal_bytes: int | None = None) -> int | None:
    """run.h5's merged journal length when the file opens, is a labml run file and was not left
    mid-merge (and has merged no more than `journal_bytes`); None when it is damaged or missing."""
    if not path.is_file():
        return None
    try:
        with open_h5(path) as h5:
            if h5.attrs.get("format") != FORMAT or int(h5.attrs.get("merging", 0)):
                return None
            merged = int(h5.attrs.get("journal_bytes", -1))
            for g in h5.get("series", {}).values():
                n = int(g.attrs["rows"])
                if any(ds.shape[0] != n for ds in g.values()):
                    return None
    except Exception:  # noqa: BLE001 - any failure to read it is a damaged file
        return None
    if merged < 0 or (journal_bytes is not None and merged > journal_bytes):
        return None
    return merged


def commit(path: Path, journal: Path, stop: int, meta: dict, units: dict) -> None:
    """Merge the journal up to `stop` into run.h5 (made when missing). The "merging" flag is set and
    flushed first and cleared last, so a file left by a kill in between is seen as damaged and
    rebuilt from the journal."""
    merged = healthy(path)
    if merged is None:
        rebuild(path, journal, stop, meta, units)
        return
    if merged >= stop:
        return
    with open_h5(path, "a") as h5:
        h5.attrs["merging"] = 1
        h5.flush()
        end = merge(h5, journal, merged, stop, units)
        write_attrs(h5, meta)
        h5.attrs["journal_bytes"] = end
        h5.attrs["merging"] = 0
    _fsync(path)


def rebuild(path: Path, journal: Path, stop: int | None, meta: dict, units: dict) -> None:
    """Write run.h5 anew from the journal (up to `stop`): to a temp file, fsync'd, renamed over it."""
    tmp = path.with_name(f".{path.name}.rebuild.tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    try:
        with _h5py().File(tmp, "w", locking=False, fs_strategy="fsm", fs_persist=True) as h5:
            write_attrs(h5, meta)
            h5.require_group("series")
            end = merge(h5, journal, 0, stop, units) if journal.exists() else 0
            h5.attrs["journal_bytes"] = end
            h5.attrs["merging"] = 0
        _fsync(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    _fsync(path.parent)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# ======================================================================================= reading
def _journal_tail(journal: Path, start: int,
                  units: dict) -> tuple[dict[str, list[tuple[int, dict]]], dict[str, dict]]:
    rows: dict[str, list[tuple[int, dict]]] = {}
    arrays: dict[str, dict] = {}
    if journal.exists():
        for _off, _end, typ, header, body in iter_journal(journal, start):
            if typ == T_ROWS:
                block = (int(header["start"]), decode_rows(header, body))
                rows.setdefault(header["series"], []).append(block)
                _declared_units(header, units)
            elif typ == T_ARRAYS:
                arrays[header["name"]] = decode_arrays(header, body)
    return rows, arrays


class Snapshot:
    """What a run's records hold now, read eagerly: run.h5 (when healthy) plus the journal records
    written after its last merge, or the journal alone when run.h5 is missing or damaged.

    `columns[series]` is {column: numpy array} (text columns: arrays of str), `units[series]`
    {column: (units, description)}, `arrays[name]` {key: array}; `source` says what was read."""

    def __init__(self, run_dir: str | os.PathLike, only: str | None = None) -> None:
        self.path = Path(run_dir)
        self.only = only
        self.columns: dict[str, dict[str, np.ndarray]] = {}
        self.units: dict[str, dict[str, tuple[str, str]]] = {}
        self.arrays: dict[str, dict[str, np.ndarray]] = {}
        h5file, journal = self.path / RECORDS_FILE, self.path / JOURNAL_FILE
        merged = healthy(h5file)
        if merged is None and h5file.exists() and not journal.exists():
            raise UserError(bad_records_file(h5file))
        self.source = JOURNAL_FILE
        if merged is not None and journal.exists():
            try:  # a writer may merge meanwhile (no lock): on any failure, read the journal alone
                self._read_h5(h5file)
                self.source = RECORDS_FILE
            except Exception as exc:  # noqa: BLE001
                log.info("%s changed while read (%s); reading %s", h5file, exc, journal)
                self.columns, self.units, self.arrays, merged = {}, {}, {}, 0
        elif merged is not None:
            self._read_h5(h5file)
            self.source = RECORDS_FILE
        else:
            merged = 0
        declared: dict[str, dict[str, tuple[str, str]]] = {}
        rows, arrays = _journal_tail(journal, merged, declared)
        for series, cols in declared.items():
            self.units.setdefault(series, {}).update(cols)
        self.arrays.update(arrays)
        if only is not None:
            rows = {k: v for k, v in rows.items() if k == only}
        for series, blocks in rows.items():
            self._add_blocks(series, blocks)
        if merged and rows:
            self.source = f"{RECORDS_FILE}+{JOURNAL_FILE}"

    def _read_h5(self, f: Path) -> None:
        with open_h5(f) as h5:
            for g in h5.get("series", {}).values():
                series = str(g.attrs.get("series", g.name.rsplit("/", 1)[-1]))
                if self.only is not None and series != self.only:
                    continue
                cols = {}
                n = int(g.attrs.get("rows", 0))  # rows a merge under way adds are not read
                for column in json.loads(g.attrs.get("columns", "[]")):
                    ds = g[dataset_name(column)]
                    cols[column] = _read_column(ds, n)
                    self.units.setdefault(series, {})[column] = (str(ds.attrs.get("units", "")),
                                                                 str(ds.attrs.get("description", "")))
                self.columns[series] = cols
            for g in h5.get("arrays", {}).values():
                self.arrays[str(g.attrs.get("name", g.name.rsplit("/", 1)[-1]))] = {
                    str(ds.attrs.get("name", k)): _array_of(ds) for k, ds in g.items()}

    def _add_blocks(self, series: str, blocks: list[tuple[int, dict]]) -> None:
        have = self.columns.setdefault(series, {})
        n0 = len(next(iter(have.values()))) if have else 0
        blocks = [(s, c) for s, c in blocks if s >= n0]  # merged meanwhile
        if not blocks:
            return
        names = list(have) + [c for _s, cols in blocks for c in cols if c not in have]
        for column in dict.fromkeys(names):
            kinds = [cols[column][0] for _s, cols in blocks if column in cols]
            old = have.get(column)
            kind = "str" if old is not None and old.dtype.kind in "UO" else None
            for k in kinds:
                kind = wider(kind or k, k)
            parts = [np.array(promote(_np_kind(old), old, kind), dtype=object if kind == "str" else None)
                     if old is not None and len(old) else np.array([], dtype=_np_dtype(kind))]
            for _s, cols in blocks:
                k, data = cols.get(column, ("f8", np.full(len(next(iter(cols.values()))[1]), np.nan)))
                parts.append(np.array(promote(k, data, kind), dtype=_np_dtype(kind)))
            arr = np.concatenate(parts)
            have[column] = arr.astype(str) if kind == "str" else arr
            self.units.setdefault(series, {}).setdefault(column, units_of(column))


def _array_of(ds) -> np.ndarray:
    """An array dataset of run.h5 as saved (text arrays back to numpy str arrays)."""
    if ds.dtype.kind in "OS":
        return ds.asstr()[()].astype(str(ds.attrs.get("dtype", "U")))
    return ds[()]


def _np_kind(a: np.ndarray) -> str:
    return "str" if a.dtype.kind in "UO" else {"b": "b1", "i": "i8", "u": "i8", "f": "f8"}[a.dtype.kind]


def _np_dtype(kind: str):
    return object if kind == "str" else np.dtype(kind)


def bad_records_file(f: Path) -> str:
    return (f"{f} is not a readable labml run records file (damaged or foreign HDF5, and no "
            f"{JOURNAL_FILE} beside it to rebuild it from)")


def series_names(run_dir: Path) -> list[str]:
    """Names of the series a run recorded (run.h5, and the journal records after its last merge),
    sorted. Only the journal's unmerged tail is read."""
    h5file, journal = run_dir / RECORDS_FILE, run_dir / JOURNAL_FILE
    merged = healthy(h5file)
    names: set[str] = set()
    if merged is not None:
        with contextlib.suppress(Exception), open_h5(h5file) as h5:
            names = {str(g.attrs.get("series", k)) for k, g in h5.get("series", {}).items()}
    if journal.exists():
        for _off, _end, typ, header, _body in iter_journal(journal, merged or 0):
            if typ == T_ROWS:
                names.add(header["series"])
    return sorted(names)


def now() -> float:
    return time.monotonic()


# ======================================================================================= writing
class Writer:
    """The writing side of a run's records (used by `labml.runs.store.Run`, never by a run kind).

    `write(path, data, sync)` appends bytes to a file (the run store's `write_bytes`, so that write
    failures become RunWriteError and tests can inject faults there). `meta()` returns run.json's
    current content (the attributes of run.h5)."""

    def __init__(self, run_dir: Path, uid: str, write, meta) -> None:
        self.dir = Path(run_dir)
        self.journal = self.dir / JOURNAL_FILE
        self.h5 = self.dir / RECORDS_FILE
        self.uid, self._write_fn, self._meta = uid, write, meta
        self.end = -1  # journal length; -1: not scanned yet
        self.rows: dict[str, int] = {}
        self.columns: dict[str, list[str]] = {}
        self.units: dict[str, dict[str, tuple[str, str]]] = {}
        self._synced_at = 0.0
        self._unsynced = False

    # ----------------------------------------------------------------- journal
    def _open(self) -> None:
        if self.end >= 0:
            return
        if self.journal.exists() and self.journal.stat().st_size > 0:
            check_journal(self.journal, self.uid)
            end, rows, kinds = scan_journal(self.journal)
            if self.journal.stat().st_size > end:  # the torn tail of a killed writer
                log.info("%s: cutting %d bytes of a torn record", self.journal,
                         self.journal.stat().st_size - end)
                _truncate(self.journal, end)
            self.end, self.rows = end, rows
            self.columns = {s: list(k) for s, k in kinds.items()}
        else:
            self.end, self.rows, self.columns = 0, {}, {}
            self._append(open_record(self.uid), sync=True)

    def _append(self, data: bytes, sync: bool | None = None) -> None:
        t = now()
        if sync is None:
            sync = t - self._synced_at >= SYNC_INTERVAL_S
        self._write_fn(self.journal, data, sync)
        self.end += len(data)
        if sync:
            self._synced_at, self._unsynced = t, False
        else:
            self._unsynced = True

    def append_rows(self, name: str, rows: list[dict]) -> None:
        self._open()
        cols = self.columns.get(name) or list(rows[0])
        extra = sorted({k for r in rows for k in r if k not in cols})
        if extra:
            raise ValueError(f"{self.dir}: series {name!r}: row has column(s) {extra} not in the header "
                             f"{cols} (the columns of its first row)")
        self._block(name, {c: column_array([r.get(c) for r in rows]) for c in cols})

    def append_columns(self, name: str, columns: dict[str, Any]) -> None:
        """A block of rows given column-wise ({column: array}); same columns as the series' rows."""
        self._open()
        cols = self.columns.get(name) or list(columns)
        if set(columns) != set(cols):
            raise ValueError(f"{self.dir}: series {name!r}: block has columns {sorted(columns)}, "
                             f"the series has {cols}")
        self._block(name, {c: column_array(columns[c]) for c in cols})

    def _block(self, name: str, columns: dict[str, tuple[str, Any]]) -> None:
        start = self.rows.get(name, 0)
        data = rows_record(name, start, columns, self.units.get(name))
        self._append(data)
        self.columns.setdefault(name, list(columns))
        self.rows[name] = start + len(next(iter(columns.values()))[1])

    def describe(self, name: str, units: dict[str, str] | None, descriptions: dict[str, str] | None) -> None:
        for col, unit in (units or {}).items():
            self.units.setdefault(name, {})[col] = (unit, (descriptions or {}).get(col) or units_of(col)[1])

    def save_arrays(self, name: str, arrays: dict[str, np.ndarray]) -> None:
        self._open()
        self._append(arrays_record(name, arrays))

    # ----------------------------------------------------------------- merge, truncate
    def sync(self) -> None:
        self._open()
        if self._unsynced:
            _fsync(self.journal)
            self._synced_at, self._unsynced = now(), False

    def commit(self) -> dict:
        """fsync the journal and merge it into run.h5; returns what a checkpoint records."""
        self.sync()
        commit(self.h5, self.journal, self.end, self._meta(), self.units)
        return {"format": "hdf5", "journal_bytes": self.end, "rows": dict(self.rows)}

    def truncate(self, record: dict) -> dict[str, int]:
        """Cut the journal back to a checkpoint's `record` and rebuild run.h5 from it when it holds
        more (or is damaged); {} resets the records. Returns series -> rows dropped."""
        self.end = -1
        if not record:
            before = scan_journal(self.journal)[1]
            for f in (self.journal, self.h5):
                with contextlib.suppress(FileNotFoundError):
                    f.unlink()
            self._open()
            return {k: v for k, v in before.items() if v}
        if record.get("format") != "hdf5":
            raise UserError(f"{self.dir}: the checkpoint records CSV series, but the run writes "
                            f"{RECORDS_FILE}; cannot resume safely")
        keep = int(record["journal_bytes"])
        size = self.journal.stat().st_size if self.journal.exists() else 0
        if size < keep:
            raise UserError(f"{self.journal} is shorter ({size} bytes) than at its checkpoint ({keep} "
                            "bytes): the run folder was changed outside labml; cannot resume safely")
        check_journal(self.journal, self.uid)
        before = scan_journal(self.journal)[1]
        _truncate(self.journal, keep)
        end, rows, _k = scan_journal(self.journal)
        want = {k: int(v) for k, v in (record.get("rows") or {}).items()}
        if end != keep or {k: v for k, v in rows.items() if v} != {k: v for k, v in want.items() if v}:
            raise UserError(f"{self.journal} does not hold the rows its checkpoint records ({want}, found "
                            f"{rows}); the run folder was changed outside labml; cannot resume safely")
        if healthy(self.h5) != keep:
            log.info("%s: rebuilding from %s (%d bytes)", self.h5, self.journal, keep)
            rebuild(self.h5, self.journal, keep, self._meta(), self.units)
        self._open()
        return {k: n - rows.get(k, 0) for k, n in before.items() if n > rows.get(k, 0)}


def _truncate(path: Path, size: int) -> None:
    with open(path, "r+b") as fh:
        fh.truncate(size)
        fh.flush()
        os.fsync(fh.fileno())
