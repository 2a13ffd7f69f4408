// src/image.ts: toRGBA rounding (goldens from torch float32 arithmetic, as save_image computes),
// PNG validity (an independent chunk parser, CRC, inflate via DecompressionStream, unfilter; and
// Python PIL as a second decoder) for both deflate paths, and grid layout/captions.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { runtimeName, test } from "./harness.ts";
import { encodePNG, makeGrid, toRGBA, type PngFilter, type RgbaImage } from "../src/image.ts";
import { adler32Plain, decodePNG } from "./png-reader.ts";


// ---------- test images ----------

function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) >>> 24);
}

type Kind = "rgba" | "rgb" | "gray" | "grayAlpha";
function testImage(kind: Kind, width: number, height: number, seed = 1): RgbaImage {
  const r = lcg(seed), data = new Uint8ClampedArray(width * height * 4);
  for (let p = 0; p < width * height; p++) {
    // smooth-ish content plus noise, so different filters win on different rows
    const base = ((p % width) * 7 + Math.floor(p / width) * 3) & 255, g = (base + (r() & 15)) & 255;
    const rgb = kind === "gray" || kind === "grayAlpha" ? [g, g, g] : [g, r(), (base * 2) & 255];
    data.set([...rgb, kind === "rgba" || kind === "grayAlpha" ? r() : 255], p * 4);
  }
  return { width, height, data };
}
const AUTO_TYPE: Record<Kind, number> = { rgba: 6, rgb: 2, gray: 0, grayAlpha: 4 };
const FILTER_TYPE: Record<Exclude<PngFilter, "adaptive">, number> = { none: 0, sub: 1, up: 2, average: 3, paeth: 4 };

// ---------- toRGBA ----------

test("toRGBA rounds like save_image in float32 (torch goldens)", () => {
  // [x, torch uint8]: ties where (x+1)/2*255+0.5 computed in f64 would give one less.
  const goldens: Array<[number, number]> = [
    [-0.9960784316062927, 1], [-0.2823529541492462, 92], [-0.062745101749897, 120], [-0.08627451956272125, 117],
    [0.14117646217346191, 146], [0.36078429222106934, 174], [0.5803921222686768, 202], [0.7999999523162842, 230],
    [-1, 0], [1, 255], [0, 128], [-0, 128], [-5, 0], [5, 255], [-Infinity, 0], [Infinity, 255], [0.5, 191], [-0.5, 64],
  ];
  const [img] = toRGBA({ shape: [1, 1, 1, goldens.length], data: Float32Array.from(goldens, (g) => g[0]) });
  assert.deepEqual(Array.from(goldens, (_, i) => img.data[i * 4]), goldens.map((g) => g[1]));
  const [u] = toRGBA({ shape: [1, 1, 1, 5], data: Float32Array.of(-0.1, 0, 0.5, 1, 1.1) }, [0, 1]);
  assert.deepEqual(Array.from({ length: 5 }, (_, i) => u.data[i * 4]), [0, 0, 128, 255, 255]);
});

test("toRGBA: NCHW planes to interleaved RGBA, gray replicated, opaque, one image per sample", () => {
  const data = Float32Array.from({ length: 2 * 3 * 2 * 3 }, (_, i) => (i % 5) / 2 - 1); // values -1..1
  const imgs = toRGBA({ shape: [2, 3, 2, 3], data });
  assert.equal(imgs.length, 2);
  for (let n = 0; n < 2; n++) {
    assert.equal(imgs[n].width, 3), assert.equal(imgs[n].height, 2);
    assert.ok(imgs[n].data instanceof Uint8ClampedArray);
    for (let y = 0; y < 2; y++) for (let x = 0; x < 3; x++) {
      const px = Array.from(imgs[n].data.subarray((y * 3 + x) * 4, (y * 3 + x) * 4 + 4));
      const want = [0, 1, 2].map((c) => [0, 64, 128, 191, 255][((n * 3 + c) * 6 + y * 3 + x) % 5]);
      assert.deepEqual(px, [...want, 255], `sample ${n} (y ${y}, x ${x})`);
    }
  }
  const [g] = toRGBA({ shape: [1, 1, 1, 2], data: Float32Array.of(-1, 0.5) });
  assert.deepEqual(Array.from(g.data), [0, 0, 0, 255, 191, 191, 191, 255]);
});

