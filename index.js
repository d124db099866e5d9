// The package root, what Paperclip's plugin loader imports (contract §1.3).
export { type, createServerAdapter } from "./server.js";
export { models } from "./lib/models.js";
export { agentConfigurationDoc } from "./lib/config-doc.js";
export { printClaudeStreamEvent } from "./cli.js";

export const label = "Claude (Kubernetes)";
