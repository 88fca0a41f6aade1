"""Resume after a real SIGKILL: the resumed run ends with exactly the uninterrupted parameters."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

TESTS = Path(__file__).resolve().parent

MAX_STEPS = 150
SCRIPT = """
import sys, torch
sys.path.insert(0, {tests!r})
torch.set_num_threads(1)  # identical float reductions in every process
from test_train_support import initial_splats, make_views, rasterize
from splatbench.gaussians import scene_scale
from splatbench.train import DefaultStrategyConfig, EarlyStopOff, TrainConfig, train

views = make_views(6)
cfg = TrainConfig(max_steps={max_steps}, backend="torch", sh_degree=1, sh_degree_interval=20,
                  checkpoint_every=5, log_every=10)
strategy = DefaultStrategyConfig(refine_start_iter=8, refine_every=10, reset_every=25,
                                 grow_grad2d=5e-4)
ckpt = sys.argv[2] if sys.argv[2] != "-" else None
result = train(views, initial_splats(), cfg, strategy, EarlyStopOff(),
               scene_scale=scene_scale(views.camera_centers()), rasterize_fn=rasterize,
               checkpoint_dir=ckpt)
torch.save({{k: v.detach() for k, v in result.splats.items()}}, sys.argv[1])
print("resumed_from", result.resumed_from)
"""


def _run(tmp: Path, out: str, ckpt: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", SCRIPT.format(tests=str(TESTS), max_steps=MAX_STEPS), out, ckpt],
        capture_output=True, text=True, timeout=600, cwd=tmp,
    )  # fmt: skip


@pytest.mark.integration
def test_sigkilled_run_resumes_to_identical_parameters(tmp_path):
    full = _run(tmp_path, str(tmp_path / "full.pt"), "-")
    assert full.returncode == 0, full.stderr

    ckpt = tmp_path / "ckpt"
    proc = subprocess.Popen(
        [sys.executable, "-c", SCRIPT.format(tests=str(TESTS), max_steps=MAX_STEPS),
         str(tmp_path / "x.pt"),
         str(ckpt)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp_path,
    )  # fmt: skip
    deadline = time.monotonic() + 300
    # Kill at the first checkpoint from step 20 on (only the newest two are kept, and a fast
    # machine passes any single one within one poll).
    while not any(int(p.stem.split("_")[1]) >= 20 for p in ckpt.glob("ckpt_*.pt")):
        assert proc.poll() is None, "training finished before it could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (tmp_path / "x.pt").exists()

    resumed = _run(tmp_path, str(tmp_path / "resumed.pt"), str(ckpt))
    assert resumed.returncode == 0, resumed.stderr
    step = int(resumed.stdout.split("resumed_from")[1])
    assert 20 <= step < MAX_STEPS
    a = torch.load(tmp_path / "full.pt", weights_only=True)
    b = torch.load(tmp_path / "resumed.pt", weights_only=True)
    assert set(a) == set(b)
    assert len(a["means"]) != 120  # densification happened, so the test covers it
    for key in a:
        assert torch.equal(a[key], b[key]), key
