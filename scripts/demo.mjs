#!/usr/bin/env node
// The README's main command: one real agent turn through execute().
//
// Without KUBECONFIG: brings the local cluster up (scripts/test-cluster), starts
// the mock Anthropic API on loopback (this machine has no internet) and runs
// the real Claude Code CLI in a Job pod. With KUBECONFIG set: runs against
// that cluster, with --image (required) and --namespace, and the real API
// (ANTHROPIC_API_KEY comes from the Deployment-like env you give the Job via
// --env KEY=VALUE, or from a Secret your image reads).
//
// The transcript is printed with the package's CLI formatter as it streams;
// the result is printed at the end.
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import path from "node:path";
import { parseArgs } from "node:util";
import { readClusterEnv } from "./cluster-env.mjs";

const root = path.resolve(import.meta.dirname, "..");
const { values: args } = parseArgs({
  options: {
    prompt: { type: "string", default: "Run `uname -s` with Bash, then say hello." },
    image: { type: "string" },
    namespace: { type: "string" },
    model: { type: "string", default: "claude-sonnet-4-6" },
    env: { type: "string", multiple: true, default: [] },
    debug: { type: "boolean", default: false },
    help: { type: "boolean", short: "h", default: false },
  },
});
if (args.help) {
  console.log(`usage: npm run demo [-- --prompt TEXT] [--image IMG --namespace NS] [--env K=V ...] [--debug]

Without KUBECONFIG: local cluster + mock Anthropic API + the real Claude Code CLI.
With KUBECONFIG:    that cluster; --image is required (an image with claude on PATH).`);
  process.exit(0);
}

function run(cmd, argv, opts = {}) {
  const r = spawnSync(cmd, argv, { stdio: ["ignore", "pipe", "inherit"], encoding: "utf8", cwd: root, ...opts });
  if (r.status !== 0) {
    console.error(`demo: ${cmd} ${argv.join(" ")} failed (exit ${r.status})`);
    process.exit(1);
  }
  return r.stdout;
}

const local = !process.env.KUBECONFIG;
const config = { model: args.model, env: {}, timeoutSec: 600 };
for (const kv of args.env) {
  const i = kv.indexOf("=");
  if (i > 0) config.env[kv.slice(0, i)] = kv.slice(i + 1);
}
let mock;

if (!existsSync(path.join(root, "node_modules/.bin/napi"))) {
  console.error("demo: installing npm dependencies…");
  run("npm", ["install", "--no-audit", "--no-fund"], { stdio: "inherit" });
}
if (!existsSync(path.join(root, "binding.cjs")) || !readdirHasNode()) {
  console.error("demo: building the addon (npm run build)…");
  run("npm", ["run", "--silent", "build"], { stdio: "inherit" });
}

if (local) {
  console.error("demo: preparing the Claude Code CLI and the local cluster…");
  const bin = run("bash", ["scripts/install-claude-code"]).trim().split("\n").pop();
  const env = { ...process.env, CLAUDE_K8S_IMAGE_BIN: bin };
  // The real node (kubelet, containerd, runc) by default; where it cannot
  // start here, the simulated node, said so.
  const up = spawnSync("bash", ["scripts/test-cluster", "up"], { stdio: "inherit", cwd: root, env });
  if (up.status !== 0 && !process.env.CLAUDE_K8S_NODE) {
    console.error("demo: the real node could not start here (above); falling back to the simulated node (crates/test-node)");
    spawnSync("bash", ["scripts/test-cluster", "down"], { stdio: "inherit", cwd: root, env });
    run("bash", ["scripts/test-cluster", "up"], { stdio: "inherit", env: { ...env, CLAUDE_K8S_NODE: "sim" } });
  } else if (up.status !== 0) {
    console.error(`demo: bash scripts/test-cluster up failed (exit ${up.status})`);
    process.exit(1);
  }
  const cluster = readClusterEnv();
  const { startMockAnthropic } = await import("../__tests__/support/mock-anthropic.mjs");
  // Where the pods reach the node's services: the real node's bridge address, or loopback.
  mock = await startMockAnthropic({ port: 0, host: cluster.NODE_SERVICES_HOST ?? "127.0.0.1" });
  config.kubeconfig = cluster.KUBECONFIG;
  config.namespace = "paperclip";
  config.image = "claude-k8s/local:dev";
  config.env.ANTHROPIC_BASE_URL = `${mock.url}/s/tool`;
  // Off-cluster mode: nothing is inherited from a Paperclip pod, so the
  // Job's env comes from config (the mock accepts any key).
  config.env.ANTHROPIC_API_KEY = "sk-demo-local-mock";
  config.env.DISABLE_TELEMETRY = "1";
  config.env.CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC = "1";
} else {
  if (!args.image) {
    console.error("demo: with KUBECONFIG set, --image is required");
    process.exit(2);
  }
  config.image = args.image;
  if (args.namespace) config.namespace = args.namespace;
}

const { createServerAdapter, printClaudeStreamEvent } = await import("../index.js");
const adapter = createServerAdapter();

let pending = "";
const ctx = {
  runId: `demo-${Date.now()}`,
  agent: { id: "demo-agent", companyId: "demo-co", name: "Demo Agent", adapterType: "claude_k8s", adapterConfig: config },
  runtime: { sessionId: null, sessionParams: null, sessionDisplayId: null, taskKey: null },
  config,
  context: { taskId: "demo-task" },
  onLog: async (stream, chunk) => {
    if (stream === "stderr") {
      process.stderr.write(chunk);
      return;
    }
    pending += chunk;
    let nl;
    while ((nl = pending.indexOf("\n")) >= 0) {
      const line = pending.slice(0, nl);
      pending = pending.slice(nl + 1);
      if (line.trim()) printClaudeStreamEvent(line, args.debug);
    }
  },
  onMeta: async (meta) => {
    console.error(`demo: ${meta.command} ${(meta.commandArgs ?? []).join(" ")}`);
  },
};

try {
  const result = await adapter.execute(ctx);
  if (pending.trim()) printClaudeStreamEvent(pending, args.debug);
  console.log("\n== result");
  console.log(JSON.stringify({ ...result, resultJson: result.resultJson ? "(omitted)" : result.resultJson }, null, 2));
  process.exitCode = result.errorCode || (result.exitCode ?? 0) !== 0 ? 1 : 0;
} finally {
  await mock?.close();
}

function readdirHasNode() {
  try {
    return spawnSync("sh", ["-c", "ls *.node"], { cwd: root }).status === 0;
  } catch {
    return false;
  }
}
