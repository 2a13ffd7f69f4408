// int8 weights with one f32 scale per output channel (row): w[o, ...] = q[o, ...] * scale[o], q in [-127, 127],
// scale[o] = max |w[o, ...]| / 127 (0 for an all-zero row). The layout of an int8 safetensors file (written by
// `reference/convert_checkpoint.py --dtype int8`, read by parseSafetensorsHeader; README "int8 weights"):
//   "<name>"        dtype I8,  the weight's own shape [Co, ...]
//   "<name>_scale"  dtype F32, shape [Co]
// and `__metadata__.quantization = "int8-per-channel"`. Only rank-4 (convolution) weights are quantized;
// everything else stays as it was. Readers present "<name>" with its dequantized values (getF32) and hide
// "<name>_scale"; backends that keep int8 (wasm) take the pair as is (getInt8). Bottom layer: imports nothing.

/** Suffix of the scale tensor that goes with an int8 tensor. */
export const INT8_SCALE_SUFFIX = "_scale";
/** `__metadata__.quantization` of an int8 file. */
export const INT8_METADATA = "int8-per-channel";

/** Quantizes `data` ([rows, ...] row-major) to int8 with one scale per row (to nearest). */
export function quantizeInt8(data: Float32Array, rows: number): { q: Int8Array; scale: Float32Array } {
  const per = data.length / rows;
  const q = new Int8Array(data.length), scale = new Float32Array(rows);
  for (let o = 0; o < rows; o++) {
    let m = 0;
    for (let i = o * per; i < (o + 1) * per; i++) m = Math.max(m, Math.abs(data[i]));
    const s = Math.fround(m / 127);
    scale[o] = s;
    if (s === 0) continue;
    for (let i = o * per; i < (o + 1) * per; i++) q[i] = Math.max(-127, Math.min(127, Math.round(data[i] / s)));
  }
  return { q, scale };
}

/** The f32 values of int8 `q` ([rows, ...]) times its per-row `scale`. */
export function dequantize(q: Int8Array, scale: Float32Array, rows: number): Float32Array {
  const per = q.length / rows;
  const out = new Float32Array(q.length);
  for (let o = 0; o < rows; o++) {
    const s = scale[o];
    for (let i = o * per; i < (o + 1) * per; i++) out[i] = q[i] * s;
  }
  return out;
}
