"""Parameter sweeps over DVC's experiment queue: named grids, running them, and their report.

- :mod:`splatbench.sweep.grid`: grid files (``benchmarks/sweeps/*.yaml``), validation, expansion.
- :mod:`splatbench.sweep.points`: each point's composed params (DVC's own Hydra compose).
- :mod:`splatbench.sweep.experiments`: which DVC experiments belong to which point.
- :mod:`splatbench.sweep.queue`: queueing and running the missing points (``dvc exp run --queue``).
- :mod:`splatbench.sweep.tables` / :mod:`splatbench.sweep.report`: the tables and the report.
"""
