// Random ctx shapes thrown at execute(): wrong types everywhere, huge strings,
// deep nesting, cycles, undefined in arrays, throwing getters, callbacks that
// throw, reject, never settle or return garbage. The promise always settles —
// a result or an Error with a message — and the process lives on.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { execute } from "../server.js";

let seed = 12345;
const rnd = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
const pick = (xs) => xs[Math.floor(rnd() * xs.length)];

function deep(n) {
  let v = {};
  for (let i = 0; i < n; i++) v = { v };
  return v;
}

function value(depth = 0) {
  const cyc = { a: 1 };
  cyc.self = cyc;
  const getterBomb = {};
  Object.defineProperty(getterBomb, "x", { enumerable: true, get() { throw new Error("getter bomb"); } });
  const options = [
    () => undefined, () => null, () => 0, () => -1, () => NaN, () => Infinity, () => 10n, () => "", () => "x".repeat(1 << 20),
    () => "\u0000\ud800", () => true, () => [undefined, () => 1, NaN], () => cyc, () => deep(40), () => deep(5000), () => new Date(0),
    () => Symbol("s"), () => getterBomb, () => new Map([[1, 2]]), () => ({ id: pick(["a", "!!!", "", 5, null]) }),
  ];
  if (depth < 2) options.push(() => ({ [pick(["id", "config", "x"])]: value(depth + 1), y: value(depth + 1) }));
  return pick(options)();
}

function callback() {
  return pick([
    async () => {},
    () => 42,
    () => { throw new Error("sync boom"); },
    async () => { throw "string boom"; },
    () => Promise.reject({ code: 1 }),
    () => new Promise(() => {}),
    undefined,
    "not a function",
  ]);
}

let saved;
beforeAll(() => {
  saved = { ...process.env };
  process.env.CLAUDE_K8S_CALLBACK_TIMEOUT_MS = "200";
  // No cluster reachable: a ctx that passes every check fails clearly when connecting.
  process.env.KUBECONFIG = "/nonexistent/kubeconfig";
  delete process.env.HOSTNAME;
});
afterAll(() => {
  process.env = saved;
});

describe("hostile input", () => {
  it("300 random ctx shapes: every promise settles, with a result or a clear Error", async () => {
    const outcomes = { results: 0, rejections: 0 };
    for (let i = 0; i < 300; i++) {
      const ctx = pick([() => value(), () => ({})])();
      if (ctx && typeof ctx === "object" && !Array.isArray(ctx)) {
        for (const k of ["runId", "agent", "runtime", "config", "context", "authToken", "executionTarget"]) {
          if (rnd() < 0.6) {
            try {
              ctx[k] = value();
            } catch {
              /* frozen or exotic objects */
            }
          }
        }
        if (rnd() < 0.9) ctx.onLog = callback();
        if (rnd() < 0.5) ctx.onMeta = callback();
        if (rnd() < 0.3) ctx.onSpawn = callback();
      }
      let p;
      expect(() => { p = execute(ctx); }).not.toThrow();
      const settled = await Promise.race([
        p.then((r) => ({ r }), (e) => ({ e })),
        new Promise((res) => setTimeout(() => res({ hung: true }), 20_000)),
      ]);
      expect(settled.hung, `ctx #${i} did not settle`).toBeUndefined();
      if (settled.e) {
        expect(settled.e).toBeInstanceOf(Error);
        expect(settled.e.message.length).toBeGreaterThan(0);
        outcomes.rejections++;
      } else {
        expect(typeof settled.r.timedOut).toBe("boolean");
        expect(settled.r.errorCode ?? settled.r.exitCode).toBeDefined();
        outcomes.results++;
      }
    }
    expect(outcomes.results).toBeGreaterThan(0);
    expect(outcomes.rejections).toBeGreaterThan(0);
  }, 300_000);

  it("a callback that never settles makes execute reject, naming it", async () => {
    const ctx = { runId: "r", agent: { id: "!!!" }, onLog: () => new Promise(() => {}) };
    await expect(execute(ctx)).rejects.toThrow(/onLog.*did not settle within 200 ms/);
  });
});
