// e2e global setup: the local cluster must be up (scripts/test-cluster up; its
// env file names the kubeconfigs), and a mock Anthropic API is started where
// the pods reach the node (loopback, or the real node's bridge address) for
// the real Claude Code CLI in the pods to talk to.
import { clusterDir, readClusterEnv } from "../../scripts/cluster-env.mjs";
import { startMockAnthropic } from "../support/mock-anthropic.mjs";

export default async function setup(project) {
  const cluster = readClusterEnv();
  if (!cluster) {
    throw new Error(`e2e: no local cluster (${clusterDir}/env missing). Run "bash scripts/test-cluster up" first, or "npm test".`);
  }
  // On the real node pods have a network of their own: they reach the node's
  // services at its bridge address (NODE_SERVICES_HOST), not at loopback.
  const mock = await startMockAnthropic({ port: 0, host: cluster.NODE_SERVICES_HOST ?? "127.0.0.1" });
  project.provide("cluster", cluster);
  project.provide("mockUrl", mock.url);
  return async () => {
    await mock.close();
  };
}
