// Pod Security admission on the local cluster. The e2e namespace enforces
// `restricted` (scripts/test-cluster), as Paperclip's own Kubernetes execution
// does for its agents: every other suite's Jobs are admitted under it. Here:
// what is checked of the Job pod, a pod admission refuses, and a `baseline`
// namespace. Pod Security admission exists from 1.23: on the 1.20 cluster the
// namespace labels mean nothing, and this file says so and checks the rest.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { NS, documentedRules, getJson, inPaperclipPod, jobsOf, k8sMinor, kubectl, leftovers, makeCtx, run } from "./harness.js";

const podSecurity = k8sMinor >= 23;
const BASELINE_NS = "paperclip-baseline";

inPaperclipPod(beforeAll);

describe.runIf(podSecurity)("Pod Security `restricted`, enforced", () => {
  it("the e2e namespace enforces restricted, and the default Job pod is admitted there as is", async () => {
    const ns = getJson(["get", "namespace", NS]);
    expect(ns.metadata.labels["pod-security.kubernetes.io/enforce"]).toBe("restricted");
    const ctx = makeCtx({ scenario: "plain/text=Admitted." });
    const seen = {};
    const r = await run(ctx, {
      onLog: async () => {
        if (seen.spec) return;
        const job = jobsOf(ctx.agent.id)[0];
        if (job) seen.spec = job.spec.template.spec;
      },
    });
    expect(r.result).toMatchObject({ exitCode: 0, summary: "Admitted." });
    const spec = seen.spec;
    expect(spec.securityContext).toMatchObject({ runAsNonRoot: true, runAsUser: 1000, seccompProfile: { type: "RuntimeDefault" } });
    for (const c of [...spec.initContainers, ...spec.containers]) {
      expect(c.securityContext).toMatchObject({ allowPrivilegeEscalation: false, capabilities: { drop: ["ALL"] }, runAsNonRoot: true });
    }
    // Still inherited from Paperclip's pod under restricted: the PVC, envFrom, the image.
    expect(spec.volumes.some((v) => v.persistentVolumeClaim?.claimName === "paperclip-data")).toBe(true);
    expect(spec.containers[0].envFrom).toEqual([{ secretRef: { name: "paperclip-secrets" } }]);
    expect(spec.containers[0].image).toBe("claude-k8s/local:dev");
  });

  it("a pod admission refuses (the user's own securityContext) → k8s_job_create_failed naming the violated fields; nothing left", async () => {
    const ctx = makeCtx({ config: { securityContext: { allowPrivilegeEscalation: true }, podSecurityContext: { seccompProfile: { type: "Unconfined" } } } });
    const t0 = Date.now();
    const r = await run(ctx);
    expect(r.result.errorCode).toBe("k8s_job_create_failed");
    expect(r.result.errorMessage).toMatch(/^Failed to create Kubernetes Job: Job ac-\S+ was created but its pod was refused — /);
    expect(r.result.errorMessage).toMatch(/violates PodSecurity "restricted:latest"/);
    expect(r.result.errorMessage).toMatch(/allowPrivilegeEscalation != false \(containers? .*"claude".* must set securityContext\.allowPrivilegeEscalation=false\)/);
    expect(r.result.errorMessage).toMatch(/seccompProfile/);
    // Told within seconds (the refused pod's event), not after the 120 s schedule timeout.
    expect(Date.now() - t0).toBeLessThan(60_000);
    await expect.poll(() => jobsOf(ctx.agent.id), { timeout: 20_000 }).toEqual([]);
    expect(leftovers(ctx.runId)).toEqual({ pods: [], secrets: [] });
  });
});

describe.runIf(podSecurity)("Pod Security `baseline`", () => {
  beforeAll(() => {
    kubectl(["apply", "-f", "-"], {
      input: JSON.stringify({
        apiVersion: "v1",
        kind: "List",
        items: [
          {
            apiVersion: "v1",
            kind: "Namespace",
            metadata: { name: BASELINE_NS, labels: { "pod-security.kubernetes.io/enforce": "baseline" } },
          },
          { apiVersion: "rbac.authorization.k8s.io/v1", kind: "Role", metadata: { name: "claude-k8s-adapter", namespace: BASELINE_NS }, rules: documentedRules() },
          {
            apiVersion: "rbac.authorization.k8s.io/v1",
            kind: "RoleBinding",
            metadata: { name: "claude-k8s-adapter", namespace: BASELINE_NS },
            roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name: "claude-k8s-adapter" },
            subjects: [{ apiGroup: "rbac.authorization.k8s.io", kind: "User", name: "claude-k8s-adapter" }],
          },
        ],
      }),
    });
  });
  afterAll(() => kubectl(["delete", "namespace", BASELINE_NS, "--wait=false"], { allowFail: true }));

  // Off-cluster into another namespace (Paperclip's pod and its PVC are in the e2e one).
  const offCluster = (scenario, config = {}) => {
    const ctx = makeCtx({ scenario, config: { namespace: BASELINE_NS, image: "claude-k8s/local:dev", ...config } });
    ctx.config.env = { ...ctx.config.env, ANTHROPIC_API_KEY: "sk-mock-baseline", DISABLE_TELEMETRY: "1", CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: "1" };
    return ctx;
  };

  it("the default Job runs there, and so does one with a securityContext baseline allows but restricted would not", async () => {
    const saved = process.env.HOSTNAME;
    delete process.env.HOSTNAME;
    try {
      const plain = await run(offCluster("plain/text=Baseline%20default."));
      expect(plain.result).toMatchObject({ exitCode: 0, summary: "Baseline default." });
      const loose = await run(offCluster("plain/text=Baseline%20loose.", { securityContext: { allowPrivilegeEscalation: true } }));
      expect(loose.result).toMatchObject({ exitCode: 0, summary: "Baseline loose." });
    } finally {
      process.env.HOSTNAME = saved;
    }
  });
});

describe.runIf(!podSecurity)("Pod Security on Kubernetes < 1.23", () => {
  it("the namespace labels are ignored: a securityContext restricted would refuse still runs", async () => {
    const r = await run(makeCtx({ scenario: "plain/text=No%20admission.", config: { securityContext: { allowPrivilegeEscalation: true } } }));
    expect(r.result).toMatchObject({ exitCode: 0, summary: "No admission." });
  });
});
