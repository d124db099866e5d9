// npm run bench — figures for the adapter on the local cluster, through the
// napi `execute` exactly as the host calls it. Prints a table, writes JSON.
// Never fails on a number: these machines are shared and noisy, so read the
// ratios within one run, not the absolute values across runs.
//
//   npm run bench                  everything (about 25 minutes, includes a 10-minute run)
//   npm run bench -- --quick       fewer repetitions, no 10-minute run, 50 instead of 200
//   npm run bench -- --only=latency,requests,throughput,memory,concurrency,package
//   npm run bench -- --build       also time a clean release build (several minutes)
//   npm run bench -- --publish     also write bench/results.json and bench/RESULTS.md
//
// What produces the transcript: the real Claude Code CLI against the mock
// Anthropic API where the CLI matters (one latency row, the 3 s request
// count); elsewhere a stand-in `claude` (bench/claude, a shell script put
// first on the pod's PATH through config.env) that emits stream-json from a
// file or slowly, so that the figures measure the adapter, not the CLI.
import { execFileSync, spawnSync } from "node:child_process";
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

let startedCluster = false;
// Ask the cluster, not its env file: `down` leaves the file behind.
const clusterUp = spawnSync("bash", [path.join(root, "scripts/test-cluster"), "status"], { stdio: "ignore" }).status === 0;
if (!clusterUp) {
  log("no local cluster: starting one (scripts/test-cluster up)");
  execFileSync("bash", [path.join(root, "scripts/test-cluster"), "up"], { stdio: ["ignore", "inherit", "inherit"] });
  startedCluster = true;
}
const cluster = readClusterEnv();
// Env files written before the version was recorded are 1.20.2's.
const k8sVersion = `v${cluster.K8S_VERSION ?? "1.20.2"}`;
if (!readdirNode().length) {
  log("no release build of the addon: npm run build");
  execFileSync("npm", ["run", "build"], { cwd: root, stdio: ["ignore", "inherit", "inherit"] });
}
function readdirNode() {
  return readdirSync(root).filter((f) => /^claude-k8s\..*\.node$/.test(f));
}
const { execute } = await import("../server.js");
const mock = await startMockAnthropic({ port: 0 });

const work = mkdtempSync(path.join(os.tmpdir(), "ck8s-bench-"));
chmodSync(work, 0o755); // the pods run as another uid
const bin = path.join(work, "bin");
mkdirSync(bin, { mode: 0o755 });
copyFileSync(path.join(import.meta.dirname, "claude"), path.join(bin, "claude"));
chmodSync(path.join(bin, "claude"), 0o755);

/** A stream-json transcript of about `mib` MiB of numbered assistant lines. */
function transcriptFile(mib) {
  const file = path.join(work, `transcript-${mib}.jsonl`);
  const pad = "x".repeat(160);
  const fd = openSync(file, "w", 0o644);
  let bytes = 0;
  let n = 0;
  const target = mib * 1024 * 1024;
  while (bytes < target) {
    const parts = [];
    for (let k = 0; k < 4096; k += 1) {
      n += 1;
      parts.push(`{"type":"assistant","message":{"id":"msg_${n}","model":"bench","content":[{"type":"text","text":"${pad} ${n}"}]},"session_id":"bench"}\n`);
    }
    const chunk = Buffer.from(parts.join(""));
    bytes += chunk.length;
    writeSync(fd, chunk);
  }
  closeSync(fd);
  chmodSync(file, 0o644);
  return { file, lines: n, bytes };
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
      // The mock API takes any key; the CLI only needs one to be set.
      env: { ANTHROPIC_BASE_URL: `${mock.url}/s/plain`, ANTHROPIC_API_KEY: "sk-ant-bench-mock", CLAUDE_CODE_MAX_RETRIES: "0", ...env },
      ...config,
    },
    context: { taskId: `task-${id}` },
  };
}

/** The stand-in claude: `file` mode cats a transcript, `slow` emits N lines `interval` s apart. */
const standIn = (env) => ({ PATH: `${bin}:/usr/local/bin:/usr/bin:/bin`, ...env });

/**
 * One execute(), timed. Container output is told from the adapter's own
 * `[paperclip] …` lines (which are whole chunks of their own).
 */
