// npm run bench — figures for the adapter on the local cluster, through the
// napi `execute` exactly as the host calls it. Prints a table, writes JSON.
// Never fails on a number: these machines are shared and noisy, so read the
// ratios within one run, not the absolute values across runs.
//
//   npm run bench                  everything (about 25 minutes, includes a 10-minute run)
//   npm run bench -- --quick       fewer repetitions, no 10-minute run, 50 instead of 200
//   npm run bench -- --only=latency,requests,throughput,memory,concurrency,diagnostics,package,crossing
//   npm run bench -- --build       also time a clean release build (several minutes)
//   npm run bench -- --publish     also write bench/results.json and bench/RESULTS.md
//
// What produces the transcript: the real Claude Code CLI against the mock
// Anthropic API where the CLI matters (one latency row, the 3 s request
// count); elsewhere a stand-in `claude` (bench/claude, a shell script put
// first on the pod's PATH through config.env) that emits stream-json from a
// file or slowly, so that the figures measure the adapter, not the CLI.
import { execFileSync, spawn, spawnSync } from "node:child_process";
import { chmodSync, closeSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, readSync, readdirSync, rmSync, statSync, writeFileSync, writeSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { performance } from "node:perf_hooks";
import { startMockAnthropic } from "../__tests__/support/mock-anthropic.mjs";
import { clusterDir, readClusterEnv } from "../scripts/cluster-env.mjs";

const root = path.resolve(import.meta.dirname, "..");
const argv = process.argv.slice(2);
const flag = (name) => argv.includes(`--${name}`);
const only = argv.find((a) => a.startsWith("--only="))?.slice(7).split(",");
const quick = flag("quick");
const wants = (s) => !only || only.includes(s);
const NS = "paperclip";
const now = () => performance.timeOrigin + performance.now(); // ms since the epoch, sub-ms precision

// ---------------------------------------------------------------- setup
function log(msg) {
  process.stderr.write(`[bench] ${msg}\n`);
}

// Sections that run pods; `package` and `crossing` need no cluster.
const clusterSections = ["latency", "requests", "throughput", "memory", "concurrency", "diagnostics"];
const needsCluster = clusterSections.some(wants);
let startedCluster = false;
// Ask the cluster, not its env file: `down` leaves the file behind.
const clusterUp = needsCluster && spawnSync("bash", [path.join(root, "scripts/test-cluster"), "status"], { stdio: "ignore" }).status === 0;
if (needsCluster && !clusterUp) {
  // The figures so far are the simulated node's: its stand-in `claude` comes
  // from this machine's PATH, which a real node's containers do not see.
  log("no local cluster: starting one (CLAUDE_K8S_NODE=sim scripts/test-cluster up)");
  execFileSync("bash", [path.join(root, "scripts/test-cluster"), "up"], {
    stdio: ["ignore", "inherit", "inherit"],
    env: { ...process.env, CLAUDE_K8S_NODE: process.env.CLAUDE_K8S_NODE ?? "sim" },
  });
  startedCluster = true;
}
const cluster = needsCluster ? readClusterEnv() : {};
// On the real node (kubelet, containerd, runc) the stand-in and its transcript
// reach the pods through the PVC every run mounts (the bench plays Paperclip's
// pod, as the e2e suites do), and the node's share of the CPU is the kubelet's,
// containerd's and the shims'. Latency is read from the audit log, a
// bystander watch and the stand-in's own stamps there (the simulated node
// keeps records of its own). The real node rotates container logs at
// containerLogMaxSize (10Mi unless CLAUDE_K8S_CONTAINER_LOG_MAX_SIZE says
// otherwise at `up`): the 100 MiB and 1 GiB transcripts want 2Gi.
const realNode = cluster.CLAUDE_K8S_NODE === "real";
const onNode = wants;
// Env files written before the version was recorded are 1.20.2's.
const k8sVersion = needsCluster ? `v${cluster.K8S_VERSION ?? "1.20.2"}` : "-";
if (!readdirNode().length) {
  log("no release build of the addon: npm run build");
  execFileSync("npm", ["run", "build"], { cwd: root, stdio: ["ignore", "inherit", "inherit"] });
}
function readdirNode() {
  return readdirSync(root).filter((f) => /^claude-k8s\..*\.node$/.test(f));
}
const { execute } = await import("../server.js");
// The real node's pods reach this machine's services at the bridge address only.
const mock = await startMockAnthropic({ port: 0, host: cluster.NODE_SERVICES_HOST ?? "127.0.0.1" });

// The real node's pods see the PVC's directory at /paperclip, and nothing else of this machine.
const work = mkdtempSync(path.join(realNode ? cluster.PVC_DIR : os.tmpdir(), "ck8s-bench-"));
chmodSync(work, 0o755); // the pods run as another uid
/** Where a pod sees `hostPath` (a file under `work`). */
const inPod = (hostPath) => (realNode ? path.join("/paperclip", path.relative(cluster.PVC_DIR, hostPath)) : hostPath);
const SELF_POD = "paperclip-bench-host";
if (realNode) {
  // Paperclip's pod, for the adapter to introspect: its PVC is what the runs mount.
  const admin = ["--kubeconfig", cluster.ADMIN_KUBECONFIG, "-n", NS];
  const restrictedContainer = { allowPrivilegeEscalation: false, capabilities: { drop: ["ALL"] }, runAsNonRoot: true, runAsUser: 1000, seccompProfile: { type: "RuntimeDefault" } };
  const pod = {
    apiVersion: "v1",
    kind: "Pod",
    metadata: { name: SELF_POD, namespace: NS, labels: { app: "paperclip" } },
    spec: {
      securityContext: { runAsNonRoot: true, runAsUser: 1000, fsGroup: 1000, seccompProfile: { type: "RuntimeDefault" } },
      containers: [{ name: "paperclip", image: "claude-k8s/local:dev", command: ["sleep", "infinity"], securityContext: restrictedContainer, resources: { requests: { cpu: "10m", memory: "32Mi" } }, volumeMounts: [{ name: "data", mountPath: "/paperclip" }] }],
      volumes: [{ name: "data", persistentVolumeClaim: { claimName: "paperclip-data" } }],
    },
  };
  execFileSync("kubectl", [...admin, "apply", "-f", "-"], { input: JSON.stringify(pod), stdio: ["pipe", "ignore", "inherit"] });
  process.env.HOSTNAME = SELF_POD;
  process.env.PAPERCLIP_NAMESPACE = NS;
}
const bin = path.join(work, "bin");
mkdirSync(bin, { mode: 0o755 });
copyFileSync(path.join(import.meta.dirname, "claude"), path.join(bin, "claude"));
chmodSync(path.join(bin, "claude"), 0o755);

/**
 * A stream-json transcript of about `mib` MiB of numbered assistant lines:
 * ~270 B each, or with `cli`, each with the envelope the CLI gives every
 * assistant event (type, role, usage, stop fields, parent, uuid) around a
 * short text: ~610 B, the shortest lines the CLI writes.
 */
function transcriptFile(mib, { cli = false } = {}) {
  const file = path.join(work, `transcript-${cli ? "cli-" : ""}${mib}.jsonl`);
  const pad = "x".repeat(160);
  const line = cli
    ? (n) =>
        `{"type":"assistant","message":{"id":"msg_01${String(n).padStart(22, "0")}","type":"message","role":"assistant","model":"claude-sonnet-4-6","content":[{"type":"text","text":"Step ${n}: reading the module."}],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":4,"cache_creation_input_tokens":312,"cache_read_input_tokens":41877,"cache_creation":{"ephemeral_5m_input_tokens":0,"ephemeral_1h_input_tokens":0},"output_tokens":1,"service_tier":"standard"},"context_management":null},"parent_tool_use_id":null,"session_id":"0b5e3c1e-7f0a-4c52-9d55-5b8a6c3f2e11","uuid":"9a0c${n.toString(16).padStart(8, "0")}-1f2e-4d3c-8b4a-${n.toString(16).padStart(12, "0")}"}\n`
    : (n) => `{"type":"assistant","message":{"id":"msg_${n}","model":"bench","content":[{"type":"text","text":"${pad} ${n}"}]},"session_id":"bench"}\n`;
  const fd = openSync(file, "w", 0o644);
  let bytes = 0;
  let n = 0;
  const target = mib * 1024 * 1024;
  while (bytes < target) {
    const parts = [];
    for (let k = 0; k < 4096; k += 1) {
      n += 1;
      parts.push(line(n));
    }
    const chunk = Buffer.from(parts.join(""));
    bytes += chunk.length;
    writeSync(fd, chunk);
  }
  closeSync(fd);
  chmodSync(file, 0o644);
  return { file, lines: n, bytes, resultLine: false };
}

/**
 * About `mib` MiB shaped like a real `claude --output-format stream-json
 * --verbose` transcript (crates/core/examples/log_pipeline.rs: init, thinking,
 * text, tool_use, tool results of 0.1–200 KiB, one huge line, the result
 * event; ~40 KiB a line, lines over 16 KiB reach the log file as partial
 * records). It carries its own result line.
 */
function claudeShapedFile(mib) {
  const file = path.join(work, `transcript-claude-${mib}.jsonl`);
  const out = execFileSync("cargo", ["run", "-q", "--profile", "tools", "-p", "claude-k8s-core", "--example", "log_pipeline", String(mib)], { cwd: root, encoding: "utf8", env: { ...process.env, PHASE: "write", OUT: file } });
  const { lines, bytes } = JSON.parse(out.trim().split("\n").pop());
  chmodSync(file, 0o644);
  return { file, lines, bytes, resultLine: true };
}

let seq = 0;
function ctx({ env = {}, config = {} } = {}) {
  seq += 1;
  const id = `bench-${process.pid}-${seq}`;
  return {
    runId: `run-${id}`,
    agent: { id, companyId: "co-bench", name: id, adapterType: "claude_k8s", adapterConfig: {} },
    runtime: { sessionId: null, sessionParams: null, sessionDisplayId: null, taskKey: null },
    config: {
      kubeconfig: cluster.KUBECONFIG,
      namespace: NS,
      image: "claude-k8s/local:dev", // off-cluster: nothing to inherit (the node runs any image name)
      model: "claude-sonnet-4-6",
      timeoutSec: 0,
      // The real node has 2 cores: a run's pod asks little, so that the next one schedules while the last one goes.
      ...(realNode ? { resources: { requests: { cpu: "10m", memory: "64Mi" } } } : {}),
      // The mock API takes any key; the CLI only needs one to be set.
      env: { ANTHROPIC_BASE_URL: `${mock.url}/s/plain`, ANTHROPIC_API_KEY: "sk-ant-bench-mock", CLAUDE_CODE_MAX_RETRIES: "0", ...env },
      ...config,
    },
    context: { taskId: `task-${id}` },
  };
}

/** The stand-in claude: `file` mode cats a transcript, `slow` emits N lines `interval` s apart. */
const standIn = (env) => ({ PATH: `${inPod(bin)}:/usr/local/bin:/usr/bin:/bin`, ...env, ...(env.BENCH_FILE ? { BENCH_FILE: inPod(env.BENCH_FILE) } : {}) });

/**
 * One execute(), timed. Container output is told from the adapter's own
 * `[paperclip] …` lines (which are whole chunks of their own).
 */
async function timedRun(c) {
  const t = { call: now(), firstOut: null, lastOut: null, resolved: null };
  let outBytes = 0;
  let outLines = 0;
  let calls = 0;
  let hostMs = 0; // time spent in this onLog (the host's share, not the adapter's)
  const result = await execute({
    ...c,
    onLog: async (stream, chunk) => {
      if (stream !== "stdout" || chunk.startsWith("[paperclip]")) return;
      const at = now();
      t.firstOut ??= at;
      t.lastOut = at;
      calls += 1;
      outBytes += Buffer.byteLength(chunk);
      for (let i = chunk.indexOf("\n"); i !== -1; i = chunk.indexOf("\n", i + 1)) outLines += 1;
      hostMs += now() - at;
    },
    onMeta: async () => {},
  });
  t.resolved = now();
  return { t, result, outBytes, outLines, calls, hostMs };
}

// ------------------------------------------------------------ the cluster's own records
/** The node's microsecond records for one pod name prefix (crates/test-node: records.jsonl). */
function nodeRecords(jobPrefix) {
  const file = path.join(clusterDir, "node", "records.jsonl");
  if (!existsSync(file)) return [];
  return readFileSync(file, "utf8")
    .split("\n")
    .filter(Boolean)
    .map((l) => JSON.parse(l))
    .filter((r) => r.pod.startsWith(jobPrefix) && r.container === "claude")
    .map((r) => ({ ...r, t: r.t * 1000 }));
}

/** Audit-log cursor: the adapter identity's requests between two points. */
function auditOffset() {
  return existsSync(cluster.AUDIT_LOG) ? statSync(cluster.AUDIT_LOG).size : 0;
}
function auditSince(offset) {
  return auditAll(offset).filter((e) => e.user?.username === "claude-k8s-adapter");
}
function byVerbResource(entries) {
  const out = {};
  for (const e of entries) {
    const r = e.objectRef ? `${e.objectRef.resource}${e.objectRef.subresource ? `/${e.objectRef.subresource}` : ""}` : e.requestURI;
    const verb = /[?&]watch=(true|1)/.test(e.requestURI) ? "watch" : e.verb;
    const k = `${verb} ${r}`;
    out[k] = (out[k] ?? 0) + 1;
  }
  return out;
}

// ------------------------------------------------------------------ statistics
function stats(values) {
  const v = values.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (!v.length) return null;
  const q = (p) => v[Math.min(v.length - 1, Math.max(0, Math.ceil(p * v.length) - 1))];
  return { n: v.length, min: v[0], median: q(0.5), p95: q(0.95), max: v[v.length - 1] };
}
const figures = {};
const table = [];
function report(key, label, unit, values, note = "", { cluster = true } = {}) {
  const s = Array.isArray(values) ? stats(values) : values;
  // Which Kubernetes the figure ran on ("-": none): --only re-runs merge into figures of other runs.
  // The real node's figures are kept beside the simulated node's.
  if (cluster && realNode) key = `${key}@real`;
  figures[key] = { label, unit, ...s, note, kubernetes: cluster ? k8sVersion : "-", node: cluster ? (realNode ? "real" : "simulated") : "-" };
  const f = (x) => (x == null ? "-" : Math.abs(x) >= 100 ? x.toFixed(0) : x.toFixed(x >= 10 ? 1 : 3));
  table.push([label, unit, s ? `${f(s.min)} / ${f(s.median)} / ${f(s.max)}` : "-", s?.n ?? "-", note]);
  log(`${label}: ${s ? `min ${f(s.min)} median ${f(s.median)} max ${f(s.max)} ${unit}` : "no data"} ${note}`);
}
const mib = (b) => b / (1024 * 1024);
function rss() {
  return process.memoryUsage.rss();
}
/** Samples RSS every 50 ms while `fn` runs; returns [result, peak RSS]. */
async function withPeakRss(fn) {
  let peak = rss();
  const timer = setInterval(() => {
    peak = Math.max(peak, rss());
  }, 50);
  try {
    const r = await fn();
    peak = Math.max(peak, rss());
    return [r, peak];
  } finally {
    clearInterval(timer);
  }
}
function settle() {
  if (global.gc) global.gc();
}
let section = "";
const check = (cond, msg) => {
  if (!cond) {
    log(`WARNING: ${msg}`);
    figures.warnings = [...(figures.warnings ?? []), `${section}: ${msg}`];
  }
};

// ------------------------------------------------------------------ scenarios
async function latency() {
  const reps = quick ? 3 : 7;
  const startToJob = [];
  const runningToFirst = [];
  const exitToResolve = [];
  const terminatedPostedToResolve = [];
  for (let i = 0; i < reps; i += 1) {
    const off = auditOffset();
    const r = await timedRun(ctx({ env: standIn({ BENCH_MODE: "slow", BENCH_LINES: "3", BENCH_INTERVAL: "0.2" }) }));
    check(r.result.exitCode === 0, `latency run ${i}: exit ${r.result.exitCode} ${r.result.errorMessage ?? ""}`);
    const create = auditSince(off).find((e) => e.verb === "create" && e.objectRef?.resource === "jobs");
    if (create) startToJob.push(Date.parse(create.requestReceivedTimestamp) + micros(create.requestReceivedTimestamp) - r.t.call);
    const job = create?.objectRef?.name;
    const recs = job ? nodeRecords(job) : [];
    const running = recs.find((x) => x.event === "running-posted");
    const exited = recs.find((x) => x.event === "exited");
    const posted = recs.find((x) => x.event === "terminated-posted");
    if (running && r.t.firstOut) runningToFirst.push(r.t.firstOut - running.t);
    if (exited) exitToResolve.push(r.t.resolved - exited.t);
    if (posted) terminatedPostedToResolve.push(r.t.resolved - posted.t);
  }
  report("start.executeToJobCreated", "execute called → Job create received", "ms", startToJob);
  report("start.podRunningToFirstLog", "pod Running (node) → first container onLog", "ms", runningToFirst);
  report("completion.exitToResolve", "container exit (node) → execute resolves", "ms", exitToResolve);
  report("completion.statusToResolve", "terminated status posted (node) → resolves", "ms", terminatedPostedToResolve, "our share of the above");
  // The real CLI, for scale: the whole heartbeat.
  const cli = [];
  for (let i = 0; i < (quick ? 1 : 3); i += 1) {
    const r = await timedRun(ctx());
    check(r.result.exitCode === 0, `real CLI run: exit ${r.result.exitCode} ${r.result.errorMessage ?? ""}`);
    cli.push(r.t.resolved - r.t.call);
  }
  report("start.realCliHeartbeat", "whole heartbeat, real Claude Code CLI", "ms", cli, "CLI boot dominates");
}

/**
 * Start and end of a run on the real node, broken down. Every moment comes
 * from a record made where it happens, on the one clock of this machine:
 *   - the apiserver's audit log (µs): the Job's create (the adapter), its
 *     pod's create (the Job controller), the binding (the scheduler), and the
 *     adapter's requests after the container's end;
 *   - a bystander watch on the run's pod (`kubectl get -w`, stamped as each
 *     object arrives): sandbox ready, container running, container terminated
 *     — when anyone watching could know it;
 *   - the stand-in `claude` itself (ns, `date`): its process's start and its
 *     last moment;
 *   - onLog: the first container line, and execute() resolving.
 * The bystander's own delay (kubectl decoding and printing) is in the
 * "seen" moments; it is the same for every one of them.
 */
async function latencyReal() {
  const reps = quick ? 10 : 30;
  const rows = {};
  const add = (k, v) => Number.isFinite(v) && (rows[k] ??= []).push(v);
  const admin = ["--kubeconfig", cluster.ADMIN_KUBECONFIG, "-n", NS];
  // The pods run as uid 1000.
  const stamps = path.join(work, "stamps");
  mkdirSync(stamps, { mode: 0o777 });
  chmodSync(stamps, 0o777);
  for (let i = 0; i < reps; i += 1) {
    const c = ctx({ env: standIn({ BENCH_MODE: "slow", BENCH_LINES: "3", BENCH_INTERVAL: "0.2" }) });
    const stamp = path.join(stamps, c.runId);
    c.config.env.BENCH_STAMP = inPod(stamp);
    const seen = {};
    const watcher = spawn("kubectl", [...admin, "get", "pods", "-l", `paperclip.io/run-id=${c.runId}`, "-w", "-o", "json"], { stdio: ["ignore", "pipe", "ignore"] });
    let buf = "";
    watcher.stdout.setEncoding("utf8");
    watcher.stdout.on("data", (d) => {
      const at = now();
      buf += d;
      // kubectl prints each object indented, its closing brace alone at the start of a line.
      for (let end = buf.indexOf("\n}\n"); end !== -1; end = buf.indexOf("\n}\n")) {
        const pod = JSON.parse(buf.slice(0, end + 2));
        buf = buf.slice(end + 3);
        const cond = (t) => pod.status?.conditions?.find((x) => x.type === t)?.status === "True";
        const st = pod.status?.containerStatuses?.find((x) => x.name === "claude")?.state ?? {};
        if (cond("PodReadyToStartContainers")) seen.sandbox ??= at;
        if (st.running) seen.running ??= at;
        if (st.terminated) seen.terminated ??= at;
      }
    });
    await new Promise((res) => setTimeout(res, 300)); // the watch established
    const off = auditOffset();
    const r = await timedRun(c);
    watcher.kill();
    check(r.result.exitCode === 0, `latency run ${i}: exit ${r.result.exitCode} ${r.result.errorMessage ?? ""}`);
    const audit = auditAll(off);
    const at = (e) => (e ? Date.parse(e.requestReceivedTimestamp) + micros(e.requestReceivedTimestamp) : NaN);
    const done = (e) => (e ? Date.parse(e.stageTimestamp) + micros(e.stageTimestamp) : NaN);
    const jobCreate = audit.find((e) => e.verb === "create" && e.objectRef?.resource === "jobs" && e.objectRef?.subresource == null && e.user?.username === "claude-k8s-adapter");
    const job = jobCreate?.objectRef?.name;
    // Pods are created with generateName; in this serial bench the first one after the Job is its.
    const podCreate = audit.find((e) => e.verb === "create" && e.objectRef?.resource === "pods" && !e.objectRef?.subresource && at(e) >= at(jobCreate));
    const binding = audit.find((e) => e.verb === "create" && e.objectRef?.resource === "pods" && e.objectRef?.subresource === "binding" && (e.objectRef?.name ?? "").startsWith(job ?? "-"));
    // The file's mtime: the kernel's clock when the stand-in made it (coarse: a tick, ≤ 4 ms).
    const ns = (f) => (existsSync(f) ? Number(statSync(f, { bigint: true }).mtimeNs) / 1e6 : NaN);
    const started = ns(`${stamp}.start`);
    const exited = ns(`${stamp}.exit`);
    rmSync(`${stamp}.start`, { force: true });
    rmSync(`${stamp}.exit`, { force: true });
    add("executeToJob", at(jobCreate) - r.t.call);
    add("jobToPod", at(podCreate) - done(jobCreate));
    add("podToBound", at(binding) - done(podCreate));
    add("boundToSandbox", seen.sandbox - done(binding));
    add("sandboxToProcess", started - seen.sandbox);
    add("processToFirstLine", r.t.firstOut - started);
    add("runningSeenToFirstLine", r.t.firstOut - seen.running);
    add("executeToFirstLine", r.t.firstOut - r.t.call);
    add("exitToTerminatedSeen", seen.terminated - exited);
    add("terminatedSeenToResolved", r.t.resolved - seen.terminated);
    add("exitToResolved", r.t.resolved - exited);
    // The adapter's requests after the bystander saw the end, in order.
    const after = audit.filter((e) => e.user?.username === "claude-k8s-adapter" && at(e) >= seen.terminated - 5).sort((a, b) => at(a) - at(b));
    const kind = (e) => `${e.verb} ${e.objectRef?.resource ?? ""}${e.objectRef?.subresource ? `/${e.objectRef.subresource}` : ""}`;
    const first = (k) => after.find((e) => kind(e) === k);
    add("drainRequest", done(first("get pods/log")) - at(first("get pods/log")));
    add("eventWrite", done(first("create events")) - at(first("create events")));
    add("jobDelete", done(first("delete jobs")) - at(first("delete jobs")));
    add("deleteToResolved", r.t.resolved - done(first("delete jobs")));
    if (i === 0 || process.env.BENCH_DEBUG) log(`latency: after the end (+ms from the bystander's terminated) the adapter asked: ${after.map((e) => `${kind(e)} +${(at(e) - seen.terminated).toFixed(1)}..+${(done(e) - seen.terminated).toFixed(1)}`).join(", ")}; resolved +${(r.t.resolved - seen.terminated).toFixed(1)}; stamps ${started} ${exited}`);
  }
  const f = (k) => rows[k] ?? [];
  report("start.executeToJobCreated", "execute called → Job create received", "ms", f("executeToJob"), "ours: guard, config, Secret/env, the request");
  report("start.jobToPod", "  Job created → its pod created (Job controller)", "ms", f("jobToPod"));
  report("start.podToBound", "  pod created → bound (scheduler)", "ms", f("podToBound"));
  report("start.boundToSandbox", "  bound → sandbox ready, seen (kubelet, CNI, runc)", "ms", f("boundToSandbox"), "bystander watch");
  report("start.sandboxToProcess", "  sandbox ready seen → claude's process starts", "ms", f("sandboxToProcess"), "write-prompt init container, image checks, runc; can be negative: the status is posted late");
  report("start.processToFirstLine", "  claude's process starts → first line in onLog", "ms", f("processToFirstLine"), "the stand-in's first line; ours: the watch, the log request");
  report("start.runningSeenToFirstLine", "  container running, seen → first line in onLog", "ms", f("runningSeenToFirstLine"), "can be negative: we read the log before the status says running");
  report("start.executeToFirstLine", "execute called → first line in onLog", "ms", f("executeToFirstLine"));
  report("completion.exitToTerminatedSeen", "container's last moment → terminated status, seen", "ms", f("exitToTerminatedSeen"), "kubelet: PLEG, status manager; bystander watch");
  report("completion.terminatedSeenToResolve", "terminated status seen → execute resolves", "ms", f("terminatedSeenToResolved"), "ours: the drain, the outcome Event, the Job's delete; target median ≤ 20");
  report("completion.drainRequest", "  the drain's pods/log request", "ms", f("drainRequest"), "apiserver's audit, received → complete");
  report("completion.eventWrite", "  the outcome Event's create", "ms", f("eventWrite"));
  report("completion.jobDelete", "  the Job's delete", "ms", f("jobDelete"));
  report("completion.deleteToResolve", "  delete answered → execute resolves", "ms", f("deleteToResolved"), "napi, the promise, the bench's await");
  report("completion.exitToResolve", "container's last moment → execute resolves", "ms", f("exitToResolved"));
}

/** Every audit entry (all users) written since `offset`. */
function auditAll(offset) {
  const size = statSync(cluster.AUDIT_LOG).size;
  const buf = Buffer.alloc(size - offset);
  const fd = openSync(cluster.AUDIT_LOG, "r");
  readSync(fd, buf, 0, buf.length, offset);
  closeSync(fd);
  const seen = new Map();
  for (const line of buf.toString("utf8").split("\n")) {
    if (!line) continue;
    const e = JSON.parse(line);
    // ResponseComplete replaces ResponseStarted (same auditID).
    seen.set(e.auditID, e);
  }
  return [...seen.values()];
}

/** Audit timestamps carry microseconds; Date.parse keeps milliseconds only. */
function micros(ts) {
  const m = /\.(\d{3})(\d{0,3})/.exec(ts);
  return m && m[2] ? Number(`0.${m[2].padEnd(3, "0")}`) : 0;
}

async function requests() {
  const cases = [
    { key: "3s", label: "3 s run (real CLI)", c: () => ctx({ env: { ANTHROPIC_BASE_URL: `${mock.url}/s/slow/seconds=3/lines=3` } }), reps: quick ? 1 : 3 },
    { key: "60s", label: "60 s run", c: () => ctx({ env: standIn({ BENCH_MODE: "slow", BENCH_LINES: "30", BENCH_INTERVAL: "2" }) }), reps: quick ? 1 : 2 },
  ];
  if (!quick) cases.push({ key: "600s", label: "10 min run", c: () => ctx({ env: standIn({ BENCH_MODE: "slow", BENCH_LINES: "120", BENCH_INTERVAL: "5" }) }), reps: 1 });
  for (const k of cases) {
    const totals = [];
    let breakdown = {};
    for (let i = 0; i < k.reps; i += 1) {
      const off = auditOffset();
      const r = await timedRun(k.c());
      check(r.result.exitCode === 0, `requests ${k.key}: exit ${r.result.exitCode} ${r.result.errorMessage ?? ""}`);
      await new Promise((res) => setTimeout(res, 1500)); // watches closed at the end are logged on completion
      const entries = auditSince(off);
      totals.push(entries.length);
      breakdown = byVerbResource(entries);
    }
    report(`requests.${k.key}`, `apiserver requests, ${k.label}`, "req", totals, Object.entries(breakdown).map(([a, b]) => `${a}×${b}`).join(", "));
  }
}

/**
 * One process's or thread's `/proc/…/stat`: its name (between the first "("
 * and the last ")", as a name may hold either), parent, user+system CPU
 * seconds and start time (ticks since boot). Throws when it has ended.
 */
function procStat(file) {
  const stat = readFileSync(file, "utf8");
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // utime and stime are fields 14 and 15, in USER_HZ (100) ticks.
  return { comm: stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")")), ppid: f[1], cpu: (Number(f[11]) + Number(f[12])) / 100, start: f[19] };
}
/** user+system CPU seconds of every live process by command name (/proc/<pid>/stat). */
function cpuByPid(comms, pids = null) {
  const out = new Map();
  for (const pid of pids ?? readdirSync("/proc")) {
    if (!/^\d+$/.test(pid)) continue;
    try {
      const { comm, cpu, start } = procStat(`/proc/${pid}/stat`);
      if (comms.includes(comm)) out.set(`${pid}/${start}`, { comm, cpu }); // pid and start time: one process
    } catch {
      // it ended
    }
  }
  return out;
}
/**
 * The real node's processes, sampled every 100 ms while a run goes: a pod's
 * shim comes and goes within it, so its last sample is what it cost. The
 * sampler runs in this process, so it reads only the processes it knows
 * (~0.1 ms) and looks through all of /proc for new ones once a second
 * (~2 ms): ten full scans a second were ~2 % of a core counted as ours.
 */
