// Diagnostics an operator switches on (issue 25): CLAUDE_K8S_LOG (EnvFilter
// syntax) and CLAUDE_K8S_LOG_FORMAT (text | json) in the host process's
// environment. Each case is a host process of its own (the subscriber is
// process-wide): a run that succeeds, one that fails and one the host
// cancels, on the real cluster; their stderr is searched for the spans —
// and for the run's token, the API key and the prompt, which must not be
// there.
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { NODE_RESOURCES, makeCtx } from "./harness.js";

const CHILD = fileURLToPath(new URL("../support/diagnostics-child.mjs", import.meta.url));
const TOKEN = "run-token-DIAG-5c1e7";
const API_KEY = "sk-ant-DIAG-93fd0a";
const PROMPT_MARK = "prompt-text-DIAG-77b2";

// Off-cluster (no Paperclip pod for this process): the image and the key come from the config.
function runs() {
  const ctx = (scenario, extra = {}) => {
    const c = makeCtx({ scenario, config: { image: "claude-k8s/local:dev", promptTemplate: `Say hi. ${PROMPT_MARK}`, ...NODE_RESOURCES }, authToken: TOKEN, ...extra });
    c.config.env = { ...c.config.env, ANTHROPIC_API_KEY: API_KEY, DISABLE_TELEMETRY: "1", CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: "1", CLAUDE_CODE_MAX_RETRIES: "0" };
    return c;
  };
  return [
    { ctx: ctx("plain/text=Diagnosed.") },
    { ctx: ctx("status/code=401") },
    { ctx: ctx("silence/seconds=60"), abortOn: '"subtype":"init"' },
  ];
}

function hostWithStderr(env, list) {
  const childEnv = { ...process.env };
  for (const k of ["HOSTNAME", "PAPERCLIP_NAMESPACE", "PAPERCLIP_API_URL", "CLAUDE_K8S_LOG", "CLAUDE_K8S_LOG_FORMAT"]) delete childEnv[k];
  Object.assign(childEnv, env);
  const p = spawnSync(process.execPath, [CHILD, JSON.stringify(list)], { env: childEnv, encoding: "utf8", maxBuffer: 256 << 20, timeout: 240_000 });
  if (p.status !== 0) throw new Error(`the host process exited with ${p.status}: ${p.stderr.slice(-4000)}`);
  return { results: JSON.parse(p.stdout.trim().split("\n").at(-1)), stderr: p.stderr };
}

function expectOutcomes(results) {
  expect(results[0]).toMatchObject({ exitCode: 0, summary: "Diagnosed." });
  expect(results[1].errorCode).toBe("claude_auth_required");
  expect(results[2]).toMatchObject({ errorCode: "cancelled" });
}

function expectNoSecret(stderr) {
  for (const secret of [TOKEN, API_KEY, PROMPT_MARK]) expect(stderr, secret).not.toContain(secret);
}

describe("CLAUDE_K8S_LOG", () => {
  it("text: the run's span with its ids, each phase timed, kube-rs's requests nested; no secret", () => {
    const list = runs();
    const { results, stderr } = hostWithStderr({ CLAUDE_K8S_LOG: "claude_k8s=debug,kube=debug" }, list);
    expectOutcomes(results);
    const id = list[0].ctx.runId;
    const lines = stderr.split("\n").filter((l) => l.includes(`run_id=${id}`));
    // The run span carries the Job and namespace once created; phases close with their timings.
    expect(lines.some((l) => /run\{run_id=\S+ agent_id=\S+ job=ac-\S+ namespace=paperclip\}/.test(l))).toBe(true);
    for (const phase of ["guard", "create", "follow", "follow:schedule", "follow:log", "follow:outcome", "cleanup"]) {
      expect(lines.some((l) => l.includes(`:${phase}`) && /close time\.busy=\S+ time\.idle=\S+/.test(l)), phase).toBe(true);
    }
    // The drain after the container's end, inside the log follower's span.
    expect(lines.some((l) => /:follow:log\{pod=ac-\S+\}:drain: \S+: close time\.busy=/.test(l)), "drain").toBe(true);
    expect(lines.some((l) => l.includes("pod running; following its log"))).toBe(true);
    expect(lines.some((l) => /run ended exit_code=Some\(0\)/.test(l))).toBe(true);
    // kube-rs's own spans (its HTTP requests) inside ours.
    expect(lines.some((l) => /:follow.*HTTP\{/.test(l) || /:guard.*HTTP\{/.test(l)), "a kube-rs span under a phase").toBe(true);
    // The failed and the cancelled run are told too.
    expect(stderr).toMatch(new RegExp(`run\\{run_id=${list[1].ctx.runId}[^}]*\\}: \\S+: run ended exit_code=Some\\(1\\) error_code=Some\\("claude_auth_required"\\)`));
    expect(stderr).toMatch(new RegExp(`run\\{run_id=${list[2].ctx.runId}[^}]*\\}:follow: \\S+: cancelled by the host`));
    expectNoSecret(stderr);
  });

  it("json: one object per line with the span list; no secret", () => {
    const list = runs();
    const { results, stderr } = hostWithStderr({ CLAUDE_K8S_LOG: "claude_k8s=debug,kube=debug", CLAUDE_K8S_LOG_FORMAT: "json" }, list);
    expectOutcomes(results);
    const events = stderr.split("\n").filter(Boolean).map((l) => JSON.parse(l));
    const ofRun = events.filter((e) => e.spans?.[0]?.name === "run" && e.spans[0].run_id === list[0].ctx.runId);
    expect(ofRun.find((e) => e.fields.message === "run ended")).toMatchObject({ level: "INFO", fields: { exit_code: "Some(0)" } });
    expect(ofRun.some((e) => e.spans.map((s) => s.name).join(">") === "run>follow" && e.fields.message === "pod running; following its log")).toBe(true);
    expect(ofRun.some((e) => e.spans[0].job?.startsWith("ac-"))).toBe(true);
    expectNoSecret(stderr);
  });

  it("off (unset): the same runs print nothing", () => {
    const { results, stderr } = hostWithStderr({}, runs());
    expectOutcomes(results);
    expect(stderr).toBe("");
  });

  it("a filter that does not parse: said once, the runs unharmed", () => {
    const { results, stderr } = hostWithStderr({ CLAUDE_K8S_LOG: "claude_k8s=loud" }, runs());
    expectOutcomes(results);
    expect(stderr.trim().split("\n")).toEqual([expect.stringMatching(/^claude_k8s: diagnostics stay off: CLAUDE_K8S_LOG is not a filter/)]);
  });
});
