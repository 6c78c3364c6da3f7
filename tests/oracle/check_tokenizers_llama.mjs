// oracle_tokenizers_llama_cpp: optiq tokenizes exactly as llama.cpp (node-llama-cpp's prebuilt
// binary, vocabulary-only loads) on GGUF vocabularies: stories260K (SentencePiece "llama") and
// llama.cpp's own test vocabularies llama-spm, llama-bpe, qwen2 and gpt-2. Every corpus text
// (tests/oracle/tokenizer_corpus.json plus llama.cpp's .inp test strings for that vocabulary)
// is tokenized with and without parsing special tokens; ids must be identical, and optiq's
// decode must equal llama.cpp's detokenize (specials rendered). BOS handling is checked too.
//
// Usage: node check_tokenizers_llama.mjs [NAME=FILE.gguf ...] (default: the five above).
import { execFileSync } from "node:child_process";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";

import { env, loadLlamaCpp, workDir } from "./oracle_util.mjs";

const OPTIQ = env("OPTIQ");
const CACHE = env("OPTIQ_CACHE");
const here = path.dirname(new URL(import.meta.url).pathname);
const work = workDir("tokenizers_llama");

const models = path.join(CACHE, "llama.cpp-src/models");
let vocabs = process.argv.slice(2).map((a) => a.split("=", 2));
if (vocabs.length === 0) {
  vocabs = [["stories260K", path.join(env("OPTIQ_SHARED"), "models/stories260K/stories260K.gguf")]];
  for (const v of ["llama-spm", "llama-bpe", "qwen2", "gpt-2"]) vocabs.push([v, path.join(models, `ggml-vocab-${v}.gguf`)]);
}

const { llama } = await loadLlamaCpp();

const baseCorpus = JSON.parse(readFileSync(path.join(here, "tokenizer_corpus.json"), "utf8"));
const failures = [];
const summary = [];
const eq = (a, b) => a.length === b.length && a.every((x, i) => x === b[i]);

function optiqJsonl(file, corpusFile, extra) {
  const out = execFileSync(OPTIQ, ["tokenize", file, "--jsonl", "--no-bos", ...extra, "-f", corpusFile],
    { encoding: "utf8", maxBuffer: 1 << 28 });
  return out.trim().split("\n").map((l) => JSON.parse(l));
}

try {
  for (const [name, file] of vocabs) {
    const corpus = [...baseCorpus];
    const inp = path.join(models, `ggml-vocab-${name}.gguf.inp`);
    if (existsSync(inp)) corpus.push(...readFileSync(inp, "utf8").split("\n__ggml_vocab_test__\n").filter((s) => s.length));
    // optiq's --jsonl skips empty lines only; every corpus entry is one JSON line.
    const corpusFile = path.join(work, `${name}.jsonl`);
    writeFileSync(corpusFile, corpus.map((s) => JSON.stringify(s)).join("\n") + "\n");
    const model = await llama.loadModel({ modelPath: file, vocabOnly: true });
    let compared = 0, mismatches = 0, roundTrips = 0, lossless = 0;
    for (const special of [true, false]) {
      const got = optiqJsonl(file, corpusFile, special ? [] : ["--no-special"]);
      if (got.length !== corpus.length) {
        failures.push(`${name}: optiq returned ${got.length} results for ${corpus.length} texts`);
        continue;
      }
      corpus.forEach((text, i) => {
        const want = Array.from(model.tokenize(text, special));
        compared++;
        if (!eq(got[i].ids, want)) {
          mismatches++;
          failures.push(`${name} special=${special} ${JSON.stringify(text).slice(0, 80)}: optiq ${JSON.stringify(got[i].ids).slice(0, 200)} llama.cpp ${JSON.stringify(want).slice(0, 200)}`);
          return;
        }
        const decoded = model.detokenize(want, true);
        if (got[i].decoded !== decoded) {
          mismatches++;
          failures.push(`${name} decode ${JSON.stringify(text).slice(0, 60)}: optiq ${JSON.stringify(got[i].decoded).slice(0, 120)} llama.cpp ${JSON.stringify(decoded).slice(0, 120)}`);
        }
        if (!special && model.detokenize(want, false) === text) {
          lossless++;
          if (got[i].decoded === text) roundTrips++;
        }
      });
    }
    // BOS: optiq adds it exactly when llama.cpp's vocabulary says so.
    const withBos = JSON.parse(execFileSync(OPTIQ, ["tokenize", file, "--ids", "Hello world"], { encoding: "utf8" }));
    const wantBos = [...(model.tokens.shouldPrependBosToken ? [model.tokens.bos] : []),
      ...Array.from(model.tokenize("Hello world", true))];
    if (!eq(withBos, wantBos)) failures.push(`${name}: with BOS optiq ${JSON.stringify(withBos)} llama.cpp ${JSON.stringify(wantBos)}`);
    summary.push(`${name}: ${compared} cases compared, ${mismatches} mismatches; round trip ${roundTrips}/${lossless} where llama.cpp is lossless`);
    await model.dispose();
  }
} finally {
  await llama.dispose();
}
for (const s of summary) console.log(s);
if (failures.length) {
  console.error(`oracle_tokenizers_llama_cpp: ${failures.length} checks FAILED:`);
  for (const f of failures.slice(0, 60)) console.error("  - " + f);
  process.exit(1);
}
console.log("oracle_tokenizers_llama_cpp: optiq matches llama.cpp on every text");
