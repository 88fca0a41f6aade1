"""The report's 3D viewer: ``reports/viewer/index.html`` orbits each scene's models offline.

The page runs Spark (``@sparkjsdev/spark``, World Labs, MIT) on three.js (MIT), bundled by
``make viewer`` into one classic script (``tools/viewer/dist/splatbench-viewer.js``), because a
page opened from disk (``file://``) cannot load module scripts or ``fetch()`` files in Chromium.
For the same reason each model travels as a small classic script, ``models/<scene>/<model>.js``,
holding the model file base64-encoded; the page inserts it only when the reader picks that
model (lazy: the report itself stays light), decodes it to bytes and hands them to Spark. A file
button opens any local ``.ply``, ``.spz`` or ``.sog`` the same way.

Models per scene: the trained PLY and the PlayCanvas SOG and SPZ exports (the compressed files
viewers open). Models over :data:`MAX_EMBED_MB` are listed, not embedded (open them with the
file button). The start camera sits at the scene's first test camera looking at the median of
the Gaussians, with the cameras' mean up direction, so the model appears as photographed.
"""

from __future__ import annotations

import base64
import html
import json
import os
import shutil
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from splatbench.fsutil import atomic_write_text

VIEWER_DIR = "viewer"
BUNDLE_NAME = "splatbench-viewer.js"
#: The built bundle (``make viewer``) and its npm project.
BUNDLE_DIR = Path("tools/viewer/dist")
#: A prebuilt bundle (the container images build one), used when the checkout has none: only if
#: it was built from the same lockfile (its copy of package-lock.json equals the checkout's).
BUNDLE_ENV = "SPLATBENCH_VIEWER_BUNDLE_DIR"
LOCKFILE = Path("tools/viewer/package-lock.json")
MAX_EMBED_MB = 64.0
#: Spark's file types by extension.
FILE_TYPES = {".ply": "ply", ".spz": "spz", ".sog": "pcsogszip"}


@dataclass(frozen=True)
class ViewerModel:
    """A model the viewer offers: ``key`` is ``<scene>/<name>``."""

    scene: str
    name: str
    title: str
    path: Path
    file_type: str
    bytes: int


@dataclass
class ViewerResult:
    """What was written (paths relative to the report directory) and what to tell the reader."""

    built: bool
    page: str | None
    files: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    models: list[dict[str, Any]] = field(default_factory=list)


def scene_models(scene: str, root: Path = Path(".")) -> list[ViewerModel]:
    """The trained PLY and the viewer-format exports of ``scene`` that exist on disk."""
    candidates = [
        ("trained", "trained (PLY)", Path("data/splats") / scene / "point_cloud.ply"),
        (
            "playcanvas_sog",
            "PlayCanvas SOG export",
            Path("data/compressed") / scene / "export/scene.sog",
        ),
        ("spz", "SPZ export", Path("data/compressed") / scene / "export/scene.spz"),
    ]
    out = []
    for name, title, rel in candidates:
        path = Path(root) / rel
        if path.is_file():
            out.append(
                ViewerModel(scene, name, title, path, FILE_TYPES[path.suffix], path.stat().st_size)
            )
    return out


def start_camera(sfm_dir: Path, means: np.ndarray) -> dict[str, Any] | None:
    """Initial camera: position of the first test (else any) registered camera, looking at the
    median of ``means [N, 3]``, up = the cameras' mean up (OpenCV cameras look down +z with +y
    down, so up is ``-R^T e_y``), vertical field of view from its intrinsics. None without a
    readable COLMAP model."""
    from splatbench.scene.split import SPLIT_FILENAME, read_split
    from splatbench.sfm import colmap

    sparse = Path(sfm_dir) / "sparse" / "0"
    if not sparse.is_dir() or len(means) == 0:
        return None
    try:
        rec = colmap.read_model(sparse)
        registered = colmap.registered_images(rec)
        split = (
            read_split(Path(sfm_dir) / SPLIT_FILENAME)
            if (Path(sfm_dir) / SPLIT_FILENAME).is_file()
            else {}
        )
    except Exception:  # an unreadable model only costs the nice start view
        return None
    if not registered:
        return None
    names = [n for n in sorted(split.get("test", [])) if n in registered] or sorted(registered)
    ups, first = [], None
    for name, image in sorted(registered.items()):
        R, t = colmap.image_pose(image)
        ups.append(-np.asarray(R)[1])
        if name == names[0]:
            first = (image, np.asarray(R), np.asarray(t))
    assert first is not None
    image, R, t = first
    cam = rec.cameras[image.camera_id]
    fy = float(cam.params[1]) if len(cam.params) >= 4 else float(cam.params[0])
    up = np.mean(ups, axis=0)
    up = up / (np.linalg.norm(up) or 1.0)
    return {
        "position": [float(v) for v in -R.T @ t],
        "target": [float(v) for v in np.median(means, axis=0)],
        "up": [float(v) for v in up],
        "fov_deg": float(np.degrees(2 * np.arctan(cam.height / (2 * fy)))),
        "from": f"test camera {names[0]}",
    }


