// workerd for tests: a capnp config serving one worker (modules by file extension, text bindings,
// optional network access) and workerd started on it with its `http` socket on a free loopback port.
// Shared by tests/workerd.test.ts and tests/workerd-ranges.test.ts (Node-only: they run under vitest).
import { existsSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { repoRoot as root } from "./package-install.ts";
import { freePort, type ServerProcess, startServer } from "./processes.ts";

const WORKERD_BIN = `${root}node_modules/@cloudflare/workerd-linux-64/bin/workerd`;
/** The workerd binary (the platform package's, else the npm wrapper). */
export const WORKERD = existsSync(WORKERD_BIN) ? WORKERD_BIN : `${root}node_modules/.bin/workerd`;

/** Starts workerd on `config` with its `http` socket moved to a free loopback port. */
export async function workerd(config: string): Promise<ServerProcess> {
  const port = await freePort();
  return startServer(WORKERD, ["serve", config, "--socket-addr", `http=127.0.0.1:${port}`], port);
}

export interface CapnpModule { name: string; file: string }

/** A workerd config serving one worker: modules by file extension, text bindings, optional network access. */
export function capnpConfig(modules: CapnpModule[], bindings: Record<string, string> = {}, network = false): string {
  const kind = (f: string) => (f.endsWith(".wasm") ? "wasm" : /\.m?js$/.test(f) ? "esModule" : "data");
  const mods = modules.map((m) => `(name = ${JSON.stringify(m.name)}, ${kind(m.file)} = embed ${JSON.stringify(m.file)})`).join(",\n    ");
  const binds = Object.entries(bindings).map(([k, v]) => `(name = ${JSON.stringify(k)}, text = ${JSON.stringify(v)})`).join(", ");
  return `using Workerd = import "/workerd/workerd.capnp";
const config :Workerd.Config = (
  services = [(name = "main", worker = .w)${network ? `, (name = "internet", network = (allow = ["public", "private", "local"]))` : ""}],
  sockets = [(name = "http", address = "127.0.0.1:8787", http = (), service = "main")],
);
const w :Workerd.Worker = (
  modules = [
    ${mods}
  ],
  bindings = [${binds}],
  ${network ? `globalOutbound = "internet",` : ""}
  compatibilityDate = "2026-11-01",
);
`;
}

/** Writes a config serving the files of `dir` (the main module first) and starts workerd on it. */
export function serveFolder(dir: string, main: string, bindings: Record<string, string> = {}, network = false): Promise<ServerProcess> {
  const files = [main, ...readdirSync(dir).filter((f) => f !== main && /\.(wasm|safetensors)$/.test(f))];
  const config = join(dir, "config.capnp");
  writeFileSync(config, capnpConfig(files.map((f) => ({ name: f, file: f })), bindings, network));
  return workerd(config);
}
