// Byte arrays in public signatures, for every TypeScript from 5.0 on.

/**
 * Bytes backed by an ArrayBuffer, as Blob, Response and Web Crypto take them: `Uint8Array<ArrayBuffer>`
 * on TypeScript >= 5.7 (where Uint8Array is generic), plain `Uint8Array` before.
 */
export type Bytes = ReturnType<Uint8Array["slice"]>;

/** RGBA pixels backed by an ArrayBuffer (ImageData takes them): see {@link Bytes}. */
export type ClampedBytes = ReturnType<Uint8ClampedArray["slice"]>;
