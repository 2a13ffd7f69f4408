// A .wasm file imported as a module: platforms that compile it for the worker (workerd, wrangler's
// CompiledWasm rule, Vercel's `?module` imports) hand over a WebAssembly.Module.
declare module "*.wasm" {
  const module: WebAssembly.Module;
  export default module;
}
