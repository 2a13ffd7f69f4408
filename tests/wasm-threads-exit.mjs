// Child process of tests/wasm-threads.test.ts: starts a threaded wasm backend, runs one conv on it and
// returns without close(); the process must still exit (idle workers do not hold it).
const root = new URL("../", import.meta.url);
const source = typeof Deno !== "undefined" || typeof Bun !== "undefined";
const { createWasmBackend } = await import(new URL(source ? "src/backend/wasm/index.ts" : "dist/src/backend/wasm/index.js", root).href);
const b = await createWasmBackend({ threads: 2 });
const x = b.upload({ shape: [1, 4, 8, 8], data: new Float32Array(256).fill(1) });
const w = b.upload({ shape: [4, 4, 3, 3], data: new Float32Array(144).fill(0.5) }, "conv3x3.weight");
const out = await b.download(b.conv3x3(x, w, null));
console.log(`${b.description}: center ${out.data[4 * 8 + 4]}`);
