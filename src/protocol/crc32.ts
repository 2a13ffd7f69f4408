// CRC-32 (IEEE 802.3, reflected polynomial 0xEDB88320, init and final xor 0xFFFFFFFF): the checksum of
// tensor bytes, the same function as zlib's crc32, so every language has it. Slicing-by-4 tables.

const TABLES: Uint32Array[] = (() => {
  const t = Array.from({ length: 4 }, () => new Uint32Array(256));
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[0][n] = c >>> 0;
  }
  for (let n = 0; n < 256; n++) {
    for (let k = 1; k < 4; k++) t[k][n] = (t[0][t[k - 1][n] & 0xff] ^ (t[k - 1][n] >>> 8)) >>> 0;
  }
  return t;
})();

/** CRC-32 of `bytes` as an unsigned 32-bit integer (crc32(b"123456789") = 0xCBF43926). */
export function crc32(bytes: Uint8Array): number {
  const [t0, t1, t2, t3] = TABLES;
  let c = 0xffffffff;
  let i = 0;
  const n4 = bytes.length & ~3;
  for (; i < n4; i += 4) {
    c ^= bytes[i] | (bytes[i + 1] << 8) | (bytes[i + 2] << 16) | (bytes[i + 3] << 24);
    c = t3[c & 0xff] ^ t2[(c >>> 8) & 0xff] ^ t1[(c >>> 16) & 0xff] ^ t0[c >>> 24];
  }
  for (; i < bytes.length; i++) c = t0[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}
