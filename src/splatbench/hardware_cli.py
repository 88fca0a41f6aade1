"""``splatbench hardware``: record (or check) what the ``auto`` backend means on this machine."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def hardware_command(
    file: Annotated[Path, typer.Option(help="The hardware file DVC tracks.")] = Path(
        "hardware.yaml"
    ),
    check: Annotated[
        bool, typer.Option("--check", help="Only compare; exit 1 when the file differs.")
    ] = False,
) -> None:
    """Write hardware.yaml: what the `auto` backend resolves to on this machine.

    `auto` is gsplat on CUDA when its kernels work, else torch on CPU; the file records that
    backend and the device kind.

    The train and evaluate stages list this file as DVC params, so running this on other
    hardware makes `dvc repro` re-run them there; on the same machine the file is left
    byte-identical and nothing re-runs. `make demo` and the container entrypoint run it.
    """
    from splatbench.cli_support import exit_with_error
    from splatbench.errors import SplatbenchError
    from splatbench.hardware import detect, read_hardware, write_hardware

    try:
        if check:
            here, recorded = detect(), read_hardware(file)
            if here != recorded:
                typer.echo(f"{file}: records {recorded.auto_backend} on {recorded.device}; "
                           f"this machine is {here.auto_backend} on {here.device}")  # fmt: skip
                raise typer.Exit(code=1)
            typer.echo(f"{file}: {here.auto_backend} on {here.device} (matches this machine)")
            return
        hw, changed = write_hardware(file)
    except SplatbenchError as err:
        exit_with_error(err)
    state = "updated: dvc repro re-runs train and evaluate" if changed else "unchanged"
    typer.echo(f"{file}: auto -> {hw.auto_backend} on {hw.device} ({state})")
