"""SIGTERM (SageMaker stop, spot interruption): the trainer checkpoints at once and exits 143;
the rerun resumes from that checkpoint and ends with exactly the uninterrupted parameters."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from splatbench.train.interrupt import INTERRUPTED_EXIT_CODE, StopOnSignal, TrainingInterrupted

TESTS = Path(__file__).resolve().parent

SCRIPT = """
import sys, torch
sys.path.insert(0, {tests!r})
torch.set_num_threads(1)  # identical float reductions in every process
from test_train_support import initial_splats, make_views, rasterize
from splatbench.gaussians import scene_scale
from splatbench.train import DefaultStrategyConfig, EarlyStopOff, TrainConfig, train
from splatbench.train.interrupt import INTERRUPTED_EXIT_CODE, StopOnSignal, TrainingInterrupted

views = make_views(6)
cfg = TrainConfig(max_steps=60, backend="torch", sh_degree=1, sh_degree_interval=20,
                  checkpoint_every=10, log_every=10)
strategy = DefaultStrategyConfig(refine_start_iter=8, refine_every=10, reset_every=25,
                                 grow_grad2d=5e-4)
ckpt = sys.argv[2] if sys.argv[2] != "-" else None
try:
    with StopOnSignal() as stop:
        result = train(views, initial_splats(), cfg, strategy, EarlyStopOff(),
                       scene_scale=scene_scale(views.camera_centers()), rasterize_fn=rasterize,
                       checkpoint_dir=ckpt, should_stop=stop)
except TrainingInterrupted as exc:
    print("interrupted", exc.steps, flush=True)
    sys.exit(INTERRUPTED_EXIT_CODE)
torch.save({{k: v.detach() for k, v in result.splats.items()}}, sys.argv[1])
print("resumed_from", result.resumed_from)
"""


def _cmd(out: Path, ckpt: str) -> list[str]:
    return [sys.executable, "-c", SCRIPT.format(tests=str(TESTS)), str(out), ckpt]


@pytest.mark.integration
def test_sigterm_checkpoints_at_once_and_resumes_exactly(tmp_path: Path) -> None:
    full = subprocess.run(
        _cmd(tmp_path / "full.pt", "-"), capture_output=True, text=True, timeout=600
    )
    assert full.returncode == 0, full.stderr

    ckpt = tmp_path / "ckpt"
    proc = subprocess.Popen(
        _cmd(tmp_path / "x.pt", str(ckpt)), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 300
    while not (ckpt / "ckpt_00000020.pt").exists():
        assert proc.poll() is None, "training finished before it could be stopped"
        assert time.monotonic() < deadline
        time.sleep(0.02)
    t0 = time.monotonic()
    os.kill(proc.pid, signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == INTERRUPTED_EXIT_CODE, err
    assert time.monotonic() - t0 < 30  # SageMaker allows 120 s; a step is milliseconds here
    stopped_at = int(out.split("interrupted")[1])
    assert 20 <= stopped_at < 60
    # The checkpoint was written at the signal, not at the next checkpoint_every boundary.
    assert (ckpt / f"ckpt_{stopped_at:08d}.pt").is_file()

    resumed = subprocess.run(
        _cmd(tmp_path / "resumed.pt", str(ckpt)), capture_output=True, text=True, timeout=600
    )
    assert resumed.returncode == 0, resumed.stderr
    assert int(resumed.stdout.split("resumed_from")[1]) == stopped_at
    a = torch.load(tmp_path / "full.pt", weights_only=True)
    b = torch.load(tmp_path / "resumed.pt", weights_only=True)
    assert set(a) == set(b)
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_signal_before_the_loop_interrupts_at_once() -> None:
    with StopOnSignal() as stop, pytest.raises(TrainingInterrupted) as err:
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # interrupted by the handler, not waited out
    assert err.value.steps is None and stop.requested
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # restored on exit


def test_signal_in_the_loop_sets_the_flag_then_the_grace_timer_fires() -> None:
    with StopOnSignal(grace_s=0.2) as stop:
        assert stop() is False  # the loop has started polling
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop() is True
        with pytest.raises(TrainingInterrupted):
            time.sleep(5)  # nobody acted on the flag: the grace timer interrupts
    with StopOnSignal() as stop:
        stop()
        os.kill(os.getpid(), signal.SIGTERM)
        with pytest.raises(TrainingInterrupted):  # a second signal does not wait
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)
