// Pod Security admission on the local cluster. The e2e namespace enforces
// `restricted` (scripts/test-cluster), as Paperclip's own Kubernetes execution
// does for its agents: every other suite's Jobs are admitted under it. Here:
// what is checked of the Job pod, a pod admission refuses, and a `baseline`
// namespace. Pod Security admission exists from 1.23: on the 1.20 cluster the
// namespace labels mean nothing, and this file says so and checks the rest.
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { testEnvironment } from "../../server.js";
import { NS, RESTRICTED_CONTAINER, cluster, RESTRICTED_POD, documentedRules, getJson, inPaperclipPod, jobsOf, k8sMinor, kubectl, leftovers, makeCtx, realNode, run, toolOutputOf, untilAllowed } from "./harness.js";

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
    // Still inherited from Paperclip's pod under restricted: the PVC, envFrom (key by key), the image.
    expect(spec.volumes.some((v) => v.persistentVolumeClaim?.claimName === "paperclip-data")).toBe(true);
    expect(spec.containers[0].env.find((e) => e.name === "ANTHROPIC_API_KEY").valueFrom.secretKeyRef.name).toBe("paperclip-secrets");
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

// What `restricted` asks, seen from inside the container the real node ran
// (runc with seccomp): the CLI's own Bash tool reads its process status. The
// simulated node runs containers as host processes, without a seccomp filter.
describe.runIf(podSecurity && realNode)("Pod Security `restricted`, enforced by the real node", () => {
  it("the claude container runs as uid 1000 with a seccomp filter, no capabilities and no privilege escalation", async () => {
    const cmd = encodeURIComponent('grep -E "^(Uid|Gid|CapEff|CapBnd|NoNewPrivs|Seccomp):" /proc/self/status');
    const r = await run(makeCtx({ scenario: `tool/cmd=${cmd}` }));
    expect(r.result).toMatchObject({ exitCode: 0 });
    const results = r.lines
      .filter((l) => l.startsWith('{"type":"user"'))
      .flatMap((l) => JSON.parse(l).message.content)
      .filter((c) => c.type === "tool_result");
    expect(results).toHaveLength(1);
    const status = Array.isArray(results[0].content) ? results[0].content.map((c) => c.text).join("") : results[0].content;
    expect(status).toMatch(/^Uid:\s+1000\s+1000\s+1000\s+1000$/m);
    expect(status).toMatch(/^Gid:\s+1000\s+1000\s+1000\s+1000$/m);
    expect(status).toMatch(/^CapEff:\s+0000000000000000$/m);
    expect(status).toMatch(/^CapBnd:\s+0000000000000000$/m);
    expect(status).toMatch(/^NoNewPrivs:\s+1$/m);
    expect(status).toMatch(/^Seccomp:\s+2$/m); // 2: a filter (RuntimeDefault), 0 would be none
  });
});

