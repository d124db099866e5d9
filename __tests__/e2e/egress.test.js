// egressPolicy (issue 21): each run's pod gets a NetworkPolicy of its own,
// created before the Job, owned by it, gone with the run; refused verbs fail
// the run before anything runs unrestricted. What the real apiserver accepts
// and stores is checked here, on 1.37.2 and 1.20.2. Whether traffic is
// dropped is the network plugin's part: the real node enforces policies with
// kube-network-policies (scripts/cluster/real-node.sh), and the last suite
// here shows a run's pod reach what its policy allows and nothing else.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { testEnvironment } from "../../server.js";
import {
  NODE_RESOURCES,
  NS,
  RESTRICTED_CONTAINER,
  RESTRICTED_POD,
  SELF_POD,
  cluster,
  dropIdentity,
  getJson,
  identityWithout,
  inPaperclipPod,
  jobsOf,
  kubectl,
  leftovers,
  makeCtx,
  mockUrl,
  nodeServicesHost,
  realNode,
  run,
  toolOutputOf,
  untilAllowed,
} from "./harness.js";

inPaperclipPod(beforeAll);
afterAll(() => dropIdentity("tester-3"));

const policiesOf = (runId) => getJson(["-n", NS, "get", "networkpolicies", "-l", `paperclip.io/run-id=${runId}`])?.items ?? [];

