"""Hardware in the loop for stochastic-synapse networks (SCIENCE.md section 4, last paragraph).

Every forward read is a read of the attached rig through `rig.read_synapses(fields_mT, wires, n)`
(instruments.roles.SynapseRig). Each synapse (each device of a differential pair) is mapped to a
physical wire; the synapse's p(H) is that wire's calibration curve, so H is the real field applied to
that wire, and H is projected onto `rig.field_range_mT(wire)` after every optimiser step, so no request
ever reaches the safety layer out of range.

`MeasurementPlanner` turns one layer's forward pass into one batch of requests: a request per
(active input, output, device), at the synapse's field quantised to `field_step_mT` (clipped into the
wire's range), sorted by wire and field level so that a bench runs identical cycles back to back
(reads at the same field on the same wire are exchangeable, which is what makes the grouping legitimate).
`RigReader` sends the plan, scatters the counts back into the layer's sums and totals the bench time
and coil energy the rig reports.

`calibrate_wires` measures each wire's p(H) on a field grid and fits the logistic (scipy curve_fit with
binomial weights); `evaluate_on_rig` runs a trained model's inference on the rig, setting each synapse's
trained p through its wire's curve (H = p_wire^-1(p)).
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from instruments.calibration import Logistic, MeasuredCurve
from instruments.rig import check_wire_ranges
from labml.errors import UserError
from labml.synapses.curves import TorchLogistic

logger = logging.getLogger(__name__)


@dataclass
class Plan:
    """One batch of rig requests (sorted by wire, then field level) and how to scatter the counts back."""

    fields_mT: np.ndarray  # (R,) quantised field of each request, sorted
    wires: np.ndarray  # (R,) wire of each request, sorted
    order: np.ndarray  # (R,) position in the unsorted (n_dev, N_out, M) layout of each sorted request
    b_idx: np.ndarray  # (M,) batch index of each active pair
    weights: np.ndarray  # (M,) input value of each active pair
    shape: tuple[int, int, int]  # (n_dev, N_out, M)
    batch: int
    n_groups: int  # distinct (wire, field level) pairs = waveforms a bench arms

    def scatter(self, counts: np.ndarray) -> np.ndarray:
        """Counts of the sorted requests -> sums (n_dev, B, N_out) weighted by the input values."""
        n_dev, n_out, m = self.shape
        flat = np.empty(len(counts), dtype=np.float64)
        flat[self.order] = counts
        c = flat.reshape(n_dev, n_out, m) * self.weights[None, None, :]
        idx = (np.arange(n_dev)[:, None, None] * self.batch + self.b_idx[None, None, :]) * n_out + np.arange(
            n_out
        )[None, :, None]
        sums = np.bincount(idx.reshape(-1), weights=c.reshape(-1), minlength=n_dev * self.batch * n_out)
        return sums.reshape(n_dev, self.batch, n_out)


class MeasurementPlanner:
    """Group a layer's reads by quantised field level and wire (see module docstring)."""

    def __init__(self, field_step_mT: float = 0.01) -> None:
        if not field_step_mT > 0:
            raise ValueError(f"field_step_mT must be > 0, got {field_step_mT}")
        self.field_step_mT = float(field_step_mT)

    def quantise(self, H_mT: np.ndarray, lo_mT: np.ndarray, hi_mT: np.ndarray) -> np.ndarray:
        """Round to the field grid, then clip into [lo, hi] (the wire's allowed range)."""
        q = np.round(np.asarray(H_mT, dtype=np.float64) / self.field_step_mT) * self.field_step_mT
        return np.clip(q, lo_mT, hi_mT)

    def plan(
        self,
        x: np.ndarray,
        H_mT: np.ndarray,
        wires: np.ndarray,
        wire_lo_mT: np.ndarray,
        wire_hi_mT: np.ndarray,
    ) -> Plan:
        """x (B, N_in); H_mT and wires (n_dev, N_out, N_in); wire_lo/hi_mT (n_wires,) ranges."""
        b_idx, i_idx = np.nonzero(x)
        weights = x[b_idx, i_idx].astype(np.float64)
        f = H_mT[:, :, i_idx]  # (n_dev, N_out, M)
        w = wires[:, :, i_idx]
        q = self.quantise(f, wire_lo_mT[w], wire_hi_mT[w]).reshape(-1)
        w = w.reshape(-1)
        order = np.lexsort((q, w))
        qs, ws = q[order], w[order]
        if len(qs):
            new = np.ones(len(qs), dtype=bool)
            new[1:] = (qs[1:] != qs[:-1]) | (ws[1:] != ws[:-1])
            n_groups = int(new.sum())
        else:
            n_groups = 0
        return Plan(qs, ws.astype(np.int64), order, b_idx, weights, f.shape, x.shape[0], n_groups)