test("toRGBA rejects bad input with messages naming the problem", () => {
  const t = (shape: number[], n = shape.reduce((a, b) => a * b, 1)) => ({ shape, data: new Float32Array(n) });
  assert.throws(() => toRGBA(t([1, 4, 2, 2])), /got 4.*latent/);
  assert.throws(() => toRGBA(t([1, 2, 2, 2])), /1 \(gray\) or 3 \(RGB\) channels, got 2/);
  assert.throws(() => toRGBA(t([3, 2, 2])), /\[N, C, H, W\]/);
  assert.throws(() => toRGBA(t([1, 3, 2, 2], 11)), /needs 12 values, got 11/);
  assert.throws(() => toRGBA(t([1, 3, 2, 2]), [1, 1]), /range/);
  assert.throws(() => toRGBA({ shape: [1, 3, 1, 2], data: Float32Array.of(0, 0, 0, 0, 0, NaN) }), /sample 0 channel 2 is NaN at \(y 0, x 1\)/);
});

// ---------- encodePNG ----------

test("encodePNG: every colour kind x filter x compression decodes to the exact pixels", async () => {
  for (const kind of ["rgba", "rgb", "gray", "grayAlpha"] as Kind[]) {
    for (const [w, h] of [[1, 1], [13, 9]]) {
      const img = testImage(kind, w, h, w * 31 + h);
      for (const filter of ["adaptive", "none", "sub", "up", "average", "paeth"] as PngFilter[]) {
        for (const compression of ["deflate", "stored"] as const) {
          for (const color of ["auto", "rgba"] as const) {
            const what = `${kind} ${w}x${h} ${filter} ${compression} ${color}`;
            const d = await decodePNG(await encodePNG(img, { filter, compression, color }));
            assert.deepEqual([d.width, d.height, d.colorType], [w, h, color === "rgba" ? 6 : AUTO_TYPE[kind]], what);
            assert.deepEqual(d.rgba, new Uint8Array(img.data.buffer), what);
            if (filter !== "adaptive") assert.ok(d.rowFilters.every((t) => t === FILTER_TYPE[filter]), what);
          }
        }
      }
    }
  }
});

test("encodePNG: adaptive filtering picks Sub/Up/... on smooth content; deflate compresses", async () => {
  const w = 64, h = 48, data = new Uint8ClampedArray(w * h * 4);
  for (let p = 0; p < w * h; p++) data.set([(p % w) * 4, Math.floor(p / w) * 5, 90, 255], p * 4);
  const img = { width: w, height: h, data };
  const deflated = await encodePNG(img), stored = await encodePNG(img, { compression: "stored" });
  const d = await decodePNG(deflated);
  assert.deepEqual(d.rgba, new Uint8Array(data.buffer));
  assert.ok(d.rowFilters.every((t) => t !== 0), `row filters ${d.rowFilters}`);
  assert.ok(deflated.length * 5 < stored.length, `deflate ${deflated.length} B vs stored ${stored.length} B`);
});

test("encodePNG: stored-block fallback is valid zlib (blocks, LEN/NLEN, adler32)", async () => {
  const img = testImage("rgba", 200, 90, 7); // 90 * 801 = 72090 filtered bytes: two stored blocks
  const { idat, rgba } = await decodePNG(await encodePNG(img, { compression: "stored", filter: "none" }));
  assert.deepEqual(rgba, new Uint8Array(img.data.buffer));
  const dv = new DataView(idat.buffer, idat.byteOffset, idat.byteLength);
  const raw: number[] = [];
  let at = 2, final = 0, blocks = 0;
  while (!final) {
    final = idat[at] & 1;
    assert.equal((idat[at] >> 1) & 3, 0, "BTYPE stored");
    const len = dv.getUint16(at + 1, true);
    assert.equal(dv.getUint16(at + 3, true), len ^ 0xffff, "NLEN");
    raw.push(...idat.subarray(at + 5, at + 5 + len));
    at += 5 + len, blocks++;
  }
  assert.equal(blocks, 2);
  assert.equal(at + 4, idat.length, "adler32 ends the stream");
  assert.equal(raw.length, 90 * 801);
  assert.equal(dv.getUint32(at), adler32Plain(Uint8Array.from(raw)));
});