describe.runIf(podSecurity)("Pod Security `baseline`", () => {
  beforeAll(async () => {
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
    // The binding reaches the authorizer through its cache (seen in CI: the first run's guard refused).
    await untilAllowed(cluster.KUBECONFIG, BASELINE_NS, "list", "jobs.batch");
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
      expect(plain.result, JSON.stringify(plain.result)).toMatchObject({ exitCode: 0, summary: "Baseline default." });
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

// Issue 21: the agent pod must not hold the keys to Paperclip. Paperclip's pod
// here looks like a real deployment's — the server's secrets by secretKeyRef
// (as the chart and the operator pass them), an envFrom Secret mixing a server
// secret with the provider key, a literal AWS key of the server's object
// storage, the chart's Secret mounted as files — and a real Claude turn in the
// Job pod dumps its env, the mounted files and the ServiceAccount token path.
describe("the agent pod holds no server secret, no ServiceAccount token, and its spec no token or prompt", () => {
  const REAL_POD = "paperclip-real";
  const SERVER = {
    agentJwtSecret: "jwt-SERVER-SECRET-1a",
    betterAuthSecret: "bas-SERVER-SECRET-2b",
    databaseUrl: "postgres://paperclip:db-SERVER-SECRET-3c@db:5432/paperclip",
  };
  const MIXED = { ANTHROPIC_API_KEY: "sk-test-not-a-real-key", PAPERCLIP_SECRETS_MASTER_KEY: "mk-SERVER-SECRET-4d", DATABASE_URL: "postgres://x:db-SERVER-SECRET-5e@db/pc" };
  const AWS = "aws-SERVER-SECRET-6f";
  const secretValues = [...Object.values(SERVER), MIXED.PAPERCLIP_SECRETS_MASTER_KEY, MIXED.DATABASE_URL, AWS];
  const ref = (key) => ({ secretKeyRef: { name: "paperclip-server", key } });
  // The server's state on the shared volume, laid out as a real instance's
  // (PAPERCLIP_HOME is on the PVC, as in a Deployment: scripts/test).
  const instance = path.join(process.env.PAPERCLIP_HOME ?? "/paperclip/home", "instances", "default");
  const STATE = {
    "config.json": JSON.stringify({ database: { mode: "embedded-postgres", embeddedPostgresDataDir: path.join(instance, "db") }, note: "cfg-SERVER-SECRET-7g" }),
    ".env": "PAPERCLIP_AGENT_JWT_SECRET=env-SERVER-SECRET-8h\n",
    "db/PG_VERSION": "17 db-SERVER-SECRET-9i\n",
    "secrets/master.key": "key-SERVER-SECRET-0j",
    "data/backups/paperclip-1.sql": "backup-SERVER-SECRET-1k",
    "logs/server.log": "log-SERVER-SECRET-2l",
  };
  const stateValues = ["cfg-SERVER-SECRET-7g", "env-SERVER-SECRET-8h", "db-SERVER-SECRET-9i", "key-SERVER-SECRET-0j", "backup-SERVER-SECRET-1k", "log-SERVER-SECRET-2l"];
  let saved;
  let laidOut = [];

  beforeAll(() => {
    kubectl(["apply", "-f", "-"], {
      input: JSON.stringify({
        apiVersion: "v1",
        kind: "List",
        items: [
          { apiVersion: "v1", kind: "Secret", metadata: { name: "paperclip-server", namespace: NS }, stringData: SERVER },
          { apiVersion: "v1", kind: "Secret", metadata: { name: "paperclip-mixed", namespace: NS }, stringData: MIXED },
          {
            apiVersion: "v1",
            kind: "Pod",
            metadata: { name: REAL_POD, namespace: NS, labels: { app: "paperclip-real" } },
            spec: {
              securityContext: { ...RESTRICTED_POD, fsGroup: 1000 },
              containers: [
                {
                  name: "paperclip",
                  image: "claude-k8s/local:dev",
                  command: ["sleep", "infinity"],
                  securityContext: RESTRICTED_CONTAINER,
                  env: [
                    { name: "DISABLE_TELEMETRY", value: "1" },
                    { name: "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", value: "1" },
                    { name: "PAPERCLIP_AGENT_JWT_SECRET", valueFrom: ref("agentJwtSecret") },
                    { name: "BETTER_AUTH_SECRET", valueFrom: ref("betterAuthSecret") },
                    { name: "DATABASE_URL", valueFrom: ref("databaseUrl") },
                    { name: "AWS_SECRET_ACCESS_KEY", value: AWS },
                  ],
                  envFrom: [{ secretRef: { name: "paperclip-mixed" } }],
                  volumeMounts: [
                    { name: "data", mountPath: "/paperclip" },
                    { name: "server", mountPath: "/etc/paperclip-server", readOnly: true },
                  ],
                },
              ],
              volumes: [
                { name: "data", persistentVolumeClaim: { claimName: "paperclip-data" } },
                { name: "server", secret: { secretName: "paperclip-server" } },
              ],
            },
          },
        ],
      }),
    });
    saved = process.env.HOSTNAME;
    process.env.HOSTNAME = REAL_POD;
    for (const [rel, text] of Object.entries(STATE)) {
      const file = path.join(instance, rel);
      if (existsSync(file)) continue;
      mkdirSync(path.dirname(file), { recursive: true });
      writeFileSync(file, text, { mode: 0o600 });
      laidOut.push(file);
    }
  });
  afterAll(() => {
    process.env.HOSTNAME = saved;
    for (const f of laidOut) rmSync(f, { force: true });
    for (const d of ["db", "secrets", "data/backups", "logs"]) rmSync(path.join(instance, d, "agent-wrote-here"), { force: true });
    kubectl(["-n", NS, "delete", "pod", REAL_POD, "--wait=false", "--ignore-not-found"], { allowFail: true });
    kubectl(["-n", NS, "delete", "secret", "paperclip-server", "paperclip-mixed", "--ignore-not-found"], { allowFail: true });
  });

  it("a real turn's env dump, file reads and token path show none of the server's secrets; the provider key and the run's token arrive", async () => {
    const token = "run-token-7a1f-only-in-the-secret";
    const cmd = [
      `I=${instance}`,
      'echo STATE; for f in config.json .env db/PG_VERSION secrets/master.key data/backups/paperclip-1.sql logs/server.log; do cat "$I/$f" 2>&1; echo; done; ls -la "$I/db" "$I/secrets" 2>&1',
      'echo WRITE; for d in db secrets data/backups logs; do touch "$I/$d/agent-wrote-here" 2>&1 || echo "refused $d"; done; echo x > "$I/.env" 2>&1 || echo "refused .env"',
      "echo ENV-DUMP; env | sort",
      "echo FILES; ls /etc/paperclip-server 2>&1; cat /etc/paperclip-server/* 2>&1",
      "echo SA-TOKEN; cat /var/run/secrets/kubernetes.io/serviceaccount/token 2>&1",
      "echo RUN-TOKEN; echo \"$PAPERCLIP_API_KEY\"",
    ].join("; ");
    const ctx = makeCtx({
      scenario: `tool/cmd64=${Buffer.from(cmd).toString("base64url")}/text=Dumped.`,
      authToken: token,
      config: { retainJobs: true },
      context: { paperclipWake: { reason: "comment_added", comments: [{ id: "c1", body: "PROMPT-TEXT-only-in-the-secret-3d9e" }] } },
    });
    const seen = {};
    const r = await run(ctx, {
      onLog: async () => {
        if (seen.pod) return;
        const job = jobsOf(ctx.agent.id)[0];
        if (!job) return;
        seen.job = job;
        seen.pod = getJson(["-n", NS, "get", "pods", "-l", `job-name=${job.metadata.name}`])?.items?.[0];
      },
    });
    try {
      expect(r.result).toMatchObject({ exitCode: 0, summary: "Dumped." });
      // What the Bash call printed: the tool result in the transcript.
      const toolOutput = toolOutputOf(r.stdout);
      expect(toolOutput).toContain("ENV-DUMP");
      for (const v of [...secretValues, ...stateValues]) expect(toolOutput, v).not.toContain(v);
      // The database, the key, backups and logs: empty and read-only in the pod; .env and config.json empty files.
      for (const d of ["db", "secrets", "data/backups", "logs", ".env"]) expect(toolOutput).toContain(`refused ${d}`);
      for (const d of ["db", "secrets", "data/backups", "logs"]) expect(existsSync(path.join(instance, d, "agent-wrote-here")), d).toBe(false);
      expect(readFileSync(path.join(instance, ".env"), "utf8")).toBe(STATE[".env"]);
      expect(r.stdout + r.stderr).toMatch(/Server state hidden from the agent \(empty read-only mounts\): .*\/db/);
      for (const n of ["PAPERCLIP_AGENT_JWT_SECRET", "BETTER_AUTH_SECRET", "DATABASE_URL", "PAPERCLIP_SECRETS_MASTER_KEY", "AWS_SECRET_ACCESS_KEY"]) {
        expect(toolOutput, n).not.toMatch(new RegExp(`^${n}=`, "m"));
      }
      // What agents need still arrives: the provider key (from the envFrom Secret) and the run's token.
      expect(toolOutput).toMatch(/^ANTHROPIC_API_KEY=sk-test-not-a-real-key$/m);
      expect(toolOutput).toMatch(new RegExp(`RUN-TOKEN\\n${token}`));
      expect(toolOutput).toMatch(/^PAPERCLIP_API_URL=/m);
      // The server's Secret mounted as files: every key is the server's, so the volume stays behind.
      expect(toolOutput).toMatch(/FILES\n.*No such file or directory/);
      expect(toolOutput).toMatch(/SA-TOKEN\n.*No such file or directory/);
      // The run says what it held back, by name only.
      expect(r.stdout + r.stderr).toMatch(/Held back from the Job \(the Paperclip server's own secrets; names only\): .*PAPERCLIP_AGENT_JWT_SECRET/);
      for (const v of secretValues) expect(r.stdout + r.stderr + JSON.stringify(r.meta), v).not.toContain(v);
      expect(JSON.stringify(r.meta)).not.toContain(token);

      // The Job and the pod, as anyone with get on them reads them: no token, no prompt text, no server secret.
      expect(seen.job && seen.pod, "the Job and its pod, read while the run was on").toBeTruthy();
      const job = getJson(["-n", NS, "get", "job", seen.job.metadata.name]);
      for (const [what, obj] of [["job", job], ["pod", seen.pod]]) {
        const text = JSON.stringify(obj);
        for (const v of [token, "PROMPT-TEXT-only-in-the-secret-3d9e", "Continue your Paperclip work", "sk-test-not-a-real-key", ...secretValues]) {
          expect(text, `${what} holds ${v}`).not.toContain(v);
        }
      }
      expect(job.spec.template.spec.automountServiceAccountToken).toBe(false);
      expect(seen.pod.spec.automountServiceAccountToken).toBe(false);
      expect(seen.pod.spec.volumes.map((v) => v.name)).not.toContain("server");
      expect(seen.pod.spec.containers[0].env.find((e) => e.name === "PAPERCLIP_API_KEY").valueFrom.secretKeyRef).toEqual({
        name: `${job.metadata.name}-prompt`,
        key: "PAPERCLIP_API_KEY",
      });
      // The run's Secret is gone with the run.
      await expect.poll(() => getJson(["-n", NS, "get", "secret", `${job.metadata.name}-prompt`]), { timeout: 30_000 }).toBeNull();
    } finally {
      kubectl(["-n", NS, "delete", "jobs", "-l", `paperclip.io/agent-id=${ctx.agent.id}`, "--ignore-not-found"]);
    }
  });

  it("testEnvironment reports the exposure by name, never a value", async () => {
    const ctx = (config) => ({ companyId: "co", adapterType: "claude_k8s", config: { kubeconfig: cluster.KUBECONFIG, namespace: NS, ...config } });
    const r = await testEnvironment(ctx({}));
    const by = Object.fromEntries(r.checks.map((c) => [c.code, c]));
    expect(by.k8s_pod_server_secrets_held_back.level).toBe("info");
    for (const n of ["BETTER_AUTH_SECRET", "PAPERCLIP_AGENT_JWT_SECRET", "DATABASE_URL", "AWS_SECRET_ACCESS_KEY", "PAPERCLIP_SECRETS_MASTER_KEY", "/etc/paperclip-server/agentJwtSecret"]) {
      expect(by.k8s_pod_server_secrets_held_back.message).toContain(n);
    }
    expect(by.k8s_pod_server_state_hidden.message).toContain(`${instance}/db`);
    expect(by.k8s_pod_service_account_token).toMatchObject({ level: "info", message: "Job pods get no ServiceAccount token" });
    expect(by.k8s_pod_egress_unrestricted.level).toBe("info");
    expect(by.k8s_pod_secret_like_env).toBeUndefined();
    const text = JSON.stringify(r);
    for (const v of [...secretValues, ...stateValues, "sk-test-not-a-real-key"]) expect(text).not.toContain(v);
    // The opt-out and a token asked for: warnings with hints.
    const loose = await testEnvironment(ctx({ inheritServerSecrets: true, automountServiceAccountToken: true }));
    const lb = Object.fromEntries(loose.checks.map((c) => [c.code, c]));
    expect(lb.k8s_pod_server_secrets_inherited.level).toBe("warn");
    expect(lb.k8s_pod_server_state_exposed.level).toBe("warn");
    expect(lb.k8s_pod_service_account_token.level).toBe("warn");
    // An inherited secret-looking name that is not a known server secret: named, with a hint.
    expect(lb.k8s_pod_secret_like_env?.message ?? "").not.toContain("ANTHROPIC_API_KEY");
    for (const v of [...secretValues, ...stateValues]) expect(JSON.stringify(loose)).not.toContain(v);
  });

  it("inheritServerSecrets restores 0.1.54's inherit-everything (the documented opt-out)", async () => {
    const ctx = makeCtx({ scenario: "plain/text=Everything.", config: { retainJobs: true, inheritServerSecrets: true } });
    try {
      const r = await run(ctx);
      expect(r.result).toMatchObject({ exitCode: 0, summary: "Everything." });
      const spec = jobsOf(ctx.agent.id)[0].spec.template.spec;
      expect(spec.containers[0].envFrom).toEqual([{ secretRef: { name: "paperclip-mixed" } }]);
      expect(spec.containers[0].env.map((e) => e.name)).toEqual(expect.arrayContaining(["PAPERCLIP_AGENT_JWT_SECRET", "BETTER_AUTH_SECRET", "DATABASE_URL", "AWS_SECRET_ACCESS_KEY"]));
      expect(spec.volumes.map((v) => v.name)).toContain("server");
    } finally {
      kubectl(["-n", NS, "delete", "jobs", "-l", `paperclip.io/agent-id=${ctx.agent.id}`, "--ignore-not-found"]);
    }
  });
});
