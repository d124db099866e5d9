// The parts of the contract that are not the Kubernetes run (contract §1.3,
// §1.11, §1.12, §1.15): session codec, models, config schema, config doc, CLI.
import { afterEach, describe, expect, it } from "vitest";
import { sessionCodec } from "../lib/session-codec.js";
import { BEDROCK_MODELS, DEFAULT_MODEL, DIRECT_MODELS, listModels, models, refreshModels, resetModelsCache, usesBedrock } from "../lib/models.js";
import { startMockAnthropic } from "./support/mock-anthropic.mjs";
import { getConfigSchema } from "../lib/config-schema.js";
import { agentConfigurationDoc } from "../lib/config-doc.js";
import { formatClaudeStreamLine } from "../cli.js";

describe("sessionCodec", () => {
  it("accepts aliases, trims, drops blanks, needs a session id", () => {
    expect(sessionCodec.deserialize({ session_id: " s1 ", workdir: "/w", workspace_id: "ws", repo_url: "u", repo_ref: "r", prompt_bundle_key: "k" })).toEqual({
      sessionId: "s1", cwd: "/w", workspaceId: "ws", repoUrl: "u", repoRef: "r", promptBundleKey: "k",
    });
    expect(sessionCodec.deserialize({ sessionId: "s", cwd: " ", folder: "/f" })).toEqual({ sessionId: "s", cwd: "/f" });
    expect(sessionCodec.deserialize({ cwd: "/w" })).toBeNull();
    for (const bad of [null, undefined, "s", 1, [], { sessionId: 5 }, { sessionId: "  " }]) expect(sessionCodec.deserialize(bad)).toBeNull();
    expect(sessionCodec.serialize({ sessionId: "s", extra: 1 })).toEqual({ sessionId: "s" });
    expect(sessionCodec.getDisplayId({ session_id: "x" })).toBe("x");
    expect(sessionCodec.getDisplayId(null)).toBeNull();
  });
});

describe("models", () => {
  it("direct by default, Bedrock when the Deployment says so", async () => {
    // claude_local 2026.916.1's lists and default.
    expect(DIRECT_MODELS).toHaveLength(11);
    expect(DIRECT_MODELS[0]).toEqual({ id: "claude-opus-4-8", label: "Claude Opus 4.8" });
    expect(DIRECT_MODELS.map((m) => m.id)).toContain(DEFAULT_MODEL);
    expect(DIRECT_MODELS.map((m) => m.id)).toContain("claude-sonnet-4-6");
    expect(BEDROCK_MODELS).toHaveLength(6);
    expect(BEDROCK_MODELS[0]).toEqual({ id: "us.anthropic.claude-opus-4-8-v1", label: "Bedrock Opus 4.8" });
    expect(usesBedrock({})).toBe(false);
    expect(usesBedrock({ CLAUDE_CODE_USE_BEDROCK: "true" })).toBe(true);
    expect(usesBedrock({ CLAUDE_CODE_USE_BEDROCK: "1" })).toBe(true);
    expect(usesBedrock({ ANTHROPIC_BEDROCK_BASE_URL: " " })).toBe(false);
    expect(usesBedrock({ ANTHROPIC_BEDROCK_BASE_URL: "https://b" })).toBe(true);
    expect(models.length).toBeGreaterThan(0);
    const saved = process.env.CLAUDE_CODE_USE_BEDROCK;
    process.env.CLAUDE_CODE_USE_BEDROCK = "1";
    try {
      expect((await listModels()).map((m) => m.id)).toEqual(BEDROCK_MODELS.map((m) => m.id));
    } finally {
      if (saved === undefined) delete process.env.CLAUDE_CODE_USE_BEDROCK;
      else process.env.CLAUDE_CODE_USE_BEDROCK = saved;
    }
  });
});

