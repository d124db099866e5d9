// Shared e2e helpers: the local cluster (as the adapter's own identity), the
// mock Anthropic API, a "Paperclip pod" for the adapter to introspect, and an
// execute() call that records every callback.
import { execFileSync, spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import path from "node:path";
import { inject } from "vitest";
import { execute } from "../../server.js";

export const cluster = inject("cluster");
export const mockUrl = inject("mockUrl");
export const NS = "paperclip";
export const SELF_POD = "paperclip-host";
/** The real node (kubelet, containerd, runc) or the simulated one (crates/test-node, with fault hooks). */
export const realNode = cluster.CLAUDE_K8S_NODE === "real";
/** Where pods reach the node's services (mock APIs): the real node's bridge address, or loopback. */
export const nodeServicesHost = cluster.NODE_SERVICES_HOST ?? "127.0.0.1";
/** The local cluster's Kubernetes minor version (37, or 20 for the oldest we claim). */
export const k8sMinor = Number((cluster.K8S_VERSION ?? "1.20.2").split(".")[1]);

// What Pod Security `restricted` (enforced in the e2e namespace) asks of a
// pod and of each container: the tests' own pods and Jobs carry it too.
export const RESTRICTED_POD = { runAsNonRoot: true, runAsUser: 1000, runAsGroup: 1000, seccompProfile: { type: "RuntimeDefault" } };
export const RESTRICTED_CONTAINER = { allowPrivilegeEscalation: false, capabilities: { drop: ["ALL"] } };

export function kubectl(args, { admin = true, input, allowFail = false } = {}) {
  const kubeconfig = admin ? cluster.ADMIN_KUBECONFIG : cluster.KUBECONFIG;
  try {
    return execFileSync("kubectl", ["--kubeconfig", kubeconfig, ...args], {
      input,
      encoding: "utf8",
      stdio: ["pipe", "pipe", "pipe"],
      // A namespace's whole event list outgrows the default 1 MiB (seen after a
      // bench: ~1000 events), and an overflow would read as "none".
      maxBuffer: 256 << 20,
    });
  } catch (e) {
    if (allowFail) return null;
    throw new Error(`kubectl ${args.join(" ")} failed: ${e.stderr}`);
  }
}

export function getJson(args) {
  const out = kubectl([...args, "-o", "json"], { allowFail: true });
  return out ? JSON.parse(out) : null;
}

/**
 * A pod standing for Paperclip's own Deployment pod: container "paperclip",
 * the PVC at /paperclip, envFrom the API-key Secret, a secret volume, and a
 * literal env. The node runs it as a sleeping process.
 */
export function ensureSelfPod() {
  if (getJson(["-n", NS, "get", "pod", SELF_POD])) return;
  kubectl(["apply", "-f", "-"], {
    input: JSON.stringify({
      apiVersion: "v1",
      kind: "Pod",
      metadata: { name: SELF_POD, namespace: NS, labels: { app: "paperclip" } },
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
            ],
            envFrom: [{ secretRef: { name: "paperclip-secrets" } }],
            volumeMounts: [
              { name: "data", mountPath: "/paperclip" },
              { name: "secrets", mountPath: "/etc/paperclip-secrets", readOnly: true },
            ],
          },
        ],
        volumes: [
          { name: "data", persistentVolumeClaim: { claimName: "paperclip-data" } },
          { name: "secrets", secret: { secretName: "paperclip-secrets" } },
        ],
      },
    }),
  });
}

let runCounter = 0;

// The real node has the machine's 2 cores, and a run asks 1 CPU by default: a
// pod being deleted keeps its request through its grace period (30 s: `sh -c`
// as PID 1 does not pass SIGTERM on), and the next run's pod is then
// Unschedulable ("Insufficient cpu") — k8s_pod_schedule_failed at once, as the
// original reports it. The suites ask for little, so that runs can follow one
// another and overlap as they do on the simulated node (64 CPUs).
export const NODE_RESOURCES = realNode ? { resources: { requests: { cpu: "10m", memory: "64Mi" } } } : {};

