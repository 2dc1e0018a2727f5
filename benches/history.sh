#!/usr/bin/env bash
# What history costs `run` (DESIGN v2 "History" and "Performance", issue 17):
#
#   bash benches/history.sh [--bin PATH] [--secrets N] [--rounds R] [--out DIR]
#
# Builds two vaults of N secrets (default 1,000) x 10 keys from the same JSON
# (benches/gen_vault.py): "plain", imported once, so every secret is at
# version 1 with no history; and "history", imported the same way and then
# imported over with --force ten more times with new values (other seeds),
# so every secret is at version 11: the current one plus the ten earlier
# versions history keeps, the most it ever holds. Then it times, in R
# rounds (default 40) of one hyperfine run per command, interleaved so that
# load bursts on a shared machine hit every command alike:
#   run-plain    vault run -s <one> -- true    on the plain vault
#   run-history  the same                      on the history vault
#   age-plain    age -d -i key.txt vault.age   (stock age, plain vault)
#   age-history  the same on the history vault
# and prints file sizes, medians and ratios (results.md in --out).
# Needs hyperfine, age-keygen, age and python3.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$here")"
bin=""
n=1000
rounds=40
out="$here/out/history"
while [ $# -gt 0 ]; do
  case "$1" in
    --bin) bin="$2"; shift ;;
    --secrets) n="$2"; shift ;;
    --rounds) rounds="$2"; shift ;;
    --out) out="$2"; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "benches/history.sh: unknown option $1 (try --help)" >&2; exit 2 ;;
  esac
  shift
done
if [ -z "$bin" ]; then
  (cd "$root" && cargo build --release --quiet)
  bin="$root/target/release/vault"
fi
rm -rf "$out"
mkdir -p "$out"
key="$out/key.txt"
age-keygen -o "$key" 2>/dev/null
for seed in 6 7 8 9 10 11 12 13 14 15 16; do
  python3 "$here/gen_vault.py" "$n" "$seed" >"$out/s-$seed.json"
done
"$bin" --vault-dir "$out/plain" --identity "$key" import --from-json "$out/s-6.json" 2>/dev/null
"$bin" --vault-dir "$out/history" --identity "$key" import --from-json "$out/s-6.json" 2>/dev/null
for seed in 7 8 9 10 11 12 13 14 15 16; do
  "$bin" --vault-dir "$out/history" --identity "$key" import --force --from-json "$out/s-$seed.json" 2>/dev/null
done
one="s$(printf '%06d' $((n / 2)))"
versions=$("$bin" --vault-dir "$out/history" --identity "$key" secret history "$one" --json |
  python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')
[ "$versions" = 11 ] || { echo "expected 11 versions of $one, got $versions" >&2; exit 1; }

cmds=()
for v in plain history; do
  cmds+=(-n "run-$v" "$bin --vault-dir $out/$v --identity $key run -s $one -- true")
  cmds+=(-n "age-$v" "age -d -i $key -o /dev/null $out/$v/vault.age")
done
hyperfine -N --runs 3 --style none "${cmds[@]}" >/dev/null 2>&1 # warm-up
for r in $(seq 1 "$rounds"); do
  hyperfine -N --runs 1 --style none --export-json "$out/r$r.json" "${cmds[@]}" >/dev/null 2>&1
  # Rotate the order by one command each round.
  cmds=("${cmds[@]:3}" "${cmds[@]:0:3}")
done
python3 - "$out" "$rounds" "$n" <<'PY'
import json, os, statistics, sys
out, rounds, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
times = {}
for r in range(1, rounds + 1):
    for res in json.load(open(f"{out}/r{r}.json"))["results"]:
        times.setdefault(res["command"], []).extend(res["times"])
med = {k: statistics.median(v) * 1000 for k, v in times.items()}
size = {v: os.path.getsize(f"{out}/{v}/vault.age") for v in ("plain", "history")}
lines = [
    f"{n} secrets x 10 keys; history: every secret at version 11 (ten earlier versions kept)",
    f"",
    f"| vault | file | run (ms) | age -d (ms) | run / age -d |",
    f"|---|---|---|---|---|",
]
for v in ("plain", "history"):
    lines.append(
        f"| {v} | {size[v] / 1024:.0f} KiB | {med['run-' + v]:.2f} | {med['age-' + v]:.2f} | {med['run-' + v] / med['age-' + v]:.2f} |"
    )
lines += [
    "",
    f"run-history / run-plain = {med['run-history'] / med['run-plain']:.2f}; "
    f"file size ratio = {size['history'] / size['plain']:.2f}; "
    f"{rounds} rounds, medians",
]
text = "\n".join(lines) + "\n"
open(f"{out}/results.md", "w").write(text)
print(text)
PY
