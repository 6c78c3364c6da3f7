// oracle_tokenizers_convert: `optiq convert` writes tokenizer metadata that makes llama.cpp
// tokenize like Hugging Face. Random-weight HF folders (make_hf_model.py) carrying real
// tokenizer files (Qwen2.5 vocab.json + merges.txt, SmolLM2 tokenizer.json, Mistral v0.3
// tokenizer.json) are converted; llama.cpp (node-llama-cpp) loads each GGUF, and on the corpus
// its tokenize() must equal optiq's on the GGUF and optiq's on the HF folder (which
// oracle_tokenizers_hf checks against Hugging Face tokenizers).
import { execFileSync } from "node:child_process";
import { copyFileSync, existsSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";

import { env, loadLlamaCpp, workDir } from "./oracle_util.mjs";

const OPTIQ = env("OPTIQ");
const CACHE = env("OPTIQ_CACHE");
const SHARED = env("OPTIQ_SHARED");
const here = path.dirname(new URL(import.meta.url).pathname);
const work = workDir("tokenizers_convert");

const TOKENIZER_FILES = ["tokenizer.json", "tokenizer_config.json", "vocab.json", "merges.txt",
  "added_tokens.json", "special_tokens_map.json"];
const cases = [
  // name, make_hf_model variant, vocab_size (config.json of the real model), tokenizer folder, pre
  ["qwen2.5", "qwen2", 151936, path.join(SHARED, "models/qwen2.5-tokenizer"), "qwen2"],
  ["smollm2", "llama", 49152, path.join(SHARED, "models/templates/smollm2-135m-instruct"), "smollm"],
  ["mistral-v0.3", "llama", 32768, path.join(SHARED, "models/templates/mistral-7b-instruct-v0.3"), "default"],
];

const { llama } = await loadLlamaCpp();
const corpus = JSON.parse(readFileSync(path.join(here, "tokenizer_corpus.json"), "utf8"));
const corpusFile = path.join(work, "corpus.jsonl");
writeFileSync(corpusFile, corpus.map((s) => JSON.stringify(s)).join("\n") + "\n");
const failures = [];
const summary = [];
// Where llama.cpp itself departs from Hugging Face, whatever the converter writes (the same
// happens with llama.cpp's own convert_hf_to_gguf.py): it has no NFC normalizer (Qwen2), it
// promotes "</s>" & co. to control tokens by their text, and its SentencePiece path always
// prefixes a space (also after special tokens) where HF's Metaspace(prepend_scheme "first")
// does not double a leading space and adds none after a special token. Those texts are
// counted as known deviations, not failures; optiq's own GGUF tokenization must still
// equal llama.cpp's on them.
const knownDeviation = (name, text) =>
  (name === "qwen2.5" && (text !== text.normalize("NFC") || /<\/s>/.test(text))) ||
  (name === "mistral-v0.3" && (/^\s/.test(text) || /<s>|<\/s>|\[INST\]/.test(text)));
const eq = (a, b) => a.length === b.length && a.every((x, i) => x === b[i]);
const optiq = (target, extra) => execFileSync(OPTIQ, ["tokenize", target, "--jsonl", "--no-bos", ...extra, "-f", corpusFile],
  { encoding: "utf8", maxBuffer: 1 << 28 }).trim().split("\n").map((l) => JSON.parse(l));

try {
  for (const [name, variant, vocabSize, tokDir, pre] of cases) {
    const dir = path.join(work, name);
    execFileSync(path.join(CACHE, "venv/bin/python"), [path.join(here, "make_hf_model.py"), variant, dir, String(vocabSize)]);
    for (const f of TOKENIZER_FILES) if (existsSync(path.join(tokDir, f))) copyFileSync(path.join(tokDir, f), path.join(dir, f));
    const gguf = path.join(work, `${name}.gguf`);
    execFileSync(OPTIQ, ["convert", dir, "-o", gguf, "--outtype", "f32"], { stdio: ["ignore", "ignore", "inherit"] });
    const info = JSON.parse(execFileSync(OPTIQ, ["info", gguf, "--json", "--metadata"], { encoding: "utf8", maxBuffer: 1 << 28 }));
    const gotPre = info.metadata["tokenizer.ggml.pre"]?.value;
    if (gotPre !== pre) failures.push(`${name}: tokenizer.ggml.pre ${gotPre}, want ${pre}`);
    const model = await llama.loadModel({ modelPath: gguf, vocabOnly: true });
    let compared = 0, vsGguf = 0, vsHf = 0, known = 0;
    for (const special of [true, false]) {
      const extra = special ? [] : ["--no-special"];
      const fromGguf = optiq(gguf, extra), fromHf = optiq(dir, extra);
      corpus.forEach((text, i) => {
        const want = Array.from(model.tokenize(text, special));
        compared++;
        if (!eq(fromGguf[i].ids, want)) {
          vsGguf++;
          failures.push(`${name} special=${special} ${JSON.stringify(text).slice(0, 60)}: optiq(GGUF) ${JSON.stringify(fromGguf[i].ids).slice(0, 120)} llama.cpp ${JSON.stringify(want).slice(0, 120)}`);
        }
        if (!eq(fromHf[i].ids, want) && knownDeviation(name, text)) {
          known++;
        } else if (!eq(fromHf[i].ids, want)) {
          vsHf++;
          failures.push(`${name} special=${special} ${JSON.stringify(text).slice(0, 60)}: HF ${JSON.stringify(fromHf[i].ids).slice(0, 120)} llama.cpp ${JSON.stringify(want).slice(0, 120)}`);
        }
      });
    }
    summary.push(`${name}: ${compared} cases; llama.cpp vs optiq(GGUF) ${vsGguf} mismatches, llama.cpp vs HF ${vsHf} mismatches (+${known} known llama.cpp deviations)`);
    await model.dispose();
  }
} finally {
  await llama.dispose();
}
for (const s of summary) console.log(s);
if (failures.length) {
  console.error(`oracle_tokenizers_convert: ${failures.length} checks FAILED:`);
  for (const f of failures.slice(0, 60)) console.error("  - " + f);
  process.exit(1);
}
console.log("oracle_tokenizers_convert: llama.cpp tokenizes optiq's converts exactly like Hugging Face");
