"""Measure the dashboard's event-loop latency while it runs one job (offscreen).

    python -m gui.latency hysteresis --rig sim
    python -m gui.latency train-synapses --param epochs=8 --param n=4 --param patience=0

Opens the main window, connects to the rig (when given), queues the protocol with the given
parameters, shows the Live view, and reports the lateness of a 20 ms QTimer (gui.probe.LatencyProbe)
from the job's second row to its end: median, 95th percentile, maximum (ms) and the number of ticks.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time


def measure(protocol: str, params: dict, rig: str | None, timeout_s: float = 600.0) -> dict:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    import numpy as np
    from qtpy import QtWidgets

    from gui.app import MainWindow

    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication(sys.argv[:1])
    tmp = tempfile.mkdtemp(prefix="labml-latency-")
    os.environ.setdefault("LABML_GUI_SETTINGS", os.path.join(tmp, "gui.ini"))
    w = MainWindow(runs_root=os.path.join(tmp, "runs"))
    w.show()

    def wait(cond, what: str) -> None:
        end = time.monotonic() + timeout_s
        while not cond():
            if time.monotonic() > end:
                raise TimeoutError(what)
            app.processEvents()
            time.sleep(0.001)

    try:
        if rig:
            w.rig_panel.spec.setCurrentText(rig)
            w.rig_panel.connect_clicked()
            wait(lambda: w.rig_panel.status.text().startswith(("Connected", "cannot")), "rig connection")
            if w.session.rig is None:
                raise RuntimeError(w.rig_panel.status.text())
        w.tabs.setCurrentWidget(w.live)
        job = w.jobs.submit(protocol, params)
        wait(lambda: job.rows >= 2 or job.finished, "first rows")
        w.probe.reset()
        wait(lambda: job.finished, "job end")
        lat = np.array(w.probe.samples_ms)
        return {"protocol": protocol, "state": job.state, "in_process": not job.uses_rig, "ticks": len(lat),
                "median_ms": float(np.median(lat)) if len(lat) else float("nan"),
                "p95_ms": float(np.percentile(lat, 95)) if len(lat) else float("nan"),
                "max_ms": float(lat.max()) if len(lat) else float("nan"), "run_dir": job.run_dir}
    finally:
        w.shutdown()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m gui.latency", description=__doc__.split("\n\n")[0])
    p.add_argument("protocol")
    p.add_argument("--rig", default=None, help="rig to connect to first (e.g. sim)")
    p.add_argument("--param", action="append", default=[], metavar="NAME=VALUE")
    args = p.parse_args(argv)
    params = dict(kv.split("=", 1) for kv in args.param)
    out = measure(args.protocol, params, args.rig)
    print(" ".join(f"{k}={v:.1f}" if isinstance(v, float) else f"{k}={v}" for k, v in out.items()))
    return 0 if out["state"] == "success" else 1


if __name__ == "__main__":
    sys.exit(main())
