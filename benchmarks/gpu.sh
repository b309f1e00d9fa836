#!/usr/bin/env bash
# One GPU session's run, within a time budget: the sweep benchmark's GPU section, the training benchmark on CUDA and
# the paper-scale sweep (configs/sweep-paper-mnist.yaml + configs/sweep-paper-fashion-mnist.yaml, 1,920,000 attacks),
# then the results and the sweep's summary table in $RESULTS (and in $OUT, where the device tool fetches files from).
#
#   benchmarks/gpu.sh                 # on a CUDA machine: full sizes, about GPU_BUDGET_S = 540 s in all
#   benchmarks/gpu.sh --tiny          # anywhere, on the CPU: toy sizes, a couple of minutes, results in /tmp
#   benchmarks/gpu.sh prepare [DIR]   # here, before a GPU session: fill DIR (default .gpu-carry) with what the
#                                     # device machine lacks (see "Before the GPU session")
#
# Stages and how the budget is kept (every cap is a `timeout`; $SECONDS counts from the start):
#   1. benchmarks/sweep.py --gpu-section --gpu-budget BENCH_CAP_S: starts no new row after BENCH_CAP_S seconds (the rows
#      left are recorded as skipped) and writes its JSON after every row; a hard `timeout` of BENCH_CAP_S + 90 s stops
#      a row that overruns (a slow compilation), leaving the JSON of the rows before it ("complete": false).
#   2. benchmarks/training.py --device cuda --budget TRAIN_CAP_S (its GPU section: seconds per epoch of every method on
#      all of MNIST at a large batch; it times whole epochs only while they fit in its budget and writes its JSON after
#      every row) under a hard `timeout` of TRAIN_CAP_S + 60 s.
#   3. the paper sweep: what is left of GPU_BUDGET_S (minus 30 s for the reports) is split between the two data sets;
#      each `python -m attrbound_lite.sweep` runs under `timeout` with its share. A sweep is resumable by shard
#      (100 images of one model, written atomically): a stopped one keeps its finished shards, its report covers
#      them, and rerunning the printed command (same --out) finishes it later. Shards go model by model, so a
#      partial run covers the first models (natural, then pgd_at, ...) completely and the last ones not at all.
#   4. reports: sweep_paper-<device>.{txt,csv,json} (attrbound report of each folder, its summary table with a
#      dataset column, and attacks run / planned / rates / whether the cap stopped it).
#
# Environment (defaults: full / --tiny):
#   GPU_BUDGET_S  540 / 240      seconds for the whole script (one device call runs at most 600 s)
#   BENCH_CAP_S   150 / 60       the GPU section's budget
#   TRAIN_CAP_S   120 / 45       the training benchmark's budget (--budget)
#   TRAIN_ARGS    "" / --tiny    extra arguments of benchmarks/training.py
#   RESULTS       benchmarks/results / /tmp/attrbound-gpu-tiny/results
#   WORK          /tmp/attrbound-gpu(-tiny)   sweep folders, logs, caches (a rerun with the same WORK resumes)
#   PYTHON        .venv/bin/python if it runs, else python3
#   ATTRBOUND_DATA_MIRROR        the data mirror (default ../shared/data, else $CARRY/data)
#   CARRY         .gpu-carry     what `prepare` filled: data/ (mirror) and whl/ (wheels installed to /tmp/site)
#   OUT           set by the device tool: the results and the log are copied there too (8 files at most)
#
# Before the GPU session (the device machine has PyTorch, pandas, pyarrow, PyYAML, safetensors, torchvision but no
# pydantic, and no data; the working tree travels, ../shared does not, 64 MiB in all):
#   benchmarks/gpu.sh prepare      (.gpu-carry/ is git-ignored, as the device tool's carry needs)
#   -> .gpu-carry/data/MNIST/raw/*.gz (all four: the training benchmark times MNIST), .gpu-carry/data/FashionMNIST/
#      raw/t10k-*.gz (the test split only: its training archives would not fit), .gpu-carry/whl/ (pydantic and its
#      four dependencies for Python 3.12), about 20 MB. The GPU session then runs, in one call of about 10 minutes:
#   run(command="PYTHONUNBUFFERED=1 bash benchmarks/gpu.sh", carry=[".gpu-carry"], timeout_s=600)
#   and copies the returned files into benchmarks/results/ (the log aside).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
TINY=0
case "${1:-}" in
    --tiny) TINY=1 ;;
    prepare)
        DEST="${2:-.gpu-carry}"
        MIRROR="${ATTRBOUND_DATA_MIRROR:-$ROOT/../shared/data}"
        mkdir -p "$DEST/data/MNIST/raw" "$DEST/data/FashionMNIST/raw" "$DEST/whl"
        install -m 0644 "$MIRROR"/MNIST/raw/*.gz "$DEST/data/MNIST/raw/"
        install -m 0644 "$MIRROR"/FashionMNIST/raw/t10k-*.gz "$DEST/data/FashionMNIST/raw/"
        if [ "${NO_WHEELS:-0}" != 1 ]; then
            PY="${PYTHON:-$ROOT/.venv/bin/python}"
            # the versions of this environment, for the device's Python 3.12 (manylinux x86-64)
            mapfile -t PINS < <("$PY" - <<'EOF'
from importlib.metadata import version
for name in ("pydantic", "pydantic_core", "annotated_types", "typing_inspection", "typing_extensions"):
    print(f"{name}=={version(name)}")
EOF
)
            "$PY" -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
                --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
                -d "$DEST/whl" "${PINS[@]}"
        fi
        du -sh "$DEST"
        exit 0 ;;
    "") ;;
    *) echo "usage: benchmarks/gpu.sh [--tiny | prepare [DIR]]" >&2; exit 2 ;;
esac

if [ "$TINY" = 1 ]; then
    : "${GPU_BUDGET_S:=240}" "${BENCH_CAP_S:=60}" "${TRAIN_CAP_S:=45}" "${TRAIN_ARGS=--tiny}"
    : "${RESULTS:=/tmp/attrbound-gpu-tiny/results}" "${WORK:=/tmp/attrbound-gpu-tiny}"
    export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
else
    : "${GPU_BUDGET_S:=540}" "${BENCH_CAP_S:=150}" "${TRAIN_CAP_S:=120}" "${TRAIN_ARGS=}"
    : "${RESULTS:=$ROOT/benchmarks/results}" "${WORK:=/tmp/attrbound-gpu}"
fi
CARRY="${CARRY:-$ROOT/.gpu-carry}"
mkdir -p "$RESULTS" "$WORK"
LOG="$WORK/gpu.log"
exec > >(tee -a "$LOG") 2>&1
say() { printf '[gpu.sh %4ds] %s\n' "$SECONDS" "$*"; }

# ------------------------------------------------------------------ Python, packages, data
if [ -z "${PYTHON:-}" ]; then
    if [ -x "$ROOT/.venv/bin/python" ] && "$ROOT/.venv/bin/python" -c "import torch" 2>/dev/null; then
        PYTHON="$ROOT/.venv/bin/python"
    else
        PYTHON=python3
    fi
fi
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"   # the package from this tree, installed or not
if ! "$PYTHON" -c "import pydantic" 2>/dev/null; then
    if compgen -G "$CARRY/whl/*.whl" >/dev/null; then
        "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
            "$CARRY"/whl/*.whl
        export PYTHONPATH="$PYTHONPATH:/tmp/site"
    else
        say "pydantic is missing and $CARRY/whl holds no wheels: run 'benchmarks/gpu.sh prepare' first"; exit 2
    fi
fi
if [ -z "${ATTRBOUND_DATA_MIRROR:-}" ]; then
    if [ -d "$ROOT/../shared/data" ]; then ATTRBOUND_DATA_MIRROR="$ROOT/../shared/data"
    elif [ -d "$CARRY/data" ]; then ATTRBOUND_DATA_MIRROR="$CARRY/data"
    else say "no data: set ATTRBOUND_DATA_MIRROR or run 'benchmarks/gpu.sh prepare'"; exit 2; fi
fi
export ATTRBOUND_DATA_MIRROR ATTRBOUND_DATA="${ATTRBOUND_DATA:-$WORK/data}"
# A mirror with only the test archives of a data set (prepare's Fashion-MNIST): torchvision reads a data root whose
# four extracted files exist, so the test files are extracted there and the training ones left empty; the sweep
# reads the test split only (its fingerprint is checked on load).
for ds in MNIST FashionMNIST; do
    raw="$ATTRBOUND_DATA_MIRROR/$ds/raw"
    if [ -f "$raw/t10k-images-idx3-ubyte.gz" ] && [ ! -f "$raw/train-images-idx3-ubyte.gz" ]; then
        mkdir -p "$ATTRBOUND_DATA/$ds/raw"
        for f in t10k-images-idx3-ubyte t10k-labels-idx1-ubyte; do
            [ -s "$ATTRBOUND_DATA/$ds/raw/$f" ] || gunzip -c "$raw/$f.gz" > "$ATTRBOUND_DATA/$ds/raw/$f"
        done
        touch "$ATTRBOUND_DATA/$ds/raw/train-images-idx3-ubyte" "$ATTRBOUND_DATA/$ds/raw/train-labels-idx1-ubyte"
        say "$ds: test split only (the mirror has no training archives)"
    fi
done
export TORCHINDUCTOR_CACHE_DIR="${TORCHINDUCTOR_CACHE_DIR:-$WORK/inductor}"
export TRITON_CACHE_DIR="${TRITON_CACHE_DIR:-$TORCHINDUCTOR_CACHE_DIR/triton}"

if [ "$TINY" = 1 ]; then
    DEVICE=cpu
else
    "$PYTHON" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" \
        || { say "no CUDA device here: run benchmarks/gpu.sh --tiny for the CPU smoke run"; exit 2; }
    DEVICE=cuda
fi
SLUG="$("$PYTHON" -c "
import re, torch
name = torch.cuda.get_device_name() if '$DEVICE' == 'cuda' else 'cpu'
print(re.sub(r'[^a-z0-9]+', '-', name.lower()).strip('-'))")"
say "python $PYTHON; device $DEVICE ($SLUG); budget ${GPU_BUDGET_S} s; results -> $RESULTS; work $WORK"
"$PYTHON" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)" || true
[ "$DEVICE" = cuda ] && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
STATUS="$WORK/status.env"
: > "$STATUS"

# ------------------------------------------------------------------ 1. the sweep benchmark's GPU section
say "1. benchmarks/sweep.py --gpu-section (budget ${BENCH_CAP_S} s)"
rc=0
timeout -k 10 $((BENCH_CAP_S + 90)) "$PYTHON" benchmarks/sweep.py --gpu-section --device "$DEVICE" \
    --gpu-budget "$BENCH_CAP_S" --gpu-out "$RESULTS/sweep_gpu-$SLUG.json" $([ "$TINY" = 1 ] && echo --tiny) || rc=$?
echo "bench_rc=$rc" >> "$STATUS"
say "1. done (exit $rc$([ $rc = 124 ] && echo ': stopped by the cap; the JSON holds the rows before'))"

# ------------------------------------------------------------------ 2. the training benchmark on the device
say "2. benchmarks/training.py --device $DEVICE --budget $TRAIN_CAP_S $TRAIN_ARGS"
rc=0
# shellcheck disable=SC2086  # TRAIN_ARGS: words
timeout -k 10 $((TRAIN_CAP_S + 60)) "$PYTHON" benchmarks/training.py --device "$DEVICE" --budget "$TRAIN_CAP_S" \
    $TRAIN_ARGS --out "$RESULTS/training_gpu-$SLUG.json" || rc=$?
echo "training_rc=$rc" >> "$STATUS"
say "2. done (exit $rc$([ $rc = 124 ] && echo ': stopped by the cap; its JSON holds the rows before'))"

# ------------------------------------------------------------------ 3. the paper sweep, in the time left
CONFIGS=()
for ds in mnist fashion-mnist; do
    if [ "$TINY" = 1 ]; then  # the same file at toy size: 2 images in shards of 1, 2 radii per norm, 2 steps
        "$PYTHON" - "$ROOT/configs/sweep-paper-$ds.yaml" "$WORK/sweep-paper-$ds-tiny.yaml" <<'EOF'
import sys
from pathlib import Path

import yaml

src, dst = Path(sys.argv[1]), Path(sys.argv[2])
cfg = yaml.safe_load(src.read_text())
for m in cfg["models"]:
    m["checkpoint"] = str((src.parent / m["checkpoint"]).resolve())
cfg["data"]["n_samples"], cfg["shard_size"], cfg["batch_size"], cfg["restarts"], cfg["device"] = 2, 1, 1, 1, "cpu"
cfg["eps"] = {norm: radii[-2:] for norm, radii in cfg["eps"].items()}
cfg["attributions"] = ["saliency", {"name": "integrated_gradients", "n_steps": 4}]
for a in cfg["attacks"]:
    a["steps"] = 2
dst.write_text(yaml.safe_dump(cfg))
EOF
        CONFIGS+=("$WORK/sweep-paper-$ds-tiny.yaml")
    else
        CONFIGS+=("$ROOT/configs/sweep-paper-$ds.yaml")
    fi
done
LEFT=$((GPU_BUDGET_S - SECONDS - 30))
say "3. paper sweep: ${LEFT} s left for ${#CONFIGS[@]} sweeps"
i=0
for cfg in "${CONFIGS[@]}"; do
    ds=$(basename "$cfg" .yaml); ds=${ds#sweep-paper-}; ds=${ds%-tiny}
    out="$WORK/sweep-paper-$ds"
    share=$(( (GPU_BUDGET_S - SECONDS - 30) / (${#CONFIGS[@]} - i) ))
    i=$((i + 1))
    before=$( (find "$out/shards" -name '*.parquet' 2>/dev/null || true) | wc -l)
    if [ "$share" -lt 20 ]; then
        say "3. $ds: skipped (${share} s left)"; echo "sweep_${ds//-/_}_rc=skipped" >> "$STATUS"; continue
    fi
    say "3. $ds: python -m attrbound_lite.sweep $cfg --out $out (cap ${share} s; ${before} shards already done)"
    t0=$SECONDS; rc=0
    timeout -k 10 "$share" "$PYTHON" -m attrbound_lite.sweep "$cfg" --out "$out" --no-progress > "$WORK/sweep-$ds.out" \
        2>&1 || rc=$?
    tail -n 3 "$WORK/sweep-$ds.out" | sed 's/^/    /'
    echo "sweep_${ds//-/_}_rc=$rc" >> "$STATUS"
    echo "sweep_${ds//-/_}_seconds=$((SECONDS - t0))" >> "$STATUS"
    echo "sweep_${ds//-/_}_shards_before=$before" >> "$STATUS"
    echo "sweep_${ds//-/_}_config=$cfg" >> "$STATUS"
    say "3. $ds: exit $rc$([ $rc = 124 ] && echo ': stopped by the cap (resumable: rerun the same command)')"
done

# ------------------------------------------------------------------ 4. reports
say "4. reports"
"$PYTHON" - "$WORK" "$RESULTS" "$SLUG" "$STATUS" "$GPU_BUDGET_S" "$TINY" <<'EOF'
import json
import sys
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from attrbound_lite._io import write_json
from attrbound_lite.sweep import report

work, results, slug, status_file, budget, tiny = sys.argv[1:]
work, results = Path(work), Path(results)
status = dict(line.split("=", 1) for line in Path(status_file).read_text().split())
texts, tables, sweeps = [], [], {}
for ds in ("mnist", "fashion-mnist"):
    key, out = ds.replace("-", "_"), work / f"sweep-paper-{ds}"
    rc = status.get(f"sweep_{key}_rc")
    if not (out / "manifest.json").is_file():
        sweeps[ds] = dict(ran=False, exit=rc)
        texts.append(f"== {ds}: not run ({rc})")
        continue
    rep = report(out, quiet=True)
    manifest = json.loads((out / "manifest.json").read_text())
    shards = {s["file"]: s for s in manifest["shards"]}
    done = sorted((out / f for f in shards if (out / f).is_file()), key=lambda p: p.stat().st_mtime)
    before = int(status.get(f"sweep_{key}_shards_before", 0))
    new = done[before:] if before else done
    seconds = float(status.get(f"sweep_{key}_seconds", "nan"))
    attacks_new = sum(shards[str(p.relative_to(out))]["attacks"] for p in new)
    # the compute rate between the first and the last shard written in this run (start-up and loading excluded)
    later = new[1:]
    span = later[-1].stat().st_mtime - new[0].stat().st_mtime if later else 0.0
    rate_shards = sum(shards[str(p.relative_to(out))]["attacks"] for p in later) / span if span > 0 else None
    sweeps[ds] = dict(
        ran=True, exit=rc, stopped_by_cap=rc == "124", complete=rep.complete, config=status.get(f"sweep_{key}_config"),
        attacks_run=rep.n_attacks, attacks_planned=rep.n_attacks_planned, shards_done=rep.shards_done,
        shards_total=rep.shards_total, attacks_this_run=attacks_new, seconds_this_run=seconds,
        attacks_per_second_wall=round(attacks_new / seconds, 1) if seconds > 0 else None,
        attacks_per_second_between_shards=None if rate_shards is None else round(rate_shards, 1),
        resume=f"python -m attrbound_lite.sweep {status.get(f'sweep_{key}_config')} --out {out}")
    texts.append(f"== {ds} ({out})\n{rep}")
    if not rep.summary.empty:
        tables.append(rep.summary.assign(dataset=ds))
    print(f"{ds}: {rep.n_attacks:,} of {rep.n_attacks_planned:,} attacks ({rep.shards_done}/{rep.shards_total} shards), "
          f"{attacks_new:,} in this run's {seconds:.0f} s", flush=True)
stem = f"sweep_paper-{slug}"
(results / f"{stem}.txt").write_text("\n\n".join(texts) + "\n")
if tables:
    table = pd.concat(tables, ignore_index=True)
    table[["dataset", *[c for c in table.columns if c != "dataset"]]].to_csv(results / f"{stem}.csv", index=False)
write_json(results / f"{stem}.json", dict(
    sweeps=sweeps, attacks_run=sum(s.get("attacks_run", 0) for s in sweeps.values()),
    attacks_planned=sum(s.get("attacks_planned", 0) for s in sweeps.values()), mode="tiny" if tiny == "1" else "full",
    device_slug=slug, budget_seconds=float(budget), benchmark_exit=status.get("bench_rc"),
    training_exit=status.get("training_rc"), summary_csv=f"{stem}.csv" if tables else None,
    date=datetime.now(timezone.utc).isoformat(timespec="seconds")))
EOF

# ------------------------------------------------------------------ 5. what comes back
say "results in $RESULTS:"
ls -la "$RESULTS" | grep -E "(sweep_gpu|training_gpu|sweep_paper)-$SLUG" || true
if [ -n "${OUT:-}" ] && [ -d "$OUT" ]; then
    for f in "$RESULTS"/sweep_gpu-"$SLUG".json "$RESULTS"/training_gpu-"$SLUG".json \
             "$RESULTS"/sweep_paper-"$SLUG".{txt,csv,json}; do
        [ -f "$f" ] && cp "$f" "$OUT/"
    done
    cp "$LOG" "$OUT/gpu-$SLUG.log"
    say "copied to \$OUT: $(ls "$OUT" | tr '\n' ' ')"
fi
say "done in ${SECONDS} s (budget ${GPU_BUDGET_S} s)"
