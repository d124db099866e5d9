// Inside the real Paperclip host (@paperclipai/server, installed by
// scripts/install-paperclip-host): the package installed through the host's
// own API, then heartbeats run by the host through it to the local cluster.
// The host runs as uid 1000 (its embedded PostgreSQL refuses root), on
// loopback, in local_trusted mode. It sees what a Deployment's pod sees:
// HOSTNAME names a pod object in the cluster (the adapter inherits its image,
// env, secrets and PVC from it), the PVC is at /paperclip (this suite runs in
// scripts/test's mount namespace) and PAPERCLIP_HOME is on it, so the prompt
// bundle and Claude's sessions are shared with the Job pods as in production.
import { execFileSync, spawn } from "node:child_process";
import { chownSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { NS, SELF_POD, cluster, ensureSelfPod, jobsOf, mockUrl } from "./harness.js";

const root = path.resolve(import.meta.dirname, "../..");
let host;
let api;
const home = mkdtempSync(path.join(os.tmpdir(), "ck8s-host-"));
// PAPERCLIP_HOME on the PVC, as in a Deployment.
const paperclipHome = `/paperclip/host-${process.pid}`;

async function json(method, url, body) {
  const res = await fetch(`${api}${url}`, {
    method,
    headers: { "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} ${url}: ${res.status} ${text.slice(0, 300)}`);
  return text ? JSON.parse(text) : null;
}

async function waitForRun(runId, timeoutMs = 120_000) {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const run = await json("GET", `/heartbeat-runs/${runId}`);
    if (["succeeded", "failed", "cancelled", "timed_out"].includes(run.status)) return run;
    if (Date.now() > until) throw new Error(`run ${runId} still ${run.status}`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

beforeAll(async () => {
  const [node, entry] = execFileSync("bash", [path.join(root, "scripts/install-paperclip-host")], { encoding: "utf8" }).trim().split("\n").slice(-2);
  chownSync(home, 1000, 1000);
  mkdirSync(paperclipHome, { recursive: true });
  chownSync(paperclipHome, 1000, 1000);
  ensureSelfPod();
  const port = 20000 + Math.floor(Math.random() * 20000);
  api = `http://127.0.0.1:${port}/api`;
  host = spawn("setpriv", ["--reuid=1000", "--regid=1000", "--clear-groups", node, entry], {
    env: {
      PATH: "/usr/bin:/bin",
      HOME: home,
      PAPERCLIP_HOME: paperclipHome,
      PORT: String(port),
      HOST: "127.0.0.1",
      HOSTNAME: SELF_POD,
      PAPERCLIP_NAMESPACE: NS,
    },
    stdio: "ignore",
    detached: true,
  });
  const until = Date.now() + 180_000;
  for (;;) {
    try {
      const res = await fetch(`${api}/health`);
      if (res.ok) break;
    } catch {
      /* not up yet */
    }
    if (Date.now() > until) throw new Error("the Paperclip host did not start");
    await new Promise((r) => setTimeout(r, 500));
  }
}, 300_000);

afterAll(() => {
  if (host?.pid) {
    try {
      process.kill(-host.pid, "SIGTERM");
    } catch {
      /* gone */
    }
  }
  rmSync(home, { recursive: true, force: true });
  rmSync(paperclipHome, { recursive: true, force: true });
});

describe("the real Paperclip host", () => {
  let companyId;
  let agentId;
  let runLog;

  let parserSource;

  it("installs the package through POST /api/adapters/install and lists it as external and loaded", async () => {
    const installed = await json("POST", "/adapters/install", { packageName: root, isLocalPath: true });
    expect(installed).toMatchObject({ type: "claude_k8s", requiresRestart: false });
    const list = await json("GET", "/adapters");
    const ours = (Array.isArray(list) ? list : list.adapters).find((a) => a.type === "claude_k8s");
    expect(ours).toMatchObject({
      source: "external",
      loaded: true,
      modelsCount: 6,
      capabilities: { supportsInstructionsBundle: true, supportsSkills: true, supportsLocalAgentJwt: true, requiresMaterializedRuntimeSkills: false },
    });
    const schema = await json("GET", "/adapters/claude_k8s/config-schema");
    expect(schema.fields[0].key).toBe("maxTurnsPerRun");
    parserSource = await (await fetch(`${api}/adapters/claude_k8s/ui-parser.js`)).text();
    expect(parserSource).toContain("module.exports = { parseStdoutLine");
  });

  it("runs heartbeats in pod mode: succeeded, transcript, usage, cost and session recorded; the next one resumes the session in a new pod", async () => {
    const text = `Hi from the host ${Date.now()}`;
    companyId = (await json("POST", "/companies", { name: "claude-k8s e2e" })).id;
    const agent = await json("POST", `/companies/${companyId}/agents`, {
      name: "K8s Agent",
      role: "engineer",
      adapterType: "claude_k8s",
      // No image: in pod mode the Job inherits the host pod's (and its PVC, env and secrets).
      adapterConfig: {
        kubeconfig: cluster.KUBECONFIG,
        namespace: NS,
        model: "claude-sonnet-4-6",
        env: { ANTHROPIC_BASE_URL: `${mockUrl}/s/plain/text=${encodeURIComponent(text)}`, ANTHROPIC_API_KEY: "sk-mock", DISABLE_TELEMETRY: "1" },
      },
    });
    agentId = agent.id;
    const first = await waitForRun((await json("POST", `/agents/${agentId}/heartbeat/invoke`, {})).id);
    expect(first).toMatchObject({ status: "succeeded", exitCode: 0, errorCode: null });
    expect(first.usageJson).toMatchObject({ provider: "anthropic", model: "claude-sonnet-4-6" });
    expect(first.usageJson.costUsd).toBeGreaterThan(0);
    expect(first.sessionIdAfter).toMatch(/^[0-9a-f-]{36}$/);
    const log = await json("GET", `/heartbeat-runs/${first.id}/log`);
    expect(log.content).toContain(text);
    expect(log.content).toContain("[paperclip] Created K8s Job: ");
    runLog = log.content;

    // The host hands the saved session to the next heartbeat; the session's
    // files are on the PVC, so the new pod's CLI resumes it: its request to
    // the API carries the first answer.
    const second = await waitForRun((await json("POST", `/agents/${agentId}/heartbeat/invoke`, {})).id);
    expect(second.sessionIdBefore).toBe(first.sessionIdAfter);
    expect(second).toMatchObject({ status: "succeeded", exitCode: 0, errorCode: null });
    const requests = await (await fetch(`${mockUrl}/_requests`)).json();
    const ours = requests.filter((r) => r.path.includes(encodeURIComponent(text)) && r.body?.messages && !r.path.includes("count_tokens"));
    const resumed = ours.at(-1).body.messages;
    expect(JSON.stringify(resumed.filter((m) => m.role === "assistant"))).toContain(text);
    expect(jobsOf(agentId)).toEqual([]);
  });

  it("the UI parser served by the host, in its Web Worker sandbox, turns the run's transcript into entries", () => {
    const exports = {};
    const module = { exports };
    // The form the host's worker uses (ui-dist: new Function with shadowed self/globalThis).
    new Function("exports", "module", "self", "globalThis", `"use strict";\n{\n${parserSource}\n}`)(exports, module, undefined, undefined);
    const parser = Object.keys(module.exports).length ? module.exports : exports;
    const stdout = runLog
      .split("\n")
      .filter(Boolean)
      .map((l) => JSON.parse(l))
      .filter((e) => e.stream === "stdout")
      .map((e) => e.chunk)
      .join("");
    const entries = stdout
      .split("\n")
      .filter(Boolean)
      .flatMap((line) => parser.parseStdoutLine(line, "2026-12-02T00:00:00.000Z"));
    const kinds = entries.map((e) => e.kind);
    expect(kinds[0]).toBe("system"); // [paperclip] lines
    expect(entries.find((e) => e.kind === "init")).toMatchObject({ model: "claude-sonnet-4-6" });
    expect(entries.find((e) => e.kind === "assistant")?.text).toMatch(/^Hi from the host \d+$/);
    expect(entries.filter((e) => e.kind === "result")).toHaveLength(1);
    expect(entries.find((e) => e.kind === "result")).toMatchObject({ isError: false, subtype: "success" });
  });

  it("a run cancelled from the host's API: the adapter is told through ctx.signal, the Job is deleted, the run recorded cancelled", async () => {
    const agent = await json("POST", `/companies/${companyId}/agents`, {
      name: "Cancelled Agent",
      role: "engineer",
      adapterType: "claude_k8s",
      adapterConfig: {
        kubeconfig: cluster.KUBECONFIG,
        namespace: NS,
        env: { ANTHROPIC_BASE_URL: `${mockUrl}/s/silence/seconds=120`, ANTHROPIC_API_KEY: "sk-mock" },
      },
    });
    const invoked = await json("POST", `/agents/${agent.id}/heartbeat/invoke`, {});
    await expect.poll(() => jobsOf(agent.id).length, { timeout: 60_000, interval: 300 }).toBe(1);
    await json("POST", `/heartbeat-runs/${invoked.id}/cancel`, {});
    const run = await waitForRun(invoked.id, 60_000);
    expect(run.status).toBe("cancelled");
    // The pod would stay silent for 120 s: only the adapter's cancellation removes its Job this soon.
    await expect.poll(() => jobsOf(agent.id).length, { timeout: 30_000, interval: 300 }).toBe(0);
  });

  it("an agent whose API calls fail is recorded failed with Claude's message", async () => {
    const agent = await json("POST", `/companies/${companyId}/agents`, {
      name: "Failing Agent",
      role: "engineer",
      adapterType: "claude_k8s",
      adapterConfig: {
        kubeconfig: cluster.KUBECONFIG,
        namespace: NS,
        image: "claude-k8s/local:dev",
        env: { ANTHROPIC_BASE_URL: `${mockUrl}/s/status/code=401`, ANTHROPIC_API_KEY: "sk-mock", CLAUDE_CODE_MAX_RETRIES: "0" },
      },
    });
    const run = await waitForRun((await json("POST", `/agents/${agent.id}/heartbeat/invoke`, {})).id);
    expect(run.status).toBe("failed");
    expect(run.error).toMatch(/Claude run failed/);
  });
});
