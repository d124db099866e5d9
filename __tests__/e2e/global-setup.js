// e2e global setup: the local cluster must be up (scripts/test-cluster up; its
// env file names the kubeconfigs), and a mock Anthropic API is started on
// loopback for the real Claude Code CLI in the pods to talk to.
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { startMockAnthropic } from "../support/mock-anthropic.mjs";

const root = path.resolve(import.meta.dirname, "../..");

function readClusterEnv() {
  const dir = process.env.CLAUDE_K8S_CLUSTER_DIR ?? path.join(root, ".cluster");
  const file = path.join(dir, "env");
  if (!existsSync(file)) {
    throw new Error(`e2e: no local cluster (${file} missing). Run "bash scripts/test-cluster up" first, or "npm test".`);
  }
  const env = {};
  for (const line of readFileSync(file, "utf8").split("\n")) {
    const m = /^(?:export\s+)?([A-Z_][A-Z0-9_]*)=(.*)$/.exec(line.trim());
    if (m) env[m[1]] = m[2].replace(/^["']|["']$/g, "");
  }
  return env;
}

export default async function setup(project) {
  const cluster = readClusterEnv();
  const mock = await startMockAnthropic({ port: 0 });
  project.provide("cluster", cluster);
  project.provide("mockUrl", mock.url);
  return async () => {
    await mock.close();
  };
}
