// The local cluster's env file (`scripts/test-cluster up` writes
// <cluster dir>/env: KUBECONFIG, ADMIN_KUBECONFIG, AUDIT_LOG, NODE_CONTROL, …),
// read by the demo, the benchmarks and the e2e setup.
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";

const root = path.resolve(import.meta.dirname, "..");

/** Where the cluster lives: $CLAUDE_K8S_CLUSTER_DIR, or .cluster in the repo. */
export const clusterDir = process.env.CLAUDE_K8S_CLUSTER_DIR ?? path.join(root, ".cluster");

/** `KEY=value` lines (optionally `export`ed and quoted) as an object; null when the file is missing. */
export function readClusterEnv(dir = clusterDir) {
  const file = path.join(dir, "env");
  if (!existsSync(file)) return null;
  const env = {};
  for (const line of readFileSync(file, "utf8").split("\n")) {
    const m = /^(?:export\s+)?([A-Z_][A-Z0-9_]*)=(.*)$/.exec(line.trim());
    if (m) env[m[1]] = m[2].replace(/^["']|["']$/g, "");
  }
  return env;
}
