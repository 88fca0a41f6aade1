// Bundle entry.mjs into dist/splatbench-viewer.js (IIFE) and collect the licenses it contains.
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { build } from "esbuild";

mkdirSync("dist/licenses", { recursive: true });
await build({
  entryPoints: ["entry.mjs"],
  bundle: true,
  format: "iife",
  minify: true,
  target: "es2020",
  legalComments: "eof",
  outfile: "dist/splatbench-viewer.js",
  logLevel: "warning",
});
const versions = {};
for (const pkg of ["@sparkjsdev/spark", "three"]) {
  const dir = `node_modules/${pkg}`;
  versions[pkg] = JSON.parse(readFileSync(`${dir}/package.json`, "utf8")).version;
  copyFileSync(`${dir}/LICENSE`, `dist/licenses/${pkg.replace("/", "_")}-LICENSE.txt`);
}
writeFileSync("dist/versions.json", JSON.stringify(versions, null, 2) + "\n");
console.log(`built dist/splatbench-viewer.js with ${JSON.stringify(versions)}`);
