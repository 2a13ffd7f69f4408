// Timestep respacing and schedule coefficients vs outputs of the official diffusion/respace.py
// and gaussian_diffusion.py (values recorded from the official code, float64 reprs).
import assert from "node:assert/strict";
import { test } from "./harness.ts";
import { createDiffusion, type Diffusion, linearBetas, linspace, spaceTimesteps } from "../src/samplers/index.ts";

// Full lists as the official space_timesteps returns them (sorted).
const OFFICIAL_LISTS: Array<[number, string | number[], number[]]> = [
  [1000, "50", [0, 20, 41, 61, 82, 102, 122, 143, 163, 183, 204, 224, 245, 265, 285, 306, 326, 347, 367, 387, 408, 428, 449, 469, 489, 510, 530, 550, 571, 591, 612, 632, 652, 673, 693, 714, 734, 754, 775, 795, 816, 836, 856, 877, 897, 917, 938, 958, 979, 999]],
  [1000, "25", [0, 42, 83, 125, 166, 208, 250, 291, 333, 375, 416, 458, 500, 541, 583, 624, 666, 708, 749, 791, 832, 874, 916, 957, 999]],
  [1000, "ddim25", [0, 40, 80, 120, 160, 200, 240, 280, 320, 360, 400, 440, 480, 520, 560, 600, 640, 680, 720, 760, 800, 840, 880, 920, 960]],
  [1000, "ddim50", [0, 20, 40, 60, 80, 100, 120, 140, 160, 180, 200, 220, 240, 260, 280, 300, 320, 340, 360, 380, 400, 420, 440, 460, 480, 500, 520, 540, 560, 580, 600, 620, 640, 660, 680, 700, 720, 740, 760, 780, 800, 820, 840, 860, 880, 900, 920, 940, 960, 980]],
  [300, [10, 15, 20], [0, 11, 22, 33, 44, 55, 66, 77, 88, 99, 100, 107, 114, 121, 128, 135, 142, 149, 157, 164, 171, 178, 185, 192, 199, 200, 205, 210, 216, 221, 226, 231, 236, 242, 247, 252, 257, 263, 268, 273, 278, 283, 289, 294, 299]],
  [1000, "10,15,20", [0, 37, 74, 111, 148, 185, 222, 259, 296, 333, 334, 358, 381, 405, 429, 453, 476, 500, 524, 547, 571, 595, 619, 642, 666, 667, 684, 702, 719, 737, 754, 772, 789, 807, 824, 842, 859, 877, 894, 912, 929, 947, 964, 982, 999]],
  [1000, "7", [0, 166, 333, 500, 666, 832, 999]],
];

// Summaries of longer lists: [numTimesteps, spec, length, sum, first 5, last 5].
const OFFICIAL_SUMMARIES: Array<[number, string, number, number, number[], number[]]> = [
  [1000, "250", 250, 124875, [0, 4, 8, 12, 16], [983, 987, 991, 995, 999]],
  [1000, "100", 100, 49950, [0, 10, 20, 30, 40], [959, 969, 979, 989, 999]],
  [1000, "1000", 1000, 499500, [0, 1, 2, 3, 4], [995, 996, 997, 998, 999]],
  [1000, "ddim100", 100, 49500, [0, 10, 20, 30, 40], [950, 960, 970, 980, 990]],
];

const BETAS_1000: Record<number, number> = {0: 0.0001, 1: 0.00011991991991991993, 2: 0.00013983983983983984, 333: 0.006733333333333333, 500: 0.010059959959959959, 998: 0.01998008008008008, 999: 0.02};
const BETAS_100: Record<number, number> = {0: 0.001, 1: 0.00301010101010101, 50: 0.1015050505050505, 99: 0.2};

