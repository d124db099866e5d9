// The run's error paths on the real cluster: each situation is produced for
// real (a mock-API scenario, a Kubernetes condition, a pre-existing Job, an
// external delete, a cancel from the host's API) and the result, the message
// and what is left behind are asserted.
import http from "node:http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { NS, RESTRICTED_CONTAINER, RESTRICTED_POD, cluster, inPaperclipPod, getJson, jobsOf, kubectl, leftovers, makeCtx, run } from "./harness.js";

const noRetry = { CLAUDE_CODE_MAX_RETRIES: "0" };

inPaperclipPod(beforeAll);

/** A Job of `agentId` that looks like one of ours, running `sleep` (an orphan of another run). */
function orphanJob({ agentId, runId, taskId, sessionId, name }) {
  const labels = {
    "paperclip.io/agent-id": agentId,
    "paperclip.io/adapter-type": "claude_k8s",
    "paperclip.io/run-id": runId,
    ...(taskId ? { "paperclip.io/task-id": taskId } : {}),
    ...(sessionId ? { "paperclip.io/session-id": sessionId } : {}),
  };
  kubectl(["apply", "-f", "-"], {
    input: JSON.stringify({
      apiVersion: "batch/v1",
      kind: "Job",
      metadata: { name, namespace: NS, labels },
      spec: {
        backoffLimit: 0,
        template: {
          metadata: { labels },
          spec: {
            restartPolicy: "Never",
            securityContext: RESTRICTED_POD,
            containers: [{ name: "claude", image: "x", command: ["sleep", "120"], securityContext: RESTRICTED_CONTAINER }],
          },
        },
      },
    }),
  });
  return name;
}

function deleteJob(name) {
  kubectl(["-n", NS, "delete", "job", name, "--wait=false"], { allowFail: true });
}