/** A host ctx for one heartbeat; `scenario` picks the mock API's behaviour. */
export function makeCtx({ scenario = "plain", agentId, runId, config = {}, env = {}, context = {}, runtime = {}, authToken } = {}) {
  runCounter += 1;
  const id = agentId ?? `agent-${process.pid}-${runCounter}`;
  return {
    runId: runId ?? `run-${Date.now().toString(36)}-${runCounter}`,
    agent: { id, companyId: "co-e2e", name: `E2E ${id}`, adapterType: "claude_k8s", adapterConfig: {} },
    runtime: { sessionId: null, sessionParams: null, sessionDisplayId: null, taskKey: null, ...runtime },
    config: {
      kubeconfig: cluster.KUBECONFIG,
      namespace: NS,
      model: "claude-sonnet-4-6",
      ttlSecondsAfterFinished: 600,
      ...NODE_RESOURCES,
      env: { ANTHROPIC_BASE_URL: `${mockUrl}/s/${scenario}`, ...env },
      ...config,
    },
    context: { taskId: `task-${runCounter}`, ...context },
    authToken,
  };
}

/** Runs execute() recording every callback, in order. */
export async function run(ctx, { onLog } = {}) {
  const events = [];
  const stdout = [];
  const stderr = [];
  const result = await execute({
    ...ctx,
    onLog: async (stream, chunk) => {
      events.push(["log", stream, chunk]);
      (stream === "stdout" ? stdout : stderr).push(chunk);
      if (onLog) await onLog(stream, chunk);
    },
    onMeta: async (meta) => {
      events.push(["meta", meta]);
    },
    onSpawn: async (info) => {
      events.push(["spawn", info]);
    },
  });
  const out = stdout.join("");
  return {
    result,
    events,
    stdout: out,
    stderr: stderr.join(""),
    lines: out.split("\n").filter(Boolean),
    meta: events.filter((e) => e[0] === "meta").map((e) => e[1]),
    spawns: events.filter((e) => e[0] === "spawn").map((e) => e[1]),
  };
}

/** What the run's Bash tool calls printed: the tool results in a stream-json transcript, joined. */
export function toolOutputOf(stdout) {
  return stdout
    .split("\n")
    .filter((l) => l.startsWith("{"))
    .map((l) => JSON.parse(l))
    .filter((e) => e.type === "user")
    .flatMap((e) => e.message.content)
    .filter((c) => c.type === "tool_result")
    .map((c) => (typeof c.content === "string" ? c.content : c.content.map((p) => p.text).join("")))
    .join("\n");
}

/** The Job a run created or reattached to, from its own `[paperclip]` lines. */
export function jobNameOf(r) {
  const m = /\[paperclip\] (?:Created K8s Job:|Reattaching to in-flight K8s Job) (\S+)/.exec(r.stdout);
  if (!m) throw new Error(`no Job named in the run's output: ${r.stdout.slice(0, 2000)}`);
  return m[1];
}

/**
 * The Kubernetes Events the adapter wrote about Job `name` (events.k8s.io/v1,
 * as `kubectl get events` lists them), oldest first.
 */
export function jobEvents(name) {
  const list = getJson(["-n", NS, "get", "events.v1.events.k8s.io"]);
  return (list?.items ?? [])
    .filter((e) => e.reportingController === "paperclip.io/claude-k8s" && e.regarding?.name === name)
    .sort((a, b) => Date.parse(a.eventTime) - Date.parse(b.eventTime) || a.metadata.name.localeCompare(b.metadata.name));
}

/** Jobs of one agent in the namespace (admin view). */
export function jobsOf(agentId) {
  const list = getJson(["-n", NS, "get", "jobs", "-l", `paperclip.io/agent-id=${agentId}`]);
  return (list?.items ?? []).filter((j) => !j.metadata.deletionTimestamp);
}

/** Pods and prompt Secrets left by one run id. */
export function leftovers(runId) {
  const pods = getJson(["-n", NS, "get", "pods", "-l", `paperclip.io/run-id=${runId}`])?.items ?? [];
  const secrets = getJson(["-n", NS, "get", "secrets", "-l", `paperclip.io/run-id=${runId}`])?.items ?? [];
  return { pods: pods.filter((p) => !p.metadata.deletionTimestamp), secrets };
}