describe("models from the API", () => {
  const saved = {};
  let mock;
  const setEnv = (vars) => {
    for (const [k, v] of Object.entries(vars)) {
      if (!(k in saved)) saved[k] = process.env[k];
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  };
  afterEach(async () => {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
      delete saved[k];
    }
    resetModelsCache();
    await mock?.close();
    mock = undefined;
  });

  it("no key on the host: the static list, nothing asked", async () => {
    mock = await startMockAnthropic();
    setEnv({ ANTHROPIC_API_KEY: undefined, ANTHROPIC_BASE_URL: mock.url, CLAUDE_CODE_USE_BEDROCK: undefined, ANTHROPIC_BEDROCK_BASE_URL: undefined });
    expect(await listModels()).toEqual(DIRECT_MODELS);
    expect(mock.requests()).toEqual([]);
  });

  it("with a key: the API's models first, then the static ones; cached for a minute, refreshModels asks again", async () => {
    mock = await startMockAnthropic();
    setEnv({ ANTHROPIC_API_KEY: "sk-models-test", ANTHROPIC_BASE_URL: mock.url, CLAUDE_CODE_USE_BEDROCK: undefined, ANTHROPIC_BEDROCK_BASE_URL: undefined });
    const list = await listModels();
    expect(list.slice(0, 2)).toEqual([
      { id: "claude-mock-9", label: "Claude Mock 9" },
      { id: "claude-sonnet-4-6", label: "Claude Sonnet 4.6 (API)" },
    ]);
    expect(list).toHaveLength(2 + DIRECT_MODELS.length - 1);
    expect(new Set(list.map((m) => m.id)).size).toBe(list.length);
    const asked = () => mock.requests().filter((r) => r.method === "GET" && r.path.startsWith("/v1/models"));
    expect(asked()).toHaveLength(1);
    expect(asked()[0].headers["anthropic-version"]).toBe("2023-06-01");
    expect(await listModels()).toEqual(list);
    expect(asked()).toHaveLength(1);
    expect(await refreshModels()).toEqual(list);
    expect(asked()).toHaveLength(2);
  });

  it("an API that fails or cannot be reached: the static list", async () => {
    setEnv({ ANTHROPIC_API_KEY: "sk-models-test", ANTHROPIC_BASE_URL: "http://127.0.0.1:9", CLAUDE_CODE_USE_BEDROCK: undefined, ANTHROPIC_BEDROCK_BASE_URL: undefined });
    expect(await refreshModels()).toEqual(DIRECT_MODELS);
  });
});

describe("config schema and doc", () => {
  const { fields } = getConfigSchema();
  it("has the original's fields, order, defaults and options", () => {
    expect(fields.map((f) => f.key)).toEqual([
      "maxTurnsPerRun", "serviceAccountName", "namespace", "image", "imagePullPolicy", "kubeconfig", "ttlSecondsAfterFinished",
      "retainJobs", "reattachOrphanedJobs", "resources.requests.cpu", "resources.requests.memory", "resources.limits.cpu",
      "resources.limits.memory", "nodeSelector", "tolerations", "labels", "enableRtk", "rtkMaxOutputBytes",
      // Ours, after the original's.
      "mcpServers", "strictMcpConfig", "environmentProbe",
    ]);
    const by = Object.fromEntries(fields.map((f) => [f.key, f]));
    expect(by.maxTurnsPerRun.default).toBe(1000);
    expect(by.reattachOrphanedJobs.default).toBe(true);
    expect(by.enableRtk.default).toBe(false);
    expect(by.rtkMaxOutputBytes.default).toBe(50000);
    expect(by.imagePullPolicy.options).toEqual(["IfNotPresent", "Always", "Never"].map((v) => ({ value: v, label: v })));
    for (const k of ["model", "effort", "instructionsFilePath", "timeoutSec", "graceSec", "dangerouslySkipPermissions"]) {
      expect(by[k]).toBeUndefined();
    }
    // A copy each time: the host may mutate it.
    getConfigSchema().fields[0].label = "changed";
    expect(getConfigSchema().fields[0].label).not.toBe("changed");
  });

  it("the doc covers every key the code reads and every schema field", () => {
    expect(agentConfigurationDoc.startsWith("# claude_k8s agent configuration")).toBe(true);
    const codeKeys = ["timeoutSec", "graceSec", "retainJobs", "kubeconfig", "namespace", "reattachOrphanedJobs", "instructionsFilePath",
      "model", "effort", "maxTurnsPerRun", "dangerouslySkipPermissions", "extraArgs", "ttlSecondsAfterFinished", "nodeSelector",
      "tolerations", "labels", "enableRtk", "rtkMaxOutputBytes", "cwd", "promptTemplate", "bootstrapPromptTemplate", "env",
      "resources.requests.cpu", "resources.requests.memory", "resources.limits.cpu", "resources.limits.memory", "imagePullPolicy",
      "serviceAccountName", "image", "secretRef", "automountServiceAccountToken", "inheritServerSecrets", "withholdEnv", "runtimeClassName",
      "readOnlyRootFilesystem", "egressPolicy", "egressAllowCidrs", "egressAllowPorts"];
    for (const k of [...codeKeys, ...fields.map((f) => f.key)]) expect(agentConfigurationDoc, k).toContain(`\`${k}\``);
  });
});

