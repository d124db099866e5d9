// Inside the real Paperclip host (@paperclipai/server, installed by
// scripts/install-paperclip-host): the package installed through the host's
// own API, then heartbeats run by the host through it to the local cluster.
// The host runs as uid 1000 (its embedded PostgreSQL refuses root), on
// loopback, in local_trusted mode, with a PAPERCLIP_HOME of its own.
import { execFileSync, spawn } from "node:child_process";
import { chownSync, mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { NS, cluster, jobsOf, mockUrl } from "./harness.js";

const root = path.resolve(import.meta.dirname, "../..");
let host;
let api;
const home = mkdtempSync(path.join(os.tmpdir(), "ck8s-host-"));

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
  const port = 20000 + Math.floor(Math.random() * 20000);
  api = `http://127.0.0.1:${port}/api`;
  host = spawn("setpriv", ["--reuid=1000", "--regid=1000", "--clear-groups", node, entry], {
    env: { PATH: "/usr/bin:/bin", HOME: home, PAPERCLIP_HOME: path.join(home, ".paperclip"), PORT: String(port), HOST: "127.0.0.1" },
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
});

describe("the real Paperclip host", () => {
  let companyId;
  let agentId;

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
    const parser = await (await fetch(`${api}/adapters/claude_k8s/ui-parser.js`)).text();
    expect(parser).toContain("module.exports = { parseStdoutLine");
  });

  it("runs a heartbeat: succeeded, transcript in the run log, usage, cost and session recorded; the next one resumes", async () => {
    companyId = (await json("POST", "/companies", { name: "claude-k8s e2e" })).id;
    const agent = await json("POST", `/companies/${companyId}/agents`, {
      name: "K8s Agent",
      role: "engineer",
      adapterType: "claude_k8s",
      adapterConfig: {
        kubeconfig: cluster.KUBECONFIG,
        namespace: NS,
        image: "claude-k8s/local:dev",
        model: "claude-sonnet-4-6",
        env: { ANTHROPIC_BASE_URL: `${mockUrl}/s/plain/text=Hi%20from%20the%20host`, ANTHROPIC_API_KEY: "sk-mock", DISABLE_TELEMETRY: "1" },
      },
    });
    agentId = agent.id;
    const first = await waitForRun((await json("POST", `/agents/${agentId}/heartbeat/invoke`, {})).id);
    expect(first).toMatchObject({ status: "succeeded", exitCode: 0, errorCode: null });
    expect(first.usageJson).toMatchObject({ provider: "anthropic", model: "claude-sonnet-4-6" });
    expect(first.usageJson.costUsd).toBeGreaterThan(0);
    expect(first.sessionIdAfter).toMatch(/^[0-9a-f-]{36}$/);
    const log = await json("GET", `/heartbeat-runs/${first.id}/log`);
    expect(log.content).toContain("Hi from the host");
    expect(log.content).toContain("[paperclip] Created K8s Job: ");

    // The host hands the saved session to the next heartbeat. This host runs
    // off-cluster (no PVC shared with the pods, so HOME=/paperclip does not
    // persist): the CLI cannot find the session, and the run says so with
    // session_unavailable so that the host clears it.
    const second = await waitForRun((await json("POST", `/agents/${agentId}/heartbeat/invoke`, {})).id);
    expect(second.sessionIdBefore).toBe(first.sessionIdAfter);
    expect(second.errorCode).toBe("session_unavailable");
    expect(jobsOf(agentId)).toEqual([]);
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
