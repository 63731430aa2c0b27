"""Read a recheck run back out of Arize Phoenix and check it against the stored run.

    python phoenix_check.py PHOENIX_URL RUN.json SCREENSHOT.png

RUN.json is `recheck traces show RUN --json`. Spans are read through Phoenix's REST
API (GET /v1/projects/recheck/spans); every model call must be an LLM span with its
model name, token counts, input and output, every tool call a TOOL span, all in one
trace under one root. Then headless Chromium takes a screenshot of the trace's page.
"""

import json
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

base, run_file, shot = sys.argv[1], sys.argv[2], sys.argv[3]
stored = json.load(open(run_file))
run, steps = stored["run"], stored["steps"]
trace_id = run["id"].replace("-", "")
failed = 0


def check(name, ok, detail=""):
    global failed
    print(f"{'ok  ' if ok else 'FAIL'} {name}{': ' + detail if detail and not ok else ''}")
    failed += 0 if ok else 1


def get(path):
    with urllib.request.urlopen(base + path, timeout=30) as r:
        return json.load(r)


def flat(attrs, prefix=""):
    """Phoenix may return attributes nested ({"llm": {"model_name": ...}}); flatten them."""
    out = {}
    for key, value in (attrs or {}).items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flat(value, name + "."))
        else:
            out[name] = value
    return out


spans = []
for _ in range(100):  # Phoenix ingests asynchronously: the project may not exist yet
    try:
        data = get("/v1/projects/recheck/spans?limit=1000")["data"]
    except urllib.error.HTTPError as e:
        if e.code != 404:
            raise
        data = []
    spans = [s for s in data if s["context"]["trace_id"] == trace_id]
    if len(spans) == len(steps) + 1:
        break
    time.sleep(0.2)
check("one span per step plus the root, in one trace", len(spans) == len(steps) + 1, f"{len(spans)} spans for {len(steps)} steps")
by_kind = {}
for s in spans:
    by_kind.setdefault(s.get("span_kind"), []).append(s)
roots = [s for s in spans if not s.get("parent_id")]
check("one root span 'recheck ask'", len(roots) == 1 and roots[0]["name"] == "recheck ask", str([r["name"] for r in roots]))
root = flat(roots[0]["attributes"]) if roots else {}
check("root input is the question", root.get("input.value") == run["input"]["question"], str(root.get("input.value")))
check("root output is the answer", root.get("output.value") == run["output"]["answer"], str(root.get("output.value"))[:80])

calls = [s for s in steps if s["payload"]["kind"] == "model_call"]
llm = sorted(by_kind.get("LLM", []), key=lambda s: flat(s["attributes"]).get("recheck.step", 0))
check("an LLM span per model call", len(llm) == len(calls), f"{len(llm)} LLM spans, {len(calls)} calls")
for span, step in zip(llm, calls):
    a = flat(span["attributes"])
    response = step["payload"]["response"]
    usage = response["usage"]
    label = f"step {step['index']} ({step['agent']})"
    check(f"{label}: model name", a.get("llm.model_name") == response["model"], str(a.get("llm.model_name")))
    check(
        f"{label}: token counts",
        (a.get("llm.token_count.prompt"), a.get("llm.token_count.completion"))
        == (usage["prompt_tokens"], usage["completion_tokens"]),
        f"{a.get('llm.token_count.prompt')}/{a.get('llm.token_count.completion')} vs {usage}",
    )
    sent = json.loads(a.get("input.value", "{}")).get("messages", [])
    check(f"{label}: input is the prompt sent", [m["content"] for m in sent] == [m["content"] for m in step["payload"]["request"]["messages"]])
    check(f"{label}: output is the reply", a.get("output.value") == response["choices"][0]["text"])
tools = [s for s in steps if s["payload"]["kind"] == "tool_call"]
check("a TOOL span per tool call", len(by_kind.get("TOOL", [])) == len(tools), f"{len(by_kind.get('TOOL', []))} vs {len(tools)}")

# The trace's page in Phoenix's UI.
project = next(p for p in get("/v1/projects")["data"] if p["name"] == "recheck")
url = f"{base}/projects/{project['id']}/traces/{trace_id}"
with tempfile.TemporaryDirectory() as profile:
    subprocess.run(
        ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={profile}", "--window-size=1600,1000", "--virtual-time-budget=15000",
         f"--screenshot={shot}", url],
        check=True, capture_output=True, timeout=120,
    )
print(f"screenshot of {url}: {shot}")
print(json.dumps({"spans": len(spans), "llm": len(llm), "tool": len(by_kind.get("TOOL", [])), "failed": failed}))
sys.exit(1 if failed else 0)
