// The one validator of generation settings (labels, steps, sampler, eta, guidance, seed), shared by
// generate(), the dic CLI, the edge's HTTP API and the protocol host. Every bound lives here, once; a
// refusal is a DicError whose `code` is stable and whose `field` is the name the caller used
// ("steps", "--steps", "cfg_scale").
import { DicError, type SettingsErrorCode } from "./errors.ts";
import { CFG_MODES, type CfgMode } from "./samplers/guidance.ts";
import { SAMPLER_NAMES, type SamplerName } from "./samplers/index.ts";

/** Most sampling steps (the 1000 training steps, respaced). */
export const STEPS_MAX = 1000;
/** Largest classifier-free guidance scale accepted anywhere (1 = no guidance). */
export const CFG_SCALE_MAX = 100;

/** What a numeric setting accepts, and its description in messages. */
export interface NumericSpec {
  ok: (n: number) => boolean;
  what: string;
}

/** Decimal number text as flags and query strings carry it: no blanks, no hex, no "Infinity". */
export const DECIMAL_TEXT: RegExp = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;

/** A numeric setting's name. */
export type NumericSetting = "steps" | "eta" | "cfgScale" | "seed";

/** The numeric settings: what each accepts, checked in one place. */
export const NUMERIC_SETTINGS: Readonly<Record<NumericSetting, NumericSpec>> = {
  steps: { ok: (n: number) => Number.isInteger(n) && n >= 1 && n <= STEPS_MAX, what: `an integer in 1..${STEPS_MAX}` },
  eta: { ok: (n: number) => n >= 0 && n <= 1, what: "a number in [0, 1]" },
  cfgScale: { ok: (n: number) => n >= 0 && n <= CFG_SCALE_MAX, what: `a number in [0, ${CFG_SCALE_MAX}]` },
  seed: { ok: (n: number) => Number.isSafeInteger(n) && n >= 0, what: "a non-negative integer" },
};
/** Every setting the validator knows. */
export type SettingName = NumericSetting | "labels" | "sampler" | "cfgMode";

/** A class by index or name; null asks for the null class (an unconditional sample). */
export type LabelInput = number | string | null;

/** Settings after validation (absent ones stay absent: the model's defaults apply). */
export interface GenerationSettings {
  labels?: LabelInput[];
  steps?: number;
  sampler?: SamplerName;
  eta?: number;
  cfgScale?: number;
  cfgMode?: CfgMode;
  seed?: number;
}

/** How the caller names and encodes its settings. */
export interface SettingsSource {
  /** Message prefix, e.g. "generate" (none when absent). */
  where?: string;
  /** What each setting is called at the source ("--steps", "cfg_scale"); default its own name. */
  names?: Partial<Record<SettingName, string>>;
  /** Values arrive as text (flags, query strings): decimal strings count as numbers. */
  text?: boolean;
}

/** How a value is shown in a message: strings quoted, and with their type when a type is wrong. */
function show(v: unknown, withType: boolean): string {
  if (typeof v === "string") return withType ? `the string ${JSON.stringify(v)}` : JSON.stringify(v);
  if (v === null || v === undefined) return String(v);
  if (typeof v === "number" || typeof v === "bigint") return String(v);
  if (typeof v === "boolean") return withType ? `${v} (a boolean)` : String(v);
  if (Array.isArray(v)) return "an array";
  return typeof v === "function" ? "a function" : "an object";
}

function fail(code: SettingsErrorCode, field: string, where: string | undefined, message: string): never {
  throw new DicError(code, `${where ? `${where}: ` : ""}${field}: ${message}`, { field });
}

/** Checks one numeric setting; `field` is the name the caller knows it by. */
export function checkNumberSetting(name: NumericSetting, value: unknown, src: SettingsSource = {}): number {
  const field = src.names?.[name] ?? name;
  const spec = NUMERIC_SETTINGS[name];
  let n: number;
  if (typeof value === "number") n = value;
  else if (src.text && typeof value === "string" && DECIMAL_TEXT.test(value)) n = Number(value);
  else fail("bad_type", field, src.where, `expected ${spec.what}, got ${show(value, true)}`);
  if (!Number.isFinite(n) || !spec.ok(n)) fail("out_of_range", field, src.where, `expected ${spec.what}, got ${show(value, false)}`);
  return n;
}

