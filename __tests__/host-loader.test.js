// Loads the built package exactly the way Paperclip's plugin loader does
// (contract §2.5): read package.json, resolve exports["."] (string, or
// .import ?? .default), import() it by file URL from another directory, call
// createServerAdapter() and require a truthy .type.
import { describe, expect, it } from "vitest";
import { readFileSync } from "node:fs";
import path from "node:path";
import { loadLikeHost } from "./support/load-like-host.js";

const pkgDir = path.resolve(import.meta.dirname, "..");

describe("the package as the host loads it", () => {
  it("resolves exports['.'] and builds a complete adapter module", async () => {
    const { pkg, mod, adapter } = await loadLikeHost(pkgDir);
    expect(pkg.paperclip).toEqual({ adapterUiParser: "1.0.0" });
    expect(Object.keys(pkg.exports)).toEqual(expect.arrayContaining([".", "./server", "./ui-parser", "./cli"]));
    expect(mod.type).toBe("claude_k8s");
    expect(mod.label).toBe("Claude (Kubernetes)");
    expect(typeof mod.agentConfigurationDoc).toBe("string");
    expect(typeof mod.printClaudeStreamEvent).toBe("function");
    expect(Array.isArray(mod.models)).toBe(true);

    expect(adapter.type).toBe("claude_k8s");
    for (const fn of ["execute", "testEnvironment", "listModels", "listSkills", "syncSkills", "getConfigSchema"]) {
      expect(typeof adapter[fn], fn).toBe("function");
    }
    expect(typeof adapter.sessionCodec.deserialize).toBe("function");
    expect(typeof adapter.sessionCodec.serialize).toBe("function");
    expect(adapter.sessionManagement).toEqual({
      supportsSessionResume: true,
      nativeContextManagement: "confirmed",
      defaultSessionCompaction: { enabled: true, maxSessionRuns: 0, maxRawInputTokens: 0, maxSessionAgeHours: 0 },
    });
    expect(adapter).toMatchObject({
      supportsLocalAgentJwt: true,
      supportsInstructionsBundle: true,
      instructionsPathKey: "instructionsFilePath",
      requiresMaterializedRuntimeSkills: false,
      hasOutOfProcessLiveness: true,
    });
    expect(adapter.agentConfigurationDoc).toBe(mod.agentConfigurationDoc);
    expect(adapter.models).toBe(mod.models);
    expect((await adapter.getConfigSchema()).fields.length).toBeGreaterThan(0);
  });

  it("serves a UI parser the host accepts: inside the package, CommonJS", () => {
    const pkg = JSON.parse(readFileSync(path.join(pkgDir, "package.json"), "utf8"));
    const rel = pkg.exports["./ui-parser"];
    const file = path.resolve(pkgDir, typeof rel === "string" ? rel : (rel.import ?? rel.default));
    expect(file.startsWith(pkgDir + path.sep)).toBe(true);
    const source = readFileSync(file, "utf8");
    expect(source).not.toMatch(/^\s*(import|export)\s/m);
    expect(Buffer.byteLength(source)).toBeLessThan(50 * 1024);
  });
});
