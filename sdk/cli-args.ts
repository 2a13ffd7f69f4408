// The dic command's option tables: each command declares its flags once, and that table parses its
// arguments (refusing other commands' flags, suggesting the nearest name for a typo, taking negative
// numbers as values) and prints its help.
import { DicError } from "../src/errors.ts";
import { DECIMAL_TEXT, didYouMean } from "../src/settings.ts";

/** One flag of a command. */
export interface Flag {
  /** "string" takes a value (`--steps 5`, `--steps=5`); "boolean" takes none. */
  type: "string" | "boolean";
  /** May repeat (`--label a --label b`); the value is then a list. */
  multiple?: boolean;
  /** Placeholder of the value in help ("N", "FILE"); default "VALUE". */
  value?: string;
  /** Valid values; help lists them. */
  choices?: readonly string[];
  /** One short sentence. */
  help: string;
  /** A one-letter alias ("h" for --help). */
  short?: string;
}

/** A command's flags by name (without the dashes). */
export type FlagTable = Record<string, Flag>;

/** Parsed flags: strings, string lists (multiple) or true. */
export type FlagValues = Record<string, string | string[] | boolean | undefined>;

/** A command-line mistake: one line, exit status 1. */
export class UsageError extends DicError<"usage"> {
  constructor(message: string, field?: string) {
    super("usage", message, { field });
  }
}

/**
 * The number a flag's text spells, in plain decimal (`5`, `0.5`, `1e3`; no hex, no blanks, no
 * `Infinity`), which `check` must accept; else a UsageError naming the flag and `what` was expected.
 */
export function numberFlag(text: string, flag: string, check: (n: number) => boolean, what: string): number {
  const n = Number(text);
  if (!DECIMAL_TEXT.test(text) || !Number.isFinite(n) || !check(n)) throw new UsageError(`--${flag}: expected ${what}, got ${JSON.stringify(text)}`, `--${flag}`);
  return n;
}

/**
 * Parses `args` (after the command name) against `table`. `others` maps every flag of the other
 * commands to the commands that take it, for a precise refusal.
 */
export function parseFlags(command: string, args: string[], table: FlagTable, others: Map<string, string[]>): { values: FlagValues; positionals: string[] } {
  const values: FlagValues = {};
  const positionals: string[] = [];
  const shorts = new Map(Object.entries(table).filter(([, f]) => f.short).map(([k, f]) => [f.short!, k]));
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (arg === "--") {
      positionals.push(...args.slice(i + 1));
      break;
    }
    let name: string;
    let inline: string | undefined;
    if (arg.startsWith("--")) {
      const eq = arg.indexOf("=");
      name = eq < 0 ? arg.slice(2) : arg.slice(2, eq);
      inline = eq < 0 ? undefined : arg.slice(eq + 1);
    } else if (/^-[A-Za-z]$/.test(arg)) {
      const long = shorts.get(arg.slice(1));
      if (long === undefined) throw new UsageError(`unknown option ${arg} for dic ${command} (see dic ${command} --help)`, arg);
      name = long;
    } else {
      positionals.push(arg);
      continue;
    }
    const flag = table[name];
    if (!flag) {
      const owners = others.get(name);
      if (owners) {
        throw new UsageError(`--${name} is not an option of dic ${command} (it belongs to ${owners.map((c) => `dic ${c}`).join(", ")}; see dic ${command} --help)`, `--${name}`);
      }
      const hint = didYouMean(name, Object.keys(table));
      throw new UsageError(`unknown option --${name} for dic ${command}${hint ? ` (did you mean --${hint}?)` : ""}; see dic ${command} --help`, `--${name}`);
    }
    let value: string | boolean;
    if (flag.type === "boolean") {
      if (inline !== undefined) throw new UsageError(`--${name} takes no value (got "${inline}")`, `--${name}`);
      value = true;
    } else if (inline !== undefined) {
      value = inline;
    } else {
      // The next argument is the value, unless it is another flag: "-3" is a value, "--out" is not.
      const next = args[i + 1];
      if (next === undefined || next.startsWith("--")) throw new UsageError(`--${name} needs a value (${flag.value ?? "VALUE"})`, `--${name}`);
      value = next;
      i++;
    }
    if (typeof value === "string" && flag.choices && !flag.choices.includes(value)) {
      const hint = didYouMean(value, flag.choices);
      throw new UsageError(`--${name}: unknown "${value}"${hint ? ` (did you mean "${hint}"?)` : ""}; valid: ${flag.choices.join(", ")}`, `--${name}`);
    }
    if (flag.multiple) {
      const list = (values[name] as string[] | undefined) ?? [];
      list.push(value as string);
      values[name] = list;
    } else {
      if (values[name] !== undefined) throw new UsageError(`--${name} given twice`, `--${name}`);
      values[name] = value;
    }
  }
  return { values, positionals };
}

/** Wraps `text` into lines of at most `width` columns, each after `indent` spaces (the first after `first`). */
export function wrap(text: string, width: number, indent: number, first = indent): string[] {
  const lines: string[] = [];
  let line = "";
  let pad = first;
  for (const word of text.split(/\s+/).filter(Boolean)) {
    if (line && pad + line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
      pad = indent;
    } else {
      line = line ? `${line} ${word}` : word;
    }
  }
  if (line) lines.push(line);
  return lines.map((l, i) => " ".repeat(i === 0 ? first : indent) + l);
}

/** The help of one command: usage, description, then one entry per flag, within 80 columns. */
export function formatHelp(command: string, usage: string, description: string, table: FlagTable): string {
  const out = [...wrap(`usage: dic ${command} ${usage}`, 80, 6, 0), "", ...wrap(description, 80, 2), "", "options:"];
  for (const [name, f] of Object.entries(table)) {
    const value = f.choices ? f.choices.join("|") : (f.value ?? "VALUE");
    const head = `  ${f.short ? `-${f.short}, ` : ""}--${name}${f.type === "string" ? ` ${value}` : ""}`;
    const text = `${f.help}${f.multiple ? " (repeatable)" : ""}`;
    if (head.length <= 26) {
      const [firstLine, ...rest] = wrap(text, 80, 28);
      out.push(head.padEnd(28) + firstLine.slice(28), ...rest);
    } else {
      out.push(head, ...wrap(text, 80, 28));
    }
  }
  return out.join("\n");
}
