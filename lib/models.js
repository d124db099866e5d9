// Model lists (contract §1.11): the Anthropic API directly, or Bedrock when
// the Deployment is configured for it.
export const DIRECT_MODELS = Object.freeze([
  { id: "claude-opus-4-7", label: "Claude Opus 4.7" },
  { id: "claude-opus-4-6", label: "Claude Opus 4.6" },
  { id: "claude-sonnet-4-6", label: "Claude Sonnet 4.6" },
  { id: "claude-haiku-4-6", label: "Claude Haiku 4.6" },
  { id: "claude-sonnet-4-5-20250929", label: "Claude Sonnet 4.5" },
  { id: "claude-haiku-4-5-20251001", label: "Claude Haiku 4.5" },
]);

export const BEDROCK_MODELS = Object.freeze([
  { id: "us.anthropic.claude-opus-4-7", label: "Bedrock Opus 4.7" },
  { id: "us.anthropic.claude-opus-4-6-v1", label: "Bedrock Opus 4.6" },
  { id: "us.anthropic.claude-sonnet-4-6", label: "Bedrock Sonnet 4.6" },
  { id: "us.anthropic.claude-sonnet-4-5-20250929-v1:0", label: "Bedrock Sonnet 4.5" },
  { id: "us.anthropic.claude-haiku-4-5-20251001-v1:0", label: "Bedrock Haiku 4.5" },
]);

export function usesBedrock(env = process.env) {
  const flag = env.CLAUDE_CODE_USE_BEDROCK;
  return flag === "1" || flag === "true" || (env.ANTHROPIC_BEDROCK_BASE_URL ?? "").trim().length > 0;
}

function pick(env) {
  return (usesBedrock(env) ? BEDROCK_MODELS : DIRECT_MODELS).map((m) => ({ ...m }));
}

/** Chosen at import time (the host counts `models.length`). */
export const models = pick(process.env);

/** Chosen at call time. */
export async function listModels() {
  return pick(process.env);
}
