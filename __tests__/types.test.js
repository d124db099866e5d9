// index.d.ts matches adapter-utils' host types: a consumer typed against
// @paperclipai/adapter-utils@2026.403.0 compiles against ours (tsc --noEmit).
import { execFileSync } from "node:child_process";
import path from "node:path";
import { describe, expect, it } from "vitest";

const root = path.resolve(import.meta.dirname, "..");

describe("index.d.ts", () => {
  it("a TypeScript consumer typed against @paperclipai/adapter-utils compiles", () => {
    let out = "";
    try {
      execFileSync(path.join(root, "node_modules/.bin/tsc"), ["-p", path.join(root, "__tests__/types/tsconfig.json")], { encoding: "utf8", stdio: "pipe" });
    } catch (e) {
      out = `${e.stdout}${e.stderr}`;
    }
    expect(out).toBe("");
  }, 60_000);
});
