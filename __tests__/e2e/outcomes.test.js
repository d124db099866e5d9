// The rest of the error table (contract §1.6), each produced for real: the
// container OOM-killed mid-answer, a stalled empty answer, an unknown session
// to resume, a CLI that exits before any JSON, identities that lack a verb,
// and an orphan Job without a pod.
import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { NS, dropIdentity, fault, getJson, identityWithout, inPaperclipPod, jobsOf, kubectl, leftovers, makeCtx, realNode, run } from "./harness.js";

inPaperclipPod(beforeAll);

afterAll(() => {
  for (const u of ["tester-1", "tester-2"]) dropIdentity(u);
});

function killer(marker) {
  const seen = [];
  let fired = false;
  return async (_s, chunk) => {
    seen.push(chunk);
    if (!fired && chunk.includes(marker)) {
      fired = true;
      const pod = /\[paperclip\] Pod (\S+):/.exec(seen.join(""))[1];
      await fault("/faults/oom", { namespace: NS, pod, container: "claude" });
    }
  };
}

// Real OOM kills on the real node (cgroup v1 here): the memory limit is the
// container's, and the kernel kills the biggest process in it.
describe.runIf(realNode)("over the memory limit, for real", () => {
  const limits = (memory) => ({ resources: { requests: { cpu: "10m", memory: "64Mi" }, limits: { cpu: "2", memory } } });

  it("claude itself → exit 137, reason OOMKilled, in the result", async () => {
    const ctx = makeCtx({ scenario: "plain", config: limits("96Mi") });
    const r = await run(ctx);
    expect(r.result.exitCode).toBe(137);
    // Killed after its first line (claude_truncated) or before any (no code): the cause is named either way.
    expect(r.result.errorMessage).toMatch(/exit(ed with)? code 137.*OOMKilled/);
    expect(jobsOf(ctx.agent.id)).toEqual([]);
  });

  it("a child of claude (its Bash tool) → the tool is killed, claude answers, the run succeeds", async () => {
    const cmd = encodeURIComponent("head -c 600m /dev/zero | tail; echo tail-exit=$?");
    const ctx = makeCtx({ scenario: `tool/cmd=${cmd}`, config: { ...limits("400Mi"), retainJobs: true } });
    const r = await run(ctx);
    try {
      expect(r.result).toMatchObject({ exitCode: 0, summary: "The command ran." });
      expect(r.result.errorCode ?? null).toBeNull();
      const tool = r.lines.filter((l) => l.startsWith('{"type":"user"')).join("\n");
      expect(tool).toMatch(/Killed/);
      expect(tool).toContain("tail-exit=137");
      // What the adapter sees of it: cgroup v1 has no memory.oom.group, the
      // container's main process lived, and yet its reason is OOMKilled, exit 0.
      const [pod] = getJson(["-n", NS, "get", "pods", "-l", `paperclip.io/run-id=${ctx.runId}`]).items;
      expect(pod.status.containerStatuses[0].state.terminated).toMatchObject({ exitCode: 0, reason: "OOMKilled" });
      // …so the result stands, and carries the warning (issue 22): in the log and in resultJson.
      expect(r.result.resultJson.podOomKilled).toMatchObject({ reason: "OOMKilled", claudeExitCode: 0, memoryLimit: "400Mi" });
      expect(r.result.resultJson.podOomKilled.message).toMatch(/OOM-killed \(memory limit 400Mi\).*its result stands/);
      expect(r.stdout + r.stderr).toMatch(/Warning: a process in the pod was OOM-killed \(memory limit 400Mi\)/);
    } finally {
      kubectl(["-n", NS, "delete", "job", "-l", `paperclip.io/run-id=${ctx.runId}`, "--wait=false"], { allowFail: true });
    }
  });
});

