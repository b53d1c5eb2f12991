"""`labml doctor`: one line per check, what to install for what is missing, exit 1 when anything is."""

from __future__ import annotations

import json

from labml.cli import main
from labml.commands import doctor

LDD = """\
\tlinux-vdso.so.1 (0x00007ffd)
\tlibxcb-icccm.so.4 => not found
\tlibxcb.so.1 => /lib/x86_64-linux-gnu/libxcb.so.1 (0x00007f)
\tlibxcb-keysyms.so.1 => not found
\tlibxcb-icccm.so.4 => not found
\tlibodd-thing.so.7 => not found
"""


def test_missing_qt_libraries_become_one_apt_line():
    missing = doctor.missing_libraries(LDD)
    assert missing == ["libxcb-icccm.so.4", "libxcb-keysyms.so.1", "libodd-thing.so.7"]
    assert doctor.install_hint(missing) == "sudo apt install libxcb-icccm4 libxcb-keysyms1 libodd-thing.so.7"


def test_doctor_reports_every_check_and_exits_1_for_what_is_missing(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("LABML_DATA", "digits")
    monkeypatch.setenv("QT_QPA_PLATFORM", "offscreen")
    monkeypatch.setattr(doctor, "check_qt", lambda: [{"check": "Qt xcb plugin libraries", "ok": False,
                                                      "detail": "missing libxcb-icccm.so.4",
                                                      "fix": "sudo apt install libxcb-icccm4"}])
    rc = main(["doctor", "--json"])
    lines = capsys.readouterr().out.strip().splitlines()
    report = json.loads(lines[-1])
    names = [c["check"] for c in report["checks"]]
    assert names == ["Qt xcb plugin libraries", "VISA backends", "data", "runs root", "rig lock folder"]
    assert rc == 1 and report["ok"] is False
    assert lines[0] == ("MISS  Qt xcb plugin libraries: missing libxcb-icccm.so.4  ->  "
                        "sudo apt install libxcb-icccm4")
    assert {c["check"]: c["ok"] for c in report["checks"]}["data"] is True


def test_doctor_says_where_it_looked_for_data(capsys, monkeypatch, tmp_path):
    from labml import data

    monkeypatch.delenv("LABML_DATA", raising=False)
    monkeypatch.setattr(data, "user_data_dir", lambda: tmp_path / "nothing")
    monkeypatch.setattr(doctor, "check_qt", lambda: [])
    assert main(["doctor"]) == 1
    out = capsys.readouterr().out
    line = next(ln for ln in out.splitlines() if "data:" in ln)
    assert line.startswith("MISS") and "labml data download" in line and str(tmp_path / "nothing") in line


def test_the_real_qt_check_names_the_binding(monkeypatch):
    monkeypatch.setenv("QT_QPA_PLATFORM", "offscreen")
    checks = doctor.check_qt()
    assert checks[0]["check"] == "Qt binding" and checks[0]["ok"] and "Qt 6" in checks[0]["detail"]
    assert checks[-1]["check"] == "window" and checks[-1]["ok"]  # offscreen renders without a display
