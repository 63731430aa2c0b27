#!/usr/bin/env python3
"""Runs the README's five-minute tour as written, on the embedded model, in a fresh home.

    python3 scripts/docs-tour.py [--quick]

Every ```sh block between "## A five-minute tour" and the next "## " heading is run
line by line (a trailing backslash joins lines; comments after "#" are dropped):
`recheck` is the release binary with --home set to a temporary directory, RUN_ID is the
id the last command of the matching kind printed (an experiment's for `eval report`, the
last `ask` run's otherwise), `page.txt` and `rag-logs.jsonl` are small files written
first (in a temporary directory; commands run from the repository root, where the
README's relative paths point), and `recheck serve` runs in the background until its
block's commands are done (Ctrl-C, as the tour says: it holds the store). --quick runs
experiments with --limit 2. Exits non-zero, naming the line, at the first command that
fails. Needs the default model (fetched into the temporary home unless it is already
in the default home).
"""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def tour_commands(readme):
    text = open(readme, encoding="utf-8").read()
    start = text.index("## A five-minute tour")
    end = text.index("\n## ", start + 1)
    commands = []
    for number, block in enumerate(re.findall(r"```sh\n(.*?)```", text[start:end], re.S)):
        joined = block.replace("\\\n", " ")
        for line in joined.splitlines():
            line = re.sub(r"\s+#.*$", "", line).strip()
            if line:
                commands.append((number, line))
    return commands


def main():
    quick = "--quick" in sys.argv
    subprocess.run(["cargo", "build", "--release", "--quiet", "--bin", "recheck"], cwd=ROOT, check=True)
    binary = os.path.join(ROOT, "target", "release", "recheck")
    home = tempfile.mkdtemp(prefix="recheck-tour-")
    work = tempfile.mkdtemp(prefix="recheck-tour-files-")
    cached = os.path.expanduser("~/.local/share/recheck/models")
    if os.path.isdir(cached):
        shutil.copytree(cached, os.path.join(home, "models"))
    with open(os.path.join(work, "page.txt"), "w") as f:
        f.write("William Herschel discovered Uranus on 13 March 1781 with a telescope of his own making.\n")
    with open(os.path.join(work, "rag-logs.jsonl"), "w") as f:
        for answer in ["Herschel found Uranus in 1781.", "Galileo found Uranus in 1610."]:
            record = {"question": "Who found Uranus?", "answer": answer,
                      "contexts": ["William Herschel discovered Uranus on 13 March 1781."]}
            f.write(json.dumps(record) + "\n")
    ids = {"ask": None, "eval": None}
    server = None
    try:
        serving_block = None
        for block, line in tour_commands(os.path.join(ROOT, "README.md")):
            if server and block != serving_block:
                # As the tour says: serve holds the store, so it stops before the next step.
                server.send_signal(signal.SIGINT)
                server.wait(timeout=30)
                server = None
            kind = "eval" if line.startswith("recheck eval report") else "ask"
            if "RUN_ID" in line:
                if not ids[kind]:
                    sys.exit(f"tour: no run id for: {line}")
                line = line.replace("RUN_ID", ids[kind])
            if quick:
                line = re.sub(r"--limit \d+", "--limit 2", line)
            print(f"tour$ {line}", file=sys.stderr)
            if line.startswith("recheck serve"):
                argv = [binary, "--home", home] + line.split()[1:]
                server = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                serving_block = block
                port = re.search(r"--listen \S+:(\d+)", line).group(1)
                for _ in range(300):
                    try:
                        urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1)
                        break
                    except OSError:
                        time.sleep(0.2)
                else:
                    sys.exit("tour: recheck serve did not come up")
                continue
            for name in ("page.txt", "rag-logs.jsonl", "results.jsonl", "report.html"):
                line = re.sub(rf"(?<![\w/.]){re.escape(name)}", os.path.join(work, name), line)
            shell = line.replace("recheck ", f"{binary} --home {home} ", 1) if line.startswith("recheck ") else line
            env = dict(os.environ, RECHECK_DATA_ROOT=os.path.join(ROOT, "..", "shared", "evals"))
            done = subprocess.run(shell, shell=True, cwd=ROOT, capture_output=True, text=True, env=env)
            if done.returncode != 0:
                sys.exit(f"tour: exit {done.returncode}: {line}\n{done.stderr[-2000:]}")
            found = re.findall(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", done.stdout + done.stderr)
            if line.startswith("recheck eval run") and found:
                ids["eval"] = found[-1]
            elif line.startswith("recheck ask") and found:
                ids["ask"] = found[-1]
        print("tour: every command of the README's tour ran", file=sys.stderr)
    finally:
        if server:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=30)
        shutil.rmtree(home, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
