// testEnvironment on the real cluster: with the adapter's identity (bound to
// deploy/rbac.yaml's Role) every check passes; with identities that lack one
// verb, that verb is reported — and execute fails clearly on it.
import { readFileSync } from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { testEnvironment } from "../../server.js";
import { NODE_RESOURCES, NS, cluster, dropIdentity, getJson, identityWithout, inPaperclipPod, jobsOf, k8sMinor, kubectl, makeCtx, mockUrl, run } from "./harness.js";

inPaperclipPod(beforeAll);

afterAll(() => {
  for (const u of ["tester-2", "tester-3"]) dropIdentity(u);
});

const envCtx = (kubeconfig) => ({ companyId: "co", adapterType: "claude_k8s", config: { kubeconfig, namespace: NS } });

describe("testEnvironment", () => {
  it("passes with the documented Role: every verb execute uses is allowed", async () => {
    const r = await testEnvironment(envCtx(cluster.KUBECONFIG));
    expect(r.adapterType).toBe("claude_k8s");
    const codes = Object.fromEntries(r.checks.map((c) => [c.code, c]));
    expect(codes.k8s_api_reachable.message).toBe(`Kubernetes API reachable; running in namespace ${NS}`);
    expect(codes.k8s_api_reachable.detail).toBe("Image: claude-k8s/local:dev");
    for (const code of ["k8s_rbac_job_create", "k8s_rbac_job_delete", "k8s_rbac_job_get", "k8s_rbac_job_list", "k8s_rbac_job_watch",
      "k8s_rbac_job_patch", "k8s_rbac_pod_get", "k8s_rbac_pod_list", "k8s_rbac_pod_watch", "k8s_rbac_pod_log",
      "k8s_rbac_secret_create", "k8s_rbac_secret_delete", "k8s_rbac_secret_get", "k8s_rbac_secret_patch", "k8s_rbac_configmap_get",
      "k8s_rbac_pvc_get"]) {
      expect(codes[code], code).toMatchObject({ level: "info" });
      expect(codes[code].message).toMatch(/^RBAC: allowed to /);
    }
    expect(codes.k8s_secret_exists.level).toBe("info");
    expect(codes.k8s_pvc_rwx.message).toBe("PVC paperclip-data is ReadWriteMany");
    expect(r.status).toBe("pass");
    expect(Date.parse(r.testedAt)).not.toBeNaN();
  });

  // Every verb of the documented Role, one at a time.
  it.each([
    ["jobs", "create", "k8s_rbac_job_create"],
    ["jobs", "delete", "k8s_rbac_job_delete"],
    ["jobs", "get", "k8s_rbac_job_get"],
    ["jobs", "list", "k8s_rbac_job_list"],
    ["jobs", "watch", "k8s_rbac_job_watch"],
    ["jobs", "patch", "k8s_rbac_job_patch"],
    ["pods", "get", "k8s_rbac_pod_get"],
    ["pods", "list", "k8s_rbac_pod_list"],
    ["pods", "watch", "k8s_rbac_pod_watch"],
    ["pods/log", "get", "k8s_rbac_pod_log"],
    ["secrets", "create", "k8s_rbac_secret_create"],
    ["secrets", "delete", "k8s_rbac_secret_delete"],
    ["secrets", "get", "k8s_rbac_secret_get"],
    ["secrets", "patch", "k8s_rbac_secret_patch"],
    ["configmaps", "get", "k8s_rbac_configmap_get"],
    ["persistentvolumeclaims", "get", "k8s_rbac_pvc_get"],
    ["events", "list", "k8s_rbac_event_list"],
    ["events", "watch", "k8s_rbac_event_watch"],
  ])("the Role without %s %s: testEnvironment reports %s, with a hint", async (resource, verb, code) => {
    const kubeconfig = identityWithout("tester-2", resource, verb);
    // RBAC changes reach the apiserver's authorizer through its cache: poll.
    let r;
    await expect
      .poll(async () => {
        r = await testEnvironment(envCtx(kubeconfig));
        return r.checks.filter((c) => c.code.startsWith("k8s_rbac_") && c.level !== "info").map((c) => c.code);
      }, { timeout: 15_000, interval: 300 })
      .toEqual([code]);
    const failing = r.checks.find((c) => c.code === code);
    expect(failing.level).toBe("error");
    expect(failing.message).toMatch(/^RBAC: not allowed to /);
    expect(failing.hint).toContain(`"${verb}"`);
    expect(r.status).toBe("fail");
  });

  it("execute without pods/log: the run completes, and says the log could not be read", async () => {
    const ctx = makeCtx({ scenario: "plain" });
    ctx.config.kubeconfig = identityWithout("tester-3", "pods/log", "get");
    const r = await run(ctx);
    expect(r.stderr).toMatch(/Warning: could not read the pod's log: .*forbidden/i);
    expect(r.result.exitCode).toBe(0);
    expect(r.result.errorMessage).toMatch(/^Failed to parse Claude JSON output/);
  });

  it("an apiserver that cannot be reached is one clear error", async () => {
    const bad = path.join(cluster.CLUSTER_DIR, "unreachable.kubeconfig");
    const text = readFileSync(cluster.KUBECONFIG, "utf8").replace(/server: https:\/\/127\.0\.0\.1:\d+/, "server: https://127.0.0.1:1");
    (await import("node:fs")).writeFileSync(bad, text);
    const r = await testEnvironment(envCtx(bad));
    expect(r.status).toBe("fail");
    expect(r.checks).toHaveLength(1);
    expect(r.checks[0].code).toBe("k8s_api_unreachable");
    expect(r.checks[0].message).toMatch(/^Cannot reach Kubernetes API: /);
  });
});

// What execute does when the Role lacks a verb it uses. Verbs that only
// testEnvironment reads (get jobs/secrets/PVCs) are left out; pods/log is above.
describe("testEnvironment's opt-in probe: a short Job with the agent's image and env", () => {
  const probeCtx = (config) => ({
    companyId: "co",
    adapterType: "claude_k8s",
    // The node's resources as a run's (makeCtx): on the real node a probe pod still in its grace period holds its request.
    config: { kubeconfig: cluster.KUBECONFIG, namespace: NS, ...NODE_RESOURCES, ...config, env: { CLAUDE_CODE_MAX_RETRIES: "0", ...config.env } },
  });
  const byCode = (r) => Object.fromEntries(r.checks.map((c) => [c.code, c]));
  const probeJobs = () => getJson(["-n", NS, "get", "jobs", "-l", "paperclip.io/probe=environment"])?.items ?? [];
  const noProbeLeft = () => expect.poll(() => probeJobs().filter((j) => !j.metadata.deletionTimestamp).length, { timeout: 30_000 }).toBe(0);

  it("off unless asked: no Job", async () => {
    const r = await testEnvironment(envCtx(cluster.KUBECONFIG));
    expect(r.checks.map((c) => c.code).filter((c) => c.includes("probe"))).toEqual([]);
  });

  it("hello: the CLI's version and a one-turn hello, passed; the probe Job deleted", async () => {
    const r = await testEnvironment(probeCtx({ environmentProbe: "hello", env: { ANTHROPIC_BASE_URL: `${mockUrl}/s/plain/text=Hello%20there.` } }));
    const c = byCode(r);
    expect(c.claude_probe_cli_version).toMatchObject({ level: "info" });
    expect(c.claude_probe_cli_version.message).toMatch(/^Claude Code \d+\.\d+\.\d+ in claude-k8s\/local:dev$/);
    expect(c.claude_hello_probe_passed).toMatchObject({ level: "info", message: "Claude hello probe succeeded." });
    expect(r.status).toBe("pass");
    await noProbeLeft();
  });

  it("version only: no turn against the API", async () => {
    const r = await testEnvironment(probeCtx({ environmentProbe: "version", env: { ANTHROPIC_BASE_URL: `${mockUrl}/s/status/code=401` } }));
    const codes = r.checks.map((c) => c.code);
    expect(codes).toContain("claude_probe_cli_version");
    expect(codes.filter((c) => c.startsWith("claude_hello_probe"))).toEqual([]);
    await noProbeLeft();
  });

  it.each([
    ["an image without claude", { image: "busybox:1.36" }, "claude_probe_cli_missing", /has no `claude` on its PATH/],
    ["an image that cannot be pulled", { image: "registry.invalid/paperclip/claude:1" }, "k8s_probe_image_pull_failed", /could not pull the agent's image registry\.invalid\/paperclip\/claude:1: .*no such host/],
    ["a bad API key", { env: { ANTHROPIC_BASE_URL: `${mockUrl}/s/status/code=401` } }, "claude_hello_probe_auth_required", /refused the pod's credentials/],
    ["an API the pod cannot reach", { env: { ANTHROPIC_BASE_URL: "http://127.0.0.1:9" } }, "claude_hello_probe_api_unreachable", /cannot reach the Anthropic API/],
  ])("%s → %s, an error with a hint; the probe Job deleted", async (_, config, code, message) => {
    const r = await testEnvironment(probeCtx({ environmentProbe: "hello", ...config, env: { ANTHROPIC_BASE_URL: `${mockUrl}/s/plain`, ...config.env } }));
    const c = byCode(r)[code];
    expect(c, JSON.stringify(r.checks.filter((x) => x.code.includes("probe")))).toMatchObject({ level: "error" });
    expect(c.message).toMatch(message);
    expect(c.hint).toBeTruthy();
    expect(r.status).toBe("fail");
    // The Deployment's API key never reaches a check.
    expect(JSON.stringify(r)).not.toContain("sk-test-not-a-real-key");
    await noProbeLeft();
  });
});

describe("execute with one verb missing from the Role", () => {
  afterAll(() => dropIdentity("tester-2"));
  const denied = /forbidden/i;

  async function runWithout(resource, verb, ctx) {
    ctx.config.kubeconfig = identityWithout("tester-2", resource, verb);
    // Wait until the authorizer has the reduced Role (see above).
    await expect
      .poll(async () => (await testEnvironment(envCtx(ctx.config.kubeconfig))).checks.filter((c) => c.level === "error").map((c) => c.code).length, {
        timeout: 15_000,
        interval: 300,
      })
      .toBeGreaterThan(0);
    return run(ctx);
  }

  it("create jobs → k8s_job_create_failed naming the refusal", async () => {
    const r = await runWithout("jobs", "create", makeCtx());
    expect(r.result.errorCode).toBe("k8s_job_create_failed");
    expect(r.result.errorMessage).toMatch(/^Failed to create Kubernetes Job: /);
    expect(r.result.errorMessage).toMatch(denied);
  });

  it("watch jobs → k8s_job_state_mismatch saying the Job cannot be followed; the Job is deleted", async () => {
    const ctx = makeCtx({ scenario: "slow/seconds=30/lines=3" });
    const r = await runWithout("jobs", "watch", ctx);
    expect(r.result.errorCode).toBe("k8s_job_state_mismatch");
    expect(r.result.errorMessage).toMatch(/^Job ac-\S+ cannot be followed \(the Role must allow list and watch on jobs\): /);
    expect(r.result.errorMessage).toMatch(denied);
    expect(jobsOf(ctx.agent.id)).toEqual([]);
  });

  // A streaming list (1.34+) is one watch request: `list` is not asked for.
  const streamingLists = k8sMinor >= 34;
  it.each(streamingLists ? [["watch"]] : [["list"], ["watch"]])("%s pods → k8s_pod_schedule_failed saying the pods cannot be watched", async (verb) => {
    const ctx = makeCtx({ scenario: "slow/seconds=30/lines=3" });
    const r = await runWithout("pods", verb, ctx);
    expect(r.result.errorCode).toBe("k8s_pod_schedule_failed");
    expect(r.result.errorMessage).toMatch(/^Pod scheduling failed: cannot watch the Job's pods \(the Role must allow list and watch on pods\): /);
    expect(r.result.errorMessage).toMatch(denied);
    expect(jobsOf(ctx.agent.id)).toEqual([]);
  });

  // Every run's prompt and token travel in its Secret (issue 21), not only large prompts.
  it("create secrets → k8s_prompt_secret_create_failed; no Job", async () => {
    const ctx = makeCtx();
    const r = await runWithout("secrets", "create", ctx);
    expect(r.result.errorCode).toBe("k8s_prompt_secret_create_failed");
    expect(r.result.errorMessage).toMatch(/^Failed to create prompt Secret: /);
    expect(r.result.errorMessage).toMatch(denied);
    expect(jobsOf(ctx.agent.id)).toEqual([]);
  });

  it("get secrets → the envFrom Secret of Paperclip's pod cannot be expanded key by key, so none of it reaches the Job, and the run says so", async () => {
    const ctx = makeCtx({ scenario: "plain/text=Without%20the%20Secret.", config: { retainJobs: true } });
    try {
      const r = await runWithout("secrets", "get", ctx);
      expect(r.stderr).toMatch(/\[paperclip\] Warning: envFrom Secret paperclip-secrets not passed to the Job: its keys could not be read \(.*forbidden/i);
      const [job] = jobsOf(ctx.agent.id);
      const c = job.spec.template.spec.containers[0];
      expect(c.envFrom).toBeUndefined();
      expect(c.env.map((e) => e.name)).not.toContain("ANTHROPIC_API_KEY");
    } finally {
      kubectl(["-n", NS, "delete", "jobs", "-l", `paperclip.io/agent-id=${ctx.agent.id}`, "--ignore-not-found"]);
    }
  });

  it.runIf(streamingLists)("list pods, on a cluster that serves streaming lists → the run is not affected (its pod watch is one watch request)", async () => {
    const r = await runWithout("pods", "list", makeCtx({ scenario: "plain/text=Watched%20only." }));
    expect(r.result).toMatchObject({ exitCode: 0, summary: "Watched only." });
  });

  it("list events → a run whose pod is admitted is not affected (events are read only for a Job left without a pod)", async () => {
    const r = await runWithout("events", "list", makeCtx({ scenario: "plain/text=No%20events%20needed." }));
    expect(r.result).toMatchObject({ exitCode: 0, summary: "No events needed." });
  });

  it("delete jobs → the run succeeds and warns that its Job could not be deleted", async () => {
    const ctx = makeCtx();
    try {
      const r = await runWithout("jobs", "delete", ctx);
      expect(r.result.exitCode).toBe(0);
      expect(r.stderr).toMatch(/\[paperclip\] Warning: failed to delete Job ac-\S+: .*forbidden/i);
      expect(jobsOf(ctx.agent.id)).toHaveLength(1);
    } finally {
      kubectl(["-n", NS, "delete", "jobs", "-l", `paperclip.io/agent-id=${ctx.agent.id}`, "--ignore-not-found"]);
    }
  });
});
