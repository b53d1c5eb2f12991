"""Stochastic-synapse learning (Ellis et al. 2023; SCIENCE.md section 4).

- `layer.StochasticSynapseLinear`: the layer (mean/variance reparameterised rule), torch module.
- `sampling`: exact, fast draws of the forward sum (and the torch.binomial reference).
- `curves.TorchLogistic`: the device curve p(H) in torch.
- `models`: stochastic-synapse nets (hidden layers, signed pairs), perceptron and mean-field baselines.
- `trainer.SynapseTrainer`: steppable trainer with the reference protocol; `build_trainer` for the engine.
- `rig`: hardware in the loop (wire mapping, measurement planner, calibration, inference on a rig).
- `sweep`: accuracy against n over seeds (table + plot).
"""

from labml.synapses.curves import TorchLogistic
from labml.synapses.layer import StochasticSynapseLinear
from labml.synapses.trainer import SynapseTrainConfig, SynapseTrainer, build_trainer

__all__ = [
    "StochasticSynapseLinear",
    "SynapseTrainConfig",
    "SynapseTrainer",
    "TorchLogistic",
    "build_trainer",
]
