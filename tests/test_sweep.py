"""Sweep grids, matching experiments to points, the report tables and the page (headless
Chromium); the real thing (`splatbench sweep run` over DVC's queue) in one integration test."""

from __future__ import annotations

import copy
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from splatbench.errors import ConfigError
from splatbench.sweep.experiments import (
    compose_point,
    experiments_from_show,
    match_points,
    params_key,
)
from splatbench.sweep.grid import expand, format_value, load_grid, parse_extra, parse_grid
from splatbench.sweep.report import build_tables, write_report
from splatbench.sweep.tables import METRICS, UNAVAILABLE, pareto_front

REPO = Path(__file__).resolve().parents[1]


def _grid(tmp_path: Path, data: dict, name: str = "g"):
    return parse_grid(
        data, tmp_path / f"{name}.yaml", conf_dir=REPO / "conf", metrics=list(METRICS)
    )


GRID = {
    "name": "g",
    "description": "two axes",
    "axes": {"strategy": ["default", "mcmc"], "train.max_gaussians": [10000, None]},
    "fixed": {"early_stop": "off"},
    "rank_by": "psnr",
}


# --- grids ------------------------------------------------------------------------------------


def test_every_shipped_grid_loads_and_composes() -> None:
    names = sorted(p.stem for p in (REPO / "benchmarks/sweeps").glob("*.yaml"))
    assert {"densify", "early-stop", "strategy-budget"} <= set(names)
    for name in names:
        grid = load_grid(REPO, name, metrics=list(METRICS))
        points = expand(grid)
        assert len(points) == grid.size >= 3
        params = compose_point(REPO, points[-1])
        for key, value in points[-1].values:
            node = params
            for part in key.split("."):
                node = node[part]
            # a group override selects a file whose name is in the section
            got = node["name"] if isinstance(node, dict) else node
            assert format_value(got) == value, (name, key)


def test_expansion_order_labels_and_overrides(tmp_path: Path) -> None:
    grid = _grid(tmp_path, GRID)
    points = expand(grid, parse_extra(["train.max_steps=50"], grid))
    assert [p.values for p in points][:2] == [
        (("strategy", "default"), ("train.max_gaussians", "10000")),
        (("strategy", "default"), ("train.max_gaussians", "null")),
    ]
    assert points[3].label == "strategy=mcmc max_gaussians=null"
    assert points[0].overrides == (
        "early_stop=off",
        "train.max_steps=50",
        "strategy=default",
        "train.max_gaussians=10000",
    )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"name": "other"}, "name is 'other' but the file is g.yaml"),
        ({"axes": {}}, "axes must map at least one parameter"),
        ({"axes": {"strategy": []}}, "axes.strategy must be a non-empty list"),
        ({"axes": {"early_stop": [False, "plateau"]}}, "YAML reads bare off"),
        ({"axes": {"strategy": ["default", "nope"]}}, "names no file conf/strategy/nope.yaml"),
        ({"axes": {"train.max_steps": [1, 1]}}, "repeats"),
        ({"axes": {"bad key": [1]}}, "is not a parameter key"),
        ({"fixed": {"strategy": "mcmc"}}, "strategy is both swept and fixed"),
        ({"rank_by": "speed"}, "rank_by 'speed' is not a sweep metric"),
        ({"description": ""}, "description is missing"),
        ({"colour": 1}, "unknown key"),
    ],
)
def test_bad_grids_say_what_and_how(tmp_path: Path, change: dict, message: str) -> None:
    data = {**GRID, **change}
    with pytest.raises(ConfigError, match=re.escape(message)) as info:
        _grid(tmp_path, data)
    assert str(tmp_path / "g.yaml") in info.value.message and info.value.fix


