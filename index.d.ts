// Types of the package root. They mirror @paperclipai/adapter-utils'
// AdapterExecutionContext / AdapterExecutionResult / ServerAdapterModule
// (2026.403.0 and the later additions), so a host typed against adapter-utils
// compiles against ours. Kept structural on purpose: no import of adapter-utils.

export interface AdapterAgent {
  id: string;
  companyId: string;
  name: string;
  adapterType: string | null;
  adapterConfig: unknown;
}

export interface AdapterRuntime {
  sessionId: string | null;
  sessionParams: Record<string, unknown> | null;
  sessionDisplayId: string | null;
  taskKey: string | null;
}

export interface UsageSummary {
  inputTokens: number;
  outputTokens: number;
  cachedInputTokens?: number;
}

export type AdapterBillingType =
  | "api"
  | "subscription"
  | "metered_api"
  | "subscription_included"
  | "subscription_overage"
  | "credits"
  | "fixed"
  | "unknown";

export interface AdapterInvocationMeta {
  adapterType: string;
  command: string;
  cwd?: string;
  commandArgs?: string[];
  commandNotes?: string[];
  env?: Record<string, string>;
  prompt?: string;
  promptMetrics?: Record<string, number>;
  context?: Record<string, unknown>;
}

export interface AdapterSpawnMeta {
  pid: number;
  processGroupId?: number | null;
  startedAt: string;
}

export interface AdapterExecutionContext {
  runId: string;
  agent: AdapterAgent;
  runtime: AdapterRuntime;
  config: Record<string, unknown>;
  context: Record<string, unknown>;
  onLog: (stream: "stdout" | "stderr", chunk: string) => Promise<void>;
  onMeta?: (meta: AdapterInvocationMeta) => Promise<void>;
  /** Accepted for the host's type, never called: the run has no process on the host's machine. */
  onSpawn?: (meta: AdapterSpawnMeta) => Promise<void>;
  authToken?: string;
  /** Newer hosts: aborted when the run is cancelled from the host; the Job is deleted and the result is `cancelled`. */
  signal?: AbortSignal;
  /** Newer hosts: called (and awaited) before the run starts, to say that `signal` is listened to. */
  onCancellationReady?: () => Promise<void>;
  /** Host 2026.916.1: its runtime MCP servers, written (tokens in a Secret) into the pod's `--mcp-config`. */
  runtimeMcp?: { getServers(): Array<{ name: string; url: string; token: string; connectionId: string }> };
  // Newer hosts pass more fields (executionTarget, executionTransport, …); they are ignored.
}

export type AdapterExecutionErrorFamily =
  | "transient_upstream"
  | "provider_quota"
  | "model_refusal"
  | "refresh_token_reused"
  | "refresh_token_expired"
  | "refresh_token_invalidated";

export interface AdapterExecutionResult {
  exitCode: number | null;
  signal: string | null;
  timedOut: boolean;
  errorMessage?: string | null;
  errorCode?: string | null;
  /**
   * What the host may do about a failure (adapter-utils 2026.916.1): `transient_upstream`
   * (529/overloaded, 5xx, a connection lost; also `llm_api_error`), `provider_quota` (429, rate
   * and usage limits), `model_refusal`. Absent on success and on failures no retry would mend.
   */
  errorFamily?: AdapterExecutionErrorFamily | null;
  /** ISO-8601: no retry before this (the CLI's back-off, a usage window's reset, or 30 s). */
  retryNotBefore?: string | null;
  /** Set when the transcript shows no model output at all: the run may be replayed from the start. */
  executionRecovery?: { kind: "bootstrap"; providerWorkStarted: false };
  errorMeta?: Record<string, unknown>;
  usage?: UsageSummary;
  sessionId?: string | null;
  sessionParams?: Record<string, unknown> | null;
  sessionDisplayId?: string | null;
  provider?: string | null;
  biller?: string | null;
  model?: string | null;
  billingType?: AdapterBillingType | null;
  costUsd?: number | null;
  resultJson?: Record<string, unknown> | null;
  summary?: string | null;
  clearSession?: boolean;
}

export interface AdapterModel {
  id: string;
  label: string;
}

