// Servers as real processes for tests: start one in its own process group, wait until it answers, stop
// the whole group (wrappers such as node_modules/.bin/deno leave nothing behind). Node-only helpers (the
// tests that use them run under vitest).
import { type ChildProcess, spawn } from "node:child_process";
import { createServer } from "node:net";
import { repoRoot } from "./package-install.ts";

/** A started server process. */
export interface ServerProcess {
  /** http://127.0.0.1:PORT */
  url: string;
  proc: ChildProcess;
  /** Its stdout and stderr lines so far. */
  log: string[];
  stop(): void;
}

/** A TCP port that was free a moment ago on 127.0.0.1. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

/**
 * Starts `exe args` (cwd, extra env) and resolves once `http://127.0.0.1:port/` answers any HTTP status;
 * rejects with the process's output when it exits first or after `timeoutMs`.
 */
export function startServer(exe: string, args: string[], port: number, opts: { cwd?: string; env?: Record<string, string>; timeoutMs?: number } = {}): Promise<ServerProcess> {
  const proc = spawn(exe, args, { cwd: opts.cwd ?? repoRoot, env: { ...process.env, ...opts.env }, stdio: ["ignore", "pipe", "pipe"], detached: true });
  const log: string[] = [];
  for (const s of [proc.stdout!, proc.stderr!]) s.on("data", (d) => log.push(...String(d).split("\n").filter(Boolean)));
  const stop = () => {
    try {
      process.kill(-proc.pid!, "SIGKILL");
    } catch { /* already gone */ }
  };
  const url = `http://127.0.0.1:${port}`;
  return new Promise((resolve, reject) => {
    let exited = false;
    proc.on("exit", (c, sig) => {
      exited = true;
      reject(new Error(`${exe} ${args.join(" ")} exited (${c ?? sig}) before answering:\n${log.join("\n")}`));
    });
    const deadline = Date.now() + (opts.timeoutMs ?? 60_000);
    const poll = async () => {
      if (exited) return;
      try {
        await (await fetch(url + "/", { signal: AbortSignal.timeout(2000) })).arrayBuffer();
        return resolve({ url, proc, log, stop });
      } catch { /* not up yet */ }
      if (Date.now() > deadline) {
        stop();
        return reject(new Error(`${exe} ${args.join(" ")}: no answer on ${url} in time:\n${log.join("\n")}`));
      }
      setTimeout(poll, 150);
    };
    void poll();
  });
}
