// The viewer library as one global (window.SplatbenchViewerLib) for a classic <script>: module
// scripts do not load from file:// in Chromium. The page logic lives in the report's viewer page.
import { SparkRenderer, SplatMesh } from "@sparkjsdev/spark";
import * as THREE from "three";
import { OrbitControls } from "three/addons/controls/OrbitControls.js";

window.SplatbenchViewerLib = { THREE, OrbitControls, SparkRenderer, SplatMesh };