def assign_wires(sizes: Sequence[int], n_wires: int, signed: bool = False) -> list[np.ndarray]:
    """Map every device of every layer to a wire, round robin: (n_dev, N_out, N_in) int arrays."""
    if n_wires < 1:
        raise UserError("the rig has no wires")
    n_dev = 2 if signed else 1
    maps, offset = [], 0
    for i in range(len(sizes) - 1):
        count = n_dev * sizes[i + 1] * sizes[i]
        maps.append(((offset + np.arange(count)) % n_wires).reshape(n_dev, sizes[i + 1], sizes[i]))
        offset += count
    return maps


def calibrate_wires(
    rig: Any, wires: Sequence[int], fields_mT: np.ndarray | None = None, n_reads: int = 200,
    costs: dict | None = None, shape: str = "logistic",
) -> list[Logistic] | list[MeasuredCurve]:
    """Measure P(pass) of each wire on a field grid (n_reads each) and fit its curve.

    Uses one `read_synapses` call for all wires and fields. `shape` "logistic": scipy curve_fit of
    the logistic with binomial standard errors (one Logistic per wire in `wires`); "measured": the
    fractions made non-decreasing by isotonic regression (scikit-learn), kept as a table
    (`MeasuredCurve`, for wires whose curve is not logistic). `costs`, when given, is filled with
    what the measurement cost the rig (reads, bench_time_s, energy_J).
    """
    if shape not in ("logistic", "measured"):
        raise ValueError(f"calibration shape {shape!r}: choose 'logistic' or 'measured'")
    from scipy.optimize import curve_fit

    curves = []
    req_f, req_w = [], []
    grids = []
    for w in wires:
        lo, hi = rig.field_range_mT(int(w))
        grid = np.linspace(max(lo, 0.0), hi, 33) if fields_mT is None else np.clip(fields_mT, lo, hi)
        grids.append(grid)
        req_f.append(grid)
        req_w.append(np.full(len(grid), int(w)))
    check_wire_ranges(rig, np.concatenate(req_f), np.concatenate(req_w))
    reads = rig.read_synapses(np.concatenate(req_f), np.concatenate(req_w), n_reads)
    if costs is not None:
        costs.update(reads=int(len(reads.counts)) * int(n_reads), bench_time_s=float(reads.bench_time_s),
                     energy_J=float(reads.energy_J))
    frac = np.asarray(reads.counts, dtype=float) / n_reads
    pos = 0
    for w, grid in zip(wires, grids, strict=True):
        f = frac[pos : pos + len(grid)]
        pos += len(grid)
        if shape == "measured":
            from sklearn.isotonic import IsotonicRegression

            mono = IsotonicRegression(y_min=0.0, y_max=1.0).fit_transform(grid, f)
            curves.append(MeasuredCurve(tuple(float(h) for h in grid), tuple(float(v) for v in mono)))
            continue
        sd = np.sqrt(np.clip(f * (1 - f), 0.25 / n_reads, None) / n_reads)
        prior = rig.calibration(int(w)) if hasattr(rig, "calibration") else Logistic()

        def model(H, H0, k, a):
            return (1 - a) + a / (1 + np.exp(-k * (H - H0)))

        try:
            popt, _ = curve_fit(
                model,
                grid,
                f,
                p0=[prior.H0, prior.k, prior.a],
                sigma=sd,
                bounds=([-50, 1e-3, 1e-3], [50, 100, 1.0]),
                maxfev=10000,
            )
        except RuntimeError as exc:
            raise UserError(f"calibration fit of wire {w} failed: {exc}") from exc
        curves.append(Logistic(H0=float(popt[0]), k=float(popt[1]), a=float(popt[2])))
    return curves


