// The package as users get it: `npm pack`, installed the way Paperclip
// installs plugins (`npm install --no-save <tarball>` into its own directory),
// then loaded through the host-loader path. And without a native binary for
// the platform: one clear message, never a bare "Cannot find module".
import { execFileSync } from "node:child_process";
import { cpSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { loadLikeHost } from "./support/load-like-host.js";

const root = path.resolve(import.meta.dirname, "..");
const tmp = mkdtempSync(path.join(os.tmpdir(), "ck8s-pack-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe("packaging", () => {
  it("npm pack → npm install --no-save <tarball> → the host loads it", async () => {
    const out = execFileSync("npm", ["pack", "--json", "--pack-destination", tmp], { cwd: root, encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] });
    const [info] = JSON.parse(out);
    const files = info.files.map((f) => f.path);
    for (const f of ["index.js", "server.js", "cli.js", "ui-parser.cjs", "binding.cjs", "index.d.ts", "package.json"]) expect(files).toContain(f);
    expect(files.some((f) => f.endsWith(".node"))).toBe(true);
    expect(files.some((f) => f.startsWith("src/") || f.startsWith("crates/") || f.startsWith("__tests__/"))).toBe(false);

    const plugins = path.join(tmp, "adapter-plugins");
    execFileSync("mkdir", ["-p", plugins]);
    writeFileSync(path.join(plugins, "package.json"), JSON.stringify({ private: true }));
    execFileSync("npm", ["install", "--no-save", "--no-audit", "--no-fund", path.join(tmp, info.filename)], { cwd: plugins, stdio: "ignore" });
    const dir = path.join(plugins, "node_modules", "paperclip-adapter-claude-k8s");
    const { adapter } = await loadLikeHost(dir);
    expect(adapter.type).toBe("claude_k8s");
    const r = await adapter.execute({ runId: "r", agent: { id: "!!!" }, runtime: {}, config: {}, context: {}, onLog: async () => {} });
    expect(r.errorCode).toBe("k8s_agent_id_invalid");
  });

  // Paperclip's images run older distributions than the build machine: the
  // linux-x64-gnu binary is linked against glibc 2.28 (scripts/build, zig) and
  // must not ask for a newer symbol version than that.
  it.runIf(process.platform === "linux" && process.arch === "x64")("the linux-x64-gnu binary needs glibc 2.28 at most", () => {
    const node = path.join(root, "claude-k8s.linux-x64-gnu.node");
    const symbols = execFileSync("objdump", ["-T", node], { encoding: "utf8", maxBuffer: 64 << 20 });
    const versions = [...new Set(symbols.match(/GLIBC_\d+(\.\d+)*/g) ?? [])];
    expect(versions.length).toBeGreaterThan(0); // it is a glibc binary at all
    const newer = versions.filter((v) => {
      const [maj, min = 0] = v.slice(6).split(".").map(Number);
      return maj > 2 || (maj === 2 && min > 28);
    });
    expect(newer).toEqual([]);
  });

  it("without a binary for the platform, importing fails with one clear message", async () => {
    const copy = path.join(tmp, "no-binary");
    cpSync(root, copy, {
      recursive: true,
      filter: (src) => !/(\/target|\/node_modules|\/\.git|\/\.cluster|\.node)$/.test(src) && !src.includes("/target/") && !src.includes("/.git/"),
    });
    expect(readdirSync(copy).some((f) => f.endsWith(".node"))).toBe(false);
    const err = await import(pathToFileURL(path.join(copy, "index.js")).href).then(() => null, (e) => e);
    expect(err).toBeInstanceOf(Error);
    expect(err.message).toMatch(/^paperclip-adapter-claude-k8s: no native binary for linux-x64-gnu\./);
    expect(err.message).toContain("paperclip-adapter-claude-k8s-linux-x64-gnu");
    expect(err.message).toContain("npm run build");
    expect(err.message).not.toMatch(/Cannot find module/);
  });
});
