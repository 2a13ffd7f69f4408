// One test suite for Node (vitest), Deno (`deno test`) and Bun (`bun test`): test files import
// `test` from here and assert with `node:assert`, so the same file runs unmodified in all three.
type TestFn = () => void | Promise<void>;
type Register = (name: string, fn: TestFn) => void;

declare const Deno: { test(def: { name: string; fn: TestFn; sanitizeOps: boolean; sanitizeResources: boolean }): void } | undefined;

async function pickRunner(): Promise<Register> {
  if (typeof Deno !== "undefined") {
    return (name, fn) => Deno!.test({ name, fn, sanitizeOps: false, sanitizeResources: false });
  }
  if ("Bun" in globalThis) {
    const bunTest = "bun:test";
    const mod = await import(bunTest);
    return (name, fn) => mod.test(name, fn, 600_000);
  }
  const vitest = "vitest";
  const mod = await import(vitest);
  return (name, fn) => mod.test(name, fn, 600_000);
}

/** Registers a test with whichever runner is executing this file. */
export const test: Register = await pickRunner();

/** Name of the runtime executing the tests ("node", "deno" or "bun"). */
export const runtimeName: string =
  typeof Deno !== "undefined" ? "deno" : "Bun" in globalThis ? "bun" : "node";

/** Relative L2 error (the product's own, src/tensor.ts). */
export { relL2 } from "../src/tensor.ts";

/** Folder of the fixtures written by `reference/make_fixtures.py` (npm run fixtures). */
export const fixturesDir: string = new URL("./fixtures/gen/", import.meta.url).pathname;

/**
 * Command that runs a product script in the current runtime: node runs the built `dist/` copy
 * (Node 20 cannot run TypeScript), Deno and Bun run the source.
 */
export function runtimeCommand(sourcePath: string): { exe: string; args: string[] } {
  const root = new URL("../", import.meta.url).pathname;
  const d = (globalThis as { Deno?: { execPath(): string } }).Deno;
  if (d) return { exe: d.execPath(), args: ["run", "-A", root + sourcePath] };
  const proc = (globalThis as unknown as { process: { execPath: string } }).process;
  if (runtimeName === "bun") return { exe: proc.execPath, args: [root + sourcePath] };
  return { exe: proc.execPath, args: [root + "dist/" + sourcePath.replace(/\.ts$/, ".js")] };
}