describe("agent failures", () => {
  it("HTTP 401 from the API: failed with Claude's message, nothing left behind", async () => {
    const ctx = makeCtx({
      scenario: "status/code=401",
      env: { ...noRetry, ANTHROPIC_API_KEY: "sk-config-secret-401x" },
      authToken: "agent-token-secret-401y",
    });
    const r = await run(ctx);
    expect(r.result.exitCode).not.toBe(0);
    expect(r.result.timedOut).toBe(false);
    expect(r.result.errorMessage).toMatch(/^Claude run failed: .*(401|auth|invalid)/i);
    // claude_local's code for it: a login problem, not worth a retry.
    expect(r.result.errorCode).toBe("claude_auth_required");
    expect(r.result.errorFamily).toBeUndefined();
    expect(r.result.retryNotBefore).toBeUndefined();
    // The key the API refused, the Deployment's and the agent token appear nowhere, failure or not.
    for (const secret of ["sk-config-secret-401x", "agent-token-secret-401y", "sk-test-not-a-real-key"]) {
      expect(JSON.stringify(r.result)).not.toContain(secret);
      expect(JSON.stringify(r.meta)).not.toContain(secret);
      expect(r.stdout + r.stderr).not.toContain(secret);
    }
    expect(jobsOf(ctx.agent.id)).toEqual([]);
  });

  // The CLI really receives these answers from the mock API, retries as it
  // does, then prints its failed result; the result tells the host what it may do.
  const isoAfter = (iso, t0, minMs, maxMs) => {
    expect(iso).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    const dt = Date.parse(iso) - t0;
    expect(dt).toBeGreaterThanOrEqual(minMs);
    expect(dt).toBeLessThanOrEqual(maxMs);
  };

  it.each([
    ["529 overloaded", "status/code=529"],
    ["500", "status/code=500"],
    ["a connection reset mid-answer", "cut"],
  ])("%s → claude_transient_upstream, transient_upstream, retryNotBefore, replay allowed", async (_, scenario) => {
    const t0 = Date.now();
    const r = await run(makeCtx({ scenario, env: noRetry }));
    expect(r.result).toMatchObject({
      exitCode: 1,
      errorCode: "claude_transient_upstream",
      errorFamily: "transient_upstream",
      // No model output at all: the host may run it again from the start.
      executionRecovery: { kind: "bootstrap", providerWorkStarted: false },
    });
    expect(r.result.errorMessage).toMatch(/^Claude run failed: .*API Error/);
    // No retry hint from a CLI that did not retry: the host's own 30 s step.
    isoAfter(r.result.retryNotBefore, t0, 29_000, Date.now() - t0 + 31_000);
    expect(r.result.resultJson).toMatchObject({ errorFamily: "transient_upstream", retryNotBefore: r.result.retryNotBefore });
  });

  it("429 with retry-after → provider_quota, retryNotBefore from the CLI's own back-off", async () => {
    const r = await run(makeCtx({ scenario: "status/code=429/retryAfter=4", env: { CLAUDE_CODE_MAX_RETRIES: "1" } }));
    const end = Date.now();
    expect(r.result).toMatchObject({ exitCode: 1, errorCode: "provider_quota", errorFamily: "provider_quota" });
    const retry = r.lines.map((l) => (l.startsWith("{") ? JSON.parse(l) : {})).find((e) => e.subtype === "api_retry");
    expect(retry).toMatchObject({ error_status: 429 });
    expect(retry.retry_delay_ms).toBeGreaterThanOrEqual(4000);
    // The CLI waited its back-off once; the next attempt is due no sooner than that after the end.
    isoAfter(r.result.retryNotBefore, end, retry.retry_delay_ms - 15_000, retry.retry_delay_ms + 1_000);
    expect(r.result.resultJson.providerQuotaRetryNotBefore).toBe(r.result.retryNotBefore);
  });

  it("a usage limit with a reset clock → provider_quota, retryNotBefore at that clock", async () => {
    const message = encodeURIComponent("Claude usage limit reached. Your limit will reset at 3pm (UTC).");
    const r = await run(makeCtx({ scenario: `status/code=429/message=${message}`, env: noRetry }));
    expect(r.result).toMatchObject({ errorCode: "provider_quota", errorFamily: "provider_quota" });
    const at = new Date(r.result.retryNotBefore);
    expect([at.getUTCHours(), at.getUTCMinutes(), at.getUTCSeconds()]).toEqual([15, 0, 0]);
    expect(at.getTime()).toBeGreaterThan(Date.now());
    expect(at.getTime() - Date.now()).toBeLessThanOrEqual(24 * 3600_000);
  });

  it("a policy refusal → claude_refusal, model_refusal, no retry", async () => {
    const r = await run(makeCtx({ scenario: "refusal" }));
    expect(r.result).toMatchObject({ errorCode: "claude_refusal", errorFamily: "model_refusal" });
    expect(r.result.retryNotBefore).toBeUndefined();
    expect(r.result.executionRecovery).toBeUndefined();
    expect(r.result.resultJson).toMatchObject({ stopReason: "refusal", errorFamily: "model_refusal" });
  });

  it("timeout: activeDeadlineSeconds kills a silent run → timeout", async () => {
    const ctx = makeCtx({ scenario: "silence/seconds=60", config: { timeoutSec: 3, graceSec: 20 } });
    const r = await run(ctx);
    expect(r.result).toMatchObject({ errorCode: "timeout", timedOut: true, errorMessage: "Timed out after 3s" });
    expect(jobsOf(ctx.agent.id)).toEqual([]);
  });

  it("a pod that cannot be scheduled → k8s_pod_schedule_failed with the scheduler's reason", async () => {
    const ctx = makeCtx({ config: { nodeSelector: "pool=does-not-exist" } });
    const r = await run(ctx);
    expect(r.result.errorCode).toBe("k8s_pod_schedule_failed");
    expect(r.result.errorMessage).toMatch(/^Pod scheduling failed: Pod unschedulable: 0\/1 nodes are available/);
    expect(jobsOf(ctx.agent.id)).toEqual([]);
  });

  it("invalid tolerations are reported before anything is created", async () => {
    const ctx = makeCtx({ config: { tolerations: "[{oops" } });
    const r = await run(ctx);
    expect(r.result.errorCode).toBe("k8s_config_invalid");
    expect(r.result.errorMessage).toMatch(/^invalid tolerations: not valid JSON/);
    expect(r.meta).toEqual([]);
    expect(jobsOf(ctx.agent.id)).toEqual([]);
  });
});

