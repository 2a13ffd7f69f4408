// Classifier-free guidance by batch doubling (Ho & Salimans 2022): eps = eps_u + s (eps_c - eps_u).
// Mirrors the official DiC forward_with_cfg (dic_models.py), whose quirk guides 3 channels only.

import { type HostTensor, hostTensor, numel, shapeStr } from "../tensor.ts";

/** Valid guidance modes: `reference` (official: first 3 output channels guided) and `standard` (all eps channels). */
export const CFG_MODES = ["reference", "standard"] as const;

/** A guidance mode, see {@link CFG_MODES}. */
export type CfgMode = (typeof CFG_MODES)[number];

/** Checks a guidance mode name, with an error listing the valid ones. */
export function checkCfgMode(mode: string): CfgMode {
  if ((CFG_MODES as readonly string[]).includes(mode)) return mode as CfgMode;
  throw new Error(`unknown cfgMode "${mode}"; valid modes: ${CFG_MODES.join(", ")}`);
}

/**
 * The doubled model input: x [N, C, H, W] -> cat([x, x]) and labels -> cat([y, null x N]), where
 * `nullLabel` is num_classes (the extra row of the label embedding table).
 */
export function doubleBatch(x: HostTensor, labels: number[], nullLabel: number): { x: HostTensor; y: number[] } {
  const data = new Float32Array(2 * x.data.length);
  data.set(x.data, 0);
  data.set(x.data, x.data.length);
  const shape = [2 * x.shape[0], ...x.shape.slice(1)];
  return { x: hostTensor(shape, data, "cfg input"), y: [...labels, ...labels.map(() => nullLabel)] };
}

/**
 * Combines the doubled model output [2N, outC, H, W] (conditional rows first) into the guided
 * output for the N conditional samples [N, outC, H, W]. Guided channels: [0, min(3, outC)) in
 * `reference` mode, [0, C) (all eps channels) in `standard` mode; every other channel (eps
 * channels left unguided, variance channels) is taken from the conditional half.
 */
export function combineGuided(out: HostTensor, channels: number, scale: number, mode: CfgMode): HostTensor {
  const [twoN, outC, H, W] = out.shape;
  if (out.shape.length !== 4 || twoN % 2 !== 0) {
    throw new Error(`combineGuided: model output must be [2N, outC, H, W], got ${shapeStr(out.shape)}`);
  }
  const N = twoN / 2;
  const HW = H * W;
  const guided = mode === "reference" ? Math.min(3, outC) : Math.min(channels, outC);
  const rowLen = outC * HW;
  const res = new Float32Array(numel([N, outC, H, W]));
  res.set(out.data.subarray(0, N * rowLen)); // the conditional half
  for (let n = 0; n < N; n++) {
    const cond = n * rowLen;
    const uncond = (N + n) * rowLen;
    for (let k = 0; k < guided * HW; k++) {
      const u = out.data[uncond + k];
      // NOTE: rounded like torch's float32 ops: u + s * (c - u)
      res[cond + k] = u + Math.fround(scale * Math.fround(out.data[cond + k] - u));
    }
  }
  return hostTensor([N, outC, H, W], res, "guided output");
}
