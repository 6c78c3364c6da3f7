"""optiq's BFCL "simple" AST checker against BFCL's own (bfcl_eval.eval_checker.ast_eval), on
calls built from the dev subset's possible answers: right ones (every allowed value, optional
parameters left out where allowed, strings re-cased and re-punctuated), and wrong ones (another
name, a missing required or an unknown parameter, a value of another type, an int for a float,
a value not allowed, a list or dict changed, two calls). Each call is written in Python syntax
(and every third in JSON inside <tool_call> tags) for optiq's parser; BFCL's checker gets the
same call as Python objects. Every verdict must agree.

Usage: check_bfcl.py OPTIQ_BFCL_TOOL   (env OPTIQ_SHARED: the shared data folder)
"""
import copy
import importlib
import json
import os
import random
import subprocess
import sys
import types

site = next(p for p in sys.path if p.endswith("site-packages"))
# The checker module alone: the package's model registry imports every provider's SDK. A model
# whose API keeps dots in function names (underscore_to_dot False) stands in for optiq.
config = types.ModuleType("bfcl_eval.constants.model_config")
config.MODEL_CONFIG_MAPPING = {"optiq": types.SimpleNamespace(underscore_to_dot=False)}
sys.modules["bfcl_eval.constants.model_config"] = config
for name, rel in [("bfcl_eval", "bfcl_eval"), ("bfcl_eval.constants", "bfcl_eval/constants"),
                  ("bfcl_eval.eval_checker", "bfcl_eval/eval_checker"),
                  ("bfcl_eval.eval_checker.ast_eval", "bfcl_eval/eval_checker/ast_eval")]:
    module = types.ModuleType(name)
    module.__path__ = [os.path.join(site, rel)]
    sys.modules[name] = module
checker = importlib.import_module("bfcl_eval.eval_checker.ast_eval.ast_checker")
Language = importlib.import_module("bfcl_eval.constants.enums").Language


def restyle(s, rng):
    """A string the checker must still accept: case and ignored punctuation changed."""
    s = s.upper() if rng.random() < 0.5 else s.lower()
    return s.replace(" ", rng.choice([" ", "_", "-", ""]))


def right_call(answer, rng):
    args = {}
    for param, allowed in answer.items():
        values = [v for v in allowed if v != ""]
        if "" in allowed and (not values or rng.random() < 0.4):
            continue
        value = copy.deepcopy(rng.choice(values))
        if isinstance(value, str) and rng.random() < 0.4:
            value = restyle(value, rng)
        args[param] = value
    return args


def wrong_call(function, answer, args, rng):
    props = function["parameters"].get("properties", {})
    required = function["parameters"].get("required", [])
    kind = rng.choice(["name", "missing", "extra", "type", "value", "int_for_float", "float_for_int", "two"])
    name = function["name"]
    calls = None
    if kind == "name":
        name = name + "_x"
    elif kind == "missing" and required:
        args.pop(rng.choice(required), None)
    elif kind == "extra":
        args["unexpected_param"] = 1
    elif kind in ("type", "value", "int_for_float", "float_for_int") and args:
        param = rng.choice(sorted(args))
        v = args[param]
        if kind == "type":
            args[param] = str(v) if not isinstance(v, str) else 7
        elif kind == "int_for_float" and isinstance(v, float) and v == int(v):
            args[param] = int(v)
        elif kind == "float_for_int" and isinstance(v, int) and not isinstance(v, bool):
            args[param] = float(v)
        elif isinstance(v, bool):
            args[param] = not v
        elif isinstance(v, (int, float)):
            args[param] = v + 1
        elif isinstance(v, str):
            args[param] = v + " extra"
        elif isinstance(v, list):
            args[param] = v[:-1] if v else [1]
        elif isinstance(v, dict) and v:
            args[param] = {k: (x + 1 if isinstance(x, (int, float)) and not isinstance(x, bool) else x) for k, x in v.items()}
    elif kind == "two":
        calls = [(name, args), (name, args)]
    return calls or [(name, args)]


def reply_text(calls, rng):
    if rng.random() < 0.33:
        return "".join("<tool_call>\n" + json.dumps({"name": n, "arguments": a}) + "\n</tool_call>\n" for n, a in calls)
    text = ", ".join(n + "(" + ", ".join(f"{k}={v!r}" for k, v in a.items()) + ")" for n, a in calls)
    return "[" + text + "]" if rng.random() < 0.5 else text


def main():
    tool = sys.argv[1]
    shared = os.environ.get("OPTIQ_SHARED", os.path.join(os.path.dirname(__file__), "../../../shared"))
    bfcl = os.path.join(shared, "data/bfcl")
    with open(os.path.join(bfcl, "BFCL_v3_simple-first100.json")) as f:
        questions = [json.loads(line) for line in f if line.strip()]
    with open(os.path.join(bfcl, "BFCL_v3_simple-first100.possible_answer.json")) as f:
        answers = {r["id"]: r["ground_truth"] for r in (json.loads(line) for line in f if line.strip())}
    rng = random.Random(7)
    cases = []
    for q in questions:
        function, truth = q["function"][0], answers[q["id"]]
        answer = truth[0][function["name"]]
        for i in range(16):
            args = right_call(answer, rng)
            calls = [(function["name"], args)] if i % 2 == 0 else wrong_call(function, answer, args, rng)
            cases.append((q, truth, calls, reply_text(calls, rng)))
    lines = "".join(json.dumps({"function": q["function"][0], "answer": t[0], "reply": r}) + "\n" for q, t, _, r in cases)
    out = subprocess.run([tool], input=lines, capture_output=True, text=True, check=True).stdout.splitlines()
    assert len(out) == len(cases)
    agree = valid = 0
    shown = 0
    for (q, truth, calls, reply), line in zip(cases, out):
        mine = json.loads(line)
        model_output = [{n: a} for n, a in calls]
        ref = checker.ast_checker(q["function"], model_output, truth, Language.PYTHON, "simple", "optiq")["valid"]
        same = mine["parsed"] and mine["valid"] == ref
        agree += same
        valid += ref
        if not same and shown < 20:
            shown += 1
            print(f"differs: {q['id']} bfcl={ref} optiq={mine} on {reply[:200]!r}")
    print(f"{len(cases)} calls ({valid} valid by BFCL's checker): {agree} verdicts agree")
    failed = agree != len(cases)
    print(f"{0 if failed else 1} passed, {1 if failed else 0} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
