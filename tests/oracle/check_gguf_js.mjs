// oracle_hf_gguf_js: Hugging Face's JavaScript GGUF parser (@huggingface/gguf) and
// `optiq info --json --metadata` must agree on every file optiq writes: each metadata key, its
// value type (and array element type) and value, each tensor's name, shape, dtype and absolute
// data offset, in file order. Files: stories260K and optiq's f32/f16/bf16 converts of it, and
// two converted random HF models (tests/oracle/make_hf_model.py).
import { execFileSync } from "node:child_process";
import path from "node:path";
import { fileURLToPath } from "node:url";

import { env, importFromCache, workDir } from "./oracle_util.mjs";

const OPTIQ = env("OPTIQ");
const CACHE = env("OPTIQ_CACHE");
const STORIES = path.join(env("OPTIQ_SHARED"), "models/stories260K/stories260K.gguf");
const PYTHON = path.join(CACHE, "venv/bin/python");
const MAKE_HF_MODEL = fileURLToPath(new URL("make_hf_model.py", import.meta.url));
const work = workDir("gguf_js");

const { gguf, GGUFValueType, GGMLQuantizationType } = await importFromCache("@huggingface/gguf/dist/index.mjs");

// optiq's JSON names value types as the GGUF spec's type table does; map the library's enum.
const TYPE_NAMES = {
  UINT8: "u8", INT8: "i8", UINT16: "u16", INT16: "i16", UINT32: "u32", INT32: "i32",
  FLOAT32: "f32", BOOL: "bool", STRING: "string", ARRAY: "array", UINT64: "u64",
  INT64: "i64", FLOAT64: "f64",
};
const typeName = (t) => TYPE_NAMES[GGUFValueType[t]] ?? `?${t}`;

const failures = [];
let nChecks = 0;
function check(ok, what) {
  nChecks++;
  if (!ok) failures.push(what);
  return ok;
}

// JSON numbers against the parser's numbers/bigints/booleans/strings, exactly.
function sameValue(mine, theirs) {
  if (Array.isArray(theirs))
    return Array.isArray(mine) && mine.length === theirs.length && theirs.every((t, i) => sameValue(mine[i], t));
  if (typeof theirs === "bigint") return Number.isSafeInteger(mine) && BigInt(mine) === theirs;
  return typeof mine === typeof theirs && mine === theirs;
}

function optiq(...args) {
  return execFileSync(OPTIQ, args, { encoding: "utf8", maxBuffer: 256 << 20 });
}

async function compare(tag, file) {
  const info = JSON.parse(optiq("info", file, "--json", "--metadata"));
  const parsed = await gguf(file, { allowLocalFile: true, typedMetadata: true });
  const typed = parsed.typedMetadata;
  // The parser puts the header counts first under these names; they are not metadata keys.
  const keys = Object.keys(typed).filter((k) => !["version", "tensor_count", "kv_count"].includes(k));
  const meta = info.metadata ?? {};
  check(JSON.stringify(Object.keys(meta).sort()) === JSON.stringify([...keys].sort()),
    `${tag}: metadata keys differ: optiq ${Object.keys(meta)} vs parser ${keys}`);
  check(BigInt(keys.length) === parsed.metadata.kv_count, `${tag}: kv_count ${parsed.metadata.kv_count} != ${keys.length}`);
  for (const k of keys) {
    const m = meta[k];
    const t = typed[k];
    if (!check(m !== undefined, `${tag}: optiq info lacks key ${k}`)) continue;
    check(m.type === typeName(t.type), `${tag}: ${k} type ${m.type} vs ${typeName(t.type)}`);
    if (t.type === GGUFValueType.ARRAY)
      check(m.element_type === typeName(t.subType), `${tag}: ${k} element type ${m.element_type} vs ${typeName(t.subType)}`);
    else check(m.element_type === undefined, `${tag}: ${k} is not an array but has element_type`);
    check(sameValue(m.value, t.value), `${tag}: ${k} value differs: optiq ${JSON.stringify(m.value).slice(0, 200)}`);
  }

  const tensors = info.tensors ?? [];
  check(tensors.length === parsed.tensorInfos.length && BigInt(tensors.length) === parsed.metadata.tensor_count,
    `${tag}: tensor count ${tensors.length} vs ${parsed.tensorInfos.length}`);
  parsed.tensorInfos.forEach((t, i) => {
    const mine = tensors[i];
    if (!check(mine?.name === t.name, `${tag}: tensor ${i} is ${mine?.name}, parser says ${t.name}`)) return;
    check(sameValue(mine.shape, t.shape), `${tag}: ${t.name} shape ${mine.shape} vs ${t.shape}`);
    const dtype = GGMLQuantizationType[t.dtype];
    check(typeof dtype === "string" && mine.type.toUpperCase() === dtype, `${tag}: ${t.name} type ${mine.type} vs ${dtype}`);
    check(BigInt(mine.offset) === parsed.tensorDataOffset + t.offset,
      `${tag}: ${t.name} offset ${mine.offset} vs ${parsed.tensorDataOffset + t.offset}`);
  });
}

await compare("stories260K", STORIES);
for (const outtype of ["f32", "f16", "bf16"]) {
  const out = path.join(work, `stories260K-${outtype}.gguf`);
  optiq("convert", STORIES, "-o", out, "--outtype", outtype);
  await compare(`stories260K/${outtype}`, out);
}
for (const [variant, outtype] of [["gemma3", "bf16"], ["llama3_scaled", "f16"]]) {
  const dir = path.join(work, "hf", variant);
  execFileSync(PYTHON, [MAKE_HF_MODEL, variant, dir]);
  const out = path.join(work, `${variant}-${outtype}.gguf`);
  optiq("convert", dir, "-o", out, "--outtype", outtype);
  await compare(`${variant}/${outtype}`, out);
}

if (failures.length) {
  console.error(`oracle_hf_gguf_js: ${failures.length} of ${nChecks} checks FAILED:`);
  for (const f of failures.slice(0, 60)) console.error("  - " + f);
  process.exit(1);
}
console.log(`oracle_hf_gguf_js: all ${nChecks} checks passed`);