describe("how a run can end", () => {
  // Killed at a chosen moment: the simulated node's hook (a real node cannot pick the moment).
  it.skipIf(realNode)("OOM-killed mid-answer → claude_truncated, cause names SIGKILL/OOMKilled", async () => {
    const ctx = makeCtx({ scenario: "stall/output=7/text=Half%20an%20answer" });
    const r = await run(ctx, { onLog: killer("Half an answer") });
    expect(r.result.errorCode).toBe("claude_truncated");
    expect(r.result.exitCode).toBe(137);
    expect(r.result.errorMessage).toBe(
      "Claude run was truncated mid-stream (model: claude-sonnet-4-6) — assistant produced content but no result event arrived; exit code 137, SIGKILL (commonly OOMKilled), signal 9, reason=OOMKilled",
    );
    expect(jobsOf(ctx.agent.id)).toEqual([]);
  });

  it.skipIf(realNode)("a process beside claude OOM-killed (OOMKilled, exit 0) → the turn's result stands, with a warning naming the memory limit", async () => {
    const ctx = makeCtx({ scenario: "slow/seconds=4/lines=4" });
    const seen = [];
    let fired = false;
    const r = await run(ctx, {
      onLog: async (_s, chunk) => {
        seen.push(chunk);
        if (!fired && chunk.includes("slow 1")) {
          fired = true;
          const pod = /\[paperclip\] Pod (\S+):/.exec(seen.join(""))[1];
          await fault("/faults/oom-beside", { namespace: NS, pod, container: "claude" });
        }
      },
    });
    expect(fired).toBe(true);
    expect(r.result.exitCode).toBe(0);
    expect(r.result.errorCode).toBeUndefined();
    expect(r.result.errorMessage).toBeUndefined();
    expect(r.result.resultJson.type).toBe("result");
    expect(r.result.resultJson.podOomKilled).toMatchObject({ reason: "OOMKilled", claudeExitCode: 0, memoryLimit: "8Gi" });
    expect(r.stderr).toContain("[paperclip] Warning: a process in the pod was OOM-killed (memory limit 8Gi); claude itself exited with code 0");
  });

  it.skipIf(realNode)("an answer that never produced output tokens, then killed → llm_api_error", async () => {
    const ctx = makeCtx({ scenario: "stall/output=0/text=x" });
    const r = await run(ctx, { onLog: killer('"stop_reason":null') });
    expect(r.result.errorCode).toBe("llm_api_error");
    expect(r.result.errorMessage).toMatch(/^LLM API returned an empty response \(stop_reason: null, output_tokens: 0\)/);
  });

  it("resuming a session the CLI does not know → session_unavailable, clearSession", async () => {
    const sessionId = randomUUID();
    const ctx = makeCtx({ runtime: { sessionId, sessionParams: { sessionId } } });
    const r = await run(ctx);
    expect(r.meta[0].commandArgs).toEqual(expect.arrayContaining(["--resume", sessionId]));
    expect(r.result.errorCode).toBe("session_unavailable");
    expect(r.result.clearSession).toBe(true);
    expect(r.result.errorMessage).toMatch(/^Claude run failed: .*No conversation found with session ID/i);
    expect(r.stdout).toContain("[paperclip] Claude session is unavailable; clearing for next run.");
  });

  it("a CLI that exits before printing JSON → no code, the first line quoted", async () => {
    const ctx = makeCtx({ config: { extraArgs: ["--no-such-flag"] } });
    const r = await run(ctx);
    expect(r.result.errorCode).toBeUndefined();
    expect(r.result.exitCode).not.toBe(0);
    expect(r.result.errorMessage).toMatch(/^Claude exited with code \d+: .*no-such-flag/);
  });

  it("no right to create Jobs → k8s_job_create_failed", async () => {
    const ctx = makeCtx();
    ctx.config.kubeconfig = identityWithout("tester-1", "jobs", "create");
    const r = await run(ctx);
    expect(r.result.errorCode).toBe("k8s_job_create_failed");
    expect(r.result.errorMessage).toMatch(/^Failed to create Kubernetes Job: .*forbidden/i);
  });

  it("a large prompt without the right to create Secrets → k8s_prompt_secret_create_failed; with it, the Secret is cleaned up", async () => {
    const big = `{{agent.name}} ${"p".repeat(300 * 1024)}`;
    const ctx = makeCtx({ config: { promptTemplate: big } });
    ctx.config.kubeconfig = identityWithout("tester-2", "secrets", "create");
    const r = await run(ctx);
    expect(r.result.errorCode).toBe("k8s_prompt_secret_create_failed");
    expect(r.result.errorMessage).toMatch(/^Failed to create prompt Secret: .*forbidden/i);
    expect(jobsOf(ctx.agent.id)).toEqual([]);

    const ok = makeCtx({ config: { promptTemplate: big } });
    const r2 = await run(ok);
    expect(r2.result.exitCode).toBe(0);
    expect(r2.result.summary).toBe("Hello from mock.");
    await expect.poll(() => leftovers(ok.runId).secrets.length, { timeout: 30_000 }).toBe(0);
  });

  it("an orphan Job that has no pod → k8s_pod_reattach_failed", async () => {
    const ctx = makeCtx();
    const name = `podless-${Date.now()}`;
    const labels = { "paperclip.io/agent-id": ctx.agent.id, "paperclip.io/adapter-type": "claude_k8s", "paperclip.io/run-id": "earlier", "paperclip.io/task-id": ctx.context.taskId };
    kubectl(["apply", "-f", "-"], {
      input: JSON.stringify({ apiVersion: "batch/v1", kind: "Job", metadata: { name, namespace: NS, labels },
        spec: { parallelism: 0, template: { metadata: { labels }, spec: { restartPolicy: "Never", containers: [{ name: "claude", image: "x", command: ["true"] }] } } } }),
    });
    const r = await run(ctx);
    expect(r.result).toMatchObject({ errorCode: "k8s_pod_reattach_failed", errorMessage: `Pod reattach failed: Reattach target Job ${name} has no pod` });
  });
});