def build_rig_layers_config(
    rig: Any, sizes: Sequence[int], signed: bool = False, calibrate: bool = False, seed: int = 0
):
    """Per-layer curves (TorchLogistic per synapse from its wire), field ranges and wire maps."""
    n_wires = int(rig.n_wires)
    wire_maps = assign_wires(sizes, n_wires, signed)
    used = sorted({int(w) for m in wire_maps for w in np.unique(m)})
    if calibrate:
        fitted = calibrate_wires(rig, used)
        wire_curves = {w: c for w, c in zip(used, fitted, strict=True)}
        logger.info("calibrated %d wires on the rig", len(used))
    else:
        wire_curves = {w: rig.calibration(w) for w in used}
    curve_list = [wire_curves.get(w, Logistic()) for w in range(n_wires)]
    lo = np.array([rig.field_range_mT(w)[0] if w in wire_curves else 0.0 for w in range(n_wires)])
    hi = np.array([rig.field_range_mT(w)[1] if w in wire_curves else 1.0 for w in range(n_wires)])
    curves = [TorchLogistic.from_logistics(curve_list, m) for m in wire_maps]
    ranges = [
        (torch.tensor(lo[m], dtype=torch.float32), torch.tensor(hi[m], dtype=torch.float32))
        for m in wire_maps
    ]
    return curves, ranges, wire_maps


class RigReader:
    """Forward reads of stochastic-synapse layers from a rig (installed as each layer's `reader`).

    fields_from "H": the layer's H is the field (the layer's curve is its wire's curve: training in the
    loop); "p": the layer's trained p is set through each wire's curve, H = p_wire^-1(p) (inference of a
    model trained elsewhere). Totals: bench_time_s, energy_J, n_reads, n_requests, n_groups.
    """

    def __init__(
        self,
        rig: Any,
        wire_maps: Sequence[np.ndarray],
        field_step_mT: float = 0.01,
        fields_from: str = "H",
        wire_curves: Sequence[Logistic] | None = None,
    ) -> None:
        if fields_from not in ("H", "p"):
            raise ValueError(f"fields_from must be 'H' or 'p', got {fields_from!r}")
        self.rig = rig
        self.wire_maps = [np.asarray(m) for m in wire_maps]
        self.planner = MeasurementPlanner(field_step_mT)
        self.fields_from = fields_from
        n_wires = int(rig.n_wires)
        used = {int(w) for m in self.wire_maps for w in np.unique(m)}
        self.lo = np.array([rig.field_range_mT(w)[0] if w in used else 0.0 for w in range(n_wires)])
        self.hi = np.array([rig.field_range_mT(w)[1] if w in used else 1.0 for w in range(n_wires)])
        if fields_from == "p":
            curves = (
                list(wire_curves)
                if wire_curves is not None
                else [rig.calibration(w) if w in used else Logistic() for w in range(n_wires)]
            )
            self.curves = curves
        self.bench_time_s = 0.0
        self.energy_J = 0.0
        self.n_reads = 0
        self.n_requests = 0
        self.n_groups = 0
        self._layers: dict[int, int] = {}

    def attach(self, model: torch.nn.Module) -> None:
        """Install this reader in every stochastic-synapse layer of `model` (in order)."""
        layers = [m for m in model.modules() if hasattr(m, "H") and hasattr(m, "reader")]
        if len(layers) != len(self.wire_maps):
            raise ValueError(f"model has {len(layers)} synapse layers, reader has {len(self.wire_maps)} maps")
        for i, layer in enumerate(layers):
            if tuple(layer.H.shape) != self.wire_maps[i].shape:
                raise ValueError(
                    f"layer {i} H shape {tuple(layer.H.shape)} != wire map {self.wire_maps[i].shape}"
                )
            layer.reader = self
            self._layers[id(layer)] = i

    def _fields(self, layer, wires: np.ndarray) -> np.ndarray:
        if self.fields_from == "H":
            return layer.H.detach().to(torch.float64).numpy()
        p = layer.probabilities().detach().to(torch.float64).numpy()
        out = np.empty_like(p)
        for w in np.unique(wires):
            sel = wires == w
            out[sel] = self.curves[w].inverse(p[sel], self.lo[w], self.hi[w])
        return out

    def __call__(self, layer, x: torch.Tensor) -> torch.Tensor:
        wires = self.wire_maps[self._layers[id(layer)]]
        xn = x.detach().to(torch.float64).numpy()
        plan = self.planner.plan(xn, self._fields(layer, wires), wires, self.lo, self.hi)
        if len(plan.fields_mT) == 0:
            return torch.zeros(wires.shape[0], x.shape[0], wires.shape[1])
        check_wire_ranges(self.rig, plan.fields_mT, plan.wires)
        reads = self.rig.read_synapses(plan.fields_mT, plan.wires, int(layer.n))
        counts = np.asarray(reads.counts)
        if counts.shape != plan.fields_mT.shape:
            raise RuntimeError(f"rig returned {counts.shape} counts for {plan.fields_mT.shape} requests")
        self.bench_time_s += float(reads.bench_time_s)
        self.energy_J += float(reads.energy_J)
        self.n_reads += len(plan.fields_mT) * int(layer.n)
        self.n_requests += len(plan.fields_mT)
        self.n_groups += plan.n_groups
        return torch.from_numpy(plan.scatter(counts)).to(torch.float32)

    def state_dict(self) -> dict:
        return {
            k: getattr(self, k) for k in ("bench_time_s", "energy_J", "n_reads", "n_requests", "n_groups")
        }

    def load_state_dict(self, state: dict) -> None:
        for k, v in state.items():
            setattr(self, k, v)


