// The mock Anthropic API itself: a request the client gives up on leaves
// nothing behind once the server has closed (a cancelled run's `silence` wait
// held vitest open after the suite: "close timed out after 10000ms").
import { spawnSync } from "node:child_process";
import path from "node:path";
import { expect, test } from "vitest";

const script = `
import http from "node:http";
import { startMockAnthropic } from ${JSON.stringify(path.join(import.meta.dirname, "mock-anthropic.mjs"))};
const mock = await startMockAnthropic();
const req = http.request(mock.url + "/s/silence/seconds=60/v1/messages", { method: "POST" });
req.on("error", () => {});
req.end("{}");
while (!mock.requests().some((r) => r.path.includes("/s/silence/"))) await new Promise((r) => setTimeout(r, 10));
req.destroy();
await mock.close();
console.log("closed");
`;

test("a process whose client gave up on a 60 s silence exits once the mock has closed", () => {
  const r = spawnSync(process.execPath, ["--input-type=module", "-e", script], { encoding: "utf8", timeout: 20_000 });
  expect(r.stdout).toContain("closed");
  expect(r.signal).toBeNull(); // not killed at the timeout: nothing held it open
  expect(r.status).toBe(0);
});
