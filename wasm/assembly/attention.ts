// The softmax of single-head attention (the VAE mid block): each row of a block of scores S = Q K^T
// becomes softmax(scale * row), in place. The two GEMMs around it run on gemm.ts (driver:
// src/backend/wasm/attention.ts).
import { exp4 } from "./exp";

/** s[rows][cols] (row stride cols floats) -> softmax(scale * s) per row; scale > 0. */
export function softmaxRows(s: usize, rows: i32, cols: i32, scale: f32): void {
  const full = cols & ~3;
  for (let r = 0; r < rows; r++) {
    const row = s + ((<usize>r * <usize>cols) << 2);
    let mv = f32x4.splat(-Infinity);
    let j = 0;
    for (; j < full; j += 4) mv = f32x4.pmax(mv, v128.load(row + (<usize>j << 2))); // pmax: one instruction (max: several in V8)
    let top: f32 = max(max(f32x4.extract_lane(mv, 0), f32x4.extract_lane(mv, 1)), max(f32x4.extract_lane(mv, 2), f32x4.extract_lane(mv, 3)));
    for (; j < cols; j++) top = max(top, load<f32>(row + (<usize>j << 2)));
    const m = f32x4.splat(top), sc = f32x4.splat(scale);
    let sum: f64 = 0;
    let acc = f32x4.splat(0);
    for (j = 0; j < full; j += 4) {
      const o = row + (<usize>j << 2);
      const e = exp4(f32x4.mul(f32x4.sub(v128.load(o), m), sc));
      v128.store(o, e);
      acc = f32x4.add(acc, e);
      if ((j & 255) == 252) {
        sum += <f64>f32x4.extract_lane(acc, 0) + <f64>f32x4.extract_lane(acc, 1) + <f64>f32x4.extract_lane(acc, 2) + <f64>f32x4.extract_lane(acc, 3);
        acc = f32x4.splat(0);
      }
    }
    sum += <f64>f32x4.extract_lane(acc, 0) + <f64>f32x4.extract_lane(acc, 1) + <f64>f32x4.extract_lane(acc, 2) + <f64>f32x4.extract_lane(acc, 3);
    for (; j < cols; j++) {
      const o = row + (<usize>j << 2);
      const e = f32x4.extract_lane(exp4(f32x4.splat((load<f32>(o) - top) * scale)), 0);
      store<f32>(o, e);
      sum += <f64>e;
    }
    const inv = f32x4.splat(<f32>(1.0 / sum));
    for (j = 0; j < full; j += 4) {
      const o = row + (<usize>j << 2);
      v128.store(o, f32x4.mul(v128.load(o), inv));
    }
    for (; j < cols; j++) {
      const o = row + (<usize>j << 2);
      store<f32>(o, load<f32>(o) * f32x4.extract_lane(inv, 0));
    }
  }
}
