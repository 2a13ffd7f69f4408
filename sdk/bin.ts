#!/usr/bin/env node
// Entry point of the `dic` command (npm bin, `deno run sdk/bin.ts`, `bun sdk/bin.ts`).
import { exitWith, processArgs } from "../src/env.ts";
import { runCli } from "./cli.ts";

exitWith(await runCli(processArgs()));
