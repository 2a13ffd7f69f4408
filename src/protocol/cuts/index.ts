// The table of cut points (docs/protocol.md section 1; docs/ARCHITECTURE.md "Add a cut"): the edge, the
// host and the edge API read what each cut sends and who can run it from here. A new cut is one module
// beside these, a row here, the spec and a test.
import type { Cut } from "../frames.ts";
import type { CutModule, HostCut } from "./cut.ts";
import { handoffCut, handoffHost } from "./handoff.ts";
import { remoteCut } from "./remote.ts";
import { unetCut, unetHost } from "./unet.ts";
import { vaeCut, vaeHost } from "./vae.ts";

export type { CutModule, EdgeProgress, EdgeResult, EdgeRun, HostCut, HostRun } from "./cut.ts";

/** Every cut an edge offers, by its name in the edge API. */
export const CUT_TABLE = { unet: unetCut, handoff: handoffCut, vae: vaeCut, remote: remoteCut } as const satisfies Record<string, CutModule>;

/** The host side of each wire cut (`remote` travels as `handoff`). */
export const HOST_CUTS: { unet: HostCut<"step">; handoff: HostCut<"handoff">; vae: HostCut<"latent"> } = { unet: unetHost, handoff: handoffHost, vae: vaeHost };

/** The host side of wire cut `cut`, for dispatch on a hello (the work frame's type is checked against `sends`). */
export function hostCut(cut: Cut): HostCut<"step" | "handoff" | "latent"> {
  return HOST_CUTS[cut] as HostCut<"step" | "handoff" | "latent">;
}