function realNodeSampler() {
  const comms = [...new Set(Object.values(realComms).flat())];
  const first = cpuByPid(comms);
  const last = new Map(first);
  let ticks = 0;
  const sample = (full) => {
    const known = full ? null : [...new Set([...last.keys()].map((k) => k.split("/")[0]))];
    for (const [k, v] of cpuByPid(comms, known)) last.set(k, v);
  };
  const timer = setInterval(() => sample(++ticks % 10 === 0), 100);
  return () => {
    clearInterval(timer);
    sample(true);
    const by = {};
    for (const [name, list] of Object.entries(realComms)) {
      let sum = 0;
      for (const [k, v] of last) if (list.includes(v.comm)) sum += v.cpu - (first.get(k)?.cpu ?? 0);
      by[name] = sum;
    }
    return by;
  };
}
/** user+system CPU seconds of a cluster process so far (/proc/<pid>/stat), or null. */
function processCpu(name) {
  try {
    const pid = readFileSync(path.join(clusterDir, "pids", name), "utf8").trim();
    return procStat(`/proc/${pid}/stat`).cpu;
  } catch {
    return null;
  }
}
/** user+system CPU seconds of this process's threads so far, summed by thread name. */
function threadCpu() {
  const out = {};
  for (const tid of readdirSync("/proc/self/task")) {
    try {
      const { comm, cpu } = procStat(`/proc/self/task/${tid}/stat`);
      out[comm] = (out[comm] ?? 0) + cpu;
    } catch {
      // the thread ended
    }
  }
  return out;
}
/** Voluntary context switches (sleeps) by thread name: how often the threads waited for work. */
function threadSwitches() {
  const out = {};
  for (const tid of readdirSync("/proc/self/task")) {
    try {
      const status = readFileSync(`/proc/self/task/${tid}/status`, "utf8");
      const name = /^Name:\s*(.*)$/m.exec(status)[1];
      out[name] = (out[name] ?? 0) + Number(/^voluntary_ctxt_switches:\s*(\d+)/m.exec(status)[1]);
    } catch {
      // the thread ended
    }
  }
  return out;
}
/** Busy and total jiffies of the whole machine (/proc/stat). */
function machineCpu() {
  const f = readFileSync("/proc/stat", "utf8").split("\n")[0].trim().split(/\s+/).slice(1).map(Number);
  const idle = f[3] + f[4];
  const total = f.reduce((a, b) => a + b, 0);
  return { busy: total - idle, total };
}
// The node's work: the simulated node's one process, or the real node's kubelet,
// containerd (it writes the container's log file) and the pods' shims.
const clusterProcs = realNode ? ["node", "kubelet", "containerd", "apiserver"] : ["node", "apiserver"];
const realComms = { kubelet: ["kubelet"], containerd: ["containerd"], node: ["kubelet", "containerd", "containerd-shim"], apiserver: ["kube-apiserver"] };
/** CPU of the cluster's processes and of the machine around `fn`. */
async function withCpu(fn) {
  const stopSampler = realNode ? realNodeSampler() : null;
  const before = Object.fromEntries(clusterProcs.map((p) => [p, processCpu(p)]));
  const m0 = machineCpu();
  const t0 = threadCpu();
  const c0 = process.cpuUsage();
  const r = await fn();
  const c = process.cpuUsage(c0);
  const t1 = threadCpu();
  const m1 = machineCpu();
  const threads = Object.fromEntries(Object.entries(t1).map(([k, v]) => [k, v - (t0[k] ?? 0)]));
  const sampled = stopSampler?.();
  const procs = Object.fromEntries(clusterProcs.map((p) => [p, sampled?.[p] ?? (before[p] == null ? null : processCpu(p) - before[p])]));
  return { r, selfCpu: (c.user + c.system) / 1e6, threads, procs, machineBusy: (m1.busy - m0.busy) / Math.max(1, m1.total - m0.total) };
}

