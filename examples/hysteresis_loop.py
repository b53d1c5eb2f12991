"""A hysteresis loop on a rig and its plot (docs/scripting.md).

    python examples/hysteresis_loop.py [--rig sim] [--field-max "12 mT"] [--out loop.png]

Sweeps the DC field of wire 0 from -field_max to +field_max and back through the coil guard
(kind "hysteresis"), watching the rows as they are measured, and draws the read-out signal against
the Hall-probe field with matplotlib. The last stdout line is one JSON object: the switching fields
and the coercive field (mT) the protocol fitted, the points measured, and the PNG written.
"""

from __future__ import annotations

import argparse
import json

import labml


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rig", default="sim", help="rig config TOML, or 'sim'")
    ap.add_argument("--field-max", default="12 mT")
    ap.add_argument("--field-step", default="0.5 mT")
    ap.add_argument("--out", default="hysteresis_loop.png", help="the PNG to write")
    args = ap.parse_args()

    rows: list[dict] = []
    with labml.open_rig(args.rig) as rig:
        run = labml.run("hysteresis", rig=rig, field_max=args.field_max, field_step=args.field_step,
                        settle="0 s", on_row=rows.append)
    res = run.meta["results"]

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for branch, style in (("up", "o-"), ("down", "s-")):
        pts = [r for r in rows if r["Branch"] == branch]
        ax.plot([r["Field (mT)"] for r in pts], [r["Signal"] for r in pts], style, ms=3,
                label=f"{branch} sweep")
    for h in (res["switching_field_up_mT"], res["switching_field_down_mT"]):
        ax.axvline(h, color="grey", lw=0.8, ls="--")
    ax.set_xlabel("field (mT, Hall probe)")
    ax.set_ylabel("read-out signal")
    ax.set_title(f"wire 0: coercive field {res['coercive_field_mT']:.2f} mT")
    ax.legend()
    fig.tight_layout()
    fig.savefig(args.out, dpi=100)
    print(f"coercive field {res['coercive_field_mT']:.3f} mT (switching at "
          f"{res['switching_field_up_mT']:.3f} and {res['switching_field_down_mT']:.3f} mT), "
          f"{len(rows)} points; plot: {args.out}")
    print(json.dumps({"coercive_field_mT": res["coercive_field_mT"],
                      "switching_field_up_mT": res["switching_field_up_mT"],
                      "switching_field_down_mT": res["switching_field_down_mT"], "points": len(rows),
                      "coil_at_zero": rig.coil_at_zero, "png": args.out, "run": str(run.path)}))


if __name__ == "__main__":
    main()
