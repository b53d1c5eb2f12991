"""Boltzmann machines in +/-1 spins, samplers, learning by relaxation and evaluation
(SCIENCE.md section 5; issue 5).

Modules: `models` (BM, RBM, ClassRBM), `kernels` (heatbath, metropolis, sllg, soft, rig),
`chains` (cd, pcd, pt: parallel tempering), `sparse_graph` (any sparse spin graph by colour blocks,
many chains: issue 17), `evaluation` (exact log Z, AIS, accuracy, sample grids), `training`
(BMTrainer), `relaxation` (the learning-by-relaxation device), `compare` (sampler comparison),
`cli` (`labml train bm`).
"""