/**
 * The same transcript through plain `kubectl logs -f` from a bare pod on the
 * same node (the adapter's identity reads the log, as the adapter does):
 * bytes and first → last byte as the bench reads kubectl's stdout, and
 * kubectl's own CPU (bash's `times` after it exits).
 */
async function kubectlRun(env, { timestamps, http1 = false }) {
  seq += 1;
  const pod = `bench-kubectl-${process.pid}-${seq}`;
  const manifest = {
    apiVersion: "v1",
    kind: "Pod",
    metadata: { name: pod, namespace: NS },
    spec: {
      restartPolicy: "Never",
      // The namespace enforces Pod Security `restricted`, as the adapter's pods meet it.
      securityContext: { runAsNonRoot: true, runAsUser: 1000, seccompProfile: { type: "RuntimeDefault" } },
      containers: [
        {
          name: "claude",
          image: "claude-k8s/local:dev",
          command: ["claude"],
          env: Object.entries(env).map(([name, value]) => ({ name, value })),
          securityContext: { allowPrivilegeEscalation: false, capabilities: { drop: ["ALL"] } },
          ...(realNode ? { resources: { requests: { cpu: "10m", memory: "64Mi" } }, volumeMounts: [{ name: "data", mountPath: "/paperclip" }] } : {}),
        },
      ],
      ...(realNode ? { volumes: [{ name: "data", persistentVolumeClaim: { claimName: "paperclip-data" } }] } : {}),
    },
  };
  const admin = ["--kubeconfig", cluster.ADMIN_KUBECONFIG, "-n", NS];
  execFileSync("kubectl", [...admin, "create", "-f", "-"], { input: JSON.stringify(manifest), stdio: ["pipe", "ignore", "inherit"] });
  try {
    // Until the container has started, `logs -f` fails ("waiting to start"): retry.
    const args = ["--kubeconfig", cluster.KUBECONFIG, "-n", NS, "logs", "-f", pod, ...(timestamps ? ["--timestamps"] : [])].map((a) => `'${a}'`).join(" ");
    for (let attempt = 0; attempt < 100; attempt += 1) {
      const r = await new Promise((resolve) => {
        // http1: Go's client over HTTP/1.1, as kube-rs speaks to the apiserver (kubectl negotiates HTTP/2).
        const env = http1 ? { ...process.env, GODEBUG: "http2client=0" } : process.env;
        const child = spawn("bash", ["-c", `kubectl ${args} || exit 1; times >&2`], { stdio: ["ignore", "pipe", "pipe"], env });
        let bytes = 0;
        let first = null;
        let last = null;
        let err = "";
        child.stdout.on("data", (b) => {
          const at = now();
          first ??= at;
          last = at;
          bytes += b.length;
        });
        child.stderr.on("data", (b) => (err += b));
        child.on("close", (code) => resolve({ code, bytes, first, last, err }));
      });
      if (r.code === 0 && r.bytes > 0) {
        // `times`: the shell's user/system, then its children's (kubectl's).
        const m = /(\d+)m([\d.]+)s (\d+)m([\d.]+)s\s*$/.exec(r.err.trim());
        const cpu = m ? Number(m[1]) * 60 + Number(m[2]) + Number(m[3]) * 60 + Number(m[4]) : null;
        return { bytes: r.bytes, seconds: (r.last - r.first) / 1000, cpu };
      }
      await new Promise((res) => setTimeout(res, 100));
    }
    throw new Error(`kubectl logs -f ${pod} never succeeded`);
  } finally {
    execFileSync("kubectl", [...admin, "delete", "pod", pod, "--wait=false"], { stdio: "ignore" });
  }
}

