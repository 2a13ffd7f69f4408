// The `remote` cut (docs/protocol.md section 1.4): a `handoff` at step 0. The edge draws x_T from the
// seed and owns the noise stream; the host runs every step. An edge with no weights runs only this.
import type { CutModule } from "./cut.ts";
import { handoffAt } from "./handoff.ts";

export const remoteCut: CutModule = {
  name: "remote", wire: "handoff", sends: "handoff", answers: ["preview", "final"],
  edgeParts: ["full", "encode", "decode", "none"],
  hostServes: (part) => part === "full",
  endsIn: "samples",
  // The zero-step loop draws x_T and calls no model.
  runEdge: (e) => handoffAt(e, 0, "remote"),
};
