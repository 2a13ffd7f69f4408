// Browser and edge-worker stand-in for npm-gpu.ts (swapped in by the package.json "browser" field):
// there WebGPU is navigator.gpu or nothing.

/** Always null: bundles for browsers and edge workers do not load npm packages at run time. */
export function loadNpmGpu(): Promise<{ gpu: GPU | null; why: string }> {
  return Promise.resolve({ gpu: null, why: "the webgpu npm package is not loaded in browser or edge bundles" });
}
