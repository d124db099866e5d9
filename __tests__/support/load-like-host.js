// How Paperclip's plugin loader loads an adapter package (contract §2.5):
// read package.json, resolve exports["."] (string, or .import ?? .default,
// else main, else index.js), import() it by file URL, call
// createServerAdapter() and require a truthy .type.
import { readFileSync } from "node:fs";
import path from "node:path";
import { pathToFileURL } from "node:url";

export async function loadLikeHost(dir) {
  const pkg = JSON.parse(readFileSync(path.join(dir, "package.json"), "utf8"));
  const dot = pkg.exports?.["."];
  const entry = typeof dot === "string" ? dot : (dot?.import ?? dot?.default ?? pkg.main ?? "index.js");
  const mod = await import(pathToFileURL(path.resolve(dir, entry)).href);
  if (typeof mod.createServerAdapter !== "function") {
    throw new Error(`Package "${pkg.name}" does not export createServerAdapter()`);
  }
  const adapter = mod.createServerAdapter();
  if (!adapter?.type) throw new Error("adapter has no type");
  return { pkg, mod, adapter };
}