/**
 * The cluster's processes (those of <cluster>/pids, containerd's shims, and
 * every process under them: pods, containers) as pids.
 */
function clusterProcesses() {
  const children = new Map();
  const roots = new Set();
  for (const name of readdirSync(path.join(clusterDir, "pids"))) roots.add(readFileSync(path.join(clusterDir, "pids", name), "utf8").trim());
  for (const pid of readdirSync("/proc")) {
    if (!/^\d+$/.test(pid)) continue;
    try {
      const { comm, ppid } = procStat(`/proc/${pid}/stat`);
      if (comm.startsWith("containerd-shim")) roots.add(pid); // a shim daemonizes: its parent is init
      if (children.has(ppid)) children.get(ppid).push(pid);
      else children.set(ppid, [pid]);
    } catch {
      // it ended
    }
  }
  const out = [];
  const todo = [...roots];
  while (todo.length) {
    const pid = todo.pop();
    out.push(pid);
    todo.push(...(children.get(pid) ?? []));
  }
  return out;
}
/**
 * The cluster on the first half of the cores, this process (the adapter, and
 * kubectl as its child) on the other half: as in a real cluster, where the
 * adapter runs in Paperclip's pod and shares no core with the apiserver or the
 * kubelet. (New shims and pods inherit containerd's cores.) Returns the undo,
 * or null where it cannot be done: one core, or no `taskset`.
 */
