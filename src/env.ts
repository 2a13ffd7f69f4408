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