export interface AdapterEnvironmentCheck {
  code: string;
  level: "info" | "warn" | "error";
  message: string;
  detail?: string | null;
  hint?: string | null;
}

export interface AdapterEnvironmentTestResult {
  adapterType: string;
  status: "pass" | "warn" | "fail";
  checks: AdapterEnvironmentCheck[];
  testedAt: string;
}

export interface AdapterEnvironmentTestContext {
  companyId: string;
  adapterType: string;
  config: Record<string, unknown>;
  deployment?: Record<string, unknown>;
}

export interface AdapterSessionCodec {
  deserialize(raw: unknown): Record<string, unknown> | null;
  serialize(params: Record<string, unknown> | null): Record<string, unknown> | null;
  getDisplayId?: (params: Record<string, unknown> | null) => string | null;
}

export interface AdapterSessionManagement {
  supportsSessionResume: boolean;
  nativeContextManagement: "confirmed" | "likely" | "unknown" | "none";
  defaultSessionCompaction: {
    enabled: boolean;
    maxSessionRuns: number;
    maxRawInputTokens: number;
    maxSessionAgeHours: number;
  };
}

export interface AdapterSkillEntry {
  key: string;
  runtimeName: string | null;
  desired: boolean;
  managed: boolean;
  required?: boolean;
  requiredReason?: string | null;
  state: "available" | "configured" | "installed" | "missing" | "stale" | "external";
  origin?: "company_managed" | "paperclip_required" | "user_installed" | "external_unknown";
  originLabel?: string | null;
  locationLabel?: string | null;
  readOnly?: boolean;
  sourcePath?: string | null;
  targetPath?: string | null;
  detail?: string | null;
}

export interface AdapterSkillSnapshot {
  adapterType: string;
  supported: boolean;
  mode: "unsupported" | "persistent" | "ephemeral";
  desiredSkills: string[];
  entries: AdapterSkillEntry[];
  warnings: string[];
}

export interface AdapterSkillContext {
  agentId: string;
  companyId: string;
  adapterType: string;
  config: Record<string, unknown>;
}

export interface ConfigFieldSchema {
  key: string;
  label: string;
  type: "text" | "select" | "toggle" | "number" | "textarea" | "combobox";
  options?: Array<{ label: string; value: string; group?: string }>;
  default?: unknown;
  hint?: string;
  required?: boolean;
  group?: string;
  meta?: Record<string, unknown>;
}

export interface AdapterConfigSchema {
  fields: ConfigFieldSchema[];
}

export interface ServerAdapterModule {
  type: string;
  execute(ctx: AdapterExecutionContext): Promise<AdapterExecutionResult>;
  testEnvironment(ctx: AdapterEnvironmentTestContext): Promise<AdapterEnvironmentTestResult>;
  sessionCodec: AdapterSessionCodec;
  sessionManagement: AdapterSessionManagement;
  models: AdapterModel[];
  /** The API's /v1/models when the host has ANTHROPIC_API_KEY (cached 60 s), else the static list. */
  listModels: () => Promise<AdapterModel[]>;
  /** The same, asked of the API now (the agent form's refresh). */
  refreshModels: () => Promise<AdapterModel[]>;
  listSkills: (ctx: AdapterSkillContext) => Promise<AdapterSkillSnapshot>;
  syncSkills: (ctx: AdapterSkillContext, desiredSkills: string[]) => Promise<AdapterSkillSnapshot>;
  getConfigSchema: () => AdapterConfigSchema;
  supportsLocalAgentJwt: boolean;
  /** Host 2026.916.1: how Paperclip's runtime tools reach the agent (here: as MCP servers in `ctx.runtimeMcp`). */
  runtimeToolDelivery: "native_mcp";
  supportsInstructionsBundle: boolean;
  instructionsPathKey: string;
  requiresMaterializedRuntimeSkills: boolean;
  hasOutOfProcessLiveness: boolean;
  agentConfigurationDoc: string;
}

export declare const type: "claude_k8s";
export declare const label: string;
export declare const models: AdapterModel[];
export declare const agentConfigurationDoc: string;
export declare function createServerAdapter(): ServerAdapterModule;
export declare function printClaudeStreamEvent(raw: string, debug: boolean): void;
