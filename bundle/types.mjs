// After tsc: declaration files name their imports as the sources do ("./model.ts"), which TypeScript maps
// to model.d.ts but Deno does not. Rewrites them to ".js" (what the built modules are called, resolved
// to .d.ts by every TypeScript) and marks each built module with `@ts-self-types`, so that Deno
// importing dist/ by path or URL gets the types too.
import { existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { basename, join } from "node:path";

const root = new URL("../", import.meta.url).pathname;
let files = 0;
for (const dir of ["dist/sdk", "dist/src"]) {
  for (const name of readdirSync(join(root, dir), { recursive: true })) {
    if (!name.endsWith(".d.ts")) continue;
    const path = join(root, dir, name);
    const text = readFileSync(path, "utf8");
    const fixed = text.replace(/((?:from |import\()\s*["'])(\.\.?\/[^"']*?)\.ts(["'])/g, "$1$2.js$3");
    if (fixed !== text) {
      writeFileSync(path, fixed);
      files++;
    }
  }
}
// Deno reads the types of a .js module from its own @ts-self-types directive, also when a .d.ts imports it.
let marked = 0;
for (const dir of ["dist/sdk", "dist/src"]) {
  for (const name of readdirSync(join(root, dir), { recursive: true })) {
    if (!name.endsWith(".js") || !existsSync(join(root, dir, name.replace(/\.js$/, ".d.ts")))) continue;
    const path = join(root, dir, name);
    const text = readFileSync(path, "utf8");
    const directive = `// @ts-self-types="./${basename(name, ".js")}.d.ts"\n`;
    if (text.startsWith(directive)) continue;
    const shebang = text.startsWith("#!") ? text.slice(0, text.indexOf("\n") + 1) : "";
    writeFileSync(path, shebang + directive + text.slice(shebang.length));
    marked++;
  }
}
console.log(`bundle/types.mjs: ${files} declaration files name .js imports; ${marked} modules carry @ts-self-types`);