test("encodePNG: without CompressionStream, 'auto' falls back to stored blocks and 'deflate' says why it cannot", async () => {
  const img = testImage("rgb", 5, 4);
  const desc = Object.getOwnPropertyDescriptor(globalThis, "CompressionStream");
  Object.defineProperty(globalThis, "CompressionStream", { value: undefined, configurable: true, writable: true });
  let png: Uint8Array;
  try {
    png = await encodePNG(img);
    await assert.rejects(encodePNG(img, { compression: "deflate" }), /needs CompressionStream/);
  } finally {
    if (desc) Object.defineProperty(globalThis, "CompressionStream", desc);
  }
  assert.equal(typeof CompressionStream, "function", "restored");
  const d = await decodePNG(png);
  assert.equal(d.idat[2] & 7, 1, "a single final stored block");
  assert.deepEqual(d.rgba, new Uint8Array(img.data.buffer));
});

test("encodePNG: tEXt / iTXt metadata before IDAT", async () => {
  const text = { seed: "42", label: "207 (golden retriever)", sampler: "ddim 50 / cfg 4.0", note: "café ☕ 猫" };
  const d = await decodePNG(await encodePNG(testImage("rgb", 3, 2), { text }));
  assert.deepEqual(d.chunkTypes, ["IHDR", "tEXt", "tEXt", "tEXt", "iTXt", "IDAT", "IEND"]);
  assert.deepEqual(d.text, text);
  const img = testImage("rgb", 2, 2);
  await assert.rejects(encodePNG(img, { text: { " seed": "1" } }), /not a PNG keyword/);
  await assert.rejects(encodePNG(img, { text: { ["k".repeat(80)]: "1" } }), /not a PNG keyword/);
  await assert.rejects(encodePNG(img, { text: { seed: "a\0b" } }), /NUL/);
  await assert.rejects(encodePNG({ width: 2, height: 2, data: new Uint8ClampedArray(15) }), /needs 16 bytes, got 15/);
  await assert.rejects(encodePNG(img, { filter: "best" as PngFilter }), /unknown filter "best"/);
});

test(`Python PIL decodes our PNGs to the same pixels and text (${runtimeName})`, async () => {
  const cases: Array<{ img: RgbaImage; mode: string; opts: Parameters<typeof encodePNG>[1] }> = [
    { img: testImage("rgba", 31, 17, 3), mode: "RGBA", opts: { text: { seed: "7", note: "ünïcödé ✓" } } },
    { img: testImage("rgb", 28, 28, 4), mode: "RGB", opts: { filter: "paeth" } },
    { img: testImage("gray", 9, 33, 5), mode: "L", opts: { compression: "stored" } },
    { img: testImage("grayAlpha", 12, 12, 6), mode: "LA", opts: { filter: "average" } },
    { img: testImage("rgb", 300, 250, 8), mode: "RGBA", opts: { color: "rgba", compression: "stored" } },
  ];
  const pngs = await Promise.all(cases.map((c) => encodePNG(c.img, c.opts)));
  const script = [
    "import sys, io, json, base64",
    "from PIL import Image",
    "out = []",
    "for b64 in json.load(sys.stdin):",
    "    data = base64.b64decode(b64)",
    "    Image.open(io.BytesIO(data)).verify()",
    "    im = Image.open(io.BytesIO(data)); im.load()",
    "    out.append({'mode': im.mode, 'size': im.size, 'text': im.text, 'rgba': base64.b64encode(im.convert('RGBA').tobytes()).decode()})",
    "json.dump(out, sys.stdout)",
  ].join("\n");
  const input = JSON.stringify(pngs.map((p) => btoa(Array.from(p, (b) => String.fromCharCode(b)).join(""))));
  const r = spawnSync("/usr/bin/python3", ["-c", script], { input, encoding: "utf8", maxBuffer: 64 << 20 });
  // NOTE: never skipped: .ci/setup installs python3-pil; a missing PIL is a failure, not a pass.
  assert.ok(!r.error, `cannot run /usr/bin/python3 for the PIL cross-check: ${r.error?.message}`);
  assert.equal(r.status, 0, r.stderr);
  const got = JSON.parse(r.stdout) as Array<{ mode: string; size: [number, number]; text: Record<string, string>; rgba: string }>;
  cases.forEach((c, i) => {
    assert.equal(got[i].mode, c.mode, `case ${i}`);
    assert.deepEqual(got[i].size, [c.img.width, c.img.height]);
    assert.deepEqual(got[i].text, c.opts?.text ?? {});
    assert.deepEqual(Uint8Array.from(atob(got[i].rgba), (ch) => ch.charCodeAt(0)), new Uint8Array(c.img.data.buffer), `pixels of case ${i}`);
  });
});

