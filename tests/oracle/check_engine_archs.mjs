// oracle_engine_archs: one random-weight model per architecture the engine runs — llama (with
// Llama 3 rope scaling, q/k/v/o biases and a head width other than n_embd/n_head), qwen2
// (q/k/v biases, tied output), qwen3 (q/k norms, head width 32 != 64/4) and gemma3 (7 layers
// of which 6 slide over a 16-token window, GeGLU, post-norms, tied output) — generated as a
// Hugging Face folder by make_hf_model.py, converted to GGUF by optiq, given stories260K's
// tokenizer by gguf-py, then run greedily for 120 tokens in llama.cpp and in optiq. Tokens must
// be identical and log-probabilities within MAX_LOGPROB_DIFF (see engine_compare.mjs). The
// context (4 + 120 tokens) is far longer than gemma3's window, so the window is exercised.
import { execFileSync } from "node:child_process";
import path from "node:path";

import { compareRuns, runLlamaCpp, runOptiq } from "./engine_compare.mjs";
import { env, loadLlamaCpp, workDir } from "./oracle_util.mjs";

const OPTIQ = env("OPTIQ");
const PYTHON = path.join(env("OPTIQ_CACHE"), "venv/bin/python");
const HERE = path.dirname(new URL(import.meta.url).pathname);
const STORIES = path.join(env("OPTIQ_SHARED"), "models/stories260K/stories260K.gguf");
const work = workDir("engine_archs");

const VARIANTS = ["llama3_scaled", "qwen2", "qwen3", "gemma3"];
const PROMPT = "Once upon a time";
const N_TOKENS = 120;
// Matrices 8x the spread make_hf_model.py uses for conversion tests, so that logits spread by
// several units and greedy choices are not near-ties.
const WEIGHT_SCALE = "8";
// Observed: about 1e-6 for llama, qwen2 and qwen3; 6.3e-4 for gemma3. GeGLU in ggml (and so in
// optiq) rounds its input and output to f16, which turns last-bit differences upstream into
// steps of one f16 ulp (~1e-3 relative); without that rounding optiq was 3.3e-3 away.
const MAX_LOGPROB_DIFF = { llama3_scaled: 1e-4, qwen2: 1e-4, qwen3: 1e-4, gemma3: 2e-3 };

const run = (cmd, args) => execFileSync(cmd, args, { stdio: ["ignore", "ignore", "inherit"] });
const { llama } = await loadLlamaCpp();
const failures = [];
try {
  for (const variant of VARIANTS) {
    const hf = path.join(work, `hf-${variant}`), raw = path.join(work, `${variant}-raw.gguf`);
    const file = path.join(work, `${variant}.gguf`);
    run(PYTHON, [path.join(HERE, "make_hf_model.py"), variant, hf, "512", WEIGHT_SCALE]);
    run(OPTIQ, ["convert", hf, "-o", raw, "--outtype", "f32"]);
    run(PYTHON, [path.join(HERE, "graft_tokenizer.py"), raw, STORIES, file]);
    const ref = await runLlamaCpp(llama, file, PROMPT, N_TOKENS);
    const got = runOptiq(OPTIQ, file, PROMPT, N_TOKENS, path.join(work, `logprobs-${variant}.json`));
    compareRuns(variant, got, ref, MAX_LOGPROB_DIFF[variant], failures);
  }
} finally {
  await llama.dispose();
}

if (failures.length) {
  console.error(`oracle_engine_archs: ${failures.length} checks FAILED:`);
  for (const f of failures) console.error("  - " + f);
  process.exit(1);
}
console.log("oracle_engine_archs: every architecture generates as in llama.cpp, log-probabilities within bounds");
