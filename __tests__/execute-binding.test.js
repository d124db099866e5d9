// execute(ctx) through the napi binding, for everything that must happen
// before the cluster is touched: bad input, callbacks that misbehave, panics.
// (The runs themselves are the e2e suites' job.)
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { execute } from "../server.js";

const baseCtx = () => ({
  runId: "run-test-001",
  agent: { id: "agent-abc", companyId: "co1", name: "Test Agent", adapterType: "claude_k8s", adapterConfig: {} },
  runtime: { sessionId: null, sessionParams: null, sessionDisplayId: null, taskKey: null },
  config: {},
  context: {},
  onLog: async () => {},
  onMeta: async () => {},
});

let savedApiUrl;
beforeEach(() => {
  savedApiUrl = process.env.PAPERCLIP_API_URL;
  delete process.env.PAPERCLIP_API_URL;
});
afterEach(() => {
  if (savedApiUrl === undefined) delete process.env.PAPERCLIP_API_URL;
  else process.env.PAPERCLIP_API_URL = savedApiUrl;
});

describe("execute: invalid agent id", () => {
  it.each([[""], ["!!!"], ["---"], ["日本語"]])("agent id %j → k8s_agent_id_invalid, no cluster call", async (id) => {
    const logs = [];
    const ctx = { ...baseCtx(), agent: { ...baseCtx().agent, id }, onLog: async (s, c) => logs.push([s, c]) };
    // A kubeconfig that does not exist: touching the cluster would fail differently.
    ctx.config = { kubeconfig: "/nonexistent/kubeconfig" };
    const r = await execute(ctx);
    expect(r).toMatchObject({
      exitCode: null,
      signal: null,
      timedOut: false,
      errorCode: "k8s_agent_id_invalid",
      errorMessage: `Agent ID "${id}" cannot be sanitized to a valid Kubernetes label`,
    });
    expect(logs).toEqual([["stderr", "[paperclip] Warning: PAPERCLIP_API_URL not set — cancel polling disabled\n"]]);
  });

  it("a missing agent is an invalid agent id, not a crash", async () => {
    const ctx = { ...baseCtx(), agent: undefined };
    const r = await execute(ctx);
    expect(r.errorCode).toBe("k8s_agent_id_invalid");
  });
});

describe("execute: malformed arguments reject, never throw synchronously", () => {
  it.each([
    ["no ctx", undefined, /ctx must be an object/],
    ["null ctx", null, /ctx must be an object/],
    ["string ctx", "ctx", /ctx must be an object/],
    ["no onLog", { runId: "r" }, /ctx.onLog must be a function/],
    ["onLog not a function", { runId: "r", onLog: "nope" }, /ctx.onLog must be a function/],
    ["onMeta not a function", { runId: "r", onLog: async () => {}, onMeta: 42 }, /ctx.onMeta must be a function/],
  ])("%s", async (_name, ctx, message) => {
    let p;
    expect(() => {
      p = execute(ctx);
    }).not.toThrow();
    await expect(p).rejects.toThrow(message);
  });

  it("a throwing getter in the ctx rejects with its message", async () => {
    const ctx = baseCtx();
    Object.defineProperty(ctx, "config", { enumerable: true, get() { throw new Error("getter exploded"); } });
    await expect(execute(ctx)).rejects.toThrow("getter exploded");
  });

  it("values serde cannot hold are normalised: undefined in arrays, NaN, functions, cycles, BigInt", async () => {
    const cyc = { a: 1 };
    cyc.self = cyc;
    const ctx = baseCtx();
    ctx.agent = { ...ctx.agent, id: "%%%" }; // stop at the agent-id check: no cluster
    ctx.config = { extraArgs: ["--x", undefined], n: NaN, f() {}, big: 10n, cyc, deep: JSON.parse("[".repeat(60) + "]".repeat(60)) };
    ctx.context = { when: new Date(0), list: [undefined, () => 1] };
    const r = await execute(ctx);
    expect(r.errorCode).toBe("k8s_agent_id_invalid");
  });

  it("unknown ctx fields of newer hosts are ignored", async () => {
    const ctx = { ...baseCtx(), executionTarget: { kind: "x" }, executionTransport: "y", onRuntimeProgress: () => {}, signal: new AbortController().signal };
    ctx.agent = { ...ctx.agent, id: "***" };
    const r = await execute(ctx);
    expect(r.errorCode).toBe("k8s_agent_id_invalid");
  });
});

describe("execute: callbacks that fail", () => {
  const failingCtx = (onLog) => ({ ...baseCtx(), agent: { ...baseCtx().agent, id: "%%%" }, onLog });

  it.each([
    ["rejects with an Error", async () => { throw new Error("boom"); }, "boom"],
    ["throws synchronously", () => { throw new Error("boom-sync"); }, "boom-sync"],
    ["throws a string", () => { throw "str-thrown"; }, "str-thrown"],
    ["rejects with a plain object", () => Promise.reject({ code: 42 }), '{"code":42}'],
  ])("onLog that %s makes execute reject naming it", async (_n, onLog, detail) => {
    const err = await execute(failingCtx(onLog)).then(() => null, (e) => e);
    expect(err).toBeInstanceOf(Error);
    expect(err.message).toContain("onLog");
    expect(err.message).toContain(detail);
  });

  it("an onLog returning garbage is fine (its value is ignored)", async () => {
    const r = await execute(failingCtx(() => 42));
    expect(r.errorCode).toBe("k8s_agent_id_invalid");
  });

  it("the addon keeps working after a callback failure", async () => {
    await expect(execute(failingCtx(() => { throw new Error("x"); }))).rejects.toThrow();
    const r = await execute(failingCtx(async () => {}));
    expect(r.errorCode).toBe("k8s_agent_id_invalid");
  });
});

