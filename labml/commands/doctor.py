"""`labml doctor`: what this machine has and lacks for labml, one line per check, with what to install.

    labml doctor [--json]

Checks: the Qt binding and its window-system plugin (the xcb libraries the dashboard needs on Linux,
found with `ldd` on the plugin, plus libxcb-cursor which Qt loads at run time), whether a window can
open here ($DISPLAY / $WAYLAND_DISPLAY, or QT_QPA_PLATFORM=offscreen), the VISA backends, the data
folder (labml.data's rule), the runs root and the rig lock folder (writable). Nothing is opened on a
bus and nothing is written. Exit status 0 when everything is usable, 1 when something is missing.
"""

from __future__ import annotations

import argparse
import ctypes.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

#: Debian/Ubuntu package of each library the Qt xcb plugin needs that a minimal system may lack
#: (a declarative table; `apt-file search` names the rest).
DEBIAN_PACKAGES = {
    "libxcb-cursor.so.0": "libxcb-cursor0",
    "libxcb-icccm.so.4": "libxcb-icccm4",
    "libxcb-keysyms.so.1": "libxcb-keysyms1",
    "libxcb-image.so.0": "libxcb-image0",
    "libxcb-render-util.so.0": "libxcb-render-util0",
    "libxcb-xinerama.so.0": "libxcb-xinerama0",
    "libxcb-xkb.so.1": "libxcb-xkb1",
    "libxcb-randr.so.0": "libxcb-randr0",
    "libxcb-shape.so.0": "libxcb-shape0",
    "libxcb-xfixes.so.0": "libxcb-xfixes0",
    "libxkbcommon-x11.so.0": "libxkbcommon-x11-0",
    "libxkbcommon.so.0": "libxkbcommon0",
    "libEGL.so.1": "libegl1",
    "libGL.so.1": "libgl1",
    "libfontconfig.so.1": "libfontconfig1",
    "libdbus-1.so.3": "libdbus-1-3",
}


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "doctor", allow_abbrev=False,
        help="what this machine lacks for labml (Qt libraries, VISA, data, folders)",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--json", action="store_true", help="last stdout line: one JSON object")
    p.set_defaults(func=cmd_doctor)


def missing_libraries(ldd_output: str) -> list[str]:
    """The sonames `ldd` reports as "not found", each once, in order."""
    return list(dict.fromkeys(re.findall(r"^\s*(\S+) => not found", ldd_output, flags=re.M)))


def install_hint(sonames: list[str]) -> str:
    packages = [DEBIAN_PACKAGES.get(s, s) for s in sonames]
    return "sudo apt install " + " ".join(dict.fromkeys(packages))


def check_qt() -> list[dict]:
    """The Qt binding, the xcb plugin's libraries, and whether a window can open here."""
    try:
        import qtpy
        from qtpy import QtCore
    except Exception as exc:  # noqa: BLE001 - any import failure is the finding
        return [{"check": "Qt binding", "ok": False, "detail": f"{exc}",
                 "fix": 'pip install PySide6-Essentials (or the extras of the README\'s install line)'}]
    out = [{"check": "Qt binding", "ok": True, "detail": f"{qtpy.API_NAME}, Qt {QtCore.qVersion()}"}]
    if sys.platform.startswith("linux"):
        plugins = Path(QtCore.QLibraryInfo.path(QtCore.QLibraryInfo.LibraryPath.PluginsPath))
        xcb = plugins / "platforms" / "libqxcb.so"
        missing: list[str] = []
        if xcb.is_file() and shutil.which("ldd"):
            done = subprocess.run(["ldd", str(xcb)], capture_output=True, text=True, timeout=30)
            missing = missing_libraries(done.stdout)
        if ctypes.util.find_library("xcb-cursor") is None:  # Qt >= 6.5 loads it when the plugin starts
            missing.append("libxcb-cursor.so.0")
        out.append({"check": "Qt xcb plugin libraries", "ok": not missing,
                    "detail": "all found" if not missing else "missing " + ", ".join(missing),
                    **({"fix": install_hint(missing)} if missing else {})})
    platform = os.environ.get("QT_QPA_PLATFORM", "")
    display = os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    can = bool(display) or platform in ("offscreen", "minimal", "vnc")
    out.append({"check": "window", "ok": can,
                "detail": f"QT_QPA_PLATFORM={platform}" if platform else (f"display {display}" if display
                                                                         else "no $DISPLAY"),
                **({} if can else {"fix": "run under X or Wayland, or `xvfb-run labml gui`, or set "
                                          "QT_QPA_PLATFORM=offscreen for screenshots"})})
    return out


def check_visa() -> dict:
    try:
        import pyvisa.highlevel
    except Exception as exc:  # noqa: BLE001
        return {"check": "VISA", "ok": False, "detail": str(exc), "fix": "pip install pyvisa pyvisa-py"}
    backends = pyvisa.highlevel.list_backends()
    ok = any(b in backends for b in ("py", "ivi"))
    return {"check": "VISA backends", "ok": ok, "detail": ", ".join(backends),
            **({} if ok else {"fix": 'pip install -e ".[pyvisa-py]" or install NI/Keysight VISA'}),
            "next": "labml rig scan lists the instruments it sees"}


def check_data() -> dict:
    from labml.data import DIGITS, find_mnist_files, resolve_data_dir
    from labml.errors import UserError

    try:
        folder = resolve_data_dir(None)
        if folder != DIGITS:
            find_mnist_files(folder)
    except UserError as exc:
        return {"check": "data", "ok": False, "detail": str(exc)}  # the message says what to run
    return {"check": "data", "ok": True, "detail": str(folder)}


def check_folder(name: str, path: Path) -> dict:
    """Writable (or creatable) without writing anything: the nearest existing parent is writable."""
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    ok = os.access(probe, os.W_OK)
    return {"check": name, "ok": ok, "detail": str(path) + ("" if path.exists() else " (made on first use)"),
            **({} if ok else {"fix": f"make {probe} writable, or point labml elsewhere"})}


def cmd_doctor(args: argparse.Namespace) -> int:
    from instruments.lock import default_lock_dir
    from labml.runs.store import runs_root

    checks = [*check_qt(), check_visa(), check_data(), check_folder("runs root", Path(runs_root()).resolve()),
              check_folder("rig lock folder", default_lock_dir())]
    for c in checks:
        line = f"{'ok  ' if c['ok'] else 'MISS'}  {c['check']}: {c['detail']}"
        if not c["ok"] and c.get("fix"):
            line += f"  ->  {c['fix']}"
        print(line)
    if args.json:
        print(json.dumps({"ok": all(c["ok"] for c in checks), "checks": checks}))
    return 0 if all(c["ok"] for c in checks) else 1
