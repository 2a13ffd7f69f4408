// Entry of the wasm module: every kernel the `wasm` backend drives (src/backend/wasm/). Memory above
// heapBase() is managed by the host's allocator; kernels never allocate.
export { gemm, packB } from "./gemm";
export { winogradWeights, directWeights, expandWinograd, expandDirect, winogradGemmCompact, directConvCompact, expandPanels, winogradInput, winogradGemm, winogradOutput, winogradPlaneBytes, directConv, im2col } from "./conv3x3";
export { channelTotalsUnits, groupMeans, groupInvStd, layerStats, preApply, padCopy } from "./norm";
export { nchwToNhwc, nhwcToNchw, pixelShuffle, pixelUnshuffle, concat, gateAdd, add, silu } from "./layout";
export { gelu } from "./gelu";

/** First byte the host may allocate. */
export function heapBase(): usize {
  return __heap_base;
}
export { siluSimd } from "./exp";
export { softmaxRows } from "./attention";
export { upsampleNearest } from "./upsample";
export { task, chunkCount, chunksDone, scratchBytes, setScratch } from "./parallel";