describe("CLI formatter", () => {
  it("formats the stream-json the CLI prints", () => {
    process.env.NO_COLOR = "1";
    expect(formatClaudeStreamLine('{"type":"system","subtype":"init","model":"m","session_id":"s"}')).toContain("Claude initialized (model: m, session: s)");
    expect(formatClaudeStreamLine('{"type":"assistant","message":{"content":[{"type":"text","text":"hi"}]}}')).toContain("assistant: hi");
    expect(formatClaudeStreamLine('{"type":"assistant","message":{"content":[{"type":"tool_use","name":"Bash","input":{"command":"ls"}}]}}')).toContain('tool_call: Bash {"command":"ls"}');
    expect(formatClaudeStreamLine('{"type":"user","message":{"content":[{"type":"tool_result","content":[{"type":"text","text":"out"}],"is_error":true}]}}')).toContain("tool_error: out");
    const r = formatClaudeStreamLine('{"type":"result","subtype":"success","result":"done","usage":{"input_tokens":1,"output_tokens":2},"total_cost_usd":0.5}');
    expect(r).toContain("tokens in=1 out=2 cached=0 cost=$0.500000");
    expect(r).toContain("done");
    expect(formatClaudeStreamLine("not json")).toBe("not json");
    expect(formatClaudeStreamLine("   ")).toBeNull();
    expect(formatClaudeStreamLine('{"type":"assistant","message":{"content":[]}}')).toBeNull();
  });
});

describe("skills (listSkills / syncSkills through the Rust core)", () => {
  it("reports configured, available and missing skills as the original did", async () => {
    const { listSkills, syncSkills } = await import("../server.js");
    const config = {
      paperclipRuntimeSkills: [
        { key: "paperclip", runtimeName: "paperclip", source: "/skills/paperclip", required: true, requiredReason: "core" },
        { key: "extra", source: "/skills/extra" },
      ],
    };
    const ctx = { agentId: "a", companyId: "c", adapterType: "claude_k8s", config };
    const listed = await listSkills(ctx);
    expect(listed).toMatchObject({ adapterType: "claude_k8s", supported: true, mode: "ephemeral", desiredSkills: ["paperclip"] });
    expect(listed.entries.map((e) => [e.key, e.state, e.origin])).toEqual([
      ["extra", "available", "company_managed"],
      ["paperclip", "configured", "paperclip_required"],
    ]);
    const synced = await syncSkills(ctx, ["extra", "ghost"]);
    expect(synced.desiredSkills).toEqual(["paperclip", "extra", "ghost"]);
    expect(synced.entries.find((e) => e.key === "ghost")).toMatchObject({ state: "missing", origin: "external_unknown" });
    expect(synced.warnings).toEqual(['Desired skill "ghost" is not available from the Paperclip skills directory.']);
    // Garbage in: still a snapshot, never a throw.
    await expect(listSkills(null)).resolves.toMatchObject({ entries: [] });
  });
});
