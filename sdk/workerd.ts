// dic-sdk for Cloudflare Workers and workerd: the whole public API of "dic-sdk", with the wasm kernels
// imported as modules. Those platforms refuse to compile WebAssembly from bytes; a .wasm file imported as a
// module arrives already compiled (workerd's `wasm` modules, wrangler's CompiledWasm rule, which is its
// default for *.wasm), so the wasm backend runs there with no wiring by the user. Reached through the
// `workerd` export condition of "dic-sdk" (wrangler and workerd bundlers set it) or as "dic-sdk/workerd".
import simd from "../wasm/build/dic-simd.wasm";
import relaxedSimd from "../wasm/build/dic-relaxed-simd.wasm";
import { setWasmModules } from "../src/backend/registry.ts";

setWasmModules({ simd, "relaxed-simd": relaxedSimd });

export * from "./index.ts";