// ---------- makeGrid ----------

function solid(w: number, h: number, rgb: number[]): RgbaImage {
  const data = new Uint8ClampedArray(w * h * 4);
  for (let p = 0; p < w * h; p++) data.set([...rgb, 255], p * 4);
  return { width: w, height: h, data };
}
const px = (img: RgbaImage, x: number, y: number) => Array.from(img.data.subarray((y * img.width + x) * 4, (y * img.width + x) * 4 + 4));

test("makeGrid: cell positions, padding, nearest-neighbour scale, smaller images centred", () => {
  const imgs = [0, 1, 2, 3, 4].map((i) => testImage("rgb", 4, 3, 10 + i));
  imgs[4] = testImage("rgb", 2, 1, 99); // smaller: centred in its 8x6 cell
  const bg: [number, number, number] = [10, 20, 30];
  const g = makeGrid(imgs, { columns: 3, padding: 3, scale: 2, background: bg });
  assert.deepEqual([g.width, g.height], [3 * (8 + 3) + 3, 2 * (6 + 3) + 3]);
  const want = new Uint8ClampedArray(g.width * g.height * 4);
  for (let p = 0; p < g.width * g.height; p++) want.set([...bg, 255], p * 4);
  imgs.forEach((im, i) => {
    const x0 = 3 + (i % 3) * 11 + (8 - im.width * 2) / 2, y0 = 3 + Math.floor(i / 3) * 9 + (6 - im.height * 2) / 2;
    for (let y = 0; y < im.height * 2; y++) for (let x = 0; x < im.width * 2; x++) {
      want.set(px(im, x >> 1, y >> 1), ((y0 + y) * g.width + x0 + x) * 4);
    }
  });
  assert.deepEqual(g.data, want);
  assert.equal(makeGrid(imgs.slice(0, 2), { columns: 8, padding: 0 }).width, 8, "columns capped at the image count");
  // odd leftovers round the offset down: a 1x2 image in a 4x3 cell sits at (1, 0)
  const odd = makeGrid([solid(4, 3, [9, 9, 9]), solid(1, 2, [200, 100, 50])], { columns: 2, padding: 0, background: bg });
  for (let y = 0; y < 3; y++) for (let x = 4; x < 8; x++) {
    assert.deepEqual(px(odd, x, y), x === 5 && y < 2 ? [200, 100, 50, 255] : [...bg, 255], `(${x}, ${y})`);
  }
});

