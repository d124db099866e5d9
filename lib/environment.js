// testEnvironment / listSkills / syncSkills: thin async shims over the Rust
// core (every apiserver call goes through kube-rs there).
import native from "./native.js";
import { toJson } from "./execute.js";

export async function testEnvironment(ctx) {
  return native.testEnvironmentNative(toJson(ctx ?? {}));
}

export async function listSkills(ctx) {
  return native.listSkillsNative(toJson(ctx ?? {}));
}

export async function syncSkills(ctx, desiredSkills) {
  return native.syncSkillsNative(toJson(ctx ?? {}), toJson(desiredSkills ?? null));
}
