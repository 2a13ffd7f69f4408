// DicError: the base of the errors the SDK throws on purpose. Each carries a stable `code` (programs
// branch on it, never on the message) and, where one input is to blame, the `field` it names.
// WeightsError, DownloadError and ProtocolError extend it with their own codes.

/** Codes of the generation-settings validator (src/settings.ts) and the SDK entry points. */
export type SettingsErrorCode =
  | "unknown_option" // a key generate() (or the CLI, or a request) does not know
  | "bad_type" // a value of the wrong type (steps: "5", label: true)
  | "out_of_range" // a number outside its range (steps: 0, cfgScale: -1)
  | "bad_value" // a string outside its set (sampler: "euler"), an unknown label name
  | "conflicting_options" // two options that exclude each other (label and labels; seed and initNoise)
  | "missing_label" // a class-conditional model given no label
  | "no_null_class" // guidance or an unconditional sample on a model without a null class
  | "backend_mismatch"; // generate({ model, backend }) where the loaded model runs elsewhere

/** An error of the SDK: `code` is stable, `field` names the option or flag at fault when there is one. */
export class DicError<C extends string = string> extends Error {
  override name = "DicError";
  readonly code: C;
  readonly field: string | undefined;

  constructor(code: C, message: string, options?: { field?: string; cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.field = options?.field;
  }
}