def fallback_camera(means: np.ndarray) -> dict[str, Any] | None:
    """Without SfM cameras: in front of the model along -z (the OpenCV/COLMAP convention of
    3DGS PLYs: cameras look down +z with +y down), far enough to see 90% of the Gaussians."""
    if len(means) == 0:
        return None
    centre = np.median(means, axis=0)
    spread = float(np.quantile(np.abs(means - centre), 0.9, axis=0).max()) or 1.0
    return {
        "position": [float(v) for v in centre - np.array([0.0, 0.0, 3.0 * spread])],
        "target": [float(v) for v in centre],
        "up": [0.0, -1.0, 0.0],
        "fov_deg": 50.0,
        "from": "fallback: the Gaussians' extent (no SfM cameras)",
    }


def model_script(key: str, file_type: str, data: bytes) -> str:
    """The classic script that hands one model to the page (base64, so no fetch is needed)."""
    payload = base64.b64encode(data).decode("ascii")
    return (
        f"// {key}: a {file_type} model for reports/viewer/index.html (base64 of the file)\n"
        f"window.SplatbenchModels.loaded({json.dumps(key)}, {json.dumps(file_type)}, "
        f'"{payload}");\n'
    )


def find_bundle_dir(root: Path) -> Path:
    """The checkout's ``tools/viewer/dist`` when it holds the bundle, else ``$BUNDLE_ENV``'s
    prebuilt one when that was built from this checkout's lockfile, else the checkout's (the
    page then says how to build it)."""
    own = root / BUNDLE_DIR
    prebuilt = os.environ.get(BUNDLE_ENV)
    if (own / BUNDLE_NAME).is_file() or not prebuilt:
        return own
    lock, built_from = root / LOCKFILE, Path(prebuilt) / LOCKFILE.name
    same = lock.is_file() and built_from.is_file() and lock.read_bytes() == built_from.read_bytes()
    return Path(prebuilt) if same else own


def build_viewer(
    out_dir: Path,
    scenes: Sequence[str],
    *,
    root: Path = Path("."),
    bundle_dir: Path | None = None,
) -> ViewerResult:
    """Write ``out_dir/viewer/`` (page, vendor bundle, model scripts); return what was built.

    Without the bundle the page is still written and says how to build it.
    """
    from splatbench.gaussians.ply import read_ply

    bundle_dir = find_bundle_dir(Path(root)) if bundle_dir is None else Path(bundle_dir)
    viewer = Path(out_dir) / VIEWER_DIR
    if viewer.exists():
        shutil.rmtree(viewer)  # the directory is the report stage's output: rebuilt whole
    (viewer / "vendor").mkdir(parents=True)
    result = ViewerResult(built=False, page=f"{VIEWER_DIR}/index.html")
    bundle = bundle_dir / BUNDLE_NAME
    versions: dict[str, str] = {}
    if bundle.is_file():
        shutil.copyfile(bundle, viewer / "vendor" / BUNDLE_NAME)
        if (bundle_dir / "licenses").is_dir():
            shutil.copytree(bundle_dir / "licenses", viewer / "vendor" / "licenses")
        if (bundle_dir / "versions.json").is_file():
            versions = json.loads((bundle_dir / "versions.json").read_text())
        result.built = True
    else:
        result.notes.append(
            f"3D viewer bundle not found ({bundle}): run `make viewer` (needs Node.js and npm) "
            "and re-run the report stage (dvc repro -f report); the page lists the models but "
            "cannot draw them"
        )
    config: dict[str, Any] = {"scenes": [], "versions": versions, "bundle": result.built}
    for scene in scenes:
        models = scene_models(scene, root)
        camera = None
        trained = next((m for m in models if m.name == "trained"), None)
        if trained is not None:
            means = read_ply(trained.path)["means"].detach().numpy()
            camera = start_camera(Path(root) / "data/sfm" / scene, means) or fallback_camera(means)
        entries = []
        for m in models:
            entry = {
                "key": f"{scene}/{m.name}",
                **{k: v for k, v in asdict(m).items() if k != "path"},
            }
            entry["source"] = (
                str(m.path.relative_to(root)) if m.path.is_relative_to(root) else str(m.path)
            )
            if m.bytes > MAX_EMBED_MB * 1e6:
                entry["script"] = None
                result.notes.append(
                    f"{scene}/{m.name}: {m.bytes / 1e6:.0f} MB is over the offline viewer's "
                    f"{MAX_EMBED_MB:.0f} MB limit; open {entry['source']} with the file button"
                )
            else:
                rel = f"models/{scene}/{m.name}.js"
                path = viewer / rel
                path.parent.mkdir(parents=True, exist_ok=True)
                atomic_write_text(
                    path, model_script(entry["key"], m.file_type, m.path.read_bytes())
                )
                entry["script"] = rel
                result.files.append(f"{VIEWER_DIR}/{rel}")
            entries.append(entry)
        config["scenes"].append({"scene": scene, "camera": camera, "models": entries})
        result.models += entries
    atomic_write_text(viewer / "index.html", render_viewer_page(config))
    result.files.append(f"{VIEWER_DIR}/index.html")
    if result.built:
        result.files.append(f"{VIEWER_DIR}/vendor/{BUNDLE_NAME}")
    return result


