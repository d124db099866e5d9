// The Node the tests run on. scripts/test-node-matrix runs the suites on each
// pinned Node line and sets CLAUDE_K8S_EXPECT_NODE, so a matrix entry cannot
// pass on some other Node by accident (a PATH or an execPath gone wrong).
import { readFileSync } from "node:fs";
import semver from "semver";
import { describe, expect, it } from "vitest";

const pkg = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8"));
const expected = process.env.CLAUDE_K8S_EXPECT_NODE;

describe("the Node under test", () => {
  it.skipIf(!expected)("is the one the Node matrix asked for, and one that package.json's engines claims", () => {
    expect(process.version).toBe(expected);
    expect(semver.satisfies(process.version, pkg.engines.node), `${process.version} against engines ${pkg.engines.node}`).toBe(true);
  });

  it("every line the matrix runs by default is one engines claims, and every line engines names is in the matrix", () => {
    const matrix = readFileSync(new URL("../scripts/test-node-matrix", import.meta.url), "utf8").match(/CLAUDE_K8S_NODE_MATRIX-([\d ]+)\}/)[1].trim().split(/\s+/);
    const pins = Object.fromEntries(
      [...readFileSync(new URL("../scripts/install-node", import.meta.url), "utf8").matchAll(/^ {2}(\d+)\) VERSION=([\d.]+) ;;$/gm)].map((m) => [m[1], m[2]]),
    );
    for (const line of matrix) {
      expect(pins[line], `scripts/install-node pins Node ${line}`).toMatch(new RegExp(`^${line}\\.`));
      expect(semver.satisfies(pins[line], pkg.engines.node), `${pins[line]} against engines ${pkg.engines.node}`).toBe(true);
    }
    // engines' lines are exactly the matrix's: `^20.19.0 || ^22.12.0 || …`.
    const claimed = pkg.engines.node.split("||").map((r) => String(semver.minVersion(r.trim()).major));
    expect(claimed).toEqual(matrix);
    for (const r of pkg.engines.node.split("||")) expect(r.trim()).toMatch(/^\^\d+\.\d+\.\d+$/);
  });
});