function splitCores() {
  const n = os.cpus().length;
  if (n < 2 || spawnSync("taskset", ["-V"], { stdio: "ignore" }).status !== 0) return null;
  const half = n >> 1;
  const pin = (pids, cpus) => {
    for (const pid of pids) spawnSync("taskset", ["-a", "-p", "-c", cpus, String(pid)], { stdio: "ignore" });
  };
  const cores = { cluster: half === 1 ? "0" : `0-${half - 1}`, ours: half === n - 1 ? `${half}` : `${half}-${n - 1}` };
  pin(clusterProcesses(), cores.cluster);
  pin([process.pid], cores.ours);
  return {
    cores,
    undo() {
      pin(clusterProcesses(), `0-${n - 1}`);
      pin([process.pid], `0-${n - 1}`);
    },
  };
}

const emptyFile = path.join(work, "transcript-empty.jsonl");
async function throughput() {
  // Three shapes of 100 MiB: short lines (~270 B, the most log records per
  // MiB: what a record costs the node and the apiserver weighs most), the
  // CLI's shortest lines (~610 B: an assistant event's envelope around a short
  // text), and lines shaped like Claude Code's (~40 KiB on average). Each on all
  // cores, as the machine runs; then the cluster and the readers on cores of
  // their own (README, Benchmarks: why both).
  writeFileSync(emptyFile, "");
  chmodSync(emptyFile, 0o644);
  for (const [shape, make] of [["", () => transcriptFile(100)], ["cli.", () => transcriptFile(100, { cli: true })], ["claude.", () => claudeShapedFile(100)]]) {
    const transcript = make();
    await followThroughput(transcript, null, shape);
    const split = splitCores();
    if (split) {
      try {
        await followThroughput(transcript, split.cores, shape);
      } finally {
        split.undo();
      }
    } else {
      log("throughput: no placement on separate cores (one core, or no taskset)");
    }
    rmSync(transcript.file);
  }
  pipelineThroughput();
}

/**
 * Alternated runs of one placement: the adapter, plain `kubectl logs -f`,
 * `kubectl logs -f --timestamps` (HTTP/2), and the same over HTTP/1.1 (our
 * request, our protocol), each with what it cost the node and the apiserver.
 * `cores`: null (everything shares the machine's cores), or the cores the
 * cluster and the readers were given; its figures then go under
 * `throughput.split.*`.
 */
