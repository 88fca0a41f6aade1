"""How entrypoints (the CLI and the DVC stages) report user errors: one clear message, no trace."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

from rich.console import Console
from rich.markup import escape

from splatbench.errors import SplatbenchError

_stderr = Console(stderr=True, highlight=False)


def report_error(err: SplatbenchError) -> None:
    """Print a user error as ``error: <what>`` plus ``fix: <how>``."""
    _stderr.print(f"[bold red]error:[/] {escape(err.message)}", markup=True, soft_wrap=True)
    if err.fix:
        _stderr.print(f"[bold]fix:[/] {escape(err.fix)}", markup=True, soft_wrap=True)


def exit_with_error(err: SplatbenchError) -> NoReturn:
    """End a CLI command on a user error: ``error:``/``fix:`` and exit code 2 (the traceback
    instead with ``SPLATBENCH_DEBUG=1``)."""
    import typer

    if os.environ.get("SPLATBENCH_DEBUG"):
        raise err
    report_error(err)
    raise typer.Exit(code=2)


def run_stage(main: Callable[[], None]) -> None:
    """Run a stage's ``main``; user errors exit 2 with their message (a traceback with
    ``SPLATBENCH_DEBUG=1``), anything else propagates with its traceback."""
    try:
        main()
    except SplatbenchError as err:
        if os.environ.get("SPLATBENCH_DEBUG"):
            raise
        report_error(err)
        sys.exit(2)


def stage_parser(description: str | None, *, scene: bool = True) -> argparse.ArgumentParser:
    """The arguments every DVC stage takes: ``--params`` and, for per-scene stages, ``--scene``."""
    parser = argparse.ArgumentParser(description=description)
    if scene:
        parser.add_argument("--scene", required=True)
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    return parser
