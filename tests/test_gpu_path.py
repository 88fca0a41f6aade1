"""The CUDA code path's defects, caught on CPU (no GPU here): each test fails on the code before
the fix. What is simulated is said per test: the "meta" device stands in for CUDA (tensors that
are not on the CPU and cannot be copied back), and the gsplat probes (CUDA runtime, gsplat
import, compiled kernels, test render) are injected callables."""

from __future__ import annotations

import json
import types
import warnings
from pathlib import Path

import pytest
import torch
from test_train_support import initial_splats, make_views, rasterize, write_sfm_scene

from splatbench.errors import ConfigError
from splatbench.gaussians import scene_scale
from splatbench.hardware import Hardware, check_hardware, read_hardware, write_hardware
from splatbench.render import (
    GsplatProbes,
    RenderBackendError,
    decide_backend,
    gsplat_verdict,
    probe_gsplat,
)
from splatbench.render.gsplat_backend import INSTALL_HINT
from splatbench.train import DefaultStrategyConfig, EarlyStopOff, TrainConfig, train, train_scene
from splatbench.train.checkpoint import (
    latest_checkpoint,
    load_checkpoint,
    restore_cuda_rng,
    set_rng_state,
)
from splatbench.train.loop import (
    _is_oom,
    determinism,
    make_optimizers,
    oom_error_types,
    restore_checkpoint,
)

# ---------------------------------------------------------------------------------------------
# 1. Resume: checkpoints load on the CPU, then move to the training device
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    views = make_views(4)
    ckpt_dir = tmp_path_factory.mktemp("ckpt")
    cfg = TrainConfig(max_steps=6, backend="torch", sh_degree=1, checkpoint_every=3,
                      keep_checkpoints=5, log_every=3)  # fmt: skip
    strategy = DefaultStrategyConfig(refine_start_iter=1, refine_every=2, grow_grad2d=1e-9)
    train(views, initial_splats(), cfg, strategy, EarlyStopOff(),
          scene_scale=scene_scale(views.camera_centers()), rasterize_fn=rasterize,
          checkpoint_dir=ckpt_dir)  # fmt: skip
    path = latest_checkpoint(ckpt_dir)
    assert path is not None
    return path


def test_loading_onto_the_training_device_breaks_rng_restore(checkpoint: Path) -> None:
    """What the old code did (map_location=device): the RNG states land off the CPU and
    set_rng_state fails. "meta" simulates a CUDA device here."""
    data = load_checkpoint(checkpoint, map_location="meta")
    with pytest.raises((RuntimeError, NotImplementedError)):
        set_rng_state(data["rng"])


def test_restore_for_another_device_keeps_rng_on_cpu(checkpoint: Path) -> None:
    data = restore_checkpoint(checkpoint, torch.device("meta"))  # "meta" stands in for CUDA
    set_rng_state(data["rng"])  # would raise if the RNG tensors had followed the device
    assert all(v.device.type == "meta" for v in data["params"].values())
    assert all(v.device.type == "meta" for v in data["strategy"].values()
               if isinstance(v, torch.Tensor))  # fmt: skip
    # Adam's state follows its parameter: load_state_dict moves the CPU moments to "meta".
    params = torch.nn.ParameterDict({k: torch.nn.Parameter(v) for k, v in data["params"].items()})
    optimizers = make_optimizers(params, TrainConfig(), 1.0)
    for name, opt in optimizers.items():
        opt.load_state_dict(data["optimizers"][name])
        state = opt.state[params[name]]
        assert state["exp_avg"].device.type == "meta"
        assert state["exp_avg_sq"].device.type == "meta"


def test_resume_through_train_still_bit_identical_on_cpu(checkpoint: Path) -> None:
    """The CPU path keeps its guarantee after the change: resuming a finished run returns the
    checkpoint's parameters unchanged."""
    views = make_views(4)
    cfg = TrainConfig(max_steps=6, backend="torch", sh_degree=1, checkpoint_every=3,
                      keep_checkpoints=5, log_every=3)  # fmt: skip
    strategy = DefaultStrategyConfig(refine_start_iter=1, refine_every=2, grow_grad2d=1e-9)
    result = train(views, initial_splats(), cfg, strategy, EarlyStopOff(),
                   scene_scale=scene_scale(views.camera_centers()), rasterize_fn=rasterize,
                   checkpoint_dir=checkpoint.parent)  # fmt: skip
    saved = load_checkpoint(checkpoint)
    assert result.resumed_from == 6
    for k, v in saved["params"].items():
        assert torch.equal(result.splats[k].detach(), v)