async function followThroughput({ file, lines, bytes, resultLine }, cores, shape = "") {
  const gib = bytes / 2 ** 30;
  const title = { "": "short lines", "cli.": "the CLI's shortest lines", "claude.": "lines shaped like Claude Code's" }[shape];
  const figure = (key, label, ...rest) =>
    report(
      key.replace(/^throughput\./, `throughput.${shape}${cores ? "split." : ""}`),
      key === "throughput.mibPerSec" ? `${label}, ${title}${cores ? `; the cluster on core(s) ${cores.cluster}, the adapter and kubectl on ${cores.ours}` : ""}` : label,
      ...rest,
    );
  // The stand-in ends with a result line of its own unless the transcript has one.
  const env = standIn({ BENCH_MODE: "file", BENCH_FILE: file, ...(resultLine ? { BENCH_RESULT: "no" } : {}) });
  const expectLines = resultLine ? lines : lines + 1;
  // The same runs over an empty transcript (the stand-in's result line
  // only): what a run costs the node and the apiserver whatever it logs — the
  // Job, the pod, its containers, the watches, kubectl's retries until the
  // container runs. Each full run minus its empty run is what the log stream
  // itself cost, the figure a cost per GiB means.
  const emptyEnv = standIn({ BENCH_MODE: "file", BENCH_FILE: emptyFile });
  const rows = { ours: [], wall: [], kubectl: [], kubectlTs: [], ratio: [], ratioTs: [], oursCpu: [], kubectlCpu: [], kubectlTsCpu: [], node: [], kubelet: [], containerd: [], apiserver: [], kNode: [], kKubelet: [], kContainerd: [], kApiserver: [], nodeRatio: [], apiserverRatio: [], kTsNode: [], kTsApiserver: [], k1: [], k1Cpu: [], k1Node: [], k1Kubelet: [], k1Apiserver: [], nodeRatioTs1: [], apiserverRatioTs1: [], nodeEmpty: [], nodeEmptyKubectl: [], nodeLog: [], nodeLogKubectl: [], nodeLogRatio: [], nodeLogRatioSameRequest: [], apiserverEmpty: [], apiserverEmptyKubectl: [], apiserverLog: [], apiserverLogKubectl: [], apiserverLogRatio: [], apiserverLogRatioSameRequest: [], busy: [], threads: {}, rss: [], callKiB: [], callsPerSec: [] };
  // Alternating, so that both see the same machine: ours, kubectl, kubectl --timestamps.
  for (let i = 0; i < (quick ? 1 : 3); i += 1) {
    settle();
    const ae = await withCpu(() => timedRun(ctx({ env: emptyEnv })));
    check(ae.r.result.exitCode === 0 && ae.r.outLines === 1, `throughput: the empty run: exit ${ae.r.result.exitCode}, ${ae.r.outLines} lines`);
    settle();
    const before = rss();
    const sw0 = threadSwitches();
    const [a, peak] = await withPeakRss(() => withCpu(() => timedRun(ctx({ env }))));
    const sw1 = threadSwitches();
    log(`throughput${cores ? " (split)" : ""} run ${i}: thread sleeps per MiB ${Object.entries(sw1).map(([k, v]) => [k, (v - (sw0[k] ?? 0)) / mib(bytes)]).filter(([, v]) => v > 1).map(([k, v]) => `${k} ${v.toFixed(0)}`).join(", ")}`);
    rows.rss.push(mib(peak - before));
    const r = a.r;
    check(r.result.exitCode === 0, `throughput: exit ${r.result.exitCode} ${r.result.errorMessage ?? ""}`);
    check(
      r.outLines === expectLines,
      `throughput: ${r.outLines} lines reached onLog, expected ${expectLines}${r.result.resultJson?.logLinesLost ? " — lost to the node's log rotation, as the run reported (resultJson.logLinesLost): the kubelet rotates at containerLogMaxSize, 10Mi by default; bring the real node up with CLAUDE_K8S_CONTAINER_LOG_MAX_SIZE=200Mi for this bench" : ""}`,
    );
    const secs = (r.t.lastOut - r.t.firstOut) / 1000;
    const ours = mib(r.outBytes) / secs;
    rows.ours.push(ours);
    rows.wall.push((r.t.resolved - r.t.call) / 1000);
    rows.oursCpu.push((a.selfCpu - r.hostMs / 1000) / gib);
    log(`throughput${cores ? " (split)" : ""} run ${i}: CPU by thread ${Object.entries(a.threads).filter(([, v]) => v > 0).map(([k, v]) => `${k} ${(v / gib).toFixed(2)}`).join(", ")} s/GiB; the bench's onLog ${(r.hostMs / 1000 / gib).toFixed(2)} s/GiB`);
    for (const [k, v] of Object.entries(a.threads)) (rows.threads[k] ??= []).push(v / gib);
    for (const p of clusterProcs) if (a.procs[p] != null) rows[p].push(a.procs[p] / gib);
    rows.busy.push(a.machineBusy * 100);
    rows.callKiB.push(r.outBytes / r.calls / 1024);
    rows.callsPerSec.push(r.calls / secs);
    const kec = await withCpu(() => kubectlRun(emptyEnv, { timestamps: false }));
    const kc = await withCpu(() => kubectlRun(env, { timestamps: false }));
    const k = kc.r;
    // What the same bytes cost the cluster through a plain follow, and ours ÷ that.
    for (const [p, row] of [["node", "kNode"], ["kubelet", "kKubelet"], ["containerd", "kContainerd"], ["apiserver", "kApiserver"]]) {
      if (kc.procs[p] != null) rows[row].push(kc.procs[p] / gib);
    }
    if (a.procs.node && kc.procs.node) rows.nodeRatio.push(a.procs.node / kc.procs.node);
    if (a.procs.apiserver && kc.procs.apiserver) rows.apiserverRatio.push(a.procs.apiserver / kc.procs.apiserver);
    // The transcript and the stand-in's result line.
    check(resultLine ? k.bytes === bytes : k.bytes > bytes && k.bytes < bytes + 1024, `throughput: kubectl read ${k.bytes} bytes of a ${bytes}-byte transcript`);
    rows.kubectl.push(mib(k.bytes) / k.seconds);
    if (k.cpu != null) rows.kubectlCpu.push(k.cpu / gib);
    rows.ratio.push(ours / (mib(k.bytes) / k.seconds));
    const ktc = await withCpu(() => kubectlRun(env, { timestamps: true }));
    const kt = ktc.r;
    rows.kubectlTs.push(mib(kt.bytes) / kt.seconds);
    if (kt.cpu != null) rows.kubectlTsCpu.push(kt.cpu / gib);
    rows.ratioTs.push(ours / (mib(kt.bytes) / kt.seconds));
    if (ktc.procs.node != null) rows.kTsNode.push(ktc.procs.node / gib);
    if (ktc.procs.apiserver != null) rows.kTsApiserver.push(ktc.procs.apiserver / gib);
    // Our very request from Go's client: timestamps, HTTP/1.1. What is left
    // between this and ours is the adapter's doing; what lies between it and
    // the plain follow is the request's (timestamps) and the protocol's.
    const k1c = await withCpu(() => kubectlRun(env, { timestamps: true, http1: true }));
    const k1 = k1c.r;
    rows.k1.push(mib(k1.bytes) / k1.seconds);
    if (k1.cpu != null) rows.k1Cpu.push(k1.cpu / gib);
    if (k1c.procs.node != null) rows.k1Node.push(k1c.procs.node / gib);
    if (k1c.procs.kubelet != null) rows.k1Kubelet.push(k1c.procs.kubelet / gib);
    if (k1c.procs.apiserver != null) rows.k1Apiserver.push(k1c.procs.apiserver / gib);
    if (a.procs.node && k1c.procs.node) rows.nodeRatioTs1.push(a.procs.node / k1c.procs.node);
    if (a.procs.apiserver && k1c.procs.apiserver) rows.apiserverRatioTs1.push(a.procs.apiserver / k1c.procs.apiserver);
    // The log stream alone: each run minus its empty run (one bare pod's
    // lifecycle serves all three kubectl requests).
    for (const p of ["node", "apiserver"]) {
      const [ours, oursEmpty, k, k1, kEmpty] = [a, ae, kc, k1c, kec].map((x) => x.procs[p]);
      if ([ours, oursEmpty, k, k1, kEmpty].some((v) => v == null)) continue;
      rows[`${p}Empty`].push(oursEmpty);
      rows[`${p}EmptyKubectl`].push(kEmpty);
      rows[`${p}Log`].push((ours - oursEmpty) / gib);
      rows[`${p}LogKubectl`].push((k - kEmpty) / gib);
      rows[`${p}LogRatio`].push((ours - oursEmpty) / (k - kEmpty));
      rows[`${p}LogRatioSameRequest`].push((ours - oursEmpty) / (k1 - kEmpty));
    }
  }
  figure("throughput.mibPerSec", `log throughput, ${mib(bytes).toFixed(0)} MiB stream-json`, "MiB/s", rows.ours, "first → last container chunk in onLog");
  figure("throughput.wall", "  the same run, execute wall time", "s", rows.wall);
  figure("throughput.rss", "  the same run, RSS growth", "MiB", rows.rss, "peak while it runs minus before (after a GC)");
  figure("throughput.kubectl", "  plain kubectl logs -f, same node, same run", "MiB/s", rows.kubectl, "a bare pod catting the same file; first → last byte of kubectl's stdout");
  figure("throughput.kubectlTimestamps", "  kubectl logs -f --timestamps (our request)", "MiB/s", rows.kubectlTs, `the bytes the adapter reads: ${{ "": "~12", "cli.": "~5", "claude.": "0.4" }[shape]} % more on this transcript`);
  figure("throughput.ratioKubectl", "  ours ÷ plain kubectl", "ratio", rows.ratio, "pairs of one run");
  figure("throughput.ratioKubectlTimestamps", "  ours ÷ kubectl --timestamps", "ratio", rows.ratioTs, "pairs of one run");
  figure("throughput.cpuOurs", "  CPU per GiB: the adapter (Node + addon)", "CPU-s", rows.oursCpu, "this process, minus the time in the bench's onLog");
  figure("throughput.cpuKubectl", "  CPU per GiB: kubectl logs -f", "CPU-s", rows.kubectlCpu, "kubectl's user+system (plain run)");
  figure("throughput.cpuKubectlTimestamps", "  CPU per GiB: kubectl logs -f --timestamps", "CPU-s", rows.kubectlTsCpu);
  figure("throughput.cpuNode", "  CPU per GiB: the node (log file, log server, TLS)", "CPU-s", rows.node, "during the adapter's run; a kubelet and containerd do this in a real cluster");
  figure("throughput.cpuApiserver", "  CPU per GiB: kube-apiserver (pods/log proxy, TLS both ways)", "CPU-s", rows.apiserver, "during the adapter's run");
  if (realNode) {
    figure("throughput.cpuKubelet", "  CPU per GiB: of that node share, the kubelet (log server)", "CPU-s", rows.kubelet, "during the adapter's run");
    figure("throughput.cpuContainerd", "  CPU per GiB: of that node share, containerd (writes the log file)", "CPU-s", rows.containerd, "during the adapter's run");
  }
  figure("throughput.cpuNodeKubectl", "  CPU per GiB: the node, for plain kubectl logs -f", "CPU-s", rows.kNode, "the same transcript, the bare pod's run");
  figure("throughput.cpuApiserverKubectl", "  CPU per GiB: kube-apiserver, for plain kubectl logs -f", "CPU-s", rows.kApiserver);
  figure("throughput.nodeRatio", "  node CPU: ours ÷ plain kubectl, whole runs", "ratio", rows.nodeRatio, "pairs of one run; the Job's pod has an init container, the bare pod none");
  figure("throughput.apiserverRatio", "  kube-apiserver CPU: ours ÷ plain kubectl, whole runs", "ratio", rows.apiserverRatio, "pairs of one run; a Job, its watches and the run's events against one pod");
  figure("throughput.cpuNodeEmpty", "  CPU: the node, an empty run of ours", "CPU-s", rows.nodeEmpty, "the result line only: the Job's pod and its two containers");
  figure("throughput.cpuNodeEmptyKubectl", "  CPU: the node, an empty bare pod and kubectl logs -f", "CPU-s", rows.nodeEmptyKubectl);
  figure("throughput.cpuApiserverEmpty", "  CPU: kube-apiserver, an empty run of ours", "CPU-s", rows.apiserverEmpty);
  figure("throughput.cpuApiserverEmptyKubectl", "  CPU: kube-apiserver, an empty bare pod and kubectl logs -f", "CPU-s", rows.apiserverEmptyKubectl, "with kubectl's retries until the container runs");
  figure("throughput.cpuNodeLog", "  CPU per GiB of log: the node, ours (minus the empty run)", "CPU-s", rows.nodeLog);
  figure("throughput.cpuNodeLogKubectl", "  CPU per GiB of log: the node, plain kubectl (minus its empty run)", "CPU-s", rows.nodeLogKubectl);
  figure("throughput.cpuApiserverLog", "  CPU per GiB of log: kube-apiserver, ours (minus the empty run)", "CPU-s", rows.apiserverLog);
  figure("throughput.cpuApiserverLogKubectl", "  CPU per GiB of log: kube-apiserver, plain kubectl (minus its empty run)", "CPU-s", rows.apiserverLogKubectl);
  figure("throughput.nodeLogRatio", "  node CPU for the log: ours ÷ plain kubectl", "ratio", rows.nodeLogRatio, "pairs of one run, each minus its empty run; target ≤ 1.1");
  figure("throughput.apiserverLogRatio", "  kube-apiserver CPU for the log: ours ÷ plain kubectl", "ratio", rows.apiserverLogRatio, "pairs of one run, each minus its empty run; target ≤ 1.1");
  figure("throughput.nodeLogRatioSameRequest", "  node CPU for the log: ours ÷ kubectl with our request", "ratio", rows.nodeLogRatioSameRequest, "each minus its empty run");
  figure("throughput.apiserverLogRatioSameRequest", "  kube-apiserver CPU for the log: ours ÷ kubectl with our request", "ratio", rows.apiserverLogRatioSameRequest, "each minus its empty run");
  figure("throughput.cpuNodeKubectlTimestamps", "  CPU per GiB: the node, for kubectl logs -f --timestamps", "CPU-s", rows.kTsNode, "HTTP/2, as kubectl speaks");
  figure("throughput.cpuApiserverKubectlTimestamps", "  CPU per GiB: kube-apiserver, for kubectl logs -f --timestamps", "CPU-s", rows.kTsApiserver);
  figure("throughput.kubectlHttp1", "  kubectl logs -f --timestamps over HTTP/1.1 (our request, our protocol)", "MiB/s", rows.k1, "GODEBUG=http2client=0; kube-rs speaks HTTP/1.1");
  figure("throughput.cpuKubectlHttp1", "  CPU per GiB: that kubectl", "CPU-s", rows.k1Cpu);
  figure("throughput.cpuNodeKubectlHttp1", "  CPU per GiB: the node, for that kubectl", "CPU-s", rows.k1Node);
  figure("throughput.cpuKubeletKubectlHttp1", "  CPU per GiB: of it, the kubelet", "CPU-s", rows.k1Kubelet);
  figure("throughput.cpuApiserverKubectlHttp1", "  CPU per GiB: kube-apiserver, for that kubectl", "CPU-s", rows.k1Apiserver);
  figure("throughput.nodeRatioSameRequest", "  node CPU: ours ÷ kubectl with our request", "ratio", rows.nodeRatioTs1, "the adapter's own part of the cost");
  figure("throughput.apiserverRatioSameRequest", "  kube-apiserver CPU: ours ÷ kubectl with our request", "ratio", rows.apiserverRatioTs1, "the adapter's own part of the cost");
  figure("throughput.machineBusy", "  machine CPU busy during the adapter's run", "%", rows.busy, cores ? `${os.cpus().length} cores` : `${os.cpus().length} cores, everything on them`);
  figure("throughput.callKiB", "  onLog: bytes per call", "KiB", rows.callKiB, "container chunks");
  figure("throughput.callsPerSec", "  onLog: calls per second", "calls/s", rows.callsPerSec);
}

/** The adapter's line pipeline alone, in memory: MiB/s, and instructions per MiB. */
function pipelineThroughput() {
  // The adapter's own share, without node, apiserver and TLS on the same cores.
  const runs = [];
  for (let i = 0; i < (quick ? 1 : 3); i += 1) {
    const out = execFileSync("cargo", ["run", "-q", "--profile", "tools", "-p", "claude-k8s-core", "--example", "log_pipeline", "100"], { cwd: root, encoding: "utf8" });
    runs.push(JSON.parse(out.trim().split("\n").pop()));
  }
  const cpu = runs.every((r) => r.cpuSecPerGib != null) ? `; median ${stats(runs.map((r) => r.cpuSecPerGib)).median.toFixed(2)} CPU-s per GiB` : "";
  report("throughput.corePipeline", "  the adapter's line pipeline alone, in memory", "MiB/s", runs.map((r) => r.mibPerSec), `crates/core/examples/log_pipeline.rs: stream-json mix through reassembly, resume cursor, dedup, parser, batching${cpu}`);
  // Older examples print no floor: the rows are left out then.
  if (runs.every((r) => r.floorMibPerSec != null)) {
    report("throughput.corePipelineFloor", "  a plain memchr line split of the same bytes", "MiB/s", runs.map((r) => r.floorMibPerSec), "the floor any line reader has");
    report("throughput.corePipelineRatio", "  pipeline ÷ floor", "ratio", runs.map((r) => r.ratio), "same run, same bytes");
  }
  // Instructions per MiB (valgrind): repeatable where MiB/s is not. Skipped with a message without valgrind.
  const cg = spawnSync("bash", [path.join(import.meta.dirname, "callgrind.sh"), "100"], { cwd: root, encoding: "utf8", stdio: ["ignore", "pipe", "inherit"] });
  const counted = cg.status === 0 && cg.stdout.trim() ? JSON.parse(cg.stdout.trim().split("\n").pop()) : null;
  if (counted) {
    report("throughput.corePipelineInstr", "  pipeline instructions per MiB (callgrind)", "Minstr", [counted.pipelineInstrPerMib / 1e6], `floor ${(counted.floorInstrPerMib / 1e6).toFixed(3)} Minstr/MiB; ${counted.ratio.toFixed(0)}× the floor`);
  } else {
    log("no instruction counts: bench/callgrind.sh did not produce them (see its message above)");
  }
}

