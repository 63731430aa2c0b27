#!/usr/bin/env python3
"""Measure recheck's claim judge on SciFact and AVeriTeC (../shared/evals), the way
BENCHMARKS.md reports it: label accuracy, macro-F1 and balanced accuracy with 95%
bootstrap intervals, beside the majority-class baseline, for the model judge raw,
contextually calibrated, calibrated by offsets fitted on a disjoint part of the same
file (`recheck calibrate`), and the lexical judge.

Only SciFact's claims_train is in ../shared/evals (its dev claims are held out), so the
claims are split by position: even positions fit the calibration, odd positions are
reported. AVeriTeC dev is split the same way. Its four labels map to the judge's three:
Supported -> supported, Refuted -> contradicted, Not Enough Evidence and Conflicting
Evidence/Cherrypicking -> not enough info.

Settings: `oracle` gives each claim its gold evidence as contexts (SciFact: the cited
abstracts; AVeriTeC: its question-answer pairs); `retrieval` (SciFact only) gives none
and verifies against a BM25 index of the corpus (built once under --work).

Every record is a stored `verify` run; the script reads the rows `recheck verify`
writes. Standard library only.

    scripts/bench-judge.py --bin target/release/recheck --dataset scifact --n 100
"""

import argparse
import json
import random
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

LABELS = ["supported", "contradicted", "not_enough_info"]
EVALS = Path(__file__).resolve().parent.parent.parent / "shared" / "evals"


def scifact(setting):
    root = EVALS / "scifact"
    corpus = {}
    with open(root / "corpus.jsonl") as f:
        for line in f:
            d = json.loads(line)
            corpus[d["doc_id"]] = d["title"] + ". " + " ".join(d["abstract"])
    records = []
    with open(root / "claims_train.jsonl") as f:
        for line in f:
            c = json.loads(line)
            labels = {e["label"] for docs in c["evidence"].values() for e in docs}
            label = "SUPPORT" if labels == {"SUPPORT"} else "CONTRADICT" if labels == {"CONTRADICT"} else "NEI"
            if len(labels) > 1:
                continue  # mixed evidence: no single gold label
            record = {"id": str(c["id"]), "answer": c["claim"], "label": label}
            if setting == "oracle":
                record["contexts"] = [
                    {"id": str(d), "text": corpus[d]} for d in c["cited_doc_ids"] if d in corpus
                ]
            records.append(record)
    return records


def averitec(setting):
    if setting != "oracle":
        sys.exit("AVeriTeC ships no documents to retrieve from: only --setting oracle")
    data = json.loads((EVALS / "averitec_dev" / "dev.json").read_text())
    records = []
    for i, c in enumerate(data):
        contexts = []
        for q in c.get("questions", []):
            answers = " ".join(
                a.get("answer", "") + (" " + a["boolean_explanation"] if a.get("boolean_explanation") else "")
                for a in q.get("answers", [])
            )
            contexts.append(f"Q: {q['question']} A: {answers}")
        records.append({"id": str(i), "answer": c["claim"], "contexts": contexts, "label": c["label"]})
    return records


def gold(label):
    l = label.strip().lower()
    if l in ("support", "supported"):
        return "supported"
    if l in ("contradict", "refuted"):
        return "contradicted"
    return "not_enough_info"


def predicted(row):
    """The label a row gives: its one claim's verdict (an error row abstains)."""
    claims = row.get("claims") or []
    verdict = claims[0].get("verdict") if claims else None
    return {"supported": "supported", "contradicted": "contradicted"}.get(verdict, "not_enough_info")


def metrics(pairs):
    n = len(pairs)
    acc = sum(g == p for g, p in pairs) / n
    f1s, recalls = [], []
    for label in LABELS:
        tp = sum(g == label and p == label for g, p in pairs)
        fp = sum(g != label and p == label for g, p in pairs)
        fn = sum(g == label and p != label for g, p in pairs)
        if tp + fn:
            recalls.append(tp / (tp + fn))
        f1s.append(0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn))
    return {"accuracy": acc, "macro_f1": sum(f1s) / len(f1s), "balanced_accuracy": sum(recalls) / len(recalls)}


def with_intervals(pairs, resamples=1000):
    point = metrics(pairs)
    rng = random.Random(0)
    draws = [metrics([rng.choice(pairs) for _ in pairs]) for _ in range(resamples)]
    out = {}
    for key, value in point.items():
        values = sorted(d[key] for d in draws)
        out[key] = (value, values[int(0.025 * resamples)], values[int(0.975 * resamples) - 1])
    return out