describe("egressPolicy: true", () => {
  it("the run's pod, and only it, is selected by a policy that exists before its Job, belongs to it, and is gone after the run", async () => {
    const ctx = makeCtx({
      scenario: "plain/text=Fenced.",
      // The mock Anthropic API's address too: the real node enforces the policy.
      config: { egressPolicy: true, egressAllowCidrs: `192.0.2.0/24, ${nodeServicesHost}`, egressAllowPorts: [22] },
    });
    const seen = {};
    const r = await run(ctx, {
      onLog: async () => {
        if (seen.selected) return;
        const job = jobsOf(ctx.agent.id)[0];
        const policy = policiesOf(ctx.runId)[0];
        if (!job || (policy?.metadata.ownerReferences ?? []).length < 2) return;
        const pods = getJson(["-n", NS, "get", "pods", "-l", `job-name=${job.metadata.name}`])?.items ?? [];
        if (pods.length === 0) return;
        Object.assign(seen, { job, policy, selected: pods });
      },
    });
    expect(r.result, JSON.stringify(r.result) + r.stderr).toMatchObject({ exitCode: 0, summary: "Fenced." });
    const { job, policy, selected } = seen;
    expect(policy, "the policy was seen while the run's pod existed").toBeDefined();
    expect(policy.metadata.name).toBe(`${job.metadata.name}-egress`);
    // It belongs to the Job and to the pod: the garbage collector removes it only when both are gone.
    expect(policy.metadata.ownerReferences).toEqual([
      { apiVersion: "batch/v1", kind: "Job", name: job.metadata.name, uid: job.metadata.uid, blockOwnerDeletion: false },
      { apiVersion: "v1", kind: "Pod", name: selected[0].metadata.name, uid: selected[0].metadata.uid, blockOwnerDeletion: false },
    ]);
    // Created first: the pod never ran without it.
    expect(Date.parse(policy.metadata.creationTimestamp)).toBeLessThanOrEqual(Date.parse(job.metadata.creationTimestamp));
    // The selector matches the run's pod and nothing else (not Paperclip's own pod).
    expect(policy.spec.podSelector).toEqual({ matchLabels: { "job-name": job.metadata.name } });
    expect(selected.map((p) => p.metadata.labels["paperclip.io/run-id"])).toEqual([ctx.runId]);
    const all = getJson(["-n", NS, "get", "pods", "-l", `job-name=${job.metadata.name}`, "--all-namespaces"]).items;
    expect(all.map((p) => p.metadata.name)).not.toContain(SELF_POD);
    expect(policy.spec.policyTypes).toEqual(["Egress"]);
    const rules = policy.spec.egress;
    // DNS anywhere; Paperclip's pods by their labels; public TCP 443 (+22) with the private ranges cut out; the CIDR.
    expect(rules[0]).toEqual({ ports: [{ port: 53, protocol: "UDP" }, { port: 53, protocol: "TCP" }] });
    expect(rules.find((x) => x.to?.[0]?.podSelector)).toMatchObject({ to: [{ podSelector: { matchLabels: { app: "paperclip" } } }] });
    const pub = rules.find((x) => x.to?.[0]?.ipBlock?.cidr === "0.0.0.0/0");
    expect(pub.ports).toEqual([{ port: 443, protocol: "TCP" }, { port: 22, protocol: "TCP" }]);
    for (const cidr of ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16", "127.0.0.0/8"]) {
      expect(pub.to[0].ipBlock.except).toContain(cidr);
    }
    expect(pub.to[1].ipBlock).toMatchObject({ cidr: "::/0" });
    expect(rules.slice(-2)).toEqual([{ to: [{ ipBlock: { cidr: "192.0.2.0/24" } }] }, { to: [{ ipBlock: { cidr: `${nodeServicesHost}/32` } }] }]);
    // Said in the run's log, in words.
    expect(r.stdout).toContain(`; public addresses, TCP 443, 22; 192.0.2.0/24, any port; ${nodeServicesHost}/32, any port`);
    expect(r.stdout).toMatch(/\[paperclip\] Egress policy: only DNS \(UDP\/TCP 53\); the Paperclip API: pods app=paperclip, TCP \d+; public addresses, TCP 443, 22; 192\.0\.2\.0\/24, any port/);
    // Gone after the run, never before its pod: watched until both are gone.
    // The policy is read first: a pod seen after the policy was found gone
    // existed while it was gone (a pod never comes back). Read the other way
    // round, the garbage collector could remove the policy between the two
    // reads, just after the pod, and look early when it was not.
    const pod = selected[0].metadata.name;
    const seenAfter = [];
    await expect
      .poll(() => {
        const policyLeft = policiesOf(ctx.runId).length > 0;
        const podLeft = getJson(["-n", NS, "get", "pod", pod]) !== null;
        seenAfter.push({ podLeft, policyLeft });
        return podLeft || policyLeft;
      }, { timeout: 60_000, interval: 100 })
      .toBe(false);
    expect(seenAfter.filter((x) => x.podLeft && !x.policyLeft)).toEqual([]);
    expect(leftovers(ctx.runId)).toEqual({ pods: [], secrets: [] });
  });

  it("off by default: no policy, and testEnvironment says egress is unrestricted", async () => {
    const ctx = makeCtx({ scenario: "plain/text=Open." });
    let policies = null;
    const r = await run(ctx, {
      onLog: async () => {
        if (policies === null && jobsOf(ctx.agent.id)[0]) policies = policiesOf(ctx.runId);
      },
    });
    expect(r.result.exitCode).toBe(0);
    expect(policies).toEqual([]);
    const env = await testEnvironment({ companyId: "co", adapterType: "claude_k8s", config: { kubeconfig: cluster.KUBECONFIG, namespace: NS } });
    const egress = env.checks.find((c) => c.code === "k8s_pod_egress_unrestricted");
    expect(egress.hint).toMatch(/egressPolicy: true/);
    expect(env.checks.some((c) => c.code.startsWith("k8s_rbac_networkpolicy_"))).toBe(false);
  });

  it("testEnvironment with egressPolicy: the allowed destinations, and the verbs of deploy/rbac-egress.yaml", async () => {
    const config = { kubeconfig: cluster.KUBECONFIG, namespace: NS, egressPolicy: true };
    const r = await testEnvironment({ companyId: "co", adapterType: "claude_k8s", config });
    const by = Object.fromEntries(r.checks.map((c) => [c.code, c]));
    expect(by.k8s_pod_egress_policy.message).toMatch(/^Each run's pod gets a NetworkPolicy allowing egress only to: DNS \(UDP\/TCP 53\); the Paperclip API: pods app=paperclip/);
    expect(by.k8s_pod_egress_policy.hint).toMatch(/network plugin that implements NetworkPolicy/);
    expect(by.k8s_pod_egress_unrestricted).toBeUndefined();
    for (const verb of ["create", "patch", "delete"]) expect(by[`k8s_rbac_networkpolicy_${verb}`].level).toBe("info");
    // The documented Role alone (no rbac-egress.yaml): each verb reported.
    const without = identityWithout("tester-3", "none", "none");
    let denied;
    await expect
      .poll(async () => {
        denied = await testEnvironment({ companyId: "co", adapterType: "claude_k8s", config: { ...config, kubeconfig: without } });
        return denied.checks.filter((c) => c.level === "error").map((c) => c.code).sort();
      }, { timeout: 15_000, interval: 300 })
      .toEqual(["k8s_rbac_networkpolicy_create", "k8s_rbac_networkpolicy_delete", "k8s_rbac_networkpolicy_patch"]);
    expect(denied.checks.find((c) => c.code === "k8s_rbac_networkpolicy_create").hint).toMatch(/"create" on networkpolicies \(apiGroup networking\.k8s\.io\)/);
  });

  it("a run that asked for a policy and may not create one fails before its Job, and leaves nothing", async () => {
    const ctx = makeCtx({ config: { egressPolicy: true } });
    ctx.config.kubeconfig = identityWithout("tester-3", "none", "none");
    await untilAllowed(ctx.config.kubeconfig, NS, "list", "jobs.batch");
    const r = await run(ctx);
    expect(r.result.errorCode).toBe("k8s_egress_policy_create_failed");
    expect(r.result.errorMessage).toMatch(/^Failed to create the run's egress NetworkPolicy \(egressPolicy\): .*forbidden/i);
    expect(jobsOf(ctx.agent.id)).toEqual([]);
    expect(leftovers(ctx.runId)).toEqual({ pods: [], secrets: [] });
    expect(policiesOf(ctx.runId)).toEqual([]);
  });

  it("a bad allow list is a config error naming the key, before anything is created", async () => {
    const ctx = makeCtx({ config: { egressPolicy: true, egressAllowCidrs: ["10.0.0.0/40"] } });
    const r = await run(ctx);
    expect(r.result.errorCode).toBe("k8s_config_invalid");
    expect(r.result.errorMessage).toBe('invalid egress config: egressAllowCidrs: "10.0.0.0/40" is not a CIDR (a network address, IPv4 or IPv6, without host bits)');
    expect(jobsOf(ctx.agent.id)).toEqual([]);
  });
});

describe("testEnvironment's probe with egressPolicy", () => {
  it("the probe pod runs under the same policy, which is gone after it", async () => {
    const selector = "app.kubernetes.io/component=agent-egress";
    const isProbe = (p) => p.metadata.name.startsWith("ac-env-probe-");
    const egressOfProbes = () => (getJson(["-n", NS, "get", "networkpolicies", "-l", selector])?.items ?? []).filter(isProbe);
    const config = { kubeconfig: cluster.KUBECONFIG, namespace: NS, ...NODE_RESOURCES, egressPolicy: true, environmentProbe: "version" };
    // Every change since this list is replayed by a watch from its
    // resourceVersion afterwards: a policy that lived for less than any poll
    // (on the simulated node the whole probe can take 300 ms) is still seen.
    // The list is read raw: `kubectl get` builds its List itself, without
    // the apiserver's resourceVersion.
    const policies = `/apis/networking.k8s.io/v1/namespaces/${NS}/networkpolicies`;
    const since = JSON.parse(kubectl(["get", "--raw", `${policies}?${new URLSearchParams({ labelSelector: selector })}`])).metadata.resourceVersion;
    expect(since).toMatch(/^\d+$/);
    const r = await testEnvironment({ companyId: "co", adapterType: "claude_k8s", config });
    expect(r.checks.map((c) => c.code)).toContain("claude_probe_cli_version");
    const query = new URLSearchParams({ watch: "1", resourceVersion: since, labelSelector: selector, timeoutSeconds: "1" });
    const events = kubectl(["get", "--raw", `${policies}?${query}`])
      .split("\n")
      .filter(Boolean)
      .map((line) => JSON.parse(line));
    const created = new Set(events.filter((e) => e.type === "ADDED" && isProbe(e.object)).map((e) => e.object.metadata.name));
    expect(created.size, JSON.stringify(events.map((e) => [e.type, e.object.metadata?.name]))).toBe(1);
    await expect.poll(() => egressOfProbes().length, { timeout: 60_000 }).toBe(0);
  });
});

// Enforcement, on the real node only (the simulated node has no network).
// Two pods stand beside the run: one with Paperclip's labels serving on the
// API's port (the default URL's, 3100: no PAPERCLIP_API_URL is set here), as
// Paperclip's own pod would, and a decoy without them on the same port —
// another address of ours. The run's `claude` (the real CLI) reaches the mock
// Anthropic API on the node (allowed as egressAllowCidrs), and its Bash tool
// tries all three; the same command in a run without a policy reaches all
// three, so the one refused is refused by the policy.
describe.runIf(realNode)("egressPolicy enforced on the real node (kube-network-policies)", () => {
  const API_PORT = 3100;
  const standIns = [
    { name: "egress-api-standin", labels: { app: "paperclip" }, says: "API" },
    { name: "egress-decoy", labels: { app: "egress-decoy" }, says: "DECOY" },
  ];
  const ip = {};
  beforeAll(async () => {
    for (const p of standIns) {
      kubectl(["apply", "-f", "-"], {
        input: JSON.stringify({
          apiVersion: "v1",
          kind: "Pod",
          metadata: { name: p.name, namespace: NS, labels: p.labels },
          spec: {
            securityContext: RESTRICTED_POD,
            terminationGracePeriodSeconds: 0,
            containers: [
              {
                name: "serve",
                image: "claude-k8s/local:dev",
                command: ["node", "-e", `require("http").createServer((q, s) => s.end("${p.says}")).listen(${API_PORT})`],
                securityContext: RESTRICTED_CONTAINER,
                ...NODE_RESOURCES,
              },
            ],
          },
        }),
      });
    }
    // Serving: asked from the node itself (its own traffic is not a pod's).
    const until = Date.now() + 90_000;
    for (const p of standIns) {
      let said = null;
      while (said !== p.says) {
        if (Date.now() > until) throw new Error(`${p.name} did not serve in 90 s: ${JSON.stringify(getJson(["-n", NS, "get", "pod", p.name])?.status)}`);
        await new Promise((r) => setTimeout(r, 500));
        ip[p.name] = getJson(["-n", NS, "get", "pod", p.name])?.status?.podIP;
        if (!ip[p.name]) continue;
        said = await fetch(`http://${ip[p.name]}:${API_PORT}/`, { signal: AbortSignal.timeout(1000) })
          .then((r) => r.text())
          .catch(() => null);
      }
    }
  }, 120_000);
  afterAll(() => {
    for (const p of standIns) kubectl(["-n", NS, "delete", "pod", p.name, "--ignore-not-found", "--wait=false"], { allowFail: true });
  });

  // What the run's Bash tool prints: one line, each target's answer or why not.
  const probe = () => {
    const targets = {
      api: `http://${ip["egress-api-standin"]}:${API_PORT}/`,
      decoy: `http://${ip["egress-decoy"]}:${API_PORT}/`,
      anthropic: `${mockUrl}/`,
    };
    const js = `Promise.all(Object.entries(JSON.parse(process.argv[1])).map(([k, u]) =>
      fetch(u, { signal: AbortSignal.timeout(4000) }).then(
        (r) => r.text().then((b) => [k, "answered " + r.status + " " + b.slice(0, 20)]),
        (e) => [k, "failed " + (e.cause?.code ?? e.name)],
      ))).then((r) => console.log("REACH " + JSON.stringify(Object.fromEntries(r))));`;
    // Base64 inside, so the shell's quoting never meets the script's.
    return `node -e 'eval(Buffer.from("${Buffer.from(js).toString("base64")}", "base64").toString())' '${JSON.stringify(targets)}'`;
  };
  const reachOf = (r) => {
    const out = toolOutputOf(r.stdout);
    const m = out.match(/^REACH (.*)$/m);
    return m ? JSON.parse(m[1]) : out;
  };
  const runProbe = (config) =>
    run(makeCtx({ scenario: `tool/cmd64=${Buffer.from(probe()).toString("base64url")}/text=Probed.`, config }));

  it("a restricted run reaches the Paperclip API and the Anthropic API, and not another address of ours", async () => {
    const r = await runProbe({ egressPolicy: true, egressAllowCidrs: [`${nodeServicesHost}/32`] });
    expect(r.result, JSON.stringify(r.result) + r.stderr).toMatchObject({ exitCode: 0, summary: "Probed." });
    const reach = reachOf(r);
    expect(reach.api).toBe("answered 200 API");
    // The real CLI's own turns went there too: the run could not have ended without it.
    expect(reach.anthropic).toMatch(/^answered \d{3}/);
    // Dropped, not refused: the connection never got an answer.
    expect(reach.decoy).toBe("failed TimeoutError");
    expect(r.stdout).toMatch(/\[paperclip\] Egress policy: only DNS .*the Paperclip API: pods app=paperclip, TCP 3100/);
  });

  it("without a policy, the same run reaches all three", async () => {
    const reach = reachOf(await runProbe({}));
    expect(reach).toEqual({ api: "answered 200 API", decoy: "answered 200 DECOY", anthropic: expect.stringMatching(/^answered \d{3}/) });
  });
});