/**
 * What the diagnostics cost (issue 25): the same two runs — a short answer,
 * and a 20 MiB transcript — in fresh host processes with the subscriber off
 * (CLAUDE_K8S_LOG unset), at `claude_k8s=info`, and at
 * `claude_k8s=debug,kube=debug` (every request), text to a pipe the bench
 * drains; alternated, so each setting sees the same machine. Per run: wall
 * time, and the host process's CPU during it.
 */
async function diagnostics() {
  const { file, bytes } = transcriptFile(20);
  const settings = [
    ["off", {}],
    ["info", { CLAUDE_K8S_LOG: "claude_k8s=info" }],
    ["debug", { CLAUDE_K8S_LOG: "claude_k8s=debug,kube=debug" }],
  ];
  const rows = {};
  const child = path.join(import.meta.dirname, "diagnostics-child.mjs");
  for (let i = 0; i < (quick ? 2 : 4); i += 1) {
    for (const [name, env] of settings) {
      const ctxs = [ctx({ env: standIn({ BENCH_MODE: "slow", BENCH_LINES: "3", BENCH_INTERVAL: "0" }) }), ctx({ env: standIn({ BENCH_MODE: "file", BENCH_FILE: file }) })];
      const childEnv = { ...process.env, ...env };
      if (!env.CLAUDE_K8S_LOG) delete childEnv.CLAUDE_K8S_LOG;
      const p = spawnSync(process.execPath, [child, JSON.stringify(ctxs)], { env: childEnv, encoding: "utf8", maxBuffer: 512 << 20 });
      check(p.status === 0, `diagnostics: the ${name} host exited ${p.status}: ${p.stderr?.slice(-500)}`);
      if (p.status !== 0) continue;
      const [small, big] = JSON.parse(p.stdout.trim().split("\n").pop());
      check(small.exitCode === 0 && big.exitCode === 0, `diagnostics: ${name}: exits ${small.exitCode} ${big.exitCode} ${small.errorCode ?? ""} ${big.errorCode ?? ""}`);
      check(big.bytes > bytes, `diagnostics: ${name}: ${big.bytes} bytes of a ${bytes}-byte transcript reached onLog`);
      const r = (rows[name] ??= { smallWall: [], smallCpu: [], bigWall: [], bigCpu: [], stderr: [] });
      r.smallWall.push(small.wallMs);
      r.smallCpu.push(small.cpuMs);
      r.bigWall.push(big.wallMs);
      r.bigCpu.push(big.cpuMs);
      r.stderr.push(Buffer.byteLength(p.stderr) / 2);
    }
  }
  rmSync(file);
  for (const [name] of settings) {
    const r = rows[name];
    if (!r) continue;
    const tag = name === "off" ? "subscriber off (CLAUDE_K8S_LOG unset)" : `CLAUDE_K8S_LOG=${settings.find((s) => s[0] === name)[1].CLAUDE_K8S_LOG}`;
    report(`diagnostics.${name}.smallWall`, `diagnostics: ${tag}, a short run, wall`, "ms", r.smallWall, "execute called → resolved");
    report(`diagnostics.${name}.smallCpu`, "  the same run, host process CPU", "ms", r.smallCpu);
    report(`diagnostics.${name}.bigWall`, "  a 20 MiB transcript run, wall", "ms", r.bigWall);
    report(`diagnostics.${name}.bigCpu`, "  the same run, host process CPU", "ms", r.bigCpu);
    if (name !== "off") report(`diagnostics.${name}.stderr`, "  stderr written per run", "KiB", r.stderr.map((b) => b / 1024), "both runs' lines, halved");
  }
  const off = rows.off && stats(rows.off.bigCpu)?.median;
  for (const name of ["info", "debug"]) {
    const on = rows[name] && stats(rows[name].bigCpu)?.median;
    if (off && on) report(`diagnostics.${name}.cpuRatio`, `  ${name} ÷ off, host CPU of the 20 MiB run`, "ratio", [on / off], "medians of the same sitting");
  }
}

/**
 * The napi crossing alone: `benchLogCrossing` (src/lib.rs) hands onLog chunks
 * of one size through exactly a run's path (threadsafe function → the JS
 * thread → lib/execute.js's callback wrapper → the host's function, its
 * Promise awaited) with a host function that only counts. No cluster.
 * Per call: wall µs (what bounds a run's rate, the calls being sequential)
 * and this process's CPU µs (both threads; includes building the chunks
 * beforehand, a memcpy). A call wakes a thread twice (ours → JS → ours); in
 * these VMs waking an idle core costs far more than a busy one, so the
 * fixed cost is measured both ways: machine idle, and one other core kept
 * busy by a spinning process (as in a run, with the cluster on the cores).
 */
async function crossing() {
  const { default: native } = await import("../lib/native.js");
  const { wrapCallback } = await import("../lib/execute.js");
  let received = 0;
  const onLog = wrapCallback("onLog", async (_stream, chunk) => {
    received += chunk.length;
  });
  const reps = quick ? 3 : 7;
  async function measure(size, text) {
    const calls = Math.max(40, Math.min(20000, Math.floor((64 << 20) / size)));
    await native.benchLogCrossing(onLog, size, Math.min(calls, 200), text); // warm-up
    const wall = [];
    const cpu = [];
    for (let i = 0; i < reps; i += 1) {
      received = 0;
      const c0 = process.cpuUsage();
      const ns = await native.benchLogCrossing(onLog, size, calls, text);
      const c = process.cpuUsage(c0);
      check(received >= calls * Math.floor(size / 3), `crossing: ${received} chars reached onLog for ${calls} × ${size} B`);
      wall.push(ns / 1000 / calls);
      cpu.push((c.user + c.system) / calls);
    }
    const m = { wallUs: stats(wall), cpuUs: stats(cpu) };
    log(`crossing ${text} ${size} B: wall ${m.wallUs.median.toFixed(2)} µs, CPU ${m.cpuUs.median.toFixed(2)} µs per call`);
    return m;
  }
  const small = await measure(64, "ascii");
  const spinner = spawn(process.execPath, ["-e", "for (;;) {}"], { stdio: "ignore" });
  let busy;
  try {
    await new Promise((res) => setTimeout(res, 300));
    busy = await measure(64, "ascii");
  } finally {
    spinner.kill("SIGKILL");
  }
  report("crossing.callUs", "one onLog call across napi (64 B chunk)", "µs", small.wallUs, `wall per call, awaited, machine otherwise idle; CPU ${small.cpuUs.median.toFixed(1)} µs per call (this process, both threads)`, { cluster: false });
  report("crossing.callUsBusy", "  the same, one other core kept busy", "µs", busy.wallUs, `CPU ${busy.cpuUs.median.toFixed(1)} µs per call: waking a busy core is cheap, an idle one is not, in these VMs`, { cluster: false });
  const [s1, s2] = [1 << 20, 4 << 20];
  const perByte = {};
  for (const text of ["ascii", "nonAscii", "nonAsciiUtf8"]) {
    const [a, b] = [await measure(s1, text), await measure(s2, text)];
    // Per byte: the slope between the two sizes, where the fixed cost cancels out.
    perByte[text] = mib(s2 - s1) / ((b.wallUs.median - a.wallUs.median) / 1e6);
    if (text === "ascii") {
      report("crossing.callUs1MiB", "  one call with a 1 MiB chunk (ASCII)", "µs", a.wallUs, `${(mib(s1) / (a.wallUs.median / 1e6)).toFixed(0)} MiB/s through one call at a time`, { cluster: false });
    }
  }
  const one = (v) => ({ n: 1, min: v, median: v, max: v });
  report("crossing.asciiMibPerSec", "  chunk → JS string, per byte: ASCII", "MiB/s", one(perByte.ascii), "slope between the 1 and 4 MiB calls; V8 copies a one-byte string", { cluster: false });
  report("crossing.nonAsciiMibPerSec", "  per byte: non-ASCII text, as UTF-16 (ours)", "MiB/s", one(perByte.nonAscii), "converted on our thread (encoding_rs), V8 copies", { cluster: false });
  report("crossing.nonAsciiUtf8MibPerSec", "  per byte: the same text as UTF-8 for V8 to decode", "MiB/s", one(perByte.nonAsciiUtf8), "how chunks crossed before; the decoding runs on the host's event loop", { cluster: false });
  // The chunk at which a call's fixed cost (busy machine) is 5 % of the call.
  const fivePercent = 19 * (busy.wallUs.median / 1e6) * perByte.ascii * (1 << 20);
  report("crossing.fivePercentKiB", "  chunk where the fixed cost is 5 % of a call", "KiB", one(fivePercent / 1024), "ASCII, busy machine; the adapter hands over at 256 KiB or after 5 ms, sealing at 1 MiB", { cluster: false });
}

