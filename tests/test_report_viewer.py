"""The report's 3D viewer: the page and its lazily loaded model scripts, and the real thing in
headless Chromium (SwiftShader WebGL) opening it from disk and drawing each model."""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from cdp_pipe import Chromium
from PIL import Image
from test_compress_roundtrip import make_splats

from splatbench.compress.export import export_viewer_formats
from splatbench.gaussians.ply import write_ply
from splatbench.report import viewer as viewer_mod
from splatbench.report.viewer import build_viewer, fallback_camera, model_script

REPO = Path(__file__).resolve().parents[1]


def _project(root: Path, scene: str = "s1", n: int = 3000) -> Path:
    """data/splats/<scene>/point_cloud.ply and its SOG/SPZ exports, as the pipeline lays out."""
    splats = make_splats(n, seed=5)
    splats["opacities"] = splats["opacities"].abs() + 1.0  # mostly opaque: easy to see
    ply = root / "data/splats" / scene / "point_cloud.ply"
    ply.parent.mkdir(parents=True)
    write_ply(ply, splats)
    export_viewer_formats(ply, root / "data/compressed" / scene / "export")
    return root


def _config(page: Path) -> dict:
    text = page.read_text()
    return json.loads(re.search(r'id="viewer-config">(.*?)</script>', text, re.S).group(1))


def test_page_without_bundle_says_how_to_build_it(tmp_path: Path) -> None:
    root = _project(tmp_path)
    res = build_viewer(tmp_path / "reports", ["s1"], root=root, bundle_dir=tmp_path / "none")
    assert not res.built and "make viewer" in res.notes[0]
    page = tmp_path / "reports/viewer/index.html"
    text = page.read_text()
    assert "vendor/splatbench-viewer.js" not in text and "http://" not in text
    assert "https://" not in text
    models = {m["name"]: m for m in _config(page)["scenes"][0]["models"]}
    assert set(models) == {"trained", "playcanvas_sog", "spz"}
    assert models["playcanvas_sog"]["file_type"] == "pcsogszip"