async function timedRun(c) {
  const t = { call: now(), firstOut: null, lastOut: null, resolved: null };
  let outBytes = 0;
  let outLines = 0;
  const result = await execute({
    ...c,
    onLog: async (stream, chunk) => {
      if (stream !== "stdout" || chunk.startsWith("[paperclip]")) return;
      const at = now();
      t.firstOut ??= at;
      t.lastOut = at;
      outBytes += Buffer.byteLength(chunk);
      for (let i = chunk.indexOf("\n"); i !== -1; i = chunk.indexOf("\n", i + 1)) outLines += 1;
    },
    onMeta: async () => {},
  });
  t.resolved = now();
  return { t, result, outBytes, outLines };
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
  const size = statSync(cluster.AUDIT_LOG).size;
  const buf = Buffer.alloc(size - offset);
  const fd = openSync(cluster.AUDIT_LOG, "r");
  readSync(fd, buf, 0, buf.length, offset);
  closeSync(fd);
  const seen = new Map();
  for (const line of buf.toString("utf8").split("\n")) {
    if (!line) continue;
    const e = JSON.parse(line);
    if (e.user?.username !== "claude-k8s-adapter") continue;
    seen.set(e.auditID, e);
  }
  return [...seen.values()];
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
function report(key, label, unit, values, note = "") {
  const s = Array.isArray(values) ? stats(values) : values;
  // Which Kubernetes the figure ran on: --only re-runs merge into figures of other runs.
  figures[key] = { label, unit, ...s, note, kubernetes: k8sVersion };
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

async function throughput() {
  const { file, lines, bytes } = transcriptFile(100);
  const rates = [];
  const walls = [];
  for (let i = 0; i < (quick ? 1 : 3); i += 1) {
    const r = await timedRun(ctx({ env: standIn({ BENCH_MODE: "file", BENCH_FILE: file }) }));
    check(r.result.exitCode === 0, `throughput: exit ${r.result.exitCode} ${r.result.errorMessage ?? ""}`);
    check(r.outLines === lines + 1, `throughput: ${r.outLines} lines reached onLog, expected ${lines + 1}`);
    if (r.t.firstOut && r.t.lastOut > r.t.firstOut) rates.push(mib(r.outBytes) / ((r.t.lastOut - r.t.firstOut) / 1000));
    walls.push((r.t.resolved - r.t.call) / 1000);
  }
  report("throughput.mibPerSec", `log throughput, ${mib(bytes).toFixed(0)} MiB stream-json`, "MiB/s", rates, "first → last container chunk in onLog");
  report("throughput.wall", "  the same run, execute wall time", "s", walls);
  rmSync(file);
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

async function idleRuns(n, { lines = 20, interval = 1 } = {}) {
  settle();
  const before = rss();
  const cpu0 = process.cpuUsage();
  const t0 = now();
  // A shell loop needs next to nothing: small requests, so that 200 pods fit the node (64 CPUs).
  const config = { resources: { requests: { cpu: "10m", memory: "32Mi" } } };
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
  const counts = quick ? [1, 50] : [1, 50, 200];
  const reps = quick ? 1 : 3;
  for (const n of counts) {
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
    if (n === counts[counts.length - 1] && wants("concurrency")) {
      report(`concurrency.wall${n}`, `${n} concurrent executes (different agents), wall`, "s", walls, `each 20 lines over 19 s; ${failed} failed, ${lost} missed a line, of ${n * reps}`);
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
  section = "latency";
  if (wants("latency")) await latency();
  section = "requests";
  if (wants("requests")) await requests();
  section = "throughput";
  if (wants("throughput")) await throughput();
  section = "memory";
  if (wants("memory") || wants("concurrency")) await memory();
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
    "| figure | unit | min / median / max | n | Kubernetes | note |",
    "|---|---|---|---|---|---|",
    ...Object.values(rows).map(
      (r) => `| ${r.label} | ${r.unit} | ${fmt(r.min)} / ${fmt(r.median)} / ${fmt(r.max)} | ${r.n ?? "-"} | ${r.kubernetes ?? "v1.20.2"} | ${r.note ?? ""} |`,
    ),
    "",
    ...(warnings.length ? ["Warnings seen during the run:", "", ...warnings.map((w) => `- ${w}`), ""] : []),
  ].join("\n");
}