// create_diffusion("50") coefficients at steps 0, 1, 17, 48, 49.
const D50: Record<string, Record<number, number>> = {
  betas: {0: 9.999999999998899e-05, 1: 0.006165187946595374, 17: 0.1337338050984025, 48: 0.3373148262005994, 49: 0.32980906609465954},
  alphasCumprod: {0: 0.9999, 1: 0.9937354285721993, 17: 0.2892591415684266, 48: 6.021910415675221e-05, 49: 4.0358297653756733e-05},
  alphasCumprodPrev: {0: 1.0, 1: 0.9999, 17: 0.33391484427172485, 48: 9.08713617531165e-05, 49: 6.021910415675221e-05},
  sqrtRecipAlphasCumprod: {0: 1.0000500037503124, 1: 1.003147079786928, 17: 1.8593299009589725, 48: 128.8643699599304, 49: 157.41045725150067},
  sqrtRecipm1AlphasCumprod: {0: 0.01000050003749898, 1: 0.07939813401485646, 17: 1.5675164052092414, 48: 128.86048985305703, 49: 157.40728081040763},
  posteriorVariance: {0: 0.0, 1: 9.841356296513845e-05, 17: 0.12533133748871175, 48: 0.33730448611698505, 49: 0.32980251555624635},
  posteriorLogVarianceClipped: {0: -9.226331928392868, 1: -9.226331928392868, 17: -2.0767943486793388, 48: -1.0867692369229747, 49: -1.109261241365272},
  posteriorMeanCoef1: {0: 1.0, 1: 0.9840864216397792, 17: 0.10872959797843722, 48: 0.003215696864198624, 49: 0.0025594536120953086},
  posteriorMeanCoef2: {0: 0.0, 1: 0.01591350105303375, 17: 0.8722563827386417, 48: 0.8140298190989194, 49: 0.8186356405815586},
};

test("spaceTimesteps matches the official lists (uniform, ddimN, sections)", () => {
  for (const [n, spec, want] of OFFICIAL_LISTS) {
    assert.deepEqual(spaceTimesteps(n, spec), want, `spaceTimesteps(${n}, ${JSON.stringify(spec)})`);
  }
  for (const [n, spec, len, sum, head, tail] of OFFICIAL_SUMMARIES) {
    const got = spaceTimesteps(n, spec);
    assert.equal(got.length, len, spec);
    assert.equal(got.reduce((a, b) => a + b, 0), sum, spec);
    assert.deepEqual(got.slice(0, 5), head, spec);
    assert.deepEqual(got.slice(-5), tail, spec);
  }
});

test("spaceTimesteps rejects impossible respacings with a clear error", () => {
  assert.throws(() => spaceTimesteps(1000, "ddim3000"), /cannot create exactly 3000 steps/);
  assert.throws(() => spaceTimesteps(300, [10, 200, 20]), /cannot divide section of 100 steps into 200/);
  assert.throws(() => spaceTimesteps(1000, "fifty"), /cannot parse "fifty"/);
});

test("linear betas are bit-identical to numpy (1000 and 100 steps, scale rule)", () => {
  const b = linearBetas(1000);
  assert.equal(b.length, 1000);
  for (const [i, v] of Object.entries(BETAS_1000)) assert.equal(b[Number(i)], v, `betas[${i}]`);
  const b100 = linearBetas(100);
  for (const [i, v] of Object.entries(BETAS_100)) assert.equal(b100[Number(i)], v, `betas100[${i}]`);
  assert.deepEqual([...linspace(0, 1, 5)], [0, 0.25, 0.5, 0.75, 1]);
});

test("respaced diffusion coefficients match the official SpacedDiffusion", () => {
  const d: Diffusion = createDiffusion("50");
  assert.equal(d.numTimesteps, 50);
  assert.deepEqual(d.timestepMap, OFFICIAL_LISTS[0][2]);
  for (const [name, vals] of Object.entries(D50)) {
    const arr = d[name as keyof Diffusion] as Float64Array;
    for (const [i, want] of Object.entries(vals)) {
      const got = arr[Number(i)];
      if (name === "posteriorLogVarianceClipped") {
        // Math.log vs numpy's log may differ in the last ulp.
        assert.ok(Math.abs(got - want) <= 4e-16 * Math.abs(want), `${name}[${i}]: ${got} vs ${want}`);
      } else {
        assert.equal(got, want, `${name}[${i}]`);
      }
    }
  }
});

test("a single-step diffusion and the unspaced 1000-step one build without NaN where read", () => {
  const one = createDiffusion("1");
  assert.deepEqual(one.timestepMap, [0]);
  assert.equal(one.alphasCumprodPrev[0], 1);
  const full = createDiffusion("1000");
  assert.equal(full.numTimesteps, 1000);
  for (let i = 0; i < 1000; i++) assert.ok(Number.isFinite(full.posteriorLogVarianceClipped[i]) && Number.isFinite(full.posteriorMeanCoef2[i]));
});
