"""Compose conf/ into params.yaml exactly as `dvc exp run` does (DVC's own Hydra helper).

Usage: python scripts/compose_params.py [--output params.yaml] [OVERRIDE ...]
e.g.   python scripts/compose_params.py benchmark=mipnerf360 strategy=mcmc
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml
from dvc.utils.hydra import compose_and_dump

ROOT = Path(__file__).resolve().parents[1]


def compose(output: Path, overrides: list[str], root: Path = ROOT) -> None:
    """Write the composed config to ``output`` (what DVC writes to params.yaml)."""
    compose_and_dump(output, str(root / "conf"), None, "config", str(root), overrides)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=ROOT / "params.yaml")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. strategy=mcmc")
    args = parser.parse_args()
    compose(args.output, args.overrides)
    print(f"wrote {args.output}")
    sys.path.insert(0, str(ROOT / "src"))  # runs without an installed package, too
    from splatbench.benchmark import protocol_note

    note = protocol_note(yaml.safe_load(args.output.read_text(encoding="utf-8")))
    if note:
        print(f"note: {note}", file=sys.stderr)


if __name__ == "__main__":
    main()
