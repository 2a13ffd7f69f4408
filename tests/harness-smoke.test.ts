import assert from "node:assert/strict";
import { relL2, test } from "./harness.ts";

test("relL2 is zero for equal arrays and catches NaN", () => {
  assert.equal(relL2([1, 2, 3], [1, 2, 3]), 0);
  assert.equal(relL2([NaN, 2], [1, 2]), Infinity);
  assert.ok(Math.abs(relL2([1, 0], [0, 1]) - Math.SQRT2) < 1e-12);
});
