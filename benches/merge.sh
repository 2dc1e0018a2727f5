#!/usr/bin/env bash
# What git's merge driver costs (issue 18; DESIGN v2 "Git", "Performance"):
#
#   bash benches/merge.sh [--bin PATH] [--secrets N] [--changed C] [--rounds R] [--out DIR]
#
# Builds a vault of N secrets (default 1,000) x 10 keys with
# `vault import --from-json` (benches/gen_vault.py): that is BASE. OURS is
# BASE with the first C secrets (default 50) imported over with new values
# (`import --force`), THEIRS is BASE with the last C secrets imported over,
# both by the same member, as two branches that changed different secrets
# would be. Then it times, in R rounds (default 40) of one hyperfine run
# per command, interleaved so that load bursts on a shared machine hit
# every command alike:
#   merge   vault git merge BASE OURS THEIRS team.age   (a fresh copy of
#           OURS each run, made by hyperfine's --prepare, untimed)
#   age     age -d -i key.txt -o /dev/null OURS          (stock age, one file)
# and prints file sizes, medians and the ratio merge / age -d (the goal:
# under 3), checks that the merge result holds both branches' changes, and
# writes results.md in --out. Needs hyperfine, age-keygen, age, python3.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$here")"
bin=""
n=1000
changed=50
rounds=40
out="$here/out/merge"
while [ $# -gt 0 ]; do
  case "$1" in
    --bin) bin="$2"; shift ;;
    --secrets) n="$2"; shift ;;
    --changed) changed="$2"; shift ;;
    --rounds) rounds="$2"; shift ;;
    --out) out="$2"; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "benches/merge.sh: unknown option $1 (try --help)" >&2; exit 2 ;;
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
python3 "$here/gen_vault.py" "$n" 6 >"$out/base.json"
python3 "$here/gen_vault.py" "$n" 7 >"$out/new.json"
python3 - "$out" "$n" "$changed" <<'PY'
import json, sys
out, n, c = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
new = json.load(open(f"{out}/new.json"))
names = sorted(new)
json.dump({k: new[k] for k in names[:c]}, open(f"{out}/ours.json", "w"))
json.dump({k: new[k] for k in names[-c:]}, open(f"{out}/theirs.json", "w"))
PY
v() { "$bin" --vault-dir "$out/dir" --identity "$key" --vault "$out/team.age" "$@" 2>/dev/null; }
v import --from-json "$out/base.json" >/dev/null
cp "$out/team.age" "$out/base.age"
v import --force --from-json "$out/ours.json" >/dev/null
cp "$out/team.age" "$out/ours.age"
cp "$out/base.age" "$out/team.age"
v import --force --from-json "$out/theirs.json" >/dev/null
cp "$out/team.age" "$out/theirs.age"

# One merge, checked: both branches' changes are in the result.
cp "$out/ours.age" "$out/work.age"
v git merge "$out/base.age" "$out/work.age" "$out/theirs.age" team.age
cp "$out/work.age" "$out/team.age"
first="s$(printf '%06d' 0)"
last="s$(printf '%06d' $((n - 1)))"
python3 - "$out" "$first" "$last" "$(v export "$first" --format json)" "$(v export "$last" --format json)" <<'PY'
import json, sys
out, first, last, a, b = sys.argv[1:6]
new = json.load(open(f"{out}/new.json"))
assert json.loads(a) == new[first], "OURS's change is missing from the merge"
assert json.loads(b) == new[last], "THEIRS's change is missing from the merge"
PY

merge="$bin --vault-dir $out/dir --identity $key git merge $out/base.age $out/work.age $out/theirs.age team.age"
cmds=(-n merge --prepare "cp $out/ours.age $out/work.age" "$merge")
cmds+=(-n age --prepare "true" "age -d -i $key -o /dev/null $out/ours.age")
hyperfine -N --runs 3 --style none "${cmds[@]}" >/dev/null 2>&1 # warm-up
for r in $(seq 1 "$rounds"); do
  hyperfine -N --runs 1 --style none --export-json "$out/r$r.json" "${cmds[@]}" >/dev/null 2>&1
  # Swap the order each round.
  cmds=("${cmds[@]:5}" "${cmds[@]:0:5}")
done
python3 - "$out" "$rounds" "$n" "$changed" <<'PY'
import json, os, statistics, sys
out, rounds, n, c = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
times = {}
for r in range(1, rounds + 1):
    for res in json.load(open(f"{out}/r{r}.json"))["results"]:
        times.setdefault(res["command"], []).extend(res["times"])
med = {k: statistics.median(v) * 1000 for k, v in times.items()}
size = os.path.getsize(f"{out}/ours.age")
ratio = med["merge"] / med["age"]
lines = [
    f"{n} secrets x 10 keys ({size / 1024:.0f} KiB); OURS changed the first {c} secrets, THEIRS the last {c}",
    "",
    "| command | median (ms) |",
    "|---|---|",
    f"| vault git merge BASE OURS THEIRS | {med['merge']:.2f} |",
    f"| age -d (one file) | {med['age']:.2f} |",
    "",
    f"merge / age -d = {ratio:.2f} (goal: under 3); {rounds} rounds, medians",
]
text = "\n".join(lines) + "\n"
open(f"{out}/results.md", "w").write(text)
print(text)
PY
