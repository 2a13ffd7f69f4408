// Packs the package once (`npm pack`, needs `npm run build` first) and installs the tarball into fresh
// empty projects, offline, as a user would. Used by tests/package.test.ts.
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** The repository root (where package.json lives). */
export const repoRoot: string = new URL("../", import.meta.url).pathname;

/** Runs a command; returns its stdout (and stderr after it with `withStderr`); throws with its output when it fails. */
export function sh(cmd: string, args: string[], cwd: string, env: Record<string, string> = {}, withStderr = false): string {
  const r = spawnSync(cmd, args, { cwd, encoding: "utf8", env: { ...envVars(), ...env }, timeout: 300_000 });
  if (r.status !== 0) {
    throw new Error(`${cmd} ${args.join(" ")} (in ${cwd}) exited ${r.status ?? r.signal}: ${r.error?.message ?? ""}\n${r.stdout}\n${r.stderr}`);
  }
  return withStderr ? r.stdout + r.stderr : r.stdout;
}

function envVars(): Record<string, string> {
  const p = (globalThis as { process?: { env: Record<string, string> } }).process;
  return { ...(p?.env ?? {}) };
}

/** Result of packing: the tarball and npm's own account of it. */
export interface Packed {
  tarball: string;
  size: number;
  unpackedSize: number;
  files: string[];
}

/** Packs the repository into a temporary folder. */
export function pack(): Packed {
  for (const f of ["dist/sdk/index.js", "dist/sdk/index.d.ts", "bundles/dic-sdk.browser.js"]) {
    if (!existsSync(repoRoot + f)) throw new Error(`${f} missing: run \`npm run build\` before this test`);
  }
  const dest = mkdtempSync(join(tmpdir(), "dic-pack-"));
  const out = sh("npm", ["pack", "--json", "--pack-destination", dest], repoRoot);
  const info = JSON.parse(out.slice(out.indexOf("[")))[0];
  return {
    tarball: join(dest, info.filename),
    size: info.size,
    unpackedSize: info.unpackedSize,
    files: info.files.map((f: { path: string }) => f.path),
  };
}

/**
 * A new empty ESM project with the tarball installed. `--prefer-offline`: the tarball's one dependency
 * (msgpackr) comes from npm's cache when it is there; `npm ci` caches the tarball but not the registry
 * metadata an install of a range needs, so a strictly offline install fails on a fresh machine.
 */
export function installInto(tarball: string, extra: Record<string, string> = {}): string {
  const dir = mkdtempSync(join(tmpdir(), "dic-user-"));
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, "package.json"), JSON.stringify({ name: "user-project", private: true, type: "module" }));
  for (const [name, text] of Object.entries(extra)) writeFileSync(join(dir, name), text);
  sh("npm", ["install", tarball, "--no-audit", "--no-fund", "--prefer-offline", "--no-package-lock"], dir);
  return dir;
}

/** Checks PNG bytes: signature, IHDR first, the expected size, IEND last. Returns [width, height]. */
export function pngSize(bytes: Uint8Array): [number, number] {
  const sig = [137, 80, 78, 71, 13, 10, 26, 10];
  if (bytes.length < 33 || !sig.every((b, i) => bytes[i] === b)) throw new Error("not a PNG (bad signature)");
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (new TextDecoder().decode(bytes.subarray(12, 16)) !== "IHDR") throw new Error("PNG: first chunk is not IHDR");
  if (new TextDecoder().decode(bytes.subarray(bytes.length - 8, bytes.length - 4)) !== "IEND") throw new Error("PNG: does not end with IEND");
  return [dv.getUint32(16), dv.getUint32(20)];
}
