// Loads the `webgpu` npm package (Dawn) for Node and Bun. Its own module so that the package.json
// "browser" field can replace it with npm-gpu-none.ts: browser and edge-worker bundles never contain
// this dynamic import.
//
// Dawn writes warnings about the Vulkan devices it rejects (e.g. Mesa's lavapipe: "Vulkan
// shaderUniform*ArrayDynamicIndexing required") straight to the process's stderr, where JavaScript cannot
// catch them. So, unless verbose output is asked for (--verbose, DIC_DEBUG), the adapter is first looked
// for in a child process whose stderr is kept (doctor reports it); Dawn loads here only when it finds one.
import { noteSuppressed, verboseOutput } from "../../env.ts";

/** Where the `webgpu` package's entry is, or why it cannot be found. */
function resolveWebGpu(): { url: string | null; why: string } {
  try {
    if (typeof import.meta.resolve === "function") return { url: import.meta.resolve("webgpu"), why: "" };
  } catch (e) {
    return { url: null, why: (e as Error).message.split("\n")[0] };
  }
  return { url: null, why: "" }; // no import.meta.resolve here: load in-process
}

/**
 * Asks for an adapter in a child process (same runtime, same environment); its stderr comes back as text.
 * The child imports "webgpu" from the folder whose node_modules holds the package `url` points into.
 */
async function probeInChild(url: string): Promise<{ adapter: boolean; stderr: string; error: string }> {
  const { spawn } = await import("node:child_process");
  const proc = (globalThis as unknown as { process: { execPath: string; env: Record<string, string | undefined>; versions: { bun?: string } } }).process;
  const path = decodeURIComponent(new URL(url).pathname);
  const at = path.lastIndexOf("/node_modules/webgpu/");
  if (at < 0) return { adapter: false, stderr: "", error: `the webgpu package is not under a node_modules folder (${path})` };
  const code = `const m = await import("webgpu"); const g = m.create([]);` +
    `const a = await g.requestAdapter({ powerPreference: "high-performance" });` +
    `process.stdout.write(JSON.stringify({ adapter: a !== null })); process.exit(0);`;
  const args = proc.versions.bun ? ["-e", code] : ["--input-type=module", "-e", code];
  const env = { ...proc.env };
  if (!env.XDG_RUNTIME_DIR) env.XDG_RUNTIME_DIR = "/tmp";
  return new Promise((resolve) => {
    const child = spawn(proc.execPath, args, { cwd: path.slice(0, at) || "/", env, stdio: ["ignore", "pipe", "pipe"] });
    let out = "", err = "";
    child.stdout!.on("data", (b: Uint8Array) => (out += new TextDecoder().decode(b)));
    child.stderr!.on("data", (b: Uint8Array) => (err += new TextDecoder().decode(b)));
    const timer = setTimeout(() => child.kill(), 30_000);
    (timer as { unref?: () => void }).unref?.();
    child.on("error", (e: Error) => resolve({ adapter: false, stderr: err, error: e.message }));
    child.on("close", () => {
      clearTimeout(timer);
      try {
        resolve({ adapter: Boolean(JSON.parse(out).adapter), stderr: err, error: "" });
      } catch {
        resolve({ adapter: false, stderr: err, error: err.trim().split("\n").pop() ?? "the probe printed nothing" });
      }
    });
  });
}

/** The `webgpu` package's GPU object, or null and why it cannot load. */
export async function loadNpmGpu(): Promise<{ gpu: GPU | null; why: string }> {
  if (!verboseOutput()) {
    const { url, why } = resolveWebGpu();
    if (why) return { gpu: null, why: `the webgpu npm package cannot load (${why})` };
    if (url) {
      const probe = await probeInChild(url);
      const text = probe.stderr.trim();
      if (text) noteSuppressed(`the webgpu npm package (Dawn), probed in a child process, printed: ${text.replace(/\s*\n\s*/g, " | ")}`);
      if (!probe.adapter) {
        return { gpu: null, why: `the webgpu npm package finds no adapter${probe.error ? ` (${probe.error})` : ""}` };
      }
    }
  }
  try {
    // A literal specifier (no computed import() anywhere); inside try, so bundlers for servers that do not
    // find the optional package leave it to run time.
    const mod = await import("webgpu") as unknown as { create(flags: string[]): GPU; globals?: Record<string, unknown> };
    if (mod.globals) Object.assign(globalThis, mod.globals);
    return { gpu: mod.create([]), why: "" };
  } catch (e) {
    return { gpu: null, why: `the webgpu npm package cannot load (${(e as Error).message.split("\n")[0]})` };
  }
}
