// Shared plumbing for the node oracle tests: the environment CTest passes, a scratch folder per
// test, the oracle packages from the project-local cache, and llama.cpp set up to run fast.
import { mkdirSync, rmSync } from "node:fs";
import path from "node:path";
import { pathToFileURL } from "node:url";

export function env(name) {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set (run through ctest)`);
  return v;
}

// A fresh folder under $OPTIQ_WORK, the only place the tests write.
export function workDir(test) {
  const dir = path.join(env("OPTIQ_WORK"), test);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  return dir;
}

// A module from the npm packages scripts/test.sh installs into .cache/node.
export function importFromCache(modulePath) {
  return import(pathToFileURL(path.join(env("OPTIQ_CACHE"), "node/node_modules", modulePath)).href);
}

// node-llama-cpp's module and a llama.cpp instance on its prebuilt CPU binary.
// maxThreads: 1 is what makes these tests fast. On CPU node-llama-cpp defaults to at least 4
// threads whatever the core count, and ggml's worker threads spin-wait at every barrier; on a
// small or busy machine the oversubscribed spinners starve each other and 40 tokens of a
// 260K-parameter model took 20-65 s instead of ~30 ms. (build "never": use the prebuilt binary,
// never compile; gpu false: skip probing CUDA/Vulkan.)
// The log is read at "log" level (where ggml's info lines arrive) for one line, ggml's choice of
// CPU variant (libggml-cpu-<isa>.so, see llama_tools.py), printed when the first model loads;
// of the rest only errors are shown.
export async function loadLlamaCpp() {
  const mod = await importFromCache("node-llama-cpp/dist/index.js");
  const { error, fatal, log } = mod.LlamaLogLevel;
  const logger = (level, message) => {
    const loaded = /loaded CPU backend from (\S+)/.exec(message);
    if (loaded) console.log(`node-llama-cpp: ggml CPU backend ${path.basename(loaded[1])}`);
    else if (level === error || level === fatal) console.error(message);
  };
  const llama = await mod.getLlama({ gpu: false, build: "never", maxThreads: 1, logLevel: log, logger });
  return { mod, llama };
}
