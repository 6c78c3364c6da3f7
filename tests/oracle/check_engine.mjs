// oracle_engine_stories: optiq's own forward pass (`optiq generate`) against llama.cpp on
// stories260K, the original F32 file and optiq's F16/BF16 converts of it. For each file both
// greedily continue "Once upon a time" for up to 200 tokens, which must be identical, and the
// per-position log-probabilities must be within a bound (see engine_compare.mjs).
import { execFileSync } from "node:child_process";
import path from "node:path";

import { compareRuns, runLlamaCpp, runOptiq } from "./engine_compare.mjs";
import { env, loadLlamaCpp, workDir } from "./oracle_util.mjs";

const OPTIQ = env("OPTIQ");
const STORIES = path.join(env("OPTIQ_SHARED"), "models/stories260K/stories260K.gguf");
const work = workDir("engine");

const PROMPT = "Once upon a time";
const N_TOKENS = 200;
const EXPECTED_START = ", there was a little girl named Lily";
// F32: observed 2.0e-5. F16/BF16: observed 1.4e-2 / 9.4e-2 with all 200 tokens identical; the
// bounds are about 2.5x that. llama.cpp rounds activations to the weight type before F16/BF16
// products (ggml's vec_dot_type); doing the same in optiq did not narrow the gap (1.5e-2 /
// 8.1e-2, and the BF16 path then left llama.cpp's at a near-tie), so where the rest of the
// difference comes from is still open.
const MAX_LOGPROB_DIFF = { f32: 1e-3, f16: 0.04, bf16: 0.25 };

const { llama } = await loadLlamaCpp();
const failures = [];
try {
  for (const outtype of ["f32", "f16", "bf16"]) {
    let file = STORIES;
    if (outtype !== "f32") {
      file = path.join(work, `stories260K-${outtype}.gguf`);
      execFileSync(OPTIQ, ["convert", STORIES, "-o", file, "--outtype", outtype], { stdio: ["ignore", "ignore", "inherit"] });
    }
    const ref = await runLlamaCpp(llama, file, PROMPT, N_TOKENS);
    const got = runOptiq(OPTIQ, file, PROMPT, N_TOKENS, path.join(work, `logprobs-${outtype}.json`));
    if (outtype === "f32" && !ref.text.startsWith(EXPECTED_START))
      failures.push(`llama.cpp continues ${JSON.stringify(ref.text)}, expected ${JSON.stringify(EXPECTED_START)}...`);
    compareRuns(outtype, got, ref, MAX_LOGPROB_DIFF[outtype], failures);
  }
} finally {
  await llama.dispose();
}

if (failures.length) {
  console.error(`oracle_engine_stories: ${failures.length} checks FAILED:`);
  for (const f of failures) console.error("  - " + f);
  process.exit(1);
}
console.log("oracle_engine_stories: optiq generates as llama.cpp, log-probabilities within bounds");