VIEWER_CSS = """
html, body { margin: 0; height: 100%; background: #111; color: #ddd;
             font: 13px system-ui, sans-serif; }
#bar { position: absolute; top: 0; left: 0; right: 0; padding: 6px 8px; background: #000a;
       z-index: 2; }
#bar button { margin: 2px; background: #333; color: #eee; border: 1px solid #555;
              border-radius: 3px; padding: 3px 7px; cursor: pointer; }
#bar button.on { background: #2a5; border-color: #4c7; }
#status { margin-left: 8px; color: #aaa; }
#view { display: block; width: 100%; height: 100%; }
.missing { padding: 3em; max-width: 40em; }
"""

# The page logic. Classic script (file:// pages cannot import modules); no network.
VIEWER_JS = r"""
(function () {
  var config = JSON.parse(document.getElementById('viewer-config').textContent);
  var status = document.getElementById('status');
  var body = document.body;
  function say(text) { status.textContent = text; }
  var lib = window.SplatbenchViewerLib;
  if (!lib) {
    body.setAttribute('data-state', 'no-bundle');
    say('viewer bundle missing: run `make viewer`, then re-run the report stage');
    return;
  }
  var THREE = lib.THREE;
  var canvas = document.getElementById('view');
  var renderer = new THREE.WebGLRenderer({ canvas: canvas, antialias: false,
                                           preserveDrawingBuffer: true });
  renderer.setPixelRatio(window.devicePixelRatio || 1);
  var scene = new THREE.Scene();
  var camera = new THREE.PerspectiveCamera(50, 1, 0.01, 2000);
  var spark = new lib.SparkRenderer({ renderer: renderer });
  scene.add(spark);
  var controls = new lib.OrbitControls(camera, canvas);
  controls.enableDamping = true;
  var current = null, frames = 0;
  function resize() {
    var w = canvas.clientWidth, h = canvas.clientHeight;
    renderer.setSize(w, h, false);
    camera.aspect = w / Math.max(h, 1);
    camera.updateProjectionMatrix();
  }
  window.addEventListener('resize', resize);
  resize();
  renderer.setAnimationLoop(function () {
    controls.update();
    renderer.render(scene, camera);
    if (current && current.ready && ++frames === 30) {
      body.setAttribute('data-state', 'drawn');
      body.setAttribute('data-model', current.key);
      body.setAttribute('data-pixel-std', pixelStd().toFixed(2));
    }
  });
  // Standard deviation of the drawn canvas' grey levels: 0 for a blank (one-colour) canvas.
  function pixelStd() {
    var c = document.createElement('canvas');
    c.width = 160; c.height = 120;
    var g = c.getContext('2d');
    g.drawImage(canvas, 0, 0, c.width, c.height);
    var px = g.getImageData(0, 0, c.width, c.height).data, n = c.width * c.height, s = 0, s2 = 0;
    for (var i = 0; i < px.length; i += 4) {
      var v = 0.299 * px[i] + 0.587 * px[i + 1] + 0.114 * px[i + 2];
      s += v; s2 += v * v;
    }
    var mean = s / n;
    return Math.sqrt(Math.max(0, s2 / n - mean * mean));
  }
  function placeCamera(cam) {
    if (!cam) return;
    camera.up.set(cam.up[0], cam.up[1], cam.up[2]);
    camera.position.set(cam.position[0], cam.position[1], cam.position[2]);
    camera.fov = cam.fov_deg;
    controls.target.set(cam.target[0], cam.target[1], cam.target[2]);
    camera.lookAt(controls.target);
    camera.updateProjectionMatrix();
    controls.update();
  }
  function b64bytes(b64) {
    var bin = atob(b64), out = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out;
  }
  function show(key, type, bytes, cam) {
    if (current && current.mesh) { scene.remove(current.mesh); current.mesh.dispose(); }
    frames = 0;
    body.setAttribute('data-state', 'loading');
    current = { key: key, ready: false, mesh: null };
    var mine = current;
    var mesh = new lib.SplatMesh({ fileBytes: bytes, fileType: type });
    mine.mesh = mesh;
    scene.add(mesh);
    mesh.initialized.then(function () {
      if (mine !== current) return;
      if (cam) placeCamera(cam);
      mine.ready = true;
      say(key + ': ' + (mesh.numSplats || mesh.packedSplats && mesh.packedSplats.numSplats ||
          '?') + ' Gaussians. Drag to orbit, right-drag to pan, wheel to zoom.');
    }, function (err) {
      body.setAttribute('data-state', 'error');
      say(key + ': cannot load (' + err + ')');
    });
  }
  var byKey = {};
  window.SplatbenchModels = {
    loaded: function (key, type, b64) {
      var entry = byKey[key];
      show(key, type, b64bytes(b64), entry && entry.camera);
    }
  };
  function load(entry) {
    document.querySelectorAll('#bar button[data-key]').forEach(function (b) {
      b.classList.toggle('on', b.getAttribute('data-key') === entry.key);
    });
    if (!entry.script) { say(entry.key + ': too large to embed; use "open file"'); return; }
    say('loading ' + entry.key + ' (' + (entry.bytes / 1e6).toFixed(2) + ' MB)');
    body.setAttribute('data-state', 'loading');
    var s = document.createElement('script');
    s.src = entry.script;
    s.onerror = function () {
      body.setAttribute('data-state', 'error');
      say(entry.key + ': ' + entry.script + ' is missing (re-run the report stage)');
    };
    document.head.appendChild(s);
  }
  var bar = document.getElementById('models');
  config.scenes.forEach(function (sc) {
    var label = document.createElement('span');
    label.textContent = sc.scene + ': ';
    bar.appendChild(label);
    sc.models.forEach(function (m) {
      m.camera = sc.camera;
      byKey[m.key] = m;
      var b = document.createElement('button');
      b.setAttribute('data-key', m.key);
      b.textContent = m.title + ' ' + (m.bytes / 1e6).toFixed(2) + ' MB';
      b.onclick = function () { load(m); };
      bar.appendChild(b);
    });
  });
  document.getElementById('file').addEventListener('change', function (ev) {
    var f = ev.target.files[0];
    if (!f) return;
    var ext = f.name.toLowerCase().split('.').pop();
    var type = { ply: 'ply', spz: 'spz', sog: 'pcsogszip' }[ext];
    f.arrayBuffer().then(function (buf) {
      var cam = config.scenes.length ? config.scenes[0].camera : null;
      show(f.name, type, new Uint8Array(buf), current ? null : cam);
    });
  });
  var params = new URLSearchParams(window.location.search);
  var want = params.get('model');
  if (want && byKey[want]) load(byKey[want]);
  else say('pick a model to load it');
})();
"""


