"""optiq's IFEval verifiers against lm-evaluation-harness's (lm_eval.tasks.ifeval), the reference
implementation of Zhou et al.'s rules.

For every prompt of the IFEval dev subset, responses are assembled at random (seeded) from the
features its instructions look at, each present, absent or miscounted: commas, highlighted
sections, bullets, section headers, *** and blank-line paragraphs, placeholders, postscripts,
titles, JSON, two responses, the repeated prompt, the end phrase, quotation marks, keywords and
letters, upper/lower case, other languages. Both implementations judge each response strictly
and loosely; the verdicts must agree for every instruction type, except where upstream depends on
langdetect (response language, English capital/lowercase), a statistical detector optiq does not
reproduce: there at least 90% agreement is required and the disagreements are printed. nltk's
word tokenizer needs data files it cannot download here, so it runs with preserve_line=True
(the same Treebank tokenizer without sentence splitting first).

Usage: check_ifeval.py OPTIQ_IFEVAL_TOOL   (env OPTIQ_SHARED: the shared data folder)
"""
import json
import os
import random
import subprocess
import sys
import types
import importlib

site = next(p for p in sys.path if p.endswith("site-packages"))
# Load lm_eval's ifeval modules without the package's heavy __init__ (numpy, torch, datasets).
for name, rel in [("lm_eval", "lm_eval"), ("lm_eval.tasks", "lm_eval/tasks"), ("lm_eval.tasks.ifeval", "lm_eval/tasks/ifeval")]:
    module = types.ModuleType(name)
    module.__path__ = [os.path.join(site, rel)]
    sys.modules[name] = module
import nltk  # noqa: E402

_word_tokenize = nltk.word_tokenize
nltk.word_tokenize = lambda text, language="english", preserve_line=False: _word_tokenize(text, language, True)
import langdetect  # noqa: E402

langdetect.DetectorFactory.seed = 0
utils = importlib.import_module("lm_eval.tasks.ifeval.utils")

LANGDETECT_BASED = {"language:response_language", "change_case:english_capital", "change_case:english_lowercase"}


def comparable(iid, kwargs):
    """Whether upstream's verdict is defined without data or randomness this test cannot have."""
    # Sentences are counted with nltk's trained punkt model, whose data files cannot be fetched.
    if iid == "length_constraints:number_sentences":
        return False
    # A "letter" outside a-z is replaced upstream by a random ASCII letter; optiq counts it.
    if iid == "keywords:letter_frequency":
        letter = (kwargs.get("letter") or "").strip().lower()
        return len(letter) == 1 and "a" <= letter <= "z"
    return True

SENTENCES = [
    "The city wakes up early and the markets fill with people",
    "Dr. Smith visited the U.S. office at 9.30 a.m. on Monday",
    "Our team tested the new design for three weeks",
    "It was raining, so we stayed inside and read",
    "Prices rose by 3.5 percent last year",
    "She asked whether the report was ready",
    "The river is calm today!",
    "Why would anyone leave such a beautiful place?",
]
FOREIGN = {
    "vi": "Tôi yêu thành phố Hà Nội và những con đường của nó.",
    "fa": "من این کتاب را دوست دارم و هر روز آن را می‌خوانم.",
    "kn": "ನಾನು ಕನ್ನಡ ಮಾತನಾಡುತ್ತೇನೆ ಮತ್ತು ಪುಸ್ತಕ ಓದುತ್ತೇನೆ.",
    "pa": "ਮੈਂ ਪੰਜਾਬੀ ਬੋਲਦਾ ਹਾਂ ਅਤੇ ਕਿਤਾਬਾਂ ਪੜ੍ਹਦਾ ਹਾਂ।",
    "mr": "मी घरी आहे आणि मला पुस्तक वाचायला आवडते.",
    "hi": "मैं घर में हूँ और यह किताब अच्छी है।",
}


def sentence(rng, kwargs_list):
    s = rng.choice(SENTENCES)
    if rng.random() < 0.3:
        s = s.replace(",", "")
    # Sprinkle the keywords and letters the instructions count.
    for kw in kwargs_list:
        for word in (kw.get("keywords") or []) + (kw.get("forbidden_words") or []) + [kw.get("keyword")]:
            if word and rng.random() < 0.3:
                s += " " + word * rng.choice([1, 1, 2])
        if kw.get("letter") and rng.random() < 0.3:
            s += " " + kw["letter"] * rng.randint(1, 8)
    return s + rng.choice([".", ".", "!", "?", "..."])


