// Reads a safetensors file from disk in Node, Deno and Bun: 8 bytes, then the header, validated against the
// file size (and optionally the expected tensors) before the data is read. File access goes through src/fs.ts.

import {
  attachSafetensorsData,
  checkTensors,
  parseSafetensorsHeader,
  safetensorsHeaderLength,
  type SafetensorsFile,
  type SafetensorsHeader,
} from "./safetensors.ts";

import { openFile } from "../fs.ts";
import { readAt } from "./source.ts";

/**
 * Reads and validates a safetensors file. The header is read and checked first (and, when `expected` is
 * given, the tensor names and shapes via `checkTensors`, or any check a callback makes on the header), so a corrupt or wrong file fails before its data
 * is allocated or read. Throws `WeightsError` (its `source` is `path`) for format problems.
 */
export async function readSafetensorsFile(
  path: string,
  expected?: ReadonlyMap<string, readonly number[]> | ((header: SafetensorsHeader) => void),
): Promise<SafetensorsFile> {
  const fh = await openFile(path);
  try {
    const size = await fh.size();
    const first = new Uint8Array(Math.min(8, size));
    await readAt(fh, first, 0);
    const n = safetensorsHeaderLength(first, size, path);
    const prefix = new Uint8Array(8 + n);
    prefix.set(first);
    await readAt(fh, prefix.subarray(8), 8);
    const header = parseSafetensorsHeader(prefix, size, path);
    if (typeof expected === "function") expected(header);
    else if (expected !== undefined) checkTensors(header, expected, path);
    const data = new Uint8Array(header.dataEnd);
    const got = await readAt(fh, data, header.dataStart);
    // A file that shrank between stat() and read() is truncated in the data: attach reports it.
    return attachSafetensorsData(header, data.subarray(0, got));
  } finally {
    await fh.close();
  }
}
