"""``python -m splatbench``: the ``splatbench`` command, for environments where only the
interpreter is known (the SageMaker job runner runs the job's own code this way)."""

from splatbench.cli import app

app(prog_name="splatbench")
