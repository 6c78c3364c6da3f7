// oracle_llama_cpp_loads: llama.cpp itself (node-llama-cpp's prebuilt CPU binary) loads
// optiq's f32/f16/bf16 converts of stories260K and greedily continues "Once upon a time"
// exactly as it does with the original file: same 40 token ids, same text. The original's
// continuation is pinned too, so a broken llama.cpp setup cannot make the comparison vacuous.
//
// f16 and bf16 are compared over all 40 tokens, not a prefix: with this model the rounded
// weights were observed to give the identical greedy path for 200 tokens, so any divergence
// within 40 means the converted weights are wrong, not merely rounded.
//
// Greedy text alone is blind to small weight errors (scaling one ffn_down by 5% kept all 40
// tokens), so the logits llama.cpp computes along the original's sequence are compared too:
// bit-identical for the f32 round trip (same weights, same single-threaded arithmetic), and
// within a bound for f16/bf16. Observed max |Δlogit| (logits span about -10..19): f16 0.019,
// bf16 0.114; the bounds are about 2.5× that. The 5% ffn_down error above gives 0.32.
import { execFileSync } from "node:child_process";
import path from "node:path";

import { env, loadLlamaCpp, workDir } from "./oracle_util.mjs";

const OPTIQ = env("OPTIQ");
const STORIES = path.join(env("OPTIQ_SHARED"), "models/stories260K/stories260K.gguf");
const work = workDir("llama_cpp");

const PROMPT = "Once upon a time";
const N_TOKENS = 40;
const EXPECTED_START = ", there was a little girl named Lily";
const MAX_LOGIT_DIFF = { f32: 0, f16: 0.05, bf16: 0.3 };

const { mod: { LlamaCompletion }, llama } = await loadLlamaCpp();

const failures = [];
function check(ok, what) {
  if (!ok) failures.push(what);
  return ok;
}

// Greedy continuation of PROMPT, then the logits at every position of `forced` (the original's
// prompt + continuation) evaluated in a second sequence of the same context.
async function run(file, forced) {
  const model = await llama.loadModel({ modelPath: file });
  const context = await model.createContext({ contextSize: 256, sequences: 2 });
  const completion = new LlamaCompletion({ contextSequence: context.getSequence() });
  const tokens = [];
  const text = await completion.generateCompletion(PROMPT, {
    maxTokens: N_TOKENS,
    temperature: 0, // greedy
    repeatPenalty: false,
    onToken: (t) => tokens.push(...t),
  });
  completion.dispose();
  forced ??= [model.tokens.bos, ...model.tokenize(PROMPT), ...tokens.slice(0, -1)];
  const evaluated = await context.getSequence().controlledEvaluate(
    forced.map((t) => [t, { generateNext: { logits: true } }]));
  const logits = evaluated.map((o) => o.next.logits);
  await context.dispose();
  await model.dispose();
  return { text, tokens, forced, logits };
}

function maxLogitDiff(a, b) {
  let worst = 0;
  a.forEach((row, i) => {
    if (row.size !== b[i].size) worst = Infinity;
    for (const [token, logit] of row) worst = Math.max(worst, Math.abs(logit - (b[i].get(token) ?? Infinity)));
  });
  return worst;
}

try {
  const original = await run(STORIES);
  check(original.text.startsWith(EXPECTED_START),
    `original stories260K continues ${JSON.stringify(original.text)}, expected it to start ${JSON.stringify(EXPECTED_START)}`);
  check(original.tokens.length === N_TOKENS, `original produced ${original.tokens.length} tokens, want ${N_TOKENS}`);
  check(original.logits.length === original.forced.length && original.logits.every((l) => l?.size > 0),
    "llama.cpp returned no logits for the forced sequence");

  for (const outtype of ["f32", "f16", "bf16"]) {
    const out = path.join(work, `stories260K-${outtype}.gguf`);
    execFileSync(OPTIQ, ["convert", STORIES, "-o", out, "--outtype", outtype], { stdio: ["ignore", "ignore", "inherit"] });
    let got;
    try {
      got = await run(out, original.forced);
    } catch (e) {
      check(false, `llama.cpp could not run optiq's ${outtype} file: ${e.message}`);
      continue;
    }
    const firstDiff = original.tokens.findIndex((t, i) => got.tokens[i] !== t);
    check(got.tokens.length === original.tokens.length && firstDiff === -1,
      `${outtype}: tokens differ from the original's at index ${firstDiff} ` +
        `(got ${got.tokens.length} tokens: ${JSON.stringify(got.text)})`);
    check(got.text === original.text, `${outtype}: text ${JSON.stringify(got.text)} != original ${JSON.stringify(original.text)}`);
    const diff = maxLogitDiff(original.logits, got.logits);
    check(diff <= MAX_LOGIT_DIFF[outtype],
      `${outtype}: logits differ from the original's by up to ${diff}, allowed ${MAX_LOGIT_DIFF[outtype]}`);
    console.log(`${outtype}: max |logit difference| ${diff}`);
  }
  console.log(`original: ${JSON.stringify(original.text)}`);
} finally {
  await llama.dispose();
}

if (failures.length) {
  console.error(`oracle_llama_cpp_loads: ${failures.length} checks FAILED:`);
  for (const f of failures) console.error("  - " + f);
  process.exit(1);
}
console.log("oracle_llama_cpp_loads: f32, f16 and bf16 converts generate exactly as the original");
