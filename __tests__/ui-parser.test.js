// The UI parser, evaluated exactly as the host's Web Worker sandbox does:
// the file's text inside new Function("exports","module","self","globalThis", …).
import { readFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";

const source = readFileSync(path.resolve(import.meta.dirname, "../ui-parser.cjs"), "utf8");

function loadInSandbox() {
  const exports = {};
  const module = { exports };
  // eslint-disable-next-line no-new-func
  const fn = new Function("exports", "module", "self", "globalThis", `"use strict";\n{\n${source}\n}`);
  fn(exports, module, undefined, undefined);
  return Object.keys(module.exports).length ? module.exports : exports;
}

const TS = "2026-11-23T10:00:00.000Z";
// Lines as CLI 2.1.328 prints them (see __tests__/support/mock-anthropic.mjs runs).
const INIT = '{"type":"system","subtype":"init","cwd":"/paperclip","session_id":"s-1","model":"claude-sonnet-4-6","tools":["Bash"]}';
const TEXT = '{"type":"assistant","message":{"id":"msg_1","content":[{"type":"text","text":"Let me run that."}],"stop_reason":null},"session_id":"s-1"}';
const TOOL = '{"type":"assistant","message":{"id":"msg_1","content":[{"type":"tool_use","id":"toolu_1","name":"Bash","input":{"command":"uname -s"}}]},"session_id":"s-1"}';
const RESULT_BLOCK = '{"type":"user","message":{"role":"user","content":[{"tool_use_id":"toolu_1","type":"tool_result","content":"Linux","is_error":false}]},"session_id":"s-1"}';
const RESULT = '{"duration_api_ms":54,"stop_reason":"end_turn","session_id":"s-1","total_cost_usd":0.000297,"usage":{"input_tokens":24,"cache_read_input_tokens":3,"output_tokens":15},"is_error":false,"num_turns":2,"subtype":"success","result":"The command ran.","type":"result"}';

describe("ui-parser.cjs in the host's sandbox", () => {
  const parser = loadInSandbox();

  it("is small CommonJS with the entry points the host looks for", () => {
    expect(Buffer.byteLength(source)).toBeLessThan(50 * 1024);
    expect(source).not.toMatch(/\brequire\s*\(|^\s*import\s|^\s*export\s/m);
    expect(typeof parser.parseStdoutLine).toBe("function");
    expect(typeof parser.createStdoutParser).toBe("function");
  });

  it("turns a real transcript into entries", () => {
    expect(parser.parseStdoutLine(INIT, TS)).toEqual([{ kind: "init", ts: TS, model: "claude-sonnet-4-6", sessionId: "s-1" }]);
    expect(parser.parseStdoutLine(TEXT, TS)).toEqual([{ kind: "assistant", ts: TS, text: "Let me run that." }]);
    expect(parser.parseStdoutLine(TOOL, TS)).toEqual([
      { kind: "tool_call", ts: TS, name: "Bash", input: { command: "uname -s" }, toolUseId: "toolu_1" },
    ]);
    expect(parser.parseStdoutLine(RESULT_BLOCK, TS)).toEqual([
      { kind: "tool_result", ts: TS, toolUseId: "toolu_1", content: "Linux", isError: false },
    ]);
    expect(parser.parseStdoutLine(RESULT, TS)).toEqual([
      { kind: "result", ts: TS, text: "The command ran.", inputTokens: 24, outputTokens: 15, cachedTokens: 3, costUsd: 0.000297, subtype: "success", isError: false, errors: [] },
    ]);
    expect(parser.parseStdoutLine("plain text", TS)).toEqual([{ kind: "stdout", ts: TS, text: "plain text" }]);
    expect(parser.parseStdoutLine("[paperclip] Created K8s Job: ac-x in namespace p", TS)[0].kind).toBe("system");
    expect(parser.parseStdoutLine("", TS)).toEqual([]);
  });

  it("the stateful parser names the tool of a tool_result; reset forgets", () => {
    const p = parser.createStdoutParser();
    p.parseLine(TOOL, TS);
    expect(p.parseLine(RESULT_BLOCK, TS)[0].toolName).toBe("Bash");
    p.reset();
    expect(p.parseLine(RESULT_BLOCK, TS)[0].toolName).toBeUndefined();
  });

  it("never throws, whatever the line", () => {
    const shapes = [
      null, undefined, 42, {}, [], "{", "{}", "[1,2]", '{"type":null}', '{"type":"assistant"}', '{"type":"assistant","message":5}',
      '{"type":"assistant","message":{"content":[null,1,"x",{"type":"tool_use"}]}}', '{"type":"user","message":{"content":"hi"}}',
      '{"type":"result","usage":null,"errors":[{"a":1},2]}', '{"type":"system"}', "\u0000\uffff", "x".repeat(2_000_000),
      JSON.stringify({ type: "assistant", message: { content: [{ type: "text", text: 5 }] } }),
    ];
    let seed = 7;
    const rnd = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    for (let i = 0; i < 500; i++) {
      const chars = Array.from({ length: Math.floor(rnd() * 40) }, () => '{}[]":,atypeusr0\\ \n'[Math.floor(rnd() * 19)]);
      shapes.push(chars.join(""));
    }
    const p = parser.createStdoutParser();
    for (const s of shapes) {
      expect(() => parser.parseStdoutLine(s, TS)).not.toThrow();
      expect(Array.isArray(p.parseLine(s, TS))).toBe(true);
    }
  });
});