# ---------------------------------------------------------------------------------------------
# 5. CUDA RNG state onto fewer GPUs; OOM exception types
# ---------------------------------------------------------------------------------------------


def test_cuda_rng_restore_onto_fewer_gpus() -> None:
    """A checkpoint from a 4-GPU machine resumed on 1 GPU (a spot restart, say). The setter
    simulates torch.cuda.set_rng_state on a machine with ``count`` devices."""
    states = [torch.full((16,), i, dtype=torch.uint8) for i in range(4)]
    for count in (0, 1, 2, 4, 8):
        restored: list[int] = []

        def setter(
            state: torch.Tensor, index: int, count: int = count, restored: list = restored
        ) -> None:
            if index >= count:
                raise IndexError(f"device {index} of {count}")  # what CUDA raises
            assert int(state[0]) == index
            restored.append(index)

        n = restore_cuda_rng(states, count, setter)
        assert n == min(4, count) and restored == list(range(n))
    assert restore_cuda_rng(None, 2, lambda s, i: None) == 0


def test_oom_types_without_torch_out_of_memory_error() -> None:
    """torch < 2.5 has no torch.OutOfMemoryError: the handler must not reference it blindly."""

    class CudaOOM(RuntimeError):
        pass

    old_torch = types.SimpleNamespace(cuda=types.SimpleNamespace(OutOfMemoryError=CudaOOM))
    assert oom_error_types(old_torch) == (CudaOOM,)
    assert oom_error_types(types.SimpleNamespace(cuda=types.SimpleNamespace())) == ()
    assert torch.OutOfMemoryError in oom_error_types(torch)
    assert _is_oom(RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB"))
    assert not _is_oom(RuntimeError("shape mismatch"))


# ---------------------------------------------------------------------------------------------
# 2. backend=auto checks gsplat's kernels
# ---------------------------------------------------------------------------------------------


def _probes(**overrides) -> GsplatProbes:  # type: ignore[no-untyped-def]
    """All checks pass unless overridden (simulated CUDA machine with working gsplat)."""
    fake_gsplat = types.ModuleType("gsplat")
    base = dict(
        cuda_available=lambda: True,
        import_gsplat=lambda: fake_gsplat,
        load_kernels=lambda: object(),
        test_render=lambda gsplat: None,
    )
    return GsplatProbes(**{**base, **overrides})


def _raise(exc: BaseException):  # type: ignore[no-untyped-def]
    def fn(*args):  # type: ignore[no-untyped-def]
        raise exc

    return fn


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"cuda_available": lambda: False}, "CUDA is not available"),
        ({"import_gsplat": _raise(ImportError("No module named 'gsplat'"))}, "cannot be imported"),
        ({"load_kernels": lambda: None}, "_C is None"),
        ({"load_kernels": _raise(OSError("nvcc fatal"))}, "failed to load"),
        ({"test_render": _raise(RuntimeError("no kernel image"))}, "test render failed"),
    ],
)
def test_probe_reports_why_gsplat_cannot_run(overrides, reason) -> None:  # type: ignore[no-untyped-def]
    verdict = probe_gsplat(_probes(**overrides))
    assert verdict.reason is not None and reason in verdict.reason
    assert verdict.seconds >= 0


def test_probe_passes_with_working_kernels_and_times_them() -> None:
    calls = []
    verdict = probe_gsplat(_probes(test_render=lambda g: calls.append(g.__name__)))
    assert verdict.reason is None and calls == ["gsplat"]