def response(rng, record):
    kw_list = record["kwargs"]
    kw = {}
    for k in kw_list:
        kw.update({key: value for key, value in k.items() if value is not None})
    parts = []
    n_par = rng.randint(1, 5)
    for p in range(n_par):
        text = " ".join(sentence(rng, kw_list) for _ in range(rng.randint(1, 4)))
        if p == 0 and kw.get("first_word") and rng.random() < 0.5:
            text = rng.choice(["", "\"", "'"]) + kw["first_word"].capitalize() + rng.choice([",", "", "."]) + " " + text
        if rng.random() < 0.3:
            text = "*" + text[: rng.randint(1, 30)] + "* " + text
        if rng.random() < 0.2:
            text += " **" + rng.choice(["bold part", " ", "x"]) + "**"
        if rng.random() < 0.3:
            text += "".join(f"\n{rng.choice(['*', '-', '**'])} item {i}" for i in range(rng.randint(1, 4)))
        if kw.get("section_spliter") and rng.random() < 0.6:
            text = f"{kw['section_spliter']} {p + 1}\n" + text
        if rng.random() < 0.3:
            text += " [name]" * rng.randint(1, 3)
        parts.append(text)
    text = rng.choice(["\n\n", "\n***\n", "\n\n***\n\n", " *** "]).join(parts)
    if rng.random() < 0.2:
        text = "<<" + rng.choice(["A Title", " ", "Title <<nested>>"]) + ">>\n" + text
    if kw.get("postscript_marker") and rng.random() < 0.6:
        text += "\n\n" + rng.choice([kw["postscript_marker"], "P.S.", "p.p.s", "P. P. S."]) + " see you soon."
    if kw.get("language") and rng.random() < 0.6:
        text = FOREIGN.get(kw["language"], FOREIGN["vi"]) + " " + (FOREIGN[kw["language"]] if kw["language"] in FOREIGN and rng.random() < 0.5 else "")
    if kw.get("prompt_to_repeat") and rng.random() < 0.5:
        text = rng.choice([kw["prompt_to_repeat"], kw["prompt_to_repeat"].upper(), "Sure: " + kw["prompt_to_repeat"]]) + "\n" + text
    if kw.get("end_phrase") and rng.random() < 0.6:
        text += " " + rng.choice([kw["end_phrase"], kw["end_phrase"].lower(), kw["end_phrase"] + " Bye."])
    if "combination:two_responses" in record["instruction_id_list"] and rng.random() < 0.6:
        text = text + "\n******\n" + rng.choice([text, "Another answer."])
    roll = rng.random()
    if roll < 0.15:
        text = text.upper()
    elif roll < 0.3:
        text = text.lower()
    if "detectable_format:json_format" in record["instruction_id_list"] and rng.random() < 0.5:
        text = rng.choice(["```json\n%s\n```", "%s", "Here it is: %s"]) % json.dumps({"answer": text[:40]})
    if rng.random() < 0.15:
        text = '"' + text + '"'
    if rng.random() < 0.2:
        text = "Sure, here you go:\n" + text + "\nHope this helps"
    if rng.random() < 0.1:
        text = rng.choice(["", "   ", "\n"])
    return text


def main():
    tool = sys.argv[1]
    shared = os.environ.get("OPTIQ_SHARED", os.path.join(os.path.dirname(__file__), "../../../shared"))
    with open(os.path.join(shared, "data/ifeval/input_data-first120.jsonl")) as f:
        records = [json.loads(line) for line in f if line.strip()]
    rng = random.Random(20240607)
    cases = []
    for record in records:
        for _ in range(12):
            cases.append((record, response(rng, record)))
    lines = "".join(json.dumps({"ids": r["instruction_id_list"], "kwargs": r["kwargs"], "response": text}) + "\n"
                    for r, text in cases)
    out = subprocess.run([tool], input=lines, capture_output=True, text=True, check=True).stdout.splitlines()
    assert len(out) == len(cases), (len(out), len(cases))
    agree, total, skipped, shown = {}, {}, {}, 0
    for (record, text), line in zip(cases, out):
        mine = json.loads(line)
        assert "error" not in mine, (record["key"], mine)
        for k, iid in enumerate(record["instruction_id_list"]):
            if not comparable(iid, record["kwargs"][k]):
                skipped[iid] = skipped.get(iid, 0) + 1
                continue
            # One instruction at a time: a prompt's other instructions may not be comparable.
            inp = utils.InputExample(record["key"], [iid], record["prompt"], [record["kwargs"][k]])
            strict = utils.test_instruction_following_strict(inp, text).follow_instruction_list[0]
            loose = utils.test_instruction_following_loose(inp, text).follow_instruction_list[0]
            for mode, ref, got in (("strict", strict, mine["strict"][k]), ("loose", loose, mine["loose"][k])):
                total[iid] = total.get(iid, 0) + 1
                same = ref == got
                agree[iid] = agree.get(iid, 0) + same
                if not same and shown < 25:
                    shown += 1
                    print(f"differs: {iid} {mode} {record['kwargs'][k]} upstream={ref} optiq={got} on {text[:160]!r}")
    failed = False
    positives = 0
    for iid in sorted(total):
        rate = agree[iid] / total[iid]
        need = 0.9 if iid in LANGDETECT_BASED else 1.0
        ok = rate >= need
        failed |= not ok
        print(f"{'ok  ' if ok else 'FAIL'} {iid}: {agree[iid]}/{total[iid]} verdicts agree (need {need:.0%})")
    for iid in sorted(skipped):
        print(f"not compared: {iid}: {skipped[iid]} responses (see comparable())")
    for (record, text), line in zip(cases, out):
        positives += sum(json.loads(line)["strict"])
    print(f"{len(cases)} responses, {sum(total.values())} verdicts, {positives} strict passes by optiq")
    print(f"{0 if failed else 1} passed, {1 if failed else 0} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
