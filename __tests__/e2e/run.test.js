// execute() end to end on the local cluster: the real Claude Code CLI in a
// Job pod, against the mock Anthropic API, as the adapter's RBAC identity.
import { beforeAll, describe, expect, it } from "vitest";
import { NS, getJson, inPaperclipPod, jobsOf, leftovers, makeCtx, nodeServicesHost, run } from "./harness.js";
import { startMockMcp } from "../support/mock-mcp.mjs";

inPaperclipPod(beforeAll);

describe("a heartbeat on the local cluster", () => {
  it("plain answer: Job created, the real CLI ran, transcript streamed, result mapped, Job cleaned up", async () => {
    const ctx = makeCtx({
      scenario: "plain/text=Hello%20from%20the%20pod.",
      authToken: "agent-token-secret-7f3a",
      env: { ANTHROPIC_AUTH_TOKEN_UNUSED: "sk-config-secret-91c2" },
    });
    const r = await run(ctx);
    expect(r.result).toMatchObject({
      exitCode: 0,
      signal: null,
      timedOut: false,
      provider: "anthropic",
      billingType: "api",
      model: "claude-sonnet-4-6",
      summary: "Hello from the pod.",
    });
    expect(r.result.errorCode).toBeUndefined();
    expect(r.result.sessionId).toMatch(/^[0-9a-f-]{36}$/);
    expect(r.result.sessionParams).toEqual({ sessionId: r.result.sessionId });
    expect(r.result.usage.outputTokens).toBeGreaterThan(0);
    expect(r.result.costUsd).toBeGreaterThan(0);

    // Callbacks: meta once, before any transcript line; onSpawn never (there is no
    // local process, and a pid of Paperclip's own would let a host that cancels by pid kill itself).
    expect(r.meta).toHaveLength(1);
    expect(r.meta[0].command).toMatch(/^kubectl job\/ac-/);
    expect(r.meta[0].commandArgs.slice(0, 5)).toEqual(["--print", "-", "--output-format", "stream-json", "--verbose"]);
    // Secrets (the Deployment's API key, config.env values, the agent token) never reach onMeta or the logs.
    for (const secret of ["sk-test-not-a-real-key", "sk-config-secret-91c2", "agent-token-secret-7f3a"]) {
      expect(JSON.stringify(r.meta)).not.toContain(secret);
      expect(r.stdout + r.stderr).not.toContain(secret);
    }
    expect(r.spawns).toEqual([]);
    expect(r.events.findIndex((e) => e[0] === "meta")).toBeLessThan(r.events.findIndex((e) => e[0] === "log" && e[2].startsWith("{")));

    // The transcript: the CLI's own stream-json lines, each exactly once.
    const json = r.lines.filter((l) => l.startsWith("{")).map((l) => JSON.parse(l));
    expect(json[0]).toMatchObject({ type: "system", subtype: "init", session_id: r.result.sessionId });
    expect(json.filter((e) => e.type === "result")).toHaveLength(1);
    expect(json.at(-1).type).toBe("result");
    expect(r.stdout).toContain("[paperclip] Created K8s Job: ");

    // Cleanup: the Job is gone (or going), no pod or Secret of this run remains long.
    const jobs = jobsOf(ctx.agent.id);
    expect(jobs).toEqual([]);
    await expect.poll(() => leftovers(ctx.runId).pods.length, { timeout: 30_000 }).toBe(0);
  });

  it("a second heartbeat resumes the session in a new pod (HOME on the shared PVC)", async () => {
    const agentId = `agent-resume-${process.pid}`;
    const first = await run(makeCtx({ agentId, scenario: "plain/text=first" }));
    expect(first.result.exitCode).toBe(0);
    const sessionId = first.result.sessionId;
    const second = await run(
      makeCtx({ agentId, scenario: "plain/text=second", runtime: { sessionId, sessionParams: { sessionId } } }),
    );
    expect(second.meta[0].commandArgs).toEqual(expect.arrayContaining(["--resume", sessionId]));
    expect(second.result).toMatchObject({ exitCode: 0, sessionId, summary: "second" });
  });

  it("MCP: the host's runtime server and the agent's own reach the CLI in the pod through the Secret; a tool call arrives with its token", async () => {
    const token = "rt-token-secret-5b1e";
    const mcp = await startMockMcp({ token, host: nodeServicesHost });
    try {
      const input = encodeURIComponent(JSON.stringify({ text: "hi from the pod" }));
      const ctx = makeCtx({
        scenario: `mcp/tool=echo/input=${input}`,
        // The mock API cannot search deferred tools: the CLI lists MCP tools up front.
        env: { ENABLE_TOOL_SEARCH: "false" },
        config: { retainJobs: true, mcpServers: { "agent-own": { type: "http", url: `${mcp.url}/lookup`, headers: { Authorization: `Bearer ${token}` } } } },
      });
      // As host 2026.916.1 passes them: an object with getServers(), not data.
      ctx.runtimeMcp = { getServers: () => [{ name: "Paperclip test", url: `${mcp.url}/echo`, token, connectionId: "conn-test-1" }] };
      const r = await run(ctx);
      expect(r.result).toMatchObject({ exitCode: 0 });
      expect(r.result.summary).toMatch(/^The tool said: echo: hi from the pod/);
      expect(mcp.calls()).toEqual([{ server: "echo", tool: "echo", arguments: { text: "hi from the pod" }, authorization: `Bearer ${token}` }]);
      const init = r.lines.filter((l) => l.startsWith("{")).map((l) => JSON.parse(l)).find((e) => e.subtype === "init");
      expect(init.mcp_servers.map((s) => [s.name, s.status]).sort()).toEqual([["Paperclip test", "connected"], ["agent-own", "connected"]]);
      expect(r.meta[0].commandArgs).toEqual(expect.arrayContaining(["--mcp-config", "/tmp/prompt-secret/mcp-config.json"]));
      expect(r.meta[0].commandArgs).not.toContain("--strict-mcp-config");
      // The token: in the Secret only — not in onMeta, the logs or the Job.
      const name = r.meta[0].command.replace("kubectl job/", "");
      const job = getJson(["-n", NS, "get", "job", name]);
      for (const where of [JSON.stringify(r.meta), r.stdout + r.stderr, JSON.stringify(job)]) expect(where).not.toContain(token);
      expect(job.spec.template.spec.volumes.find((v) => v.name === "prompt-secret").secret.secretName).toBe(`${name}-prompt`);
      await expect.poll(() => getJson(["-n", NS, "get", "secret", `${name}-prompt`]), { timeout: 30_000 }).toBeNull();
    } finally {
      await mcp.close();
    }
  });

  it("the Job looks like the original's: labels, inherited PVC, envFrom expanded key by key, security context", async () => {
    // The host's wake payload, keys in the host's order (not sorted: "reason" before "comments").
    const wake = { reason: "comment_added", comments: [{ id: "c1", body: "a comment only the Secret holds 7f3a", authorAgentId: null }], issueId: "i1" };
    const ctx = makeCtx({ scenario: "plain", config: { retainJobs: true }, context: { wakeReason: "comment_added", paperclipWake: wake }, authToken: "run-token-only-in-the-secret-91c2" });
    let secret = null;
    const r = await run(ctx, {
      onLog: async () => {
        if (secret) return;
        const job = jobsOf(ctx.agent.id)[0];
        if (job) secret = getJson(["-n", NS, "get", "secret", `${job.metadata.name}-prompt`]);
      },
    });
    expect(r.result.exitCode).toBe(0);
    const name = r.meta[0].command.replace("kubectl job/", "");
    const job = getJson(["-n", NS, "get", "job", name]);
    // The wake payload (prompt text) and the token are in the run's Secret, read by reference.
    const podEnv = job.spec.template.spec.containers[0].env;
    for (const n of ["PAPERCLIP_WAKE_PAYLOAD_JSON", "PAPERCLIP_API_KEY"]) {
      expect(podEnv.find((e) => e.name === n)).toEqual({ name: n, valueFrom: { secretKeyRef: { name: `${name}-prompt`, key: n } } });
    }
    const text = JSON.stringify(job);
    for (const v of ["a comment only the Secret holds 7f3a", "run-token-only-in-the-secret-91c2", "Continue your Paperclip work"]) expect(text).not.toContain(v);
    // The host's JSON reaches the pod and onMeta as it sent it: same keys, same order.
    expect(secret, "the run's Secret, read while the run was on").not.toBeNull();
    expect(Buffer.from(secret.data.PAPERCLIP_WAKE_PAYLOAD_JSON, "base64").toString()).toBe(JSON.stringify(wake));
    expect(Buffer.from(secret.data["prompt.txt"], "base64").toString()).toContain("Continue your Paperclip work");
    expect(job.spec.template.spec.automountServiceAccountToken).toBe(false);
    expect(JSON.stringify(r.meta[0].context)).toBe(JSON.stringify(ctx.context));
    expect(job.metadata.labels).toMatchObject({
      "app.kubernetes.io/managed-by": "paperclip",
      "paperclip.io/agent-id": ctx.agent.id,
      "paperclip.io/run-id": ctx.runId,
      "paperclip.io/adapter-type": "claude_k8s",
    });
    const spec = job.spec.template.spec;
    expect(spec.volumes).toEqual(expect.arrayContaining([{ name: "data", persistentVolumeClaim: { claimName: "paperclip-data" } }]));
    expect(spec.containers[0].envFrom).toBeUndefined();
    expect(spec.containers[0].env.find((e) => e.name === "ANTHROPIC_API_KEY")).toEqual({
      name: "ANTHROPIC_API_KEY",
      valueFrom: { secretKeyRef: { name: "paperclip-secrets", key: "ANTHROPIC_API_KEY" } },
    });
    expect(spec.containers[0].env.find((e) => e.name === "HOME").value).toBe("/paperclip");
    expect(spec.securityContext.runAsUser).toBe(1000);
    expect(r.stdout).toContain(`Retaining job ${name} for debugging (retainJobs=true)`);
  });
});
