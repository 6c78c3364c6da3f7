// oracle_engine_stories: optiq's own forward pass (`optiq generate`) against llama.cpp
// (node-llama-cpp's prebuilt CPU binary) on stories260K, the original F32 file and optiq's
// F16/BF16 converts of it. For each file both greedily continue "Once upon a time" for up to
// 200 tokens, which must be identical, and along that sequence optiq's per-position
// log-probabilities (log-softmax over the whole vocabulary, from `--dump-logprobs`) must be
// within a bound of llama.cpp's log-softmax of its logits at the same positions.
//
// llama.cpp runs with an F32 KV cache and without flash attention (see LLAMA_CONTEXT), the
// arithmetic optiq's engine does.
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import path from "node:path";

import { env, loadLlamaCpp, workDir } from "./oracle_util.mjs";

const OPTIQ = env("OPTIQ");
const STORIES = path.join(env("OPTIQ_SHARED"), "models/stories260K/stories260K.gguf");
const work = workDir("engine");

const PROMPT = "Once upon a time";
const N_TOKENS = 200;
const EXPECTED_START = ", there was a little girl named Lily";
// F32: observed up to 2.4e-5. F16/BF16: observed up to 1.3e-2 / 1.04e-1; the bounds are about
// 2.5x the largest seen. optiq's matmul rounds activations to the weight type before F16/BF16 products,
// as llama.cpp does (ggml's vec_dot_type): BF16 then agrees within 3e-6 up to position 45 and
// F16 at position 0, so the remaining gap comes from elsewhere (still open). With that gap the
// BF16 greedy path can leave llama.cpp's at a near-tie (seen: token 181, llama.cpp's two best
// 0.008 apart, with the prompt through vec_dot rather than sgemm): a divergence is accepted
// only at such a tie, after at least MIN_SHARED tokens.
const MAX_LOGPROB_DIFF = { f32: 1e-3, f16: 0.04, bf16: 0.25 };
const NEAR_TIE = 0.02;  // most llama.cpp log-probability gap between its token and optiq's
const MIN_SHARED = 150;

// llama.cpp's defaults keep the KV cache in F16 and (on CPU, "auto") use flash attention,
// which rounds queries, keys, values and attention weights to f16. optiq's cache is f32, so
// llama.cpp runs with an F32 cache and the plain attention path: the same arithmetic.
const LLAMA_CONTEXT = { flashAttention: false, experimentalKvCacheKeyType: "F32", experimentalKvCacheValueType: "F32" };

const { mod: { LlamaCompletion }, llama } = await loadLlamaCpp();

const failures = [];
function check(ok, what) {
  if (!ok) failures.push(what);
  return ok;
}

function logSoftmax(map, nVocab) {
  const row = new Float64Array(nVocab).fill(-Infinity);
  for (const [token, logit] of map) row[token] = logit;
  let max = -Infinity;
  for (const v of row) max = Math.max(max, v);
  let sum = 0;
  for (const v of row) sum += Math.exp(v - max);
  const logZ = max + Math.log(sum);
  return row.map((v) => v - logZ);
}

// llama.cpp: the prompt in one batch, then greedy decoding one token at a time, taking the
// argmax of llama.cpp's own logits at each step (prefill and single-token decode, the two paths
// optiq has). Stops at EOS. logprobs[p] is the log-softmax after tokens[0..p].
// (node-llama-cpp's LlamaCompletion with temperature 0 was seen to leave the argmax path at a
// near-tie, token 181, gap 0.004 in log-probability, so it is not used as the reference.)
async function llamaCpp(file) {
  const model = await llama.loadModel({ modelPath: file });
  const context = await model.createContext({ contextSize: 512, ...LLAMA_CONTEXT });
  const sequence = context.getSequence();
  const prompt = [model.tokens.bos, ...model.tokenize(PROMPT)];
  const logprobs = [];
  const keep = (evaluated) => {
    for (const o of evaluated) logprobs.push(logSoftmax(o.next.logits, o.next.logits.size));
  };
  keep(await sequence.controlledEvaluate(prompt.map((t) => [t, { generateNext: { logits: true } }])));
  const tokens = [];
  while (tokens.length < N_TOKENS) {
    const last = logprobs[logprobs.length - 1];
    let best = 0;
    for (let i = 1; i < last.length; ++i) if (last[i] > last[best]) best = i;
    if (best === model.tokens.eos) break;
    tokens.push(best);
    if (tokens.length === N_TOKENS) break;
    keep(await sequence.controlledEvaluate([[best, { generateNext: { logits: true } }]]));
  }
  const text = model.detokenize(tokens);
  await context.dispose();
  await model.dispose();
  return { text, prompt, tokens, logprobs };
}

