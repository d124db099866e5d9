// e2e global setup: the local cluster must be up (scripts/test-cluster up; its
// env file names the kubeconfigs), and a mock Anthropic API is started on
// loopback for the real Claude Code CLI in the pods to talk to.
import { clusterDir, readClusterEnv } from "../../scripts/cluster-env.mjs";
import { startMockAnthropic } from "../support/mock-anthropic.mjs";

export default async function setup(project) {
  const cluster = readClusterEnv();
  if (!cluster) {
    throw new Error(`e2e: no local cluster (${clusterDir}/env missing). Run "bash scripts/test-cluster up" first, or "npm test".`);
  }
  const mock = await startMockAnthropic({ port: 0 });
  project.provide("cluster", cluster);
  project.provide("mockUrl", mock.url);
  return async () => {
    await mock.close();
  };
}