describe("execute: cancellation through ctx.signal (newer hosts)", () => {
  it("an already aborted signal → cancelled before anything is created; onCancellationReady is awaited first", async () => {
    const order = [];
    const controller = new AbortController();
    controller.abort(new Error("stop"));
    const ctx = {
      ...baseCtx(),
      config: { kubeconfig: "/nonexistent/kubeconfig" }, // a cluster call would fail differently
      signal: controller.signal,
      onCancellationReady: async () => order.push("ready"),
      onLog: async (s) => order.push(`log:${s}`),
    };
    const r = await execute(ctx);
    expect(r).toMatchObject({ exitCode: null, timedOut: false, errorCode: "cancelled", errorMessage: "Run cancelled" });
    // Newer hosts close a cancelled run only once the adapter acknowledges it.
    expect(r.resultJson.executionCancellation).toMatchObject({ state: "acknowledged", proof: "nothing_started" });
    expect(order[0]).toBe("ready");
  });

  it("onCancellationReady that throws makes execute reject, naming it", async () => {
    const ctx = {
      ...baseCtx(),
      signal: new AbortController().signal,
      onCancellationReady: () => {
        throw new Error("registry down");
      },
    };
    await expect(execute(ctx)).rejects.toThrow(/onCancellationReady.*registry down|registry down/);
  });

  it("something that is not an AbortSignal is ignored, as are other unknown fields", async () => {
    const ctx = { ...baseCtx(), agent: { ...baseCtx().agent, id: "!!!" }, signal: { aborted: "yes" } };
    const r = await execute(ctx);
    expect(r.errorCode).toBe("k8s_agent_id_invalid");
  });
});

// The crossing onLog chunks take (src/lib.rs: LogChunk): ASCII as UTF-8,
// anything else converted to UTF-16 on the Rust side. Driven through the
// bench's entry, which uses the very JsHost::on_log a run uses.
describe("onLog chunks across napi", () => {
  it.each([["ascii"], ["nonAscii"], ["nonAsciiUtf8"]])("%s: every chunk arrives whole, as the Rust string was", async (text) => {
    const nonAscii = text !== "ascii";
    const { default: native } = await import("../lib/native.js");
    const chunks = [];
    const ns = await native.benchLogCrossing(async (stream, chunk) => chunks.push([stream, chunk]), 300_000, 3, text);
    expect(ns).toBeGreaterThan(0);
    expect(chunks).toHaveLength(3);
    for (const [stream, chunk] of chunks) {
      expect(stream).toBe("stdout");
      expect(chunk).toBe(chunks[0][1]);
      // The chunk is cut at 300 000 bytes on a character boundary.
      expect(Buffer.byteLength(chunk)).toBeLessThanOrEqual(300_000);
      expect(Buffer.byteLength(chunk)).toBeGreaterThan(300_000 - 4);
      const lines = chunk.split("\n");
      for (const line of lines.slice(0, -1)) expect(JSON.parse(line)).toMatchObject({ type: "assistant" });
      if (nonAscii) expect(lines[0]).toContain("Grüße, ünïcödé — 日本語のテキスト ✓ 🎉");
      else expect(chunk).toMatch(/^[\x00-\x7f]*$/);
    }
  });

  it("rejects sizes it will not build", async () => {
    const { default: native } = await import("../lib/native.js");
    await expect(native.benchLogCrossing(async () => {}, 0, 1, "ascii")).rejects.toThrow(/\[INVALID_ARG\]/);
    await expect(native.benchLogCrossing(async () => {}, 1 << 30, 2, "ascii")).rejects.toThrow(/1 GiB/);
    await expect(native.benchLogCrossing(async () => {}, 64, 1, "latin1")).rejects.toThrow(/text must be/);
  });
});

describe("the addon's runtime", () => {
  // One tokio worker (src/lib.rs `init`): each log chunk is then a hand-off
  // between two tasks on one thread, not a futex wake across threads.
  // TOKIO_WORKER_THREADS keeps napi-rs' default runtime, which reads it.
  const workersIn = async (env) => {
    const { execFileSync } = await import("node:child_process");
    const script = `
      const { execute } = await import(${JSON.stringify(new URL("../server.js", import.meta.url).href)});
      const { readdirSync, readFileSync } = await import("node:fs");
      const r = await execute({ runId: "r", agent: { id: "!!!", companyId: "c", name: "n", adapterType: "claude_k8s", adapterConfig: {} },
        runtime: {}, config: { kubeconfig: "/nonexistent" }, context: {}, onLog: async () => {} });
      // A new thread names itself once it runs: give the runtime's threads that moment.
      await new Promise((resolve) => setTimeout(resolve, 300));
      const names = readdirSync("/proc/self/task").map((t) => readFileSync("/proc/self/task/" + t + "/comm", "utf8").trim());
      console.log(JSON.stringify({ code: r.errorCode, workers: names.filter((n) => n === "tokio-rt-worker").length }));`;
    const { TOKIO_WORKER_THREADS: _, ...rest } = process.env;
    return JSON.parse(execFileSync(process.execPath, ["--input-type=module", "-e", script], { env: { ...rest, ...env }, encoding: "utf8" }).trim().split("\n").pop());
  };
  it.runIf(process.platform === "linux")("runs on one tokio worker thread; TOKIO_WORKER_THREADS overrides it", async () => {
    expect(await workersIn({})).toEqual({ code: "k8s_agent_id_invalid", workers: 1 });
    expect(await workersIn({ TOKIO_WORKER_THREADS: "3" })).toEqual({ code: "k8s_agent_id_invalid", workers: 3 });
  });
});
