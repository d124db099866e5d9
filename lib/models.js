// Model lists (contract §1.11), as claude_local 2026.916.1 has them: the
// Anthropic API's ids, or Bedrock's when the Deployment is configured for it;
// `listModels` asks the API's /v1/models when the host has a key (cached 60 s),
// `refreshModels` asks again now. The host's agent form shows the result
// (GET /api/companies/:id/adapters/claude_k8s/models[?refresh=1]).
import { createHash } from "node:crypto";

/** claude_local's default when an agent names none (the adapter itself still passes no --model then). */
export const DEFAULT_MODEL = "claude-opus-5";

export const DIRECT_MODELS = Object.freeze([
  { id: "claude-opus-4-8", label: "Claude Opus 4.8" },
  { id: "claude-sonnet-5", label: "Claude Sonnet 5" },
  { id: "claude-fable-5-1", label: "Claude Fable 5.1" },
  { id: "claude-fable-5", label: "Claude Fable 5" },
  { id: "claude-mythos-5", label: "Claude Mythos 5" },
  { id: "claude-opus-5", label: "Claude Opus 5" },
  { id: "claude-opus-4-7", label: "Claude Opus 4.7" },
  { id: "claude-opus-4-6", label: "Claude Opus 4.6" },
  { id: "claude-sonnet-4-6", label: "Claude Sonnet 4.6" },
  { id: "claude-sonnet-4-5", label: "Claude Sonnet 4.5" },
  { id: "claude-haiku-4-5", label: "Claude Haiku 4.5" },
].map(Object.freeze));

/** Region-qualified ids, as the Bedrock API needs them. */
export const BEDROCK_MODELS = Object.freeze([
  { id: "us.anthropic.claude-opus-4-8-v1", label: "Bedrock Opus 4.8" },
  { id: "us.anthropic.claude-fable-5-1", label: "Bedrock Fable 5.1" },
  { id: "us.anthropic.claude-fable-5-v1", label: "Bedrock Fable 5" },
  { id: "us.anthropic.claude-opus-4-6-v1", label: "Bedrock Opus 4.6" },
  { id: "us.anthropic.claude-sonnet-4-5-20250929-v2:0", label: "Bedrock Sonnet 4.5" },
  { id: "us.anthropic.claude-haiku-4-5-20251001-v1:0", label: "Bedrock Haiku 4.5" },
].map(Object.freeze));

const CACHE_TTL_MS = 60_000;
const FETCH_TIMEOUT_MS = 5_000;

export function usesBedrock(env = process.env) {
  const flag = env.CLAUDE_CODE_USE_BEDROCK;
  return flag === "1" || flag === "true" || (env.ANTHROPIC_BEDROCK_BASE_URL ?? "").trim().length > 0;
}

function copies(list) {
  return list.map((m) => ({ ...m }));
}

/** First occurrence of each id wins. */
function dedupe(list) {
  const seen = new Set();
  return list.filter((m) => m.id && !seen.has(m.id) && seen.add(m.id));
}

/** Chosen at import time (the host counts `models.length`). */
export const models = copies(usesBedrock() ? BEDROCK_MODELS : DIRECT_MODELS);

let cached = null;

/** The API's own list (GET /v1/models), or [] on any failure: a model list must never fail a form. */
async function fetchApiModels(apiKey, baseUrl) {
  try {
    const res = await fetch(`${baseUrl.replace(/\/+$/, "")}/v1/models?limit=1000`, {
      headers: { "x-api-key": apiKey, "anthropic-version": "2023-06-01" },
      signal: AbortSignal.timeout(FETCH_TIMEOUT_MS),
    });
    if (!res.ok) return [];
    const body = await res.json();
    const data = Array.isArray(body?.data) ? body.data : [];
    return data
      .filter((m) => typeof m?.id === "string" && m.id.trim())
      .map((m) => ({ id: m.id.trim(), label: typeof m.display_name === "string" && m.display_name.trim() ? m.display_name.trim() : m.id.trim() }));
  } catch {
    return [];
  }
}

async function load({ forceRefresh = false } = {}, env = process.env) {
  if (usesBedrock(env)) return copies(BEDROCK_MODELS);
  const apiKey = (env.ANTHROPIC_API_KEY ?? "").trim();
  if (!apiKey) return copies(DIRECT_MODELS);
  const baseUrl = (env.ANTHROPIC_BASE_URL ?? "").trim() || "https://api.anthropic.com";
  // The key itself is never kept: a fingerprint tells a changed key apart.
  const key = `${createHash("sha256").update(apiKey).digest("hex").slice(0, 16)} ${baseUrl}`;
  if (!forceRefresh && cached?.key === key && cached.expiresAt > Date.now()) return copies(cached.models);
  const fetched = await fetchApiModels(apiKey, baseUrl);
  if (fetched.length > 0) {
    cached = { key, expiresAt: Date.now() + CACHE_TTL_MS, models: dedupe([...fetched, ...DIRECT_MODELS]) };
    return copies(cached.models);
  }
  if (cached?.key === key) return copies(cached.models);
  return copies(DIRECT_MODELS);
}

/** Chosen at call time; the API's list when the host has a key (cached for a minute). */
export async function listModels() {
  return load();
}

/** The same, asked of the API now (the agent form's refresh). */
export async function refreshModels() {
  return load({ forceRefresh: true });
}

/** @internal tests */
export function resetModelsCache() {
  cached = null;
}
