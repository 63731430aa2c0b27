"""Real clients against `recheck serve`: the official openai SDK and DSPy.

Run by scripts/serve-clients.sh, which starts the server; this file only talks to it.
Each check prints one line; any failure exits non-zero.
"""

import argparse
import json
import sys

import openai


def check(name, ok, detail=""):
    print(f"{'ok  ' if ok else 'FAIL'} {name}{': ' + detail if detail else ''}")
    if not ok:
        check.failed += 1


check.failed = 0


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--base-url", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--model", default="local")
    a = p.parse_args()

    client = openai.OpenAI(base_url=a.base_url, api_key=a.key, max_retries=0, timeout=600)
    question = [{"role": "user", "content": "Is 7411 a prime number? Answer yes or no, then explain."}]

    # Plain, through the SDK's raw response so headers can be read too.
    raw = client.chat.completions.with_raw_response.create(model=a.model, messages=question, max_tokens=96)
    done = raw.parse()
    report = (done.model_extra or {}).get("recheck") or {}
    check("plain: an answer", bool(done.choices[0].message.content), repr(done.choices[0].message.content[:80]))
    check("plain: x-recheck-verified header", raw.headers.get("x-recheck-verified") in ("true", "false", "unknown"),
          raw.headers.get("x-recheck-verified"))
    check("plain: recheck object with a trace id", report.get("trace_id") == raw.headers.get("x-recheck-trace-id"),
          str(report.get("trace_id")))
    check("plain: usage", done.usage is not None and done.usage.total_tokens > 0, str(done.usage))
    primality = [c for c in report.get("claims", []) for e in c.get("evidence", []) if e.get("tool") == "primality"]
    check("plain: the primality tool checked 7411", bool(primality))

    # Options through extra_body.
    opt = client.chat.completions.create(
        model=a.model, messages=question, max_tokens=96,
        extra_body={"recheck": {"strategy": "critic", "rounds": 1, "max_calls": 6}})
    r = (opt.model_extra or {}).get("recheck") or {}
    check("extra_body: strategy applied", r.get("strategy") == "critic", str(r.get("strategy")))

    # Streaming: the answer in chunks, the report on the last chunk.
    pieces, last = [], None
    stream = client.chat.completions.create(
        model=a.model, messages=question, max_tokens=96, stream=True, stream_options={"include_usage": True})
    for chunk in stream:
        last = chunk
        if chunk.choices and chunk.choices[0].delta.content:
            pieces.append(chunk.choices[0].delta.content)
    streamed = "".join(pieces)
    check("stream: text arrived in pieces", len(pieces) > 1 and bool(streamed), f"{len(pieces)} pieces")
    check("stream: usage on the last chunk", last is not None and last.usage is not None, str(last and last.usage))
    check("stream: recheck object on the last chunk", bool((last.model_extra or {}).get("recheck")) if last else False)

    # 401 with the wrong key.
    bad = openai.OpenAI(base_url=a.base_url, api_key="wrong", max_retries=0)
    try:
        bad.chat.completions.create(model=a.model, messages=question)
        check("401: wrong key refused", False, "no error")
    except openai.AuthenticationError as e:
        check("401: wrong key refused", e.status_code == 401, e.message[:80])

    # 400 naming the bad option.
    try:
        client.chat.completions.create(model=a.model, messages=question, extra_body={"recheck": {"rounds": "many"}})
        check("400: bad option refused", False, "no error")
    except openai.BadRequestError as e:
        param = (e.body or {}).get("param") if isinstance(e.body, dict) else None
        check("400: bad option refused, field named", e.status_code == 400 and param == "recheck.rounds", str(param))

    # DSPy pointed at the server. The check is the protocol: DSPy's request reaches the
    # server and DSPy reads the reply. Whether the reply follows DSPy's field format is
    # the model's doing (the 135M embedded model often does not), reported, not judged.
    import dspy

    lm = dspy.LM(f"openai/{a.model}", api_base=a.base_url, api_key=a.key, max_tokens=128, cache=False,
                 num_retries=0)
    dspy.configure(lm=lm)
    before = len(lm.history)
    try:
        out = dspy.Predict("question -> answer")(question="What is the capital of France?")
        check("dspy: Predict answered through the server", isinstance(out.answer, str), repr(out.answer[:80]))
    except dspy.utils.exceptions.AdapterParseError as e:
        got = [h for h in lm.history[before:] if h.get("response") is not None]
        check("dspy: Predict's calls went through the server and came back", bool(got),
              f"{len(got)} replies read; the model's text did not follow DSPy's format "
              f"({type(e).__name__})")
    except Exception as e:  # noqa: BLE001 -- any other failure is the protocol's
        check("dspy: Predict answered through the server", False, f"{type(e).__name__}: {str(e)[:160]}")

    print(json.dumps({"failed": check.failed}))
    sys.exit(1 if check.failed else 0)


if __name__ == "__main__":
    main()
