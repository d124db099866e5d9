// testEnvironment on the real cluster: with the adapter's identity (bound to
// deploy/rbac.yaml's Role) every check passes; with identities that lack one
// verb, that verb is reported — and execute fails clearly on it.
import { readFileSync } from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { testEnvironment } from "../../server.js";
import { NS, cluster, dropIdentity, identityWithout, inPaperclipPod, makeCtx, run } from "./harness.js";

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
      "k8s_rbac_secret_create", "k8s_rbac_secret_delete", "k8s_rbac_secret_get", "k8s_rbac_secret_patch", "k8s_rbac_pvc_get"]) {
      expect(codes[code], code).toMatchObject({ level: "info" });
      expect(codes[code].message).toMatch(/^RBAC: allowed to /);
    }
    expect(codes.k8s_secret_exists.level).toBe("info");
    expect(codes.k8s_pvc_rwx.message).toBe("PVC paperclip-data is ReadWriteMany");
    expect(r.status).toBe("pass");
    expect(Date.parse(r.testedAt)).not.toBeNaN();
  });

  it.each([
    ["tester-2", { resource: "jobs", verb: "patch" }, "k8s_rbac_job_patch"],
    ["tester-3", { resource: "pods/log", verb: "get" }, "k8s_rbac_pod_log"],
  ])("%s without %o: reported as an error with a hint", async (user, drop, code) => {
    const r = await testEnvironment(envCtx(identityWithout(user, drop.resource, drop.verb)));
    const failing = r.checks.filter((c) => c.level === "error");
    expect(failing.map((c) => c.code)).toEqual([code]);
    expect(failing[0].message).toMatch(/^RBAC: not allowed to /);
    expect(failing[0].hint).toContain(`"${drop.verb}"`);
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