def _pass_accuracies(net: Any, X: torch.Tensor, y: torch.Tensor, passes: int) -> list[float]:
    """Test accuracy of `net` (put in eval mode) on X, y for each of `passes` stochastic passes,
    in batches of 250 images."""
    net.eval()
    accs = []
    with torch.no_grad():
        for _ in range(passes):
            logits = torch.cat([net(X[s : s + 250]) for s in range(0, len(X), 250)])
            accs.append(float((logits.argmax(1) == y).float().mean()))
    return accs


def evaluate_on_rig(
    trainer: Any,
    rig: Any,
    test_size: int | None = 500,
    passes: int | None = None,
    field_step_mT: float = 0.01,
    seed: int = 0,
    calibrate: bool | None = None,
) -> dict:
    """Inference of a trained stochastic-synapse model on `rig` for a stratified test subset.

    Each synapse's trained p is set through its wire's calibration (H = p_wire^-1(p), clipped to the
    wire's range); with `calibrate` the used wires are measured and fitted first, else their stored
    calibration is used. passes and calibrate default to the trainer's config (rig_test_passes,
    calibrate). Returns rig_test_accuracy, model_test_accuracy (the same images and number of
    passes on the model backend, for a like-for-like comparison), rig_n_test, bench time, energy, reads.
    """
    from labml.data import stratified_subset

    cfg = getattr(trainer, "config", None)
    if passes is None:
        passes = int(getattr(cfg, "rig_test_passes", 1))
    if calibrate is None:
        calibrate = bool(getattr(cfg, "calibrate", False))
    model = trainer.model
    if not getattr(model, "stochastic", False):
        raise UserError("inference on a rig needs a stochastic-synapse model (--model stochastic)")
    if len(model.layers) > 1 and not all(type(a).__name__ == "Step" for a in model.acts):
        raise UserError("inference on a rig needs step activations between layers")
    trainer.restore_best()
    rig_model = copy.deepcopy(model)
    sizes = [rig_model.layers[0].in_features] + [layer.out_features for layer in rig_model.layers]
    maps = assign_wires(sizes, int(rig.n_wires), signed=rig_model.layers[0].signed)
    curves = None
    if calibrate:
        used = sorted({int(w) for m in maps for w in np.unique(m)})
        fitted = dict(zip(used, calibrate_wires(rig, used), strict=True))
        curves = [fitted.get(w, Logistic()) for w in range(int(rig.n_wires))]
    reader = RigReader(rig, maps, field_step_mT=field_step_mT, fields_from="p", wire_curves=curves)
    reader.attach(rig_model)
    X, y = trainer.X_test.numpy(), trainer.y_test.numpy()
    if test_size is not None:
        X, y = stratified_subset(X, y, test_size, seed=seed)
    Xt, yt = torch.from_numpy(np.ascontiguousarray(X)), torch.from_numpy(np.ascontiguousarray(y))
    accs = _pass_accuracies(rig_model, Xt, yt, passes)
    model_accs = _pass_accuracies(model, Xt, yt, passes)
    return {
        "rig_test_accuracy": float(np.mean(accs)),
        "model_test_accuracy_same_images": float(np.mean(model_accs)),
        "rig_n_test": len(yt),
        "rig_passes": passes,
        "rig_bench_time_s": reader.bench_time_s,
        "rig_energy_J": reader.energy_J,
        "rig_device_reads": reader.n_reads,
    }
