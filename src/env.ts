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