def test_prebuilt_bundle_is_used_only_when_built_from_this_lockfile(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The images ship a bundle built at image build time (a job's checkout has none): used
    when its lockfile copy matches the checkout's, never a bundle of other package versions."""
    root = tmp_path / "checkout"
    (root / "tools/viewer").mkdir(parents=True)
    (root / "tools/viewer/package-lock.json").write_text('{"lockfileVersion": 3}')
    prebuilt = tmp_path / "image-bundle"
    prebuilt.mkdir()
    (prebuilt / viewer_mod.BUNDLE_NAME).write_text("/* bundle */")
    (prebuilt / "package-lock.json").write_text('{"lockfileVersion": 3}')
    assert viewer_mod.find_bundle_dir(root) == root / viewer_mod.BUNDLE_DIR  # no env: own
    monkeypatch.setenv(viewer_mod.BUNDLE_ENV, str(prebuilt))
    assert viewer_mod.find_bundle_dir(root) == prebuilt
    (prebuilt / "package-lock.json").write_text('{"lockfileVersion": 3, "other": 1}')
    assert viewer_mod.find_bundle_dir(root) == root / viewer_mod.BUNDLE_DIR
    own = root / viewer_mod.BUNDLE_DIR
    own.mkdir(parents=True)
    (own / viewer_mod.BUNDLE_NAME).write_text("/* own */")
    assert viewer_mod.find_bundle_dir(root) == own  # the checkout's own build always wins


def test_model_scripts_hold_the_files_and_load_lazily(tmp_path: Path) -> None:
    root = _project(tmp_path)
    res = build_viewer(tmp_path / "reports", ["s1"], root=root, bundle_dir=tmp_path / "none")
    page = (tmp_path / "reports/viewer/index.html").read_text()
    assert "base64" not in page and len(page) < 30_000  # no model inside the page
    for entry in res.models:
        script = (tmp_path / "reports/viewer" / entry["script"]).read_text()
        payload = re.search(r'"([A-Za-z0-9+/=]{100,})"', script).group(1)
        assert base64.b64decode(payload) == (root / entry["source"]).read_bytes()
        assert json.dumps(entry["key"]) in script
    cam = _config(tmp_path / "reports/viewer/index.html")["scenes"][0]["camera"]
    assert cam["from"].startswith("fallback") and cam["up"] == [0.0, -1.0, 0.0]


def test_large_models_are_listed_not_embedded(tmp_path: Path, monkeypatch) -> None:
    root = _project(tmp_path)
    monkeypatch.setattr(viewer_mod, "MAX_EMBED_MB", 0.2)  # the PLY (0.7 MB) is over it
    res = build_viewer(tmp_path / "reports", ["s1"], root=root, bundle_dir=tmp_path / "none")
    trained = next(m for m in res.models if m["name"] == "trained")
    assert trained["script"] is None and any("file button" in n for n in res.notes)
    assert not (tmp_path / "reports/viewer/models/s1/trained.js").exists()


def test_scene_without_models_and_helpers(tmp_path: Path) -> None:
    res = build_viewer(tmp_path / "reports", ["nothing"], root=tmp_path, bundle_dir=tmp_path)
    assert res.models == [] and (tmp_path / "reports/viewer/index.html").is_file()
    assert fallback_camera(np.zeros((0, 3))) is None
    assert model_script("s/m", "spz", b"\x00\xff").endswith('"spz", "AP8=");\n')


# --- the real browser --------------------------------------------------------------------------


def _chromium() -> str:
    from test_report_build import _chromium as find

    return find()


@pytest.fixture(scope="module")
def bundle_dir() -> Path:
    """tools/viewer/dist, built with npm (as `make viewer`) when missing."""
    dist = REPO / "tools/viewer/dist"
    if not (dist / "splatbench-viewer.js").is_file():
        if shutil.which("npm") is None:
            pytest.skip("the viewer bundle is not built and npm is not installed")
        cmd = "npm ci --ignore-scripts --no-audit --no-fund --loglevel=error && node build.mjs"
        proc = subprocess.run(cmd, shell=True, cwd=REPO / "tools/viewer", capture_output=True,
                              text=True, timeout=600)  # fmt: skip
        if proc.returncode != 0:
            pytest.skip(
                f"could not build the viewer bundle (npm unreachable?): {proc.stderr[-400:]}"
            )
    return dist


@pytest.mark.integration
def test_viewer_draws_every_model_from_disk(
    tmp_path: Path, bundle_dir: Path, repo_root: Path
) -> None:
    root = _project(tmp_path)
    res = build_viewer(tmp_path / "reports", ["s1"], root=root, bundle_dir=bundle_dir)
    assert res.built
    page = (tmp_path / "reports/viewer/index.html").resolve()
    shots = {}
    with Chromium(_chromium(), tmp_path / "profile", 640, 480) as browser:
        browser.goto(page.as_uri() + "?model=s1/spz")
        for key in ("s1/spz", "s1/playcanvas_sog", "s1/trained"):
            if key != "s1/spz":  # the others through the page's own buttons
                browser.evaluate(f"document.querySelector('[data-key=\"{key}\"]').click()")
            state = browser.wait_for(
                f"(document.body.dataset.model == '{key}' && document.body.dataset.state == "
                "'drawn') || ['error', 'no-bundle'].includes(document.body.dataset.state) ? "
                "document.body.dataset.state : ''",
                timeout=240,
            )
            status = browser.evaluate("document.getElementById('status').textContent")
            assert state == "drawn", f"{key}: {status}; console: {browser.console[-5:]}"
            assert "3000 Gaussians" in status
            # the page's own read of the WebGL canvas (preserveDrawingBuffer) is not one colour
            assert float(browser.evaluate("document.body.dataset.pixelStd")) > 3.0
            shots[key] = browser.screenshot(tmp_path / f"{key.replace('/', '_')}.png")
    for key, shot in shots.items():
        with Image.open(shot) as im:
            canvas = np.asarray(im.convert("L"), dtype=np.float64)[120:, :]  # below the bar
        assert canvas.std() > 3.0, f"{key}: the canvas is blank"
    assert not browser.console or not any("Error" in c for c in browser.console), browser.console
