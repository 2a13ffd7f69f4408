// IEEE half-precision conversion for the f16 storage of the WebGPU backend (round to nearest even).

import { f16BitsToF32 as fromHalf, f32ToF16Bits as toHalf } from "../../f16.ts";

/** Float32Array -> Uint16Array of halves. */
export function encodeHalf(src: Float32Array): Uint16Array {
  const out = new Uint16Array(src.length);
  for (let i = 0; i < src.length; i++) out[i] = toHalf(src[i]);
  return out;
}

/** Uint16Array of halves -> Float32Array. */
export function decodeHalf(src: Uint16Array): Float32Array {
  const out = new Float32Array(src.length);
  for (let i = 0; i < src.length; i++) out[i] = fromHalf(src[i]);
  return out;
}
