// Logs delivered exactly once across stream drops: the node cuts every log
// stream of the pod every two seconds while the real CLI prints 1,500
// numbered assistant lines over ~15 s. Every line must reach onLog once, in
// order — resumed from the last line's timestamp, not guessed.
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { beforeAll, describe, expect, it } from "vitest";
import { NS, cluster, fault, inPaperclipPod, makeCtx, run } from "./harness.js";

/** The original's Job name rule (contract §1.7), to aim the fault before the Job exists. */
function expectedJobName(agentId, runId) {
  const slug = (s) => s.toLowerCase().replace(/[^a-z0-9-]/g, "").slice(0, 16).replace(/-+$/, "");
  const hash = createHash("sha256").update(`${agentId}:${runId}`).digest("hex").slice(0, 6);
  return `ac-${slug(agentId)}-${slug(runId)}-${hash}`;
}

inPaperclipPod(beforeAll);

describe("log stream drops", () => {
  it("every line exactly once, in order, with the stream cut every 2 s", async () => {
    const n = 1500;
    const ctx = makeCtx({ scenario: `slow/seconds=15/lines=${n}` });
    // The Job's name is known before it exists; cut every pod of it.
    const jobName = expectedJobName(ctx.agent.id, ctx.runId);
    await fault("/faults/cut-logs", { namespace: NS, pod: jobName, container: "claude", everySeconds: 2 });
    try {
      const r = await run(ctx);
      expect(r.result.exitCode).toBe(0);
      expect(r.meta[0].command).toBe(`kubectl job/${jobName}`);
      const texts = r.lines
        .filter((l) => l.startsWith('{"type":"assistant"'))
        .map((l) => JSON.parse(l).message.content[0]?.text);
      expect(texts).toHaveLength(n);
      expect(texts).toEqual(Array.from({ length: n }, (_, i) => `slow ${i + 1}`));
      const json = r.lines.filter((l) => l.startsWith("{")).map((l) => JSON.parse(l));
      expect(json.filter((e) => e.type === "result")).toHaveLength(1);
      expect(json.filter((e) => e.type === "system" && e.subtype === "init")).toHaveLength(1);
      // The cuts really happened: the apiserver saw the log requested again and again.
      const pod = /\[paperclip\] Pod (\S+):/.exec(r.stdout)[1];
      const logRequests = readFileSync(cluster.AUDIT_LOG, "utf8")
        .split("\n")
        .filter(Boolean)
        .map((l) => JSON.parse(l))
        .filter((e) => e.stage === "ResponseComplete" && e.objectRef?.subresource === "log" && e.objectRef?.name === pod);
      expect(logRequests.length).toBeGreaterThanOrEqual(5);
    } finally {
      await fault("/faults/clear", {});
    }
  });
});