def run(cmd, log):
    log.write(" ".join(map(str, cmd)) + "\n")
    log.flush()
    started = time.time()
    done = subprocess.run(cmd, stderr=subprocess.PIPE, text=True)
    log.write(done.stderr + "\n")
    if done.returncode not in (0, 1):
        sys.exit(f"{cmd[1]} failed ({done.returncode}): {done.stderr[-2000:]}")
    return time.time() - started


def rows(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default="target/release/recheck")
    ap.add_argument("--dataset", choices=["scifact", "averitec"], default="scifact")
    ap.add_argument("--setting", choices=["oracle", "retrieval"], default="oracle")
    ap.add_argument("--n", type=int, default=100, help="claims in each of the fit and report parts")
    ap.add_argument("--model", default="local")
    ap.add_argument("--concurrency", default="2")
    ap.add_argument("--work", default="target/bench-judge")
    ap.add_argument("--judges", default="raw,contextual,fitted,lexical")
    ap.add_argument("--calibration-file", help="use these fitted offsets instead of fitting on this file's fit part")
    args = ap.parse_args()

    records = scifact(args.setting) if args.dataset == "scifact" else averitec(args.setting)
    fit, report = records[0::2][: args.n], records[1::2][: args.n]
    work = Path(args.work) / f"{args.dataset}-{args.setting}-{args.n}"
    work.mkdir(parents=True, exist_ok=True)
    for name, part in (("fit", fit), ("report", report)):
        with open(work / f"{name}.jsonl", "w") as f:
            for r in part:
                f.write(json.dumps(r) + "\n")
    log = open(work / "log.txt", "a")
    common = ["--model", args.model, "--concurrency", args.concurrency]
    extra = []
    if args.setting == "retrieval":
        index = Path(args.work) / "scifact-index"
        if not index.exists():
            corpus = str(EVALS / "scifact" / "corpus.jsonl")
            fields = ["--id-field", "doc_id", "--text-field", "abstract"]
            run([args.bin, "index", corpus, "--index", str(index)] + fields, log)
        extra = ["--index", str(index)]

    judges = args.judges.split(",")
    calibration = Path(args.calibration_file) if args.calibration_file else work / "calibration.json"
    timings = {}
    if "fitted" in judges and not args.calibration_file:
        if args.setting == "retrieval":
            # calibrate judges against a record's contexts, and these records have none.
            sys.exit("--setting retrieval: give --calibration-file (offsets fitted in the oracle setting)")
        timings["calibrate"] = run([args.bin, "calibrate", str(work / "fit.jsonl"), "--out", str(calibration)] + common, log)
    variants = {
        "raw": ["--calibration", "none"],
        "contextual": ["--calibration", "contextual"],
        "fitted": ["--calibration", str(calibration)],
        "lexical": ["--judge", "lexical"],
    }
    golds = [gold(r["label"]) for r in report]
    majority = Counter(gold(r["label"]) for r in fit).most_common(1)[0][0]
    table = {"majority class (" + majority + ")": with_intervals([(g, majority) for g in golds])}
    failed = {}
    for name in judges:
        out = work / f"rows-{name}.jsonl"
        cmd = [args.bin, "verify", str(work / "report.jsonl"), "--claims", "whole", "--out", str(out), "--skip-bad"]
        timings[name] = run(cmd + common + extra + variants[name], log)
        got = {r["id"]: r for r in rows(out)}
        failed[name] = sum(1 for r in got.values() if "error" in r)
        preds = [predicted(got.get(r["id"], {})) for r in report]
        table[name] = with_intervals(list(zip(golds, preds)))
        table[name]["predicted"] = dict(Counter(preds))
    result = {
        "dataset": args.dataset,
        "setting": args.setting,
        "report_claims": len(report),
        "fit_claims": len(fit),
        "gold": dict(Counter(golds)),
        "model": args.model,
        "table": table,
        "failed_rows": failed,
        "seconds": timings,
        "calibration": json.loads(calibration.read_text()) if calibration.exists() else None,
    }
    (work / "result.json").write_text(json.dumps(result, indent=1))
    print(f"{args.dataset} {args.setting}: {len(report)} claims reported (gold {dict(Counter(golds))}), "
          f"{len(fit)} fit; model {args.model}\n")
    print("| judge | label accuracy | macro-F1 | balanced accuracy | predicted |")
    print("|---|---|---|---|---|")
    for name, m in table.items():
        cells = [f"{v:.3f} [{lo:.3f}, {hi:.3f}]" for v, lo, hi in (m[k] for k in ("accuracy", "macro_f1", "balanced_accuracy"))]
        print(f"| {name} | " + " | ".join(cells) + f" | {m.get('predicted', '')} |")
    print(f"\nfailed rows {failed}; seconds {({k: round(v) for k, v in timings.items()})}; work in {work}")


if __name__ == "__main__":
    main()
