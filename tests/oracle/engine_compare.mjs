// Runs one GGUF greedily in llama.cpp (node-llama-cpp's prebuilt CPU binary) and in optiq's
// engine (`optiq generate --dump-logprobs`) and compares the two: the generated tokens must be
// identical, and along the shared sequence optiq's per-position log-probabilities (log-softmax
// over the whole vocabulary) must be within a bound of llama.cpp's.
//
// llama.cpp runs with an F32 KV cache and without flash attention (LLAMA_CONTEXT), the
// arithmetic optiq's engine does. Its defaults keep the KV cache in F16 and (on CPU, "auto") use
// flash attention, which rounds queries, keys, values and attention weights to f16.
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";

const LLAMA_CONTEXT = { flashAttention: false, experimentalKvCacheKeyType: "F32", experimentalKvCacheValueType: "F32" };

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

// llama.cpp: the prompt in one batch, then greedy decoding one token at a time, taking
// the argmax of llama.cpp's own logits at each step (prefill and single-token decode, the two
// paths optiq has). Stops at EOS. logprobs[p] is the log-softmax after tokens[0..p].
// (node-llama-cpp's LlamaCompletion with temperature 0 was seen to leave the argmax path at a
// near-tie, so it is not used as the reference.)
export async function runLlamaCpp(llama, file, prompt, nTokens) {
  const model = await llama.loadModel({ modelPath: file });
  const context = await model.createContext({ contextSize: 512, ...LLAMA_CONTEXT });
  const sequence = context.getSequence();
  // BOS as the vocabulary asks (tokenizer.ggml.add_bos_token), as optiq does.
  const promptTokens = [...(model.tokens.shouldPrependBosToken ? [model.tokens.bos] : []), ...model.tokenize(prompt)];
  const logprobs = [];
  const keep = (evaluated) => {
    for (const o of evaluated) logprobs.push(logSoftmax(o.next.logits, o.next.logits.size));
  };
  keep(await sequence.controlledEvaluate(promptTokens.map((t) => [t, { generateNext: { logits: true } }])));
  const tokens = [];
  while (tokens.length < nTokens) {
    const last = logprobs[logprobs.length - 1];
    let best = 0;
    for (let i = 1; i < last.length; ++i) if (last[i] > last[best]) best = i;
    if (best === model.tokens.eos) break;
    tokens.push(best);
    if (tokens.length === nTokens) break;
    keep(await sequence.controlledEvaluate([[best, { generateNext: { logits: true } }]]));
  }
  const text = model.detokenize(tokens);
  await context.dispose();
  await model.dispose();
  return { text, prompt: promptTokens, tokens, logprobs };
}

export function runOptiq(optiq, file, prompt, nTokens, dumpFile, extraArgs = []) {
  const text = execFileSync(optiq, ["generate", file, "-p", prompt, "-n", String(nTokens), "--dump-logprobs", dumpFile, ...extraArgs],
    { encoding: "utf8", stdio: ["ignore", "pipe", "inherit"] });
  const dump = JSON.parse(readFileSync(dumpFile, "utf8"));
  return { text: text.replace(/\n$/, ""), prompt: dump.tokens.slice(0, dump.n_prompt),
           tokens: dump.tokens.slice(dump.n_prompt), logprobs: dump.logprobs };
}

// Compares two runs; pushes a message onto `failures` for each failed check and returns
// { identical, worst, meanKl, positions }. `nearTie`, when given as { gap, minShared }, accepts greedy
// paths that part at a near-tie: after at least minShared identical tokens, at a position where
// llama.cpp's log-probabilities of its token and optiq's differ by at most gap.
export function compareRuns(label, got, ref, maxLogprobDiff, failures, nearTie = null) {
  const check = (ok, what) => { if (!ok) failures.push(`${label}: ${what}`); };
  check(JSON.stringify(got.prompt) === JSON.stringify(ref.prompt),
    `prompt tokens ${JSON.stringify(got.prompt)} != llama.cpp's ${JSON.stringify(ref.prompt)}`);
  const firstDiff = ref.tokens.findIndex((t, i) => got.tokens[i] !== t);
  const identical = got.tokens.length === ref.tokens.length && firstDiff === -1;
  if (firstDiff === -1) {
    check(got.tokens.length === ref.tokens.length, `optiq generated ${got.tokens.length} tokens, llama.cpp ${ref.tokens.length}`);
    // llama.cpp detokenizes the continuation alone and drops a SentencePiece leading space that
    // optiq keeps, since it prints the continuation of the prompt.
    check(got.text === ref.text || got.text === " " + ref.text,
      `text ${JSON.stringify(got.text)} != llama.cpp's ${JSON.stringify(ref.text)}`);
  } else {
    const lp = ref.logprobs[got.prompt.length + firstDiff - 1];
    const gap = lp[ref.tokens[firstDiff]] - lp[got.tokens[firstDiff]];
    check(nearTie !== null && firstDiff >= nearTie.minShared && gap <= nearTie.gap,
      `generated tokens differ from llama.cpp's at index ${firstDiff}, where llama.cpp's log-probabilities ` +
        `of the two tokens are ${gap} apart` +
        (nearTie ? ` (accepted: a gap <= ${nearTie.gap} after ${nearTie.minShared} shared tokens)` : ""));
    console.log(`${label}: greedy paths part at token ${firstDiff}, gap ${gap.toExponential(2)}`);
  }
  // optiq evaluates every position but the last token's; compare where both have logits.
  check(got.logprobs.length === got.prompt.length + got.tokens.length - 1,
    `optiq dumped ${got.logprobs.length} positions, expected ${got.prompt.length + got.tokens.length - 1}`);
  let worst = 0, where = -1, klSum = 0;
  // Past a divergence the two sequences differ: compare only the shared prefix.
  const shared = firstDiff === -1 ? Infinity : got.prompt.length + firstDiff;
  const n = Math.min(got.logprobs.length, ref.logprobs.length, shared);
  for (let p = 0; p < n; ++p) {
    const a = got.logprobs[p], b = ref.logprobs[p];
    if (a.length !== b.length) { worst = Infinity; where = p; break; }
    for (let i = 0; i < a.length; ++i) {
      const d = Math.abs(a[i] - b[i]);
      if (!(d <= worst)) { worst = d; where = p; }
      const pb = Math.exp(b[i]);
      if (pb > 0) klSum += pb * (b[i] - a[i]);
    }
  }
  const meanKl = n > 0 ? klSum / n : 0;
  check(n > ref.tokens.length / 2 || (nearTie !== null && firstDiff >= nearTie.minShared), `only ${n} positions compared`);
  check(worst <= maxLogprobDiff,
    `log-probabilities differ from llama.cpp's by up to ${worst} (position ${where}), allowed ${maxLogprobDiff}`);
  console.log(`${label}: ${got.tokens.length} tokens identical=${identical}, max |Δlogprob| ${worst.toExponential(3)}, ` +
    `mean KL(llama.cpp || optiq) ${meanKl.toExponential(2)} over ${n} positions`);
  return { identical, worst, meanKl, positions: n };
}
