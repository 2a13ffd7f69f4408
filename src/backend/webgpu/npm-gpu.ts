// Loads the `webgpu` npm package (Dawn) for Node and Bun. Its own module so that the package.json
// "browser" field can replace it with npm-gpu-none.ts: browser and edge-worker bundles never contain
// this dynamic import.

/** The `webgpu` package's GPU object, or null and why it cannot load. */
export async function loadNpmGpu(): Promise<{ gpu: GPU | null; why: string }> {
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