test("makeGrid: captions draw ink inside their strip only; shrink, clip and unknown glyphs", () => {
  const labels = ["0", "class 207/golden (dog): 3.5-x", "Ab", "é"];
  const bg: [number, number, number] = [250, 250, 250];
  const imgs = [0, 1, 2, 3].map((i) => solid(7, 7, [40 * i, 0, 100])); // 28 px wide at scale 4
  const g = makeGrid(imgs, { columns: 2, labels, padding: 2, scale: 4, background: bg, textScale: 2 });
  const cellW = 28, cellH = 28 + 18;
  assert.deepEqual([g.width, g.height], [2 * (cellW + 2) + 2, 2 * (cellH + 2) + 2]);
  const ink = [0, 0, 0, 255]; // default text colour on a light background
  const boxes = labels.map(() => ({ x0: Infinity, x1: -1, y0: Infinity, y1: -1 }));
  for (let y = 0; y < g.height; y++) for (let x = 0; x < g.width; x++) {
    const cx = x - 2 - Math.floor((x - 2) / (cellW + 2)) * (cellW + 2), cy = y - 2 - Math.floor((y - 2) / (cellH + 2)) * (cellH + 2);
    const i = Math.floor((y - 2) / (cellH + 2)) * 2 + Math.floor((x - 2) / (cellW + 2));
    const inCell = x >= 2 && y >= 2 && cx < cellW && cy < cellH && i < 4;
    if (inCell && cy < 28) assert.deepEqual(px(g, x, y), [40 * i, 0, 100, 255], `image ${i} at (${x}, ${y})`);
    else if (inCell && px(g, x, y).join() !== [...bg, 255].join()) {
      assert.deepEqual(px(g, x, y), ink, `caption pixel (${x}, ${y})`);
      const b = boxes[i];
      b.x0 = Math.min(b.x0, cx), b.x1 = Math.max(b.x1, cx), b.y0 = Math.min(b.y0, cy - 28), b.y1 = Math.max(b.y1, cy - 28);
    } else if (!inCell) assert.deepEqual(px(g, x, y), [...bg, 255], `background at (${x}, ${y})`);
  }
  // "0" at 2x: 5x7 glyph -> 10x14, centred; strip 18 px high
  assert.deepEqual(boxes[0], { x0: 9, x1: 18, y0: 2, y1: 15 });
  // too long even at 1x: clipped to floor(29 / 6) = 4 slots, "cl.." (ends in two dots on the last row)
  assert.ok(boxes[1].y1 - boxes[1].y0 < 7 && boxes[1].x1 - boxes[1].x0 < 23, JSON.stringify(boxes[1]));
  // "Ab" fits at 2x: 2 glyphs = (2 * 6 - 1) * 2 = 22 px wide
  assert.equal(boxes[2].x1 - boxes[2].x0 + 1, 22);
  // a non-ASCII label draws "?" (as a "?" label does)
  const q = (label: string) => makeGrid([solid(7, 7, [0, 0, 0])], { columns: 1, labels: [label], scale: 4 }).data;
  assert.deepEqual(q("é"), q("?"));
  assert.notDeepEqual(q("é"), q(" "));
});

test("makeGrid: the built-in font has a distinct glyph for every printable ASCII character", () => {
  const chars = Array.from({ length: 95 }, (_, i) => String.fromCharCode(32 + i));
  const g = makeGrid(chars.map(() => solid(5, 1, [0, 0, 0])), { columns: 95, labels: chars, padding: 0 });
  assert.deepEqual([g.width, g.height], [95 * 5, 1 + 9]);
  const glyphs = chars.map((_, i) => {
    let bits = "";
    for (let y = 2; y < 9; y++) for (let x = 0; x < 5; x++) bits += g.data[(y * g.width + i * 5 + x) * 4] === 255 ? "#" : ".";
    return bits;
  });
  assert.equal(glyphs[0], ".".repeat(35), "space is blank");
  glyphs.slice(1).forEach((b, i) => assert.ok(b.includes("#"), `glyph ${JSON.stringify(chars[i + 1])} is blank`));
  assert.equal(new Set(glyphs).size, 95, "glyphs are distinct");
  // row 1 and row 9 of the strip are the blank margins
  for (let x = 0; x < g.width; x++) assert.equal(g.data[(1 * g.width + x) * 4], 0), assert.equal(g.data[(9 * g.width + x) * 4], 0);
});

test("makeGrid rejects bad options with messages naming them", () => {
  const im = solid(2, 2, [1, 2, 3]);
  assert.throws(() => makeGrid([], { columns: 1 }), /no images/);
  assert.throws(() => makeGrid([im], { columns: 0 }), /columns must be an integer >= 1, got 0/);
  assert.throws(() => makeGrid([im], { columns: 1, scale: 1.5 }), /scale/);
  assert.throws(() => makeGrid([im], { columns: 1, padding: -1 }), /padding/);
  assert.throws(() => makeGrid([im, im], { columns: 1, labels: ["a"] }), /2 images but 1 labels/);
  assert.throws(() => makeGrid([im], { columns: 1, background: [0, 0, 256] }), /background/);
  assert.throws(() => makeGrid([{ width: 2, height: 2, data: new Uint8ClampedArray(3) }], { columns: 1 }), /image 0.*needs 16 bytes/);
});
