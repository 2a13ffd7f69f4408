// Bundlers with a binary loader (esbuild `loader: { ".safetensors": "binary" }`) import weights as bytes.
declare module "*.safetensors" {
  const bytes: Uint8Array;
  export default bytes;
}
