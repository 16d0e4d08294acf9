#!/usr/bin/env bash
# Make Debian's Chromium available to the site tests (Playwright drives it; nothing downloads a browser at run time).
# `make test` runs this first. Installs the package with apt-get (through sudo when not root) when it is missing;
# when neither works it says which package is missing and how to provide it, and exits 1.
set -uo pipefail
CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
PACKAGE=chromium

fail() {
  echo "ERROR [browser] the site tests need Debian's package '$PACKAGE' ($CHROMIUM), and it could not be installed: $1." >&2
  echo "  Install it (sudo apt-get install $PACKAGE), or set CHROMIUM=/path/to/chromium, then run make test again." >&2
  exit 1
}

[ -x "$CHROMIUM" ] && exit 0
command -v apt-get >/dev/null 2>&1 || fail "apt-get is not available on this machine"
if [ "$(id -u)" -eq 0 ]; then
  SUDO=()
elif command -v sudo >/dev/null 2>&1; then
  SUDO=(sudo)
  [ -t 0 ] || SUDO=(sudo -n)  # no terminal to ask for a password: fail instead of hanging
else
  fail "not running as root and sudo is not available"
fi
echo "[browser] $CHROMIUM is missing: installing Debian's $PACKAGE with apt-get"
out=$(mktemp)
trap 'rm -f "$out"' EXIT
"${SUDO[@]}" apt-get update -qq >"$out" 2>&1 || { tail -n 20 "$out" >&2; fail "apt-get update failed"; }
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$PACKAGE" \
  >"$out" 2>&1 || { tail -n 20 "$out" >&2; fail "apt-get install $PACKAGE failed"; }
[ -x "$CHROMIUM" ] || fail "apt-get installed $PACKAGE but $CHROMIUM is still missing"
echo "[browser] installed $("$CHROMIUM" --version 2>/dev/null || echo "$PACKAGE")"
