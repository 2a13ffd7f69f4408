// Where the repository is, for benchmarks run from bench/ (Deno, Bun) or from the Node build in dist/bench/.

/** The repository root as a file: URL (ends with "/"). */
export function repoRoot(): URL {
  return new URL(import.meta.url.includes("/dist/bench/") ? "../../" : "../", import.meta.url);
}