describe("the concurrency guard", () => {
  it("an orphan of another task blocks, and is left alone", async () => {
    const ctx = makeCtx();
    const name = orphanJob({ agentId: ctx.agent.id, runId: "older-run", taskId: "another-task", name: `orphan-${Date.now()}` });
    try {
      const r = await run(ctx);
      expect(r.result).toMatchObject({
        errorCode: "k8s_concurrent_run_blocked",
        errorMessage: `Concurrent run blocked: orphaned Job ${name} is running a different task`,
        exitCode: null,
      });
      expect(getJson(["-n", NS, "get", "job", name])).not.toBeNull();
    } finally {
      deleteJob(name);
    }
  });

  it("an orphan without a task → k8s_orphan_task_unknown; reattach disabled → blocked", async () => {
    const ctx = makeCtx();
    const name = orphanJob({ agentId: ctx.agent.id, runId: "older-run", name: `orphan-nt-${Date.now()}` });
    try {
      const r = await run(ctx);
      expect(r.result.errorCode).toBe("k8s_orphan_task_unknown");
      expect(r.result.errorMessage).toBe(`Concurrent run blocked: orphaned Job ${name} has unknown task context`);
      const r2 = await run({ ...ctx, runId: `${ctx.runId}-b`, config: { ...ctx.config, reattachOrphanedJobs: false } });
      expect(r2.result.errorMessage).toBe("Concurrent run blocked: orphaned Job(s) still running for this agent (reattach disabled)");
    } finally {
      deleteJob(name);
    }
  });

  it("same task, different session → k8s_orphan_session_mismatch; same run id still running → blocked", async () => {
    const ctx = makeCtx({ runtime: { sessionId: "sess-b" } });
    const name = orphanJob({ agentId: ctx.agent.id, runId: "older", taskId: ctx.context.taskId, sessionId: "sess-a", name: `orphan-s-${Date.now()}` });
    const mine = orphanJob({ agentId: `${ctx.agent.id}-x`, runId: ctx.runId, taskId: "t", name: `same-run-${Date.now()}` });
    try {
      const r = await run(ctx);
      expect(r.result.errorCode).toBe("k8s_orphan_session_mismatch");
      const r2 = await run({ ...makeCtx({ agentId: `${ctx.agent.id}-x` }), runId: ctx.runId });
      expect(r2.result).toMatchObject({
        errorCode: "k8s_concurrent_run_blocked",
        errorMessage: `Concurrent run blocked: Job ${mine} is still running for this agent`,
      });
    } finally {
      deleteJob(name);
      deleteJob(mine);
    }
  });

  it("list denied → k8s_concurrency_guard_unreachable (fails closed)", async () => {
    // tester-1 has no Role at all.
    const ctx = makeCtx();
    ctx.config.kubeconfig = `${cluster.CLUSTER_DIR}/tester-1.kubeconfig`;
    const r = await run(ctx);
    expect(r.result.errorCode).toBe("k8s_concurrency_guard_unreachable");
    expect(r.result.errorMessage).toMatch(/^Concurrency guard unreachable: .*forbidden/i);
  });

  it("reattach: a second execute for the same agent and task follows the running Job to its result", async () => {
    const first = makeCtx({ scenario: "slow/seconds=6/lines=6" });
    const p1 = run(first);
    // Wait until the first run's Job exists, then start another run of the same agent and task.
    await expect.poll(() => jobsOf(first.agent.id).length, { timeout: 30_000, interval: 200 }).toBe(1);
    const second = { ...first, runId: `${first.runId}-reattach` };
    const r2 = await run(second);
    const r1 = await p1;
    expect(r2.meta[0].commandNotes).toEqual(expect.arrayContaining([`Reattached from prior run: ${first.runId}`]));
    expect(r2.result).toMatchObject({ exitCode: 0, summary: expect.stringContaining("slow 6") });
    expect(r1.result.exitCode).toBe(0);
    expect(r2.lines.filter((l) => l.includes('"type":"result"'))).toHaveLength(1);
  });
});

