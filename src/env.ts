// The one place that sniffs the runtime (Node, Deno, Bun, browser/worker). Everything else asks here.

declare const Deno: { env: { get(k: string): string | undefined }; version: { deno: string } } | undefined;
declare const Bun: { version: string } | undefined;

/** Which JavaScript runtime is executing. */
export type RuntimeName = "node" | "deno" | "bun" | "browser";

function detect(): { runtime: RuntimeName; version: string } {
  if (typeof Deno !== "undefined") return { runtime: "deno", version: Deno.version.deno };
  if (typeof Bun !== "undefined") return { runtime: "bun", version: Bun.version };
  const proc = (globalThis as { process?: { versions?: { node?: string } } }).process;
  if (proc?.versions?.node) return { runtime: "node", version: proc.versions.node };
  return { runtime: "browser", version: typeof navigator !== "undefined" ? navigator.userAgent : "unknown" };
}

/** Frozen facts about the runtime. */
export const env: Readonly<{ runtime: RuntimeName; version: string }> = Object.freeze(detect());

/** Reads an environment variable where the runtime has them (undefined in browsers, or without permission). */
export function readEnv(name: string): string | undefined {
  try {
    if (typeof Deno !== "undefined") return Deno.env.get(name);
    const proc = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process;
    return proc?.env?.[name];
  } catch {
    return undefined;
  }
}

/** Command-line arguments after the script name (Deno.args or process.argv.slice(2)). */
export function processArgs(): string[] {
  if (typeof Deno !== "undefined") return [...(Deno as unknown as { args: string[] }).args];
  const proc = (globalThis as { process?: { argv?: string[] } }).process;
  return proc?.argv ? proc.argv.slice(2) : [];
}

/** Ends the process with a status code once pending output is flushed (Node/Bun) or at once (Deno). */
export function exitWith(code: number): void {
  const proc = (globalThis as { process?: { exitCode?: number } }).process;
  if (typeof Deno !== "undefined") (Deno as unknown as { exit(c: number): never }).exit(code);
  else if (proc) proc.exitCode = code;
}

/** True when stderr is an interactive terminal (progress bars only then). */
export function stderrIsTTY(): boolean {
  if (typeof Deno !== "undefined") {
    return (Deno as unknown as { stderr: { isTerminal(): boolean } }).stderr.isTerminal();
  }
  const proc = (globalThis as { process?: { stderr?: { isTTY?: boolean } } }).process;
  return Boolean(proc?.stderr?.isTTY);
}

let verbose = false;

/** Lets native messages of the WebGPU probe through (the CLI's --verbose; env DIC_DEBUG does the same). */
export function setVerbose(on: boolean): void {
  verbose = on;
}

/** True when the user asked to see what the SDK otherwise keeps quiet (--verbose, or env DIC_DEBUG). */
export function verboseOutput(): boolean {
  const d = readEnv("DIC_DEBUG");
  return verbose || (d !== undefined && d !== "" && d !== "0");
}

const kept: string[] = [];

/** Notes output the SDK kept off stderr (doctor reports them); `noteSuppressed` adds one. */
export function suppressedOutput(): readonly string[] {
  return kept;
}

/** Records output (or a change made to keep output quiet) for `suppressedOutput`. */
export function noteSuppressed(note: string): void {
  if (!kept.includes(note)) kept.push(note);
}

let gpuEnvDone = false;

/**
 * Before the first WebGPU adapter request: Mesa's Vulkan drivers print "XDG_RUNTIME_DIR is invalid or not
 * set in the environment." on every probe when it is unset, so on Linux it is set (to /tmp) for this
 * process, unless the user asked for verbose output.
 */
export function quietGpuEnvironment(): void {
  if (gpuEnvDone) return;
  gpuEnvDone = true;
  if (verboseOutput() || readEnv("XDG_RUNTIME_DIR")) return;
  try {
    if (typeof Deno !== "undefined") {
      const d = Deno as unknown as { build: { os: string }; env: { set(k: string, v: string): void } };
      if (d.build.os !== "linux") return;
      d.env.set("XDG_RUNTIME_DIR", "/tmp");
    } else {
      const proc = (globalThis as { process?: { platform?: string; env?: Record<string, string | undefined> } }).process;
      if (proc?.platform !== "linux" || !proc.env) return;
      proc.env.XDG_RUNTIME_DIR = "/tmp";
    }
    noteSuppressed("XDG_RUNTIME_DIR was unset: set to /tmp for the WebGPU probe (Mesa's \"XDG_RUNTIME_DIR is invalid\" lines)");
  } catch {
    // No permission to set it: the lines may appear.
  }
}