def render_viewer_page(config: dict[str, Any]) -> str:
    """The viewer page (its data in a JSON script element; no network access)."""
    data = json.dumps(config, sort_keys=True).replace("</", "<\\/")
    versions = ", ".join(f"{k} {v}" for k, v in sorted(config.get("versions", {}).items()))
    credit = f"Spark and three.js ({versions}), MIT licensed: vendor/licenses/" if versions else ""
    bundle = (
        f'<script src="vendor/{BUNDLE_NAME}"></script>'
        if config.get("bundle")
        else "<!-- viewer bundle not built: make viewer -->"
    )
    # No network: scripts from this directory only; Spark compiles inline WebAssembly and runs
    # its sorter in blob:/data: workers.
    csp = (
        "default-src 'none'; script-src 'self' file: 'unsafe-inline' 'wasm-unsafe-eval'; "
        "worker-src blob: data:; img-src 'self' file: blob: data:; style-src 'unsafe-inline'; "
        "connect-src blob: data:"
    )
    bar = (
        '<div id="bar"><span id="models"></span> <label>open file <input id="file" '
        'type="file" accept=".ply,.spz,.sog"></label><span id="status">starting</span>'
        f'<div style="font-size:11px;color:#888">{html.escape(credit)}</div></div>'
    )
    lines = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f'<meta http-equiv="Content-Security-Policy" content="{csp}">',
        f"<title>splatbench 3D viewer</title><style>{VIEWER_CSS}</style></head>",
        '<body data-state="idle">',
        bar,
        '<canvas id="view"></canvas>',
        f'<script type="application/json" id="viewer-config">{data}</script>',
        bundle,
        f"<script>{VIEWER_JS}</script>",
        "</body></html>",
    ]
    return "\n".join(lines) + "\n"
