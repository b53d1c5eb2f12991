"""infer-on-rig: a trained stochastic-synapse model evaluated on the rig for a stratified test subset,
against the model's own prediction on the same images.

The model comes from a `train-synapses` run folder (its `model.npz`; an old folder's `model.pt`).
Each synapse's trained p is set
through the wire's calibration (H = p_wire^-1(p), clipped to the wire's range) and read on the rig
(labml.synapses.rig.evaluate_on_rig, engineer D); the software model is evaluated on the same
stratified subset with the same number of stochastic passes. The two accuracies are compared with a
two-proportion z statistic (images x passes as trials; an approximate test, since passes over the
same images are correlated).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from labml.errors import UserError
from protocols._pymeasure import FloatParameter, IntegerParameter, Parameter
from protocols.base import RigInfo, RigProcedure

log = logging.getLogger(__name__)


def load_trained(model_run: str | Path, rig=None):
    """Rebuild the trainer of a train-synapses run (`model_run`: run folder, its model.npz, or an old
    folder's model.pt) with its trained model."""
    from labml.runs.store import load_model_for

    saved = load_model_for(model_run, "train-synapses")
    from labml.synapses.trainer import build_trainer

    cfg = dict(saved["config"])
    cfg["calibrate"] = False  # the curves come from the saved state, never re-measured here
    trainer = build_trainer(cfg, rig if cfg.get("backend") == "rig" else None)
    if "state" in saved:  # an old folder's model.pt: the trainer's whole state
        trainer.load_state_dict(saved["state"])
    else:  # model.npz: the model's parameters and buffers
        import torch

        own = trainer.model.state_dict()
        missing = [k for k in own if k not in saved["arrays"]]
        if missing:
            raise UserError(f"{saved['file']}: arrays {missing[:3]} missing; not a train-synapses model")
        trainer.model.load_state_dict({k: torch.as_tensor(saved["arrays"][k]) for k in own})
    # A model trained in the loop carries the reader of its training rig: detach it, so the model
    # predicts in software (its own sampler and curves) and inference installs its own reader.
    for m in trainer.model.modules():
        if getattr(m, "reader", None) is not None:
            m.reader = None
    trainer.reader = None
    return trainer, cfg


class InferOnRig(RigProcedure):
    """A trained stochastic-synapse model on the rig vs its own software prediction."""

    NAME = "infer-on-rig"
    #: the trained model's run folder (the GUI's form offers a folder picker): labml.runs.kinds.Param.path
    PATH_PARAMETERS = {"model_run": "dir"}  # noqa: RUF012
    DESCRIPTION = "evaluate a trained synapse model on the rig (stratified test subset) vs the model itself"
    SWEEP_PLOT = ("test_size", "rig_test_accuracy")

    model_run = Parameter(
        "Model run", default="", description="run folder of a train-synapses run (model.npz)"
    )
    test_size = IntegerParameter(
        "Test images",
        default=200,
        minimum=10,
        maximum=10_000,
        description="stratified subset of the model's test set",
    )
    passes = IntegerParameter(
        "Passes",
        default=1,
        minimum=1,
        maximum=1000,
        description="stochastic passes over the subset (rig and model alike)",
    )
    field_step = FloatParameter("Field step", units="mT", default=0.01, minimum=1e-6, maximum=10.0)

    DATA_COLUMNS = ["Backend", "Accuracy", "Images", "Passes"]

    def check_plan(self, info: RigInfo) -> None:
        if not self.model_run:
            raise UserError(f"protocol {self.NAME!r}: give --model-run RUN_DIR (a train-synapses run folder)")
        from labml.runs.store import model_file_of

        f = model_file_of(self.model_run)
        if not f.is_file():
            raise UserError(
                f"protocol {self.NAME!r}, parameter 'model_run': {f} does not exist "
                "(run `labml run train-synapses` first)"
            )

    def get_estimates(self, info: RigInfo | None = None) -> float:
        """Bench time (s) of the rig passes over the subset: passes x images x the expected reads of
        one image (the model's layer sizes, n and its data's mean active inputs) x one cycle."""
        import json

        from labml.synapses.kind import data_for_estimate, synapse_reads_per_image

        run_json = Path(self.model_run) / "run.json" if self.model_run else None
        if run_json is None or not run_json.is_file():
            return 0.0  # check_plan names the missing model run
        try:
            params = json.loads(run_json.read_text()).get("parameters", {})
        except (OSError, ValueError):
            return 0.0
        cfg = {
            "n": int(params.get("n", 1)),
            "hidden": _hidden(params.get("hidden")),
            "signed": bool(params.get("signed", False)),
            "data": params.get("data") or None,
            "seed": int(params.get("seed", 0)),
        }
        active, n_in, _, _ = data_for_estimate(cfg)
        reads = int(self.passes) * int(self.test_size) * synapse_reads_per_image(cfg, active, n_in)
        return float(reads * (info or RigInfo()).cycle_time_s())

    def n_steps(self) -> int:
        return 1

    def startup(self) -> None:
        super().startup()
        torch_threads()
        self.trainer, self.model_config = load_trained(self.model_run, self.rig)

    def step(self, i: int, ctx: Any = None) -> None:
        from labml.synapses.rig import evaluate_on_rig

        tr = self.trainer
        rig_res = evaluate_on_rig(
            tr,
            self.rig,
            test_size=int(self.test_size),
            passes=int(self.passes),
            field_step_mT=float(self.field_step),
            seed=int(self.seed),
        )
        import torch

        from labml.data import stratified_subset

        X, y = stratified_subset(
            tr.X_test.numpy(), tr.y_test.numpy(), int(self.test_size), seed=int(self.seed)
        )
        model_res = tr.evaluate(
            passes=int(self.passes),
            X=torch.from_numpy(np.ascontiguousarray(X)),
            y=torch.from_numpy(np.ascontiguousarray(y)),
        )
        n_img = int(rig_res["rig_n_test"])
        self.emit(
            "results",
            {
                "Backend": "rig",
                "Accuracy": rig_res["rig_test_accuracy"],
                "Images": n_img,
                "Passes": int(self.passes),
            },
        )
        self.emit(
            "results",
            {
                "Backend": "model",
                "Accuracy": model_res["test_accuracy"],
                "Images": len(y),
                "Passes": int(self.passes),
            },
        )
        a_r, a_m = float(rig_res["rig_test_accuracy"]), float(model_res["test_accuracy"])
        trials = n_img * int(self.passes)
        pooled = 0.5 * (a_r + a_m)
        se = float(np.sqrt(max(pooled * (1 - pooled), 1e-12) * 2.0 / trials))
        self.results_.update(rig_res)
        self.results_.update(
            {
                "model_test_accuracy": a_m,
                "accuracy_difference": a_r - a_m,
                "difference_se": se,
                "difference_z": (a_r - a_m) / se,
                "model_run": str(self.model_run),
                "trained_backend": self.model_config.get("backend"),
                "n": self.model_config.get("n"),
            }
        )
        from labml import figures
        from protocols.fits import binomial_interval

        correct = np.round(np.array([a_r, a_m]) * trials)
        low, high = binomial_interval(correct, np.array([trials, trials]))
        self.save_figure("rig_vs_model.png", figures.accuracy_comparison, ["rig", "model"], [a_r, a_m], low,
                         high, f"{n_img} test images x {int(self.passes)} pass(es): "
                         f"difference {a_r - a_m:+.3f} (z = {(a_r - a_m) / se:.2f})")


def torch_threads() -> None:
    import torch

    if torch.get_num_threads() > 2:
        torch.set_num_threads(2)


def _hidden(raw: object) -> list[int]:
    """Hidden layer sizes as recorded in run.json: a list (the train-synapses kind) or old text "64,32"."""
    if isinstance(raw, list | tuple):
        return [int(h) for h in raw]
    return [int(h) for h in str(raw or "").replace(" ", "").split(",") if h]
