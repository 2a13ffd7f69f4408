// An independent PNG reader for tests (no code shared with src/image.ts): chunk parser, CRC, inflate via
// DecompressionStream, unfilter. Used by tests/image.test.ts and by the tests that compare pictures made
// in other runtimes (tests/workerd.test.ts).
import assert from "node:assert/strict";

function crcBitwise(bytes: Uint8Array): number {
  let c = ~0;
  for (const b of bytes) {
    c ^= b;
    for (let k = 0; k < 8; k++) c = (c >>> 1) ^ (0xedb88320 & -(c & 1));
  }
  return ~c >>> 0;
}

export function adler32Plain(bytes: Uint8Array): number {
  let a = 1, b = 0;
  for (const x of bytes) a = (a + x) % 65521, b = (b + a) % 65521;
  return (b * 65536 + a) >>> 0;
}

async function inflate(z: Uint8Array<ArrayBuffer>): Promise<Uint8Array> {
  assert.equal(z[0] & 15, 8, "zlib CM must be deflate");
  assert.equal(((z[0] << 8) | z[1]) % 31, 0, "zlib FCHECK");
  const stream = new Blob([z]).stream().pipeThrough(new DecompressionStream("deflate"));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

/** What decodePNG read. */
export interface Decoded {
  width: number;
  height: number;
  colorType: number;
  chunkTypes: string[];
  text: Record<string, string>;
  idat: Uint8Array<ArrayBuffer>;
  rowFilters: number[];
  rgba: Uint8Array;
}

/** Decodes and checks a PNG (signature, chunk order, CRCs, zlib header, filters); RGBA pixels. */
export async function decodePNG(png: Uint8Array): Promise<Decoded> {
  assert.deepEqual([...png.subarray(0, 8)], [137, 80, 78, 71, 13, 10, 26, 10], "PNG signature");
  const dv = new DataView(png.buffer, png.byteOffset, png.byteLength);
  const chunkTypes: string[] = [], idatParts: Uint8Array[] = [], text: Record<string, string> = {};
  let ihdr: Uint8Array | undefined;
  let at = 8;
  while (at < png.length) {
    assert.ok(at + 12 <= png.length, "truncated chunk header");
    const len = dv.getUint32(at);
    assert.ok(len < 2 ** 31 && at + 12 + len <= png.length, `chunk length ${len} overruns the file`);
    const type = String.fromCharCode(...png.subarray(at + 4, at + 8));
    const body = png.subarray(at + 8, at + 8 + len);
    assert.equal(dv.getUint32(at + 8 + len), crcBitwise(png.subarray(at + 4, at + 8 + len)), `CRC of ${type}`);
    chunkTypes.push(type);
    if (type === "IHDR") ihdr = body;
    if (type === "IDAT") idatParts.push(body);
    const nul = body.indexOf(0);
    if (type === "tEXt") text[String.fromCharCode(...body.subarray(0, nul))] = String.fromCharCode(...body.subarray(nul + 1));
    if (type === "iTXt") {
      assert.deepEqual([...body.subarray(nul + 1, nul + 5)], [0, 0, 0, 0], "iTXt: uncompressed, no language");
      text[String.fromCharCode(...body.subarray(0, nul))] = new TextDecoder().decode(body.subarray(nul + 5));
    }
    at += 12 + len;
  }
  assert.equal(chunkTypes[0], "IHDR");
  assert.equal(chunkTypes.at(-1), "IEND");
  assert.equal(chunkTypes.filter((t) => t === "IEND").length, 1);
  const firstIdat = chunkTypes.indexOf("IDAT");
  assert.ok(firstIdat > 0 && chunkTypes.slice(firstIdat, -1).every((t) => t === "IDAT"), `chunk order ${chunkTypes}`);
  assert.equal(ihdr!.length, 13);
  const hd = new DataView(ihdr!.buffer, ihdr!.byteOffset, 13);
  const width = hd.getUint32(0), height = hd.getUint32(4), colorType = ihdr![9];
  assert.deepEqual([ihdr![8], ihdr![10], ihdr![11], ihdr![12]], [8, 0, 0, 0], "bit depth 8, deflate, filter 0, no interlace");
  const bpp = ({ 0: 1, 2: 3, 4: 2, 6: 4 } as Record<number, number>)[colorType];
  assert.ok(bpp, `colour type ${colorType}`);
  const idat = new Uint8Array(idatParts.reduce((n, p) => n + p.length, 0));
  idatParts.reduce((o, p) => (idat.set(p, o), o + p.length), 0);

  const raw = await inflate(idat);
  const stride = width * bpp;
  assert.equal(raw.length, height * (stride + 1), "inflated size");
  const px = new Uint8Array(height * stride), rowFilters: number[] = [];
  for (let y = 0; y < height; y++) {
    const t = raw[y * (stride + 1)];
    rowFilters.push(t);
    for (let i = 0; i < stride; i++) {
      const a = i >= bpp ? px[y * stride + i - bpp] : 0, b = y > 0 ? px[(y - 1) * stride + i] : 0;
      const c = i >= bpp && y > 0 ? px[(y - 1) * stride + i - bpp] : 0;
      const p = a + b - c, pa = Math.abs(p - a), pb = Math.abs(p - b), pc = Math.abs(p - c);
      const pred = [0, a, b, Math.floor((a + b) / 2), pa <= pb && pa <= pc ? a : pb <= pc ? b : c][t];
      assert.ok(pred !== undefined, `row ${y}: filter type ${t}`);
      px[y * stride + i] = (raw[y * (stride + 1) + 1 + i] + pred) & 255;
    }
  }
  const rgba = new Uint8Array(width * height * 4);
  for (let p = 0; p < width * height; p++) {
    const s = px.subarray(p * bpp, (p + 1) * bpp);
    rgba.set(bpp === 1 ? [s[0], s[0], s[0], 255] : bpp === 2 ? [s[0], s[0], s[0], s[1]] : bpp === 3 ? [...s, 255] : s, p * 4);
  }
  return { width, height, colorType, chunkTypes, text, idat, rowFilters, rgba };
}