describe("stopped from outside", () => {
  let server;
  let status = "running";
  const seen = [];
  beforeAll(async () => {
    server = http.createServer((req, res) => {
      seen.push({ url: req.url, auth: req.headers.authorization });
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify({ id: "x", status }));
    });
    await new Promise((r) => server.listen(0, "127.0.0.1", r));
  });
  afterAll(() => {
    delete process.env.PAPERCLIP_API_URL;
    server?.closeAllConnections();
    server?.close();
  });

  it("cancelled from the host's API → the Job is deleted, `cancelled` returned", async () => {
    process.env.PAPERCLIP_API_URL = `http://127.0.0.1:${server.address().port}`;
    status = "running";
    const ctx = makeCtx({ scenario: "silence/seconds=60", authToken: "agent-token-123" });
    const p = run(ctx, {
      onLog: async (_s, chunk) => {
        if (chunk.includes('"subtype":"init"')) status = "cancelled";
      },
    });
    const r = await p;
    delete process.env.PAPERCLIP_API_URL;
    expect(r.result).toMatchObject({ errorCode: "cancelled", errorMessage: "Run cancelled", exitCode: null, timedOut: false });
    expect(r.stdout).toContain("Run cancelled externally — deleting Job");
    expect(seen.some((s) => s.url === `/api/heartbeat-runs/${ctx.runId}` && s.auth === "Bearer agent-token-123")).toBe(true);
    expect(r.stdout + r.stderr).not.toContain("agent-token-123");
    expect(jobsOf(ctx.agent.id)).toEqual([]);
    await expect.poll(() => leftovers(ctx.runId).pods.length, { timeout: 60_000 }).toBe(0);
  });

  it("cancelled through ctx.signal (newer hosts) → the Job is deleted, `cancelled` returned", async () => {
    const ctx = makeCtx({ scenario: "silence/seconds=60" });
    const controller = new AbortController();
    let ready = 0;
    const r = await run(
      { ...ctx, signal: controller.signal, onCancellationReady: async () => void (ready += 1) },
      {
        onLog: async (_s, chunk) => {
          if (chunk.includes('"subtype":"init"')) controller.abort();
        },
      },
    );
    expect(ready).toBe(1);
    expect(r.result).toMatchObject({ errorCode: "cancelled", errorMessage: "Run cancelled", exitCode: null, timedOut: false });
    expect(r.stdout).toContain("Run cancelled by the host — deleting Job");
    expect(r.result.resultJson.executionCancellation).toMatchObject({ state: "acknowledged", proof: "k8s_job_deleted" });
    expect(jobsOf(ctx.agent.id)).toEqual([]);
    await expect.poll(() => leftovers(ctx.runId).pods.length, { timeout: 60_000 }).toBe(0);
  });

  it("cancelled while the pod is starting (the Job just created) → cancelled, the Job and its pod gone", async () => {
    const ctx = makeCtx({ scenario: "plain" });
    const controller = new AbortController();
    const r = await run(
      { ...ctx, signal: controller.signal },
      {
        onLog: async (_s, chunk) => {
          if (chunk.includes("Created K8s Job: ")) controller.abort();
        },
      },
    );
    expect(r.result).toMatchObject({ errorCode: "cancelled", errorMessage: "Run cancelled", exitCode: null });
    expect(r.result.resultJson.executionCancellation).toMatchObject({ state: "acknowledged", proof: "k8s_job_deleted" });
    expect(r.spawns).toEqual([]); // it never got as far as a running container
    expect(r.lines.some((l) => l.includes('"type":"result"'))).toBe(false);
    expect(jobsOf(ctx.agent.id)).toEqual([]);
    await expect.poll(() => leftovers(ctx.runId).pods.length, { timeout: 60_000 }).toBe(0);
  });

  it("the Job deleted by someone else → k8s_job_deleted_externally with the forensic message", async () => {
    const ctx = makeCtx({ scenario: "silence/seconds=60" });
    const r = await run(ctx, {
      onLog: async (_s, chunk) => {
        if (chunk.includes('"subtype":"init"')) {
          const [job] = jobsOf(ctx.agent.id);
          kubectl(["-n", NS, "delete", "job", job.metadata.name, "--wait=false"]);
        }
      },
    });
    expect(r.result.errorCode).toBe("k8s_job_deleted_externally");
    expect(r.result.errorMessage).toMatch(
      /^K8s Job was deleted externally before Claude could complete \[detected_via=job-watch-delete, job=ac-.*, ns=paperclip, .*stdout_nonempty_lines=\d+\]$/,
    );
  });
});
