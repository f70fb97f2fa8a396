#!/usr/bin/env bash
# Runs every command README.md shows — each ```sh block, top to bottom, as one bash
# script with `set -e` — on loopback, as a new user following README would, and fails
# if any command fails. What it changes, and why:
#   - `splicegen` is the binary built from this checkout (in out/readme/bin, first on PATH);
#     blocks run in the checkout, their output files go to out/readme/.
#   - `go install github.com/...@latest` installs ./cmd/splicegen instead (the module
#     proxy may not be reachable from CI; the package is the same).
#   - The two-hosts example runs on one host: 10.0.0.1 becomes 127.0.0.1.
#   - `scripts/test.sh` is skipped: it is what runs this check.
#   - After a line that ends in `&` (a receiver started in the background) it waits
#     0.5 s, as a person typing the next line would.
#   - Long runs are shortened unless README_CHECK_FULL=1: -t 1h -> 2s, -t 10s -> 1s,
#     --bytes 1GiB -> 64MiB, and the bare `splicegen compare` gets --bytes 256MiB --repeat 1.
# After the install block it checks that `splicegen --version` names a 40-hex revision
# (in a git checkout). Each block has 5 minutes.
#   scripts/readme-check.sh
set -euo pipefail
cd "$(dirname "$0")/.."
out=out/readme
rm -rf "$out"; mkdir -p "$out/bin"
GOFLAGS= go build -buildvcs=auto -o "$out/bin/splicegen" ./cmd/splicegen
export PATH="$PWD/$out/bin:$PATH"

awk -v out="$out" '
  /^```sh$/ { n++; f = sprintf("%s/block%02d.sh", out, n); inb = 1; next }
  /^```/    { if (inb) close(f); inb = 0; next }
  inb       { print > f }
' README.md

blocks=("$out"/block*.sh)
[ ${#blocks[@]} -gt 0 ] || { echo "readme-check: no sh blocks in README.md"; exit 1; }
for b in "${blocks[@]}"; do
  s="$b.run"
  {
    echo 'set -eo pipefail'
    while IFS= read -r line; do
      case "$line" in
        *scripts/test.sh*) echo "# skipped (this check runs inside it): $line"; continue ;;
      esac
      line=${line//github.com\/splicegen\/splicegen\/cmd\/splicegen@latest/.\/cmd\/splicegen}
      line=${line//10.0.0.1/127.0.0.1}
      if [ "${README_CHECK_FULL:-}" != 1 ]; then
        line=${line//-t 1h/-t 2s}
        line=${line//-t 10s/-t 1s}
        line=${line//--bytes 1GiB/--bytes 64MiB}
        [[ "$line" =~ ^splicegen\ compare\ +# ]] && line="splicegen compare --bytes 256MiB --repeat 1"
      fi
      line=${line//--json r.json/--json $out/r.json}
      line=${line//--html r.html/--html $out/r.html}
      line=${line//--csv r.csv/--csv $out/r.csv}
      line=${line//report r.json/report $out/r.json}
      line=${line// r.json/ $out/r.json}
      echo "$line"
      [[ "$line" =~ \&[[:space:]]*(#.*)?$ ]] && echo 'sleep 0.5'
    done < "$b"
    echo 'wait'
  } > "$s"
  echo "== README block $(basename "$b" .sh):"
  sed 's/^/   /' "$b"
  if ! timeout 300 bash "$s" > "$s.log" 2>&1; then
    echo "readme-check: a command of this block failed:"; cat "$s.log"; exit 1
  fi
  if grep -q -- '--version' "$b" && [ -d .git ]; then
    grep -Eq 'revision [0-9a-f]{40}' "$s.log" || { echo "readme-check: --version names no revision:"; cat "$s.log"; exit 1; }
  fi
done
echo "readme-check: ${#blocks[@]} blocks of README.md ran"
