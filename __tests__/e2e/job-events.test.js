// Kubernetes Events on the run's Job (issue 25): the outcome of every run, a
// pod refused, a stream resumed, lines lost — written through the real
// apiserver as events.k8s.io/v1 Events `regarding` the Job, read back here as
// an operator would (`kubectl get events`, `kubectl describe job`). Optional:
// with only the documented Role (no deploy/rbac-events.yaml) runs write none
// and nothing else changes. The log milestones are shown where the faults
// are made: logs.test.js.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { testEnvironment } from "../../server.js";
import { NS, cluster, dropIdentity, identityWithout, inPaperclipPod, jobEvents, jobNameOf, jobsOf, k8sMinor, kubectl, makeCtx, run, untilAllowed } from "./harness.js";

inPaperclipPod(beforeAll);
afterAll(() => dropIdentity("tester-3"));

describe("Kubernetes Events on the Job", () => {
  it("a run that succeeds: RunSucceeded (Normal) regarding the Job, from paperclip.io/claude-k8s and the host's pod; kubectl describe job shows it", async () => {
    const ctx = makeCtx({ scenario: "plain/text=Reported.", config: { retainJobs: true } });
    const r = await run(ctx);
    expect(r.result, JSON.stringify(r.result)).toMatchObject({ exitCode: 0, summary: "Reported." });
    const name = jobNameOf(r);
    const job = jobsOf(ctx.agent.id)[0];
    expect(job.metadata.name).toBe(name);
    // Written before execute() resolved: no wait here.
    const events = jobEvents(name);
    expect(events.map((e) => [e.type, e.reason])).toEqual([["Normal", "RunSucceeded"]]);
    const [e] = events;
    expect(e.note).toBe(`Paperclip run ${ctx.runId} succeeded (exit code 0)`);
    expect(e.action).toBe("Run");
    expect(e.regarding).toMatchObject({ apiVersion: "batch/v1", kind: "Job", name, namespace: NS, uid: job.metadata.uid });
    expect(e.reportingController).toBe("paperclip.io/claude-k8s");
    expect(e.reportingInstance).toBe(process.env.HOSTNAME);
    const described = kubectl(["-n", NS, "describe", "job", name]);
    expect(described).toMatch(/Normal\s+RunSucceeded\s+.*paperclip\.io\/claude-k8s.*Paperclip run \S+ succeeded \(exit code 0\)/);
    kubectl(["-n", NS, "delete", "job", name, "--wait=false"]);
  });

  it("a run that fails: RunFailed (Warning) with its errorCode and exit code", async () => {
    const ctx = makeCtx({ scenario: "status/code=401" });
    ctx.config.env = { ...ctx.config.env, CLAUDE_CODE_MAX_RETRIES: "0" };
    const r = await run(ctx);
    expect(r.result.errorCode, JSON.stringify(r.result)).toBeTruthy();
    const events = jobEvents(jobNameOf(r));
    expect(events.map((e) => [e.type, e.reason])).toEqual([["Warning", "RunFailed"]]);
    expect(events[0].note).toBe(`Paperclip run ${ctx.runId} failed: ${r.result.errorCode} (exit code ${r.result.exitCode})`);
  });

  it("a run the host cancels: RunCancelled, written after the Job was deleted", async () => {
    const controller = new AbortController();
    const ctx = { ...makeCtx({ scenario: "silence/seconds=60" }), signal: controller.signal };
    const r = await run(ctx, { onLog: async (_s, chunk) => chunk.includes('"subtype":"init"') && controller.abort() });
    expect(r.result.errorCode).toBe("cancelled");
    const events = jobEvents(jobNameOf(r));
    expect(events.map((e) => [e.type, e.reason, e.note])).toEqual([["Normal", "RunCancelled", `Paperclip run ${ctx.runId} cancelled by the host`]]);
  });

  // Pod Security admission exists from 1.23 (security.test.js).
  it.runIf(k8sMinor >= 23)("a pod admission refuses: PodRefused (Warning) with the apiserver's reason, then RunFailed", async () => {
    const ctx = makeCtx({ config: { securityContext: { allowPrivilegeEscalation: true } } });
    const r = await run(ctx);
    expect(r.result.errorCode).toBe("k8s_job_create_failed");
    const events = jobEvents(jobNameOf(r));
    expect(events.map((e) => [e.type, e.reason])).toEqual([["Warning", "PodRefused"], ["Warning", "RunFailed"]]);
    expect(events[0].note).toMatch(/^The Job's pod was refused, the run fails: .*violates PodSecurity "restricted:latest": allowPrivilegeEscalation != false/);
    expect(events[0].action).toBe("WaitForPod");
    expect(events[1].note).toBe(`Paperclip run ${ctx.runId} failed: k8s_job_create_failed (no exit code)`);
  });

  it("testEnvironment says they are on; with the documented Role alone they are off, the run is unchanged and writes none", async () => {
    const config = { kubeconfig: cluster.KUBECONFIG, namespace: NS };
    const on = await testEnvironment({ companyId: "co", adapterType: "claude_k8s", config });
    const onCheck = on.checks.find((c) => c.code.startsWith("k8s_job_events"));
    expect(onCheck).toMatchObject({ code: "k8s_job_events", level: "info" });
    expect(onCheck.message).toMatch(/^Runs write Kubernetes Events on their Jobs in paperclip \(log stream resumed, lines lost, pod refused, outcome\)/);

    const without = identityWithout("tester-3", "none", "none");
    await untilAllowed(without, NS, "list", "jobs.batch");
    const off = await testEnvironment({ companyId: "co", adapterType: "claude_k8s", config: { ...config, kubeconfig: without } });
    const offCheck = off.checks.find((c) => c.code.startsWith("k8s_job_events"));
    expect(offCheck).toMatchObject({ code: "k8s_job_events_off", level: "info" });
    expect(offCheck.message).toBe("Kubernetes Events on the Jobs are off: the Role does not allow create on events.k8s.io events in paperclip");
    expect(offCheck.hint).toMatch(/deploy\/rbac-events\.yaml/);
    expect(off.status).toBe(on.status);

    for (let i = 0; i < 2; i++) {
      const ctx = makeCtx({ scenario: "plain/text=Unreported." });
      ctx.config.kubeconfig = without;
      const r = await run(ctx);
      expect(r.result, JSON.stringify(r.result)).toMatchObject({ exitCode: 0, summary: "Unreported." });
      expect(r.stdout).not.toMatch(/event/i);
      expect(jobEvents(jobNameOf(r))).toEqual([]);
    }
  });
});