/** Plays Paperclip's own pod for this test file: the adapter finds it through HOSTNAME. */
export function inPaperclipPod(beforeAll) {
  beforeAll(() => {
    ensureSelfPod();
    process.env.HOSTNAME = SELF_POD;
    process.env.PAPERCLIP_NAMESPACE = NS;
  });
}

/**
 * `scripts/test-cluster restart|stop <component>`: a component of the local
 * cluster stopped (and started again the same way) — kube-apiserver, or the
 * real node's kubelet.
 */
export function clusterCtl(verb, component) {
  const script = path.resolve(import.meta.dirname, "../../scripts/test-cluster");
  return new Promise((resolve, reject) => {
    const p = spawn("bash", [script, verb, component], { stdio: "ignore" });
    p.on("exit", (code) => (code === 0 ? resolve() : reject(new Error(`test-cluster ${verb} ${component} exited ${code}`))));
  });
}

/** Triggers one of the simulated node's fault hooks (crates/test-node/src/control.rs). */
export async function fault(path, body) {
  const { port } = JSON.parse(readFileSync(cluster.NODE_CONTROL, "utf8"));
  const res = await fetch(`http://127.0.0.1:${port}${path}`, { method: "POST", body: JSON.stringify(body) });
  if (!res.ok) throw new Error(`fault ${path}: ${res.status} ${await res.text()}`);
}

/** The Role of deploy/rbac.yaml (the README's Role), as JSON rules. */
export function documentedRules() {
  const rbac = readFileSync(new URL("../../deploy/rbac.yaml", import.meta.url), "utf8");
  const doc = rbac.split(/^---$/m).find((d) => /^kind: Role$/m.test(d));
  return JSON.parse(kubectl(["create", "--dry-run=client", "-o", "json", "-f", "-"], { input: doc })).rules;
}

/**
 * Binds the documented Role minus one verb to a spare identity (tester-N);
 * returns that identity's kubeconfig.
 */
export function identityWithout(user, resource, verb) {
  const name = `without-${user}`;
  const rules = documentedRules()
    .map((r) => ({ ...r, verbs: r.resources.includes(resource) ? r.verbs.filter((v) => v !== verb) : r.verbs }))
    .filter((r) => r.verbs.length > 0);
  kubectl(["apply", "-f", "-"], {
    input: JSON.stringify({
      apiVersion: "v1",
      kind: "List",
      items: [
        { apiVersion: "rbac.authorization.k8s.io/v1", kind: "Role", metadata: { name, namespace: NS }, rules },
        {
          apiVersion: "rbac.authorization.k8s.io/v1",
          kind: "RoleBinding",
          metadata: { name, namespace: NS },
          roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name },
          subjects: [{ apiGroup: "rbac.authorization.k8s.io", kind: "User", name: user }],
        },
      ],
    }),
  });
  return `${cluster.CLUSTER_DIR}/${user}.kubeconfig`;
}

/**
 * Waits until `kubeconfig`'s identity may `verb` `resource` in `ns`: a Role or
 * binding just applied reaches the apiserver's authorizer through its cache,
 * so the first request after it may still be refused.
 */
export async function untilAllowed(kubeconfig, ns, verb, resource) {
  const allowed = () => {
    try {
      return execFileSync("kubectl", ["--kubeconfig", kubeconfig, "auth", "can-i", verb, resource, "-n", ns], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] }).trim();
    } catch (e) {
      return (e.stdout ?? "").trim() || String(e.stderr).trim();
    }
  };
  const deadline = Date.now() + 20_000;
  let last;
  while ((last = allowed()) !== "yes") {
    if (Date.now() > deadline) throw new Error(`${kubeconfig}: still not allowed to ${verb} ${resource} in ${ns} after 20 s (${last})`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

export function dropIdentity(user) {
  kubectl(["-n", NS, "delete", "role,rolebinding", `without-${user}`, "--ignore-not-found"], { allowFail: true });
}