def test_extra_overrides_checked_and_unknown_grid(tmp_path: Path) -> None:
    grid = _grid(tmp_path, GRID)
    with pytest.raises(ConfigError, match="is an axis of sweep"):
        parse_extra(["strategy=mcmc"], grid)
    with pytest.raises(ConfigError, match="not key=value"):
        parse_extra(["train.max_steps"], grid)
    with pytest.raises(ConfigError, match=r"use one of: .*densify"):
        load_grid(REPO, "nope")
    bad = tmp_path / "benchmarks/sweeps/x.yaml"
    bad.parent.mkdir(parents=True)
    bad.write_text("name: [x\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_grid(tmp_path, "x")


def test_format_value() -> None:
    assert [format_value(v) for v in (None, True, 2e-4, 30000, "mcmc", "a b")] == [
        "null",
        "true",
        "0.0002",
        "30000",
        "mcmc",
        "'a b'",
    ]


# --- matching experiments (synthetic `dvc exp show --json` rows) -----------------------------


def _metrics(scene: str, psnr: float, gaussians: int, seconds: float, steps: int, stop: str):
    return {
        f"metrics/{scene}/eval.json": {
            "data": {
                "trained": {"psnr": psnr, "ssim": 0.8, "lpips": None},
                "compressed": {"psnr": psnr - 0.2, "ssim": 0.79, "lpips": None},
            }
        },
        f"metrics/{scene}/train.json": {
            "data": {
                "gaussians": gaussians,
                "steps": steps,
                "stop_reason": stop,
                "seconds": seconds,
            }
        },
        f"metrics/{scene}/compress.json": {"data": {"megabytes": gaussians / 1e4, "ratio": 9.0}},
    }


def _exp(name: str, params: dict, metrics: dict, ts: str, state: str | None = None) -> dict:
    return {
        "revs": [
            {
                "rev": f"{abs(hash((name, ts))):040x}"[:40],
                "name": name,
                "data": {
                    "rev": "x",
                    "timestamp": ts,
                    "params": {"params.yaml": {"data": params}, "hardware.yaml": {"data": {}}},
                    "metrics": metrics,
                },
                "error": None,
                "experiments": None,
            }
        ],
        "executor": {"state": state, "name": None, "local": None} if state else None,
        "name": name,
    }


@pytest.fixture(scope="module")
def composed(tmp_path_factory) -> tuple:
    tmp = tmp_path_factory.mktemp("g")
    grid = _grid(tmp, GRID)
    points = expand(grid, ("train.max_steps=50",))
    return grid, [(p, compose_point(REPO, p)) for p in points]


def test_newest_finished_experiment_per_point_wins(composed: tuple) -> None:
    _, points = composed
    p0, p1, p2, _ = (params for _, params in points)
    other = copy.deepcopy(p0)
    other["train"]["max_steps"] = 51  # not a point of this sweep
    reported = copy.deepcopy(p1)
    reported["report"] = {"anything": 1}  # report settings do not change a point
    rows = [
        {"rev": "workspace", "name": None, "data": None, "error": None, "experiments": None},
        {
            "rev": "a" * 40,
            "name": "main",
            "data": {"params": {}, "metrics": {}},
            "experiments": [
                _exp("old", p0, _metrics("blocks", 20.0, 100, 9.0, 50, "max_steps"), "2026-01-01"),
                _exp("new", p0, _metrics("blocks", 21.0, 100, 9.0, 50, "max_steps"), "2026-01-02"),
                _exp("p1", reported, _metrics("blocks", 19.0, 90, 8.0, 50, "max"), "2026-01-01"),
                _exp("q", p2, _metrics("blocks", 1.0, 1, 1.0, 1, "x"), "2026-01-03", "queued"),
                _exp("other", other, _metrics("blocks", 30.0, 1, 1.0, 1, "x"), "2026-01-04"),
            ],
        },
    ]
    exps = experiments_from_show(rows)
    assert {e.name for e in exps} == {"old", "new", "p1", "q", "other"}
    matches = match_points(points, exps)
    assert [m.status for m in matches] == ["done", "done", "queued", "missing"]
    assert matches[0].experiment.name == "new" and matches[1].experiment.name == "p1"
    assert matches[2].pending.name == "q" and params_key(p0) != params_key(other)


# --- tables and report ------------------------------------------------------------------------


def test_pareto_front() -> None:
    assert pareto_front([1, 2, 3, 2, np.nan], [10, 12, 11, 9, 50]) == [
        True,
        True,
        False,
        False,
        False,
    ]


def _sweep_rows(points: list) -> list[dict]:
    results = [(21.0, 9000, 30.0), (22.0, 20000, 40.0), (21.5, 9500, 50.0), (23.0, 25000, 60.0)]
    exps = []
    for (_, params), (psnr, g, s) in zip(points, results, strict=True):
        metrics = _metrics("blocks", psnr, g, s, 50, "max_steps")
        metrics.update(_metrics("b2", psnr + 1, g, s, 50, "max_steps"))
        exps.append(_exp(f"e{psnr}", params, metrics, "2026-01-01"))
    return [{"rev": "b" * 40, "name": "main", "data": None, "experiments": exps}]


def _two_scenes(points: list) -> list:
    out = []
    for p, params in points:
        params = copy.deepcopy(params)
        params["benchmark"]["scenes"] = ["blocks", "b2"]
        out.append((p, params))
    return out


def test_tables_rank_effects_and_warnings(composed: tuple) -> None:
    grid, points = composed
    points = _two_scenes(points)
    matches = match_points(points, experiments_from_show(_sweep_rows(points)))
    warn = {"blocks": {"warnings": ["the Gaussian budget (10000) decided growth"]},
            "b2": {"warnings": []}}  # fmt: skip
    tables = build_tables(grid, matches, lambda rev, scene: warn.get(scene))
    pts = tables.points
    assert list(pts["rank"]) == [1, 2, 3, 4]
    assert list(pts["psnr"]) == [23.5, 22.5, 22.0, 21.5]  # means over the two scenes
    assert list(pts["warnings"]) == [1, 1, 1, 1] and set(pts["scenes"]) == {2}
    # more Gaussians always bought PSNR here; 50 s for 22.0 dB is beaten by 40 s for 22.5 dB
    assert list(pts["front_gaussians"]) == [True, True, True, True]
    assert list(pts["front_seconds"]) == [True, True, False, True]
    eff = tables.effects.set_index(["parameter", "value"])
    assert eff.loc[("strategy", "mcmc"), "psnr_mean"] == pytest.approx(22.75)
    assert eff.loc[("strategy", "default"), "psnr_min"] == 21.5
    assert eff.loc[("train.max_gaussians", "null"), "psnr_max"] == 23.5
    assert len(tables.warnings) == 8 and tables.warnings["warnings"].str.len().gt(0).sum() == 4
    # A details record in no cache or remote here is said to be missing, not shown as clean.
    unknown = build_tables(grid, matches, lambda rev, scene: None).scenes
    assert all(w == [UNAVAILABLE] for w in unknown["warnings"])
    assert tables.early_stop.empty and tables.missing.empty


def test_early_stop_against_the_off_point(tmp_path: Path) -> None:
    grid = _grid(tmp_path, {"name": "g", "description": "es", "rank_by": "seconds",
                            "axes": {"early_stop": ["off", "plateau", "target"]}})  # fmt: skip
    points = [(p, compose_point(REPO, p)) for p in expand(grid, ("train.max_steps=3000",))]
    results = [(25.0, 100.0, 3000, "max_steps"), (24.5, 60.0, 1500, "plateau"),
               (24.0, 40.0, 1000, "target")]  # fmt: skip
    exps = [
        _exp(f"e{i}", params, _metrics("blocks", q, 1000, s, n, r), "2026-01-01")
        for i, ((_, params), (q, s, n, r)) in enumerate(zip(points, results, strict=True))
    ]
    matches = match_points(points, experiments_from_show([{"rev": "c", "experiments": exps}]))
    tables = build_tables(grid, matches)
    es = tables.early_stop.set_index("early_stop")
    assert list(es.index) == ["plateau", "target"]
    assert es.loc["plateau", "seconds_saved"] == 40.0
    assert es.loc["plateau", "psnr_lost_db"] == pytest.approx(0.5)
    assert es.loc["target", "reference_steps"] == 3000 and es.loc["target", "steps"] == 1000
    assert list(tables.points["early_stop"]) == ["target", "plateau", "off"]  # fastest first


def _write_example(tmp_path: Path, composed: tuple, missing: int = 0) -> Path:
    grid, points = composed
    points = _two_scenes(points)
    rows = _sweep_rows(points)
    rows[0]["experiments"] = rows[0]["experiments"][: len(points) - missing]
    matches = match_points(points, experiments_from_show(rows))
    warn = {"blocks": {"warnings": ["the Gaussian budget (10000) decided growth"]},
            "b2": {"warnings": []}}  # fmt: skip
    tables = build_tables(grid, matches, lambda rev, scene: warn.get(scene))
    return write_report(tmp_path, grid, tables, ("train.max_steps=50",))


def test_report_files_and_markdown(tmp_path: Path, composed: tuple) -> None:
    out = _write_example(tmp_path, composed, missing=1)
    assert out == tmp_path / "reports/sweeps/g"
    names = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert names == ["index.html", "plots/effects.png", "plots/psnr_vs_gaussians.png",
                     "plots/psnr_vs_train_seconds.png", "results.csv", "summary.md"]  # fmt: skip
    md = (out / "summary.md").read_text()
    assert "3 of 4 points have results" in md and "## Missing points" in md
    assert "-S train.max_gaussians=null" in md and "decided growth" in md
    csv = (out / "results.csv").read_text().splitlines()
    assert len(csv) == 1 + 3 * 2 and csv[0].startswith("point,label,strategy,")
    # idempotent: a second write replaces the directory, nothing left behind
    _write_example(tmp_path, composed)
    assert "4 of 4 points" in (out / "summary.md").read_text()
    assert sorted(p.name for p in out.parent.iterdir()) == ["g"]


@pytest.mark.integration
def test_report_page_in_headless_chromium(tmp_path: Path, composed: tuple) -> None:
    from test_report_build import _chromium, _headless

    out = _write_example(tmp_path, composed, missing=1)
    page = (out / "index.html").resolve()
    text = page.read_text()
    assert "http://" not in text and "https://" not in text
    proc = _headless(_chromium(), tmp_path / "profile", "--dump-dom", page.as_uri())
    dom = proc.stdout
    check = re.search(r'id="selfcheck"[^>]*data-images="(\d+)"[^>]*data-broken="(\d+)"', dom)
    assert check, proc.stderr[-2000:]
    assert (int(check.group(1)), int(check.group(2))) == (3, 0)  # three plots, none broken
    ranked = dom.split("<h2>Ranked points</h2>")[1].split("</table>")[0]
    assert ranked.count("<tr>") == 1 + 3  # header + the three points with results
    assert "22.50" in ranked and "size, time" in ranked
    assert "decided growth" in dom and "Missing points" in dom


# --- the real thing ---------------------------------------------------------------------------


@pytest.mark.integration
def test_sweep_run_over_the_dvc_queue(tmp_path: Path, repo_root: Path) -> None:
    """A 2-point sweep on a project copy (tiny training): queue, -j 1, wait, report; again is a
    no-op."""
    from project_copy import copy_project

    root = copy_project(repo_root, tmp_path / "proj", max_steps=20)
    (root / "benchmarks/sweeps/tiny.yaml").write_text(
        yaml.safe_dump(
            {
                "name": "tiny",
                "description": "two budgets",
                "rank_by": "psnr",
                "axes": {"train.max_gaussians": [3000, 6000]},
                "fixed": {"early_stop": "off"},
            }
        )
    )
    exe = str(Path(sys.executable).with_name("splatbench"))

    def sh(*args: str, timeout: int = 900) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
        return subprocess.run(args, cwd=root, capture_output=True, text=True, timeout=timeout,
                              env=env)  # fmt: skip

    for cmd in (["git", "init", "-q", "-b", "main"], ["git", "add", "-A"],
                ["git", "commit", "-qm", "project copy"]):  # fmt: skip
        assert sh(*cmd).returncode == 0
    run = sh(exe, "sweep", "run", "tiny", "-j", "1", "-S", "train.log_every=10")
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "2 to queue" in run.stdout and "2 of 2 points have results" in run.stdout
    out = root / "reports/sweeps/tiny"
    md = (out / "summary.md").read_text()
    assert "2 of 2 points have results" in md
    csv = (out / "results.csv").read_text().splitlines()
    assert len(csv) == 3 and all(",blocks," in line for line in csv[1:])
    assert "max_steps" in md  # the stop reason of each point, from train.json
    # Each point's warnings, from its details record (a DVC-cached output, read through DVC).
    assert md.count("densification never ran") >= 2 and "not available here" not in md
    again = sh(exe, "sweep", "run", "tiny", "-j", "1", "-S", "train.log_every=10")
    assert again.returncode == 0 and "0 to queue" in again.stdout, again.stderr[-2000:]
