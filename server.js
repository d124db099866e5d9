// `./server`: the adapter module the host's plugin loader builds through
// `createServerAdapter()` (contract §1.4). Every member the original returned
// is here; `execute`, `testEnvironment` and the skills calls are the Rust core.
import { execute } from "./lib/execute.js";
import { testEnvironment, listSkills, syncSkills } from "./lib/environment.js";
import { sessionCodec } from "./lib/session-codec.js";
import { models, listModels, refreshModels } from "./lib/models.js";
import { getConfigSchema } from "./lib/config-schema.js";
import { agentConfigurationDoc } from "./lib/config-doc.js";

export const type = "claude_k8s";

export const sessionManagement = Object.freeze({
  supportsSessionResume: true,
  nativeContextManagement: "confirmed",
  defaultSessionCompaction: Object.freeze({
    enabled: true,
    maxSessionRuns: 0,
    maxRawInputTokens: 0,
    maxSessionAgeHours: 0,
  }),
});

export function createServerAdapter() {
  return {
    type,
    execute,
    testEnvironment,
    sessionCodec,
    sessionManagement,
    models,
    listModels,
    refreshModels,
    listSkills,
    syncSkills,
    getConfigSchema,
    supportsLocalAgentJwt: true,
    // Host 2026.916.1: Paperclip's connection tools come as an MCP server in
    // ctx.runtimeMcp (written into the pod's --mcp-config), not as a bearer
    // token in ctx.context.paperclipRuntimeTools (which would reach onMeta).
    runtimeToolDelivery: "native_mcp",
    supportsInstructionsBundle: true,
    instructionsPathKey: "instructionsFilePath",
    requiresMaterializedRuntimeSkills: false,
    hasOutOfProcessLiveness: true,
    agentConfigurationDoc,
  };
}

export { execute, testEnvironment, sessionCodec, listSkills, syncSkills, listModels, refreshModels, getConfigSchema };