function optiq(file, dumpFile) {
  const text = execFileSync(OPTIQ, ["generate", file, "-p", PROMPT, "-n", String(N_TOKENS), "--dump-logprobs", dumpFile],
    { encoding: "utf8", stdio: ["ignore", "pipe", "inherit"] });
  const dump = JSON.parse(readFileSync(dumpFile, "utf8"));
  return { text: text.replace(/\n$/, ""), prompt: dump.tokens.slice(0, dump.n_prompt),
           tokens: dump.tokens.slice(dump.n_prompt), logprobs: dump.logprobs };
}

try {
  for (const outtype of ["f32", "f16", "bf16"]) {
    let file = STORIES;
    if (outtype !== "f32") {
      file = path.join(work, `stories260K-${outtype}.gguf`);
      execFileSync(OPTIQ, ["convert", STORIES, "-o", file, "--outtype", outtype], { stdio: ["ignore", "ignore", "inherit"] });
    }
    const ref = await llamaCpp(file);
    const got = optiq(file, path.join(work, `logprobs-${outtype}.json`));
    if (outtype === "f32")
      check(ref.text.startsWith(EXPECTED_START), `llama.cpp continues ${JSON.stringify(ref.text)}, expected ${JSON.stringify(EXPECTED_START)}...`);
    check(JSON.stringify(got.prompt) === JSON.stringify(ref.prompt),
      `${outtype}: prompt tokens ${JSON.stringify(got.prompt)} != llama.cpp's ${JSON.stringify(ref.prompt)}`);
    const firstDiff = ref.tokens.findIndex((t, i) => got.tokens[i] !== t);
    if (firstDiff === -1) {
      check(got.tokens.length === ref.tokens.length,
        `${outtype}: optiq generated ${got.tokens.length} tokens, llama.cpp ${ref.tokens.length}`);
      check(got.text === ref.text, `${outtype}: text ${JSON.stringify(got.text)} != llama.cpp's ${JSON.stringify(ref.text)}`);
    } else {
      const lp = ref.logprobs[got.prompt.length + firstDiff - 1];
      const gap = lp[ref.tokens[firstDiff]] - lp[got.tokens[firstDiff]];
      check(outtype !== "f32" && firstDiff >= MIN_SHARED && gap <= NEAR_TIE,
        `${outtype}: generated tokens differ from llama.cpp's at index ${firstDiff}, where llama.cpp's ` +
          `log-probabilities of the two tokens are ${gap} apart (accepted: F16/BF16, a gap <= ${NEAR_TIE} after ` +
          `${MIN_SHARED} shared tokens)`);
      console.log(`${outtype}: greedy paths part at token ${firstDiff}, a near-tie (gap ${gap.toExponential(2)})`);
    }
    // optiq evaluates every position but the last token's; compare where both have logits.
    check(got.logprobs.length === got.prompt.length + got.tokens.length - 1,
      `${outtype}: optiq dumped ${got.logprobs.length} positions, expected ${got.prompt.length + got.tokens.length - 1}`);
    let worst = 0, where = -1;
    // Past a divergence the two sequences differ: compare only the shared prefix.
    const shared = firstDiff === -1 ? Infinity : got.prompt.length + firstDiff;
    const n = Math.min(got.logprobs.length, ref.logprobs.length, shared);
    for (let p = 0; p < n; ++p) {
      const a = got.logprobs[p], b = ref.logprobs[p];
      if (process.env.OPTIQ_ENGINE_DEBUG) {
        let m = 0;
        for (let i = 0; i < a.length; ++i) m = Math.max(m, Math.abs(a[i] - b[i]));
        const top = (r) => [...r.keys()].sort((x, y) => r[y] - r[x]).slice(0, 2).map((i) => `${i}:${r[i].toFixed(4)}`).join(" ");
        console.log(`${outtype} pos ${p}: max ${m.toExponential(2)} optiq ${top(Array.from(a))} llama.cpp ${top(Array.from(b))}`);
      }
      if (a.length !== b.length) { worst = Infinity; where = p; break; }
      for (let i = 0; i < a.length; ++i) {
        const d = Math.abs(a[i] - b[i]);
        if (!(d <= worst)) { worst = d; where = p; }
      }
    }
    check(n > N_TOKENS / 2, `${outtype}: only ${n} positions compared`);
    check(worst <= MAX_LOGPROB_DIFF[outtype],
      `${outtype}: log-probabilities differ from llama.cpp's by up to ${worst} (position ${where}), allowed ${MAX_LOGPROB_DIFF[outtype]}`);
    console.log(`${outtype}: ${got.tokens.length} tokens identical=${firstDiff === -1 && got.tokens.length === ref.tokens.length}, ` +
      `max |Δlogprob| ${worst.toExponential(3)} over ${n} positions`);
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
