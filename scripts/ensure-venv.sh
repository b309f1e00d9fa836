#!/usr/bin/env bash
# Create/update the project venv (.venv) idempotently.
#
#   bash scripts/ensure-venv.sh          # project (editable) + `test` extra
#   bash scripts/ensure-venv.sh --book   # project (editable) + `test`, `book` and `compare` extras
#
# Installs `-e ".[<extras>]" -c requirements/constraints.txt` only when the
# sha256 of (pyproject.toml + requirements/constraints.txt + requested extras)
# is not recorded in .venv/.attrbound-install-stamp; otherwise prints
# "venv up to date" and exits. An install with --book also records the plain
# `test` hash (its extras are a superset), so alternating `make book` and
# `make test` does not reinstall.
#
# Environment: PYTHON=/path/to/python3.x picks the interpreter for a new venv.
set -euo pipefail

export PIP_DISABLE_PIP_VERSION_CHECK=1

cd "$(dirname "${BASH_SOURCE[0]}")/.."

VENV=.venv
STAMP="$VENV/.attrbound-install-stamp"
CONSTRAINTS=requirements/constraints.txt
EXTRAS=test

while [[ $# -gt 0 ]]; do
    case "$1" in
        --book) EXTRAS=test,book,compare ;;
        -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
        *) echo "ensure-venv: unknown argument: $1 (usage: $0 [--book])" >&2; exit 2 ;;
    esac
    shift
done

# attrbound_lite/__init__.py defines __version__ (read statically by setuptools).
for f in pyproject.toml "$CONSTRAINTS" attrbound_lite/__init__.py; do
    [[ -f "$f" ]] || { echo "ensure-venv: missing $f" >&2; exit 1; }
done

sha256() { sha256sum | cut -d' ' -f1; }
# hash of the inputs for a given extras string
input_hash() { cat pyproject.toml "$CONSTRAINTS" <(printf 'extras=%s\n' "$1") | sha256; }

# Fail unless "$1" is a Python >= 3.11.
check_python() {
    local py="$1" ver
    if ! ver="$("$py" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)"; then
        echo "ensure-venv: cannot run '$py'" >&2; return 1
    fi
    if ! "$py" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
        echo "ensure-venv: '$py' is Python $ver; attrbound-lite needs Python >= 3.11" \
             "Set PYTHON=/path/to/python3.11." >&2
        return 1
    fi
}

if [[ ! -x "$VENV/bin/python" ]]; then
    if [[ -n "${PYTHON:-}" ]]; then
        py="$PYTHON"
    elif command -v python3.11 >/dev/null 2>&1; then
        py=python3.11
    elif command -v python3 >/dev/null 2>&1; then
        py=python3
    else
        echo "ensure-venv: no python3 found; install Python >= 3.11" >&2
        exit 1
    fi
    check_python "$py"
    echo "ensure-venv: creating $VENV with $("$py" -c 'import sys; print(sys.executable, sys.version.split()[0])')"
    "$py" -m venv "$VENV"
else
    check_python "$VENV/bin/python"
fi

want="$(input_hash "$EXTRAS")"
if [[ -f "$STAMP" ]] && grep -qx "$want  $EXTRAS" "$STAMP"; then
    echo "venv up to date"
    exit 0
fi

echo "ensure-venv: installing -e \".[$EXTRAS]\" with -c $CONSTRAINTS" \
     "(first install of torch takes a few minutes and ~6 GB)"
rm -f "$STAMP"
"$VENV/bin/python" -m pip install --quiet --progress-bar off \
    -c "$CONSTRAINTS" -e ".[$EXTRAS]"

{
    printf '%s  %s\n' "$want" "$EXTRAS"
    if [[ "$EXTRAS" != test ]]; then
        printf '%s  %s\n' "$(input_hash test)" test
    fi
} > "$STAMP"
echo "ensure-venv: done ($("$VENV/bin/python" -c 'import sys; print("Python", sys.version.split()[0])'))"
