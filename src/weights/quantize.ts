// The JS int8 converter: any safetensors file (f32/f16/bf16) -> an int8 file in the layout of src/weights/int8.ts
// (rank-4 convolution weights as I8 + "<name>_scale" F32 [Co], everything else as F32, metadata kept plus
// `quantization`). The same layout as `reference/convert_checkpoint.py --dtype int8`.
import { INT8_METADATA, INT8_SCALE_SUFFIX, quantizeInt8 } from "./int8.ts";
import { type SafetensorsFile, type TensorToWrite, writeSafetensors } from "./safetensors.ts";

/** Writes `file` as an int8 safetensors file (see int8.ts for the layout). */
export function quantizeSafetensors(file: SafetensorsFile): Uint8Array {
  const out: Record<string, TensorToWrite> = {};
  for (const [name, e] of file.tensors) {
    const data = file.getF32(name);
    if (e.shape.length === 4 && e.shape[0] > 0) {
      const { q, scale } = quantizeInt8(data, e.shape[0]);
      out[name] = { dtype: "I8", shape: [...e.shape], data: q };
      out[name + INT8_SCALE_SUFFIX] = { dtype: "F32", shape: [e.shape[0]], data: scale };
    } else {
      out[name] = { dtype: "F32", shape: [...e.shape], data };
    }
  }
  return writeSafetensors(out, { ...file.metadata, quantization: INT8_METADATA });
}
