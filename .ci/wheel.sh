#!/usr/bin/env bash
# Release check: build the sdist and the wheel as a release would, check their
# metadata with twine, then install the wheel (not the source tree, not
# editable) into a fresh virtual environment and run the command and the
# quick start from there, outside the source tree, so that `import sos` can
# only find what the wheel holds. Called by .ci/run with its venv active.
set -euo pipefail
cd "$(dirname "$0")/.."
src="$PWD"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

python -m pip install -q build twine
python -m build --outdir "$work/dist" . >"$work/build.log" || { cat "$work/build.log"; exit 1; }
ls "$work/dist"
twine check --strict "$work/dist"/*

sdists=("$work/dist"/*.tar.gz)
wheels=("$work/dist"/*.whl)
[ "${#sdists[@]}" = 1 ] && [ "${#wheels[@]}" = 1 ] || { echo "expected one sdist and one wheel" >&2; exit 1; }
# The typing marker ships (PEP 561); the wheel holds the package and no tests.
python - "${wheels[0]}" <<'PY'
import pathlib, sys, zipfile
names = zipfile.ZipFile(sys.argv[1]).namelist()
assert "sos/py.typed" in names, "sos/py.typed is missing from the wheel"
# every module of the source tree, subpackages included, is in the wheel
modules = sorted(p.as_posix() for p in pathlib.Path("sos").rglob("*.py"))
missing = [m for m in modules if m not in names]
assert not missing, f"not in the wheel: {missing}"
assert not [n for n in names if n.startswith("tests/")], "tests in the wheel"
PY

python -m venv "$work/venv"
"$work/venv/bin/python" -m pip install -q "${wheels[0]}"
cd "$work"
"$work/venv/bin/python" - "$work/venv" <<'PY'
import sys, sos
assert sos.__file__.startswith(sys.argv[1]), f"sos imported from {sos.__file__}, not the wheel"
PY
"$work/venv/bin/sos" --version
"$work/venv/bin/sos" --help >/dev/null
"$work/venv/bin/python" "$src/examples/quickstart.py" "$work/quickstart"
echo "wheel check: ok"
