// Node: generate one image per class name given on the command line and write PNGs.
//   npm run build && node examples/node-generate.mjs sneaker bag     -> sneaker.png, bag.png
// (Inside this repository "dic-sdk" resolves to the package itself through its exports, i.e. dist/.)
import { writeFile } from "node:fs/promises";
import { generate } from "dic-sdk";

const labels = process.argv.slice(2);
if (labels.length === 0) labels.push("sneaker");
const outDir = process.env.OUT_DIR ?? ".";
const r = await generate({ labels, seed: 1, onProgress: ({ step, totalSteps }) => process.stderr.write(`\rstep ${step + 1}/${totalSteps}`) });
process.stderr.write("\n");
for (const img of r.images) {
  const path = `${outDir}/${img.labelName?.toLowerCase().replace(/[^a-z0-9]+/g, "-") ?? img.label}.png`;
  await writeFile(path, await img.toPNG());
  console.log(`${path}: ${img.width}x${img.height}, ${r.sampler} ${r.steps} steps on ${r.backend.split(":")[0]}`);
}