/** Checks a value that must be one of `valid`. */
export function checkChoice<T extends string>(value: unknown, valid: readonly T[], field: string, where?: string): T {
  if (typeof value !== "string") fail("bad_type", field, where, `expected one of ${valid.join(", ")}, got ${show(value, true)}`);
  if (!(valid as readonly string[]).includes(value)) {
    const hint = didYouMean(value, valid);
    fail("bad_value", field, where, `unknown ${JSON.stringify(value)}${hint ? ` (did you mean ${JSON.stringify(hint)}?)` : ""}; valid: ${valid.join(", ")}`);
  }
  return value as T;
}

/** Checks one label: an integer index, a non-empty name, or null (the null class). */
export function checkLabel(value: unknown, field: string, where?: string): LabelInput {
  if (value === null) return null;
  if (typeof value === "number") {
    if (!Number.isInteger(value) || value < 0) fail("out_of_range", field, where, `expected a class index (an integer >= 0), got ${value}`);
    return value;
  }
  if (typeof value === "string" && value.trim() !== "") return value.trim();
  fail("bad_type", field, where, `expected a class index or name (or null for an unconditional sample), got ${show(value, true)}`);
}

/**
 * Validates the generation settings in `input` (generate()'s names: labels / label, steps, sampler,
 * eta, cfgScale, cfgMode, seed; other keys are the caller's to check). Absent (undefined) settings stay
 * absent. Throws a DicError naming the field.
 */
export function validateSettings(input: Record<string, unknown>, src: SettingsSource = {}): GenerationSettings {
  const name = (k: SettingName) => src.names?.[k] ?? k;
  const out: GenerationSettings = {};
  const { label, labels } = input;
  if (label !== undefined && labels !== undefined) fail("conflicting_options", "label", src.where, "give label or labels, not both");
  if (labels !== undefined) {
    const list = Array.isArray(labels) ? labels : [labels];
    if (list.length === 0) fail("bad_value", name("labels"), src.where, "is empty (give one label per image)");
    out.labels = list.map((l, i) => checkLabel(l, Array.isArray(labels) ? `${name("labels")}[${i}]` : name("labels"), src.where));
  } else if (label !== undefined) {
    out.labels = [checkLabel(label, "label", src.where)];
  }
  for (const k of ["steps", "eta", "cfgScale", "seed"] as const) {
    if (input[k] !== undefined) out[k] = checkNumberSetting(k, input[k], src);
  }
  if (input.sampler !== undefined) out.sampler = checkChoice(input.sampler, SAMPLER_NAMES, name("sampler"), src.where);
  if (input.cfgMode !== undefined) out.cfgMode = checkChoice(input.cfgMode, CFG_MODES, name("cfgMode"), src.where);
  return out;
}

/** Refuses keys of `input` outside `known`, suggesting the nearest one. */
export function checkKnownKeys(input: object, known: readonly string[], where: string): void {
  for (const k of Object.keys(input)) {
    if (known.includes(k)) continue;
    const hint = didYouMean(k, known);
    throw new DicError("unknown_option", `${where}: unknown option ${JSON.stringify(k)}${hint ? ` (did you mean ${JSON.stringify(hint)}?)` : ""}`, { field: k });
  }
}

/** The candidate nearest to `word` (edit distance at most a third of its length, at least 2), or null. */
export function didYouMean(word: string, candidates: readonly string[]): string | null {
  // Optimal string alignment distance: a swap of two neighbours ("lable") costs 1, like a typo.
  const dist = (a: string, b: string): number => {
    const d = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
    for (let i = 1; i <= a.length; i++) {
      for (let j = 1; j <= b.length; j++) {
        const cost = a[i - 1] === b[j - 1] ? 0 : 1;
        d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost);
        if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d[i][j] = Math.min(d[i][j], d[i - 2][j - 2] + 1);
      }
    }
    return d[a.length][b.length];
  };
  const w = word.toLowerCase();
  let best: string | null = null, bestD = Math.max(2, Math.floor(word.length / 3)) + 1;
  for (const c of candidates) {
    const d = dist(w, c.toLowerCase());
    if (d < bestD) [best, bestD] = [c, d];
  }
  return best;
}