async function idleRuns(n, { lines = 20, interval = 1 } = {}) {
  settle();
  const before = rss();
  const cpu0 = process.cpuUsage();
  const t0 = now();
  // A shell loop needs next to nothing: small requests, so that 200 pods fit the
  // node (the simulated one has 64 CPUs; the real one 2 cores, and holds 110
  // pods — the kubelet's maxPods — so runs past that wait for a place).
  const config = { resources: { requests: { cpu: realNode ? "1m" : "10m", memory: realNode ? "16Mi" : "32Mi" } } };
  const [runs, peak] = await withPeakRss(() =>
    Promise.all(Array.from({ length: n }, () => timedRun(ctx({ config, env: standIn({ BENCH_MODE: "slow", BENCH_LINES: String(lines), BENCH_INTERVAL: String(interval) }) })))),
  );
  const wall = (now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  const failed = runs.filter((r) => r.result.exitCode !== 0 || r.result.errorCode);
  const lost = runs.filter((r) => r.outLines !== lines + 1);
  return { before, peak, wall, cpuSec: (cpu.user + cpu.system) / 1e6, failed, lost, runs };
}

async function memory() {
  // The real node holds 110 pods (maxPods): 100 runs fit it, 200 do not.
  const counts = quick ? [1, 50] : realNode ? [1, 50, 100, 200] : [1, 50, 200];
  for (const n of counts) {
    const reps = quick || (realNode && n > 110) ? 1 : 3;
    const growth = [];
    const walls = [];
    const cpus = [];
    let base = 0;
    let failed = 0;
    let lost = 0;
    for (let i = 0; i < reps; i += 1) {
      const r = await idleRuns(n);
      check(r.failed.length === 0, `${n} idle runs: ${r.failed.length} failed (${r.failed[0]?.result.errorCode ?? ""} ${r.failed[0]?.result.errorMessage ?? ""})`);
      check(r.lost.length === 0, `${n} idle runs: ${r.lost.length} runs missed lines`);
      growth.push(mib(r.peak - r.before));
      walls.push(r.wall);
      cpus.push(r.cpuSec);
      base = mib(r.before);
      failed += r.failed.length;
      lost += r.lost.length;
    }
    const per = stats(growth).median / n;
    report(`memory.idle${n}`, `RSS growth, ${n} concurrent slow runs`, "MiB", growth, `${per.toFixed(2)} MiB per run (median); RSS before ${base.toFixed(0)} MiB`);
    if (n >= 100 && wants("concurrency")) {
      report(`concurrency.wall${n}`, `${n} concurrent executes (different agents), wall`, "s", walls, `each 20 lines over 19 s; ${failed} failed, ${lost} missed a line, of ${n * reps}${realNode && n > 110 ? "; the real node runs 110 pods at most (maxPods), and a run whose pod is Unschedulable fails at once (k8s_pod_schedule_failed, as 0.1.54 did)" : ""}`);
      report(`concurrency.cpu${n}`, `  host CPU for those ${n} runs`, "s", cpus, "user+system of this process");
    }
  }
  const big = transcriptFile(quick ? 256 : 1024);
  const growth = [];
  const rates = [];
  for (let i = 0; i < (quick ? 1 : 2); i += 1) {
    settle();
    const before = rss();
    const [r, peak] = await withPeakRss(() => timedRun(ctx({ env: standIn({ BENCH_MODE: "file", BENCH_FILE: big.file }) })));
    check(r.outLines === big.lines + 1, `big transcript: ${r.outLines} lines reached onLog, expected ${big.lines + 1}`);
    growth.push(mib(peak - before));
    rates.push(mib(r.outBytes) / ((r.t.lastOut - r.t.firstOut) / 1000));
  }
  report("memory.bigTranscript", `RSS growth, one run of a ${mib(big.bytes).toFixed(0)} MiB transcript`, "MiB", growth, `at ${stats(rates).median.toFixed(0)} MiB/s`);
  rmSync(big.file);
}

function packageCost() {
  const node = readdirNode()[0];
  const size = statSync(path.join(root, node)).size;
  report("package.nodeSize", `.node size (${node})`, "MiB", { n: 1, min: mib(size), median: mib(size), max: mib(size) });
  const times = [];
  for (let i = 0; i < 7; i += 1) {
    const out = spawnSync(process.execPath, ["-e", `const t=performance.now();import(${JSON.stringify(path.join(root, "index.js"))}).then(()=>console.log(performance.now()-t))`], { encoding: "utf8" });
    times.push(Number(out.stdout.trim()));
  }
  report("package.importMs", "cold import of the package (new node process)", "ms", times);
  if (flag("build")) {
    const target = path.join(work, "target");
    const t0 = now();
    execFileSync("cargo", ["build", "--release", "-p", "claude-k8s", "--target-dir", target], { cwd: root, stdio: ["ignore", "ignore", "inherit"] });
    const s = (now() - t0) / 1000;
    report("package.cleanReleaseBuild", "clean release build (LTO), all crates", "s", { n: 1, min: s, median: s, max: s }, `${os.cpus().length} cores`);
  }
}

// ------------------------------------------------------------------ main
const started = new Date();
try {
  section = "package";
  if (wants("package")) packageCost();
  section = "crossing";
  if (wants("crossing")) await crossing();
  section = "latency";
  if (onNode("latency")) await (realNode ? latencyReal() : latency());
  section = "requests";
  if (wants("requests")) await requests();
  section = "throughput";
  if (wants("throughput")) await throughput();
  section = "diagnostics";
  if (wants("diagnostics")) await diagnostics();
  section = "memory";
  if (onNode("memory") || onNode("concurrency")) await memory();
} finally {
  await mock.close();
  rmSync(work, { recursive: true, force: true });
  if (startedCluster) execFileSync("bash", [path.join(root, "scripts/test-cluster"), "down"], { stdio: "inherit" });
}

const machine = {
  date: started.toISOString(),
  cpu: `${os.cpus()[0]?.model ?? "?"} × ${os.cpus().length}`,
  memory: `${(os.totalmem() / 2 ** 30).toFixed(0)} GiB`,
  kernel: os.release(),
  node: process.version,
  kubernetes: k8sVersion,
  quick,
  ...(only ? { only } : {}),
};
const widths = [0, 1, 2, 3].map((i) => Math.max(...table.map((r) => String(r[i]).length), 6));
console.log(`\nclaude-k8s benchmarks — ${machine.date} — ${machine.cpu}, ${machine.memory}, Node ${machine.node}${quick ? " (quick)" : ""}\n`);
for (const r of table) console.log(`${String(r[0]).padEnd(widths[0])}  ${String(r[2]).padStart(widths[2])} ${String(r[1]).padEnd(widths[1])}  n=${r[3]}  ${r[4]}`);
const out = { machine, figures };
const outDir = path.join(root, "target", "bench");
mkdirSync(outDir, { recursive: true });
writeFileSync(path.join(outDir, "results.json"), JSON.stringify(out, null, 2));
writeFileSync(path.join(outDir, "RESULTS.md"), resultsPage(out));
log(`figures written to ${path.relative(root, outDir)}/results.json and RESULTS.md`);
if (flag("publish")) {
  // With --only, the figures of this run replace theirs in the published set.
  const published = path.join(import.meta.dirname, "results.json");
  let merged = out;
  if (only && existsSync(published)) {
    const before = JSON.parse(readFileSync(published, "utf8"));
    const { warnings: oldWarnings = [], ...oldFigures } = before.figures;
    const { warnings: newWarnings = [], ...newFigures } = figures;
    merged = {
      machine: { ...before.machine, reruns: [...(before.machine.reruns ?? []), machine] },
      // A re-run section's old warnings went with its old figures.
      figures: { ...oldFigures, ...newFigures, warnings: [...oldWarnings.filter((w) => !only.some((o) => w.startsWith(`${o}:`))), ...newWarnings] },
    };
  }
  writeFileSync(published, JSON.stringify(merged, null, 2));
  writeFileSync(path.join(import.meta.dirname, "RESULTS.md"), resultsPage(merged));
  log("published to bench/results.json and bench/RESULTS.md");
}
process.exit(0);

function fmt(x) {
  return x == null ? "-" : Math.abs(x) >= 100 ? x.toFixed(0) : x.toFixed(x >= 10 ? 1 : 3);
}

function resultsPage({ machine: m, figures: f }) {
  const { warnings = [], ...rows } = f;
  const reruns = (m.reruns ?? []).map((r) => `Re-run of ${r.only.join(", ")} on ${r.date}${r.kubernetes ? ` (Kubernetes ${r.kubernetes})` : ""}.`);
  return [
    "# Benchmark results",
    "",
    `Run on ${m.date.slice(0, 10)} (${m.date}) on ${m.cpu}, ${m.memory} RAM, Linux ${m.kernel}, Node ${m.node}, the local cluster at Kubernetes ${m.kubernetes ?? "v1.20.2"}${m.quick ? ", --quick" : ""}.`,
    ...reruns,
    "Reproduce: `npm run build && npm run bench` (see [README.md](README.md) for what each figure measures). These machines are",
    "shared and the cluster runs on the same two cores: compare ratios within one run, not absolute values across runs.",
    "",
    "| figure | unit | min / median / max | n | Kubernetes | node | note |",
    "|---|---|---|---|---|---|---|",
    ...Object.values(rows).map(
      (r) =>
        `| ${r.label} | ${r.unit} | ${fmt(r.min)} / ${fmt(r.median)} / ${fmt(r.max)} | ${r.n ?? "-"} | ${r.kubernetes ?? "v1.20.2"} | ${r.node ?? (r.kubernetes === "-" ? "-" : "simulated")} | ${r.note ?? ""} |`,
    ),
    "",
    ...(warnings.length ? ["Warnings seen during the run:", "", ...warnings.map((w) => `- ${w}`), ""] : []),
  ].join("\n");
}