def test_auto_falls_back_with_a_warning_and_explicit_gsplat_fails() -> None:
    no_kernels = probe_gsplat(_probes(load_kernels=lambda: None)).reason
    # A GPU machine whose gsplat has no kernels (the crash at step 0 before the fix).
    with pytest.warns(RuntimeWarning, match="_C is None"):
        assert decide_backend("auto", no_kernels, cuda_available=True) == "torch"
    with pytest.raises(RenderBackendError) as err:
        decide_backend("gsplat", no_kernels, cuda_available=True)
    assert "_C is None" in err.value.message and err.value.fix == INSTALL_HINT
    # A CPU machine: falling back is expected, no warning.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert decide_backend("auto", "CUDA is not available", cuda_available=False) == "torch"
        assert decide_backend("auto", None, cuda_available=True) == "gsplat"
        assert decide_backend("torch", no_kernels, cuda_available=True) == "torch"
    with pytest.raises(ValueError, match="unknown render backend"):
        decide_backend("vulkan", None, cuda_available=True)


def test_verdict_is_computed_once_per_process() -> None:
    gsplat_verdict.cache_clear()
    first = gsplat_verdict()
    second = gsplat_verdict()
    assert first is second and gsplat_verdict.cache_info().hits >= 1


# ---------------------------------------------------------------------------------------------
# 3 and 5. train.json: determinism, device name, setup time
# ---------------------------------------------------------------------------------------------


def test_determinism_record() -> None:
    assert determinism("torch")["bitwise"] is True
    assert "thread" in determinism("torch")["conditions"]
    gs = determinism("gsplat")
    assert gs["bitwise"] is False and "atomic" in gs["conditions"]


def test_train_json_records_device_model_determinism_and_setup(tmp_path: Path) -> None:
    sfm = write_sfm_scene(tmp_path / "sfm" / "toy", n_views=9)
    cfg = TrainConfig(max_steps=4, backend="torch", sh_degree=0, log_every=2)
    metrics = train_scene(sfm, tmp_path / "out", cfg, DefaultStrategyConfig(), EarlyStopOff(),
                          device="cpu")  # fmt: skip
    json.dumps(metrics, allow_nan=False)
    assert metrics["device"] == "cpu" and "logical CPUs" in metrics["device_name"]
    assert metrics["deterministic"]["bitwise"] is True
    # The C++ extension is loaded before the clock starts and reported on its own.
    assert metrics["backend_setup_seconds"] >= 0


# ---------------------------------------------------------------------------------------------
# 4. hardware.yaml
# ---------------------------------------------------------------------------------------------


def test_hardware_file_roundtrip_and_idempotent_write(tmp_path: Path) -> None:
    path = tmp_path / "hardware.yaml"
    hw, changed = write_hardware(path, Hardware("gsplat", "cuda"))
    assert changed and read_hardware(path) == hw
    mtime = path.stat().st_mtime_ns
    _, changed = write_hardware(path, Hardware("gsplat", "cuda"))
    assert not changed and path.stat().st_mtime_ns == mtime  # DVC sees the same bytes


def test_stage_refuses_hardware_it_is_not(tmp_path: Path) -> None:
    path = tmp_path / "hardware.yaml"
    write_hardware(path, Hardware("gsplat", "cuda"))
    with pytest.raises(ConfigError) as err:
        check_hardware("auto", path, here=Hardware("torch", "cpu"))
    assert "splatbench hardware" in (err.value.fix or "")
    assert check_hardware("auto", path, here=Hardware("gsplat", "cuda")) == "gsplat"
    # Explicit backends need no file at all.
    assert check_hardware("torch", tmp_path / "missing.yaml") == "torch"
    with pytest.raises(ConfigError, match="not found"):
        check_hardware("auto", tmp_path / "missing.yaml", here=Hardware("torch", "cpu"))
    (tmp_path / "bad.yaml").write_text("hardware: {auto_backend: cuda}\n")
    with pytest.raises(ConfigError, match="expected"):
        read_hardware(tmp_path / "bad.yaml")


def test_committed_hardware_file_is_the_cpu_demos(repo_root: Path) -> None:
    """The repo's hardware.yaml is the CPU machine's: the committed demo results are CPU ones."""
    assert read_hardware(repo_root / "hardware.yaml") == Hardware("torch", "cpu")
