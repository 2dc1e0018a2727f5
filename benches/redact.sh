#!/usr/bin/env bash
# The redaction benchmark (issue 19; DESIGN.md "v2: CI and output"): how fast
# a command's output passes through `vault run --redact` and `vault redact`.
# Goal: a 100 MB output at no less than 200 MB/s.
#
#   bash benches/redact.sh             # release build, 100 MB, 10 rounds
#   bash benches/redact.sh --quick     # debug build, 10 MB, 2 rounds (proves the harness works)
#
# It imports one secret of 10 values of 60 characters and a 5-line key
# (benches/gen_log.py), writes a log of BYTES bytes in which one line in 500
# quotes a value or a line of the key, checks once that `vault redact`
# masks every quote and leaves no value behind, then times side by side, in
# one-run hyperfine rounds with the order rotated (as benches/run.sh does):
#   cat          cat LOG                                  (reading and writing the bytes)
#   pipe         sh -c 'cat LOG | cat'                    (the same through one more pipe)
#   run          vault run -s bench -- cat LOG            (exec: nothing in between)
#   run-redact   vault run --redact -s bench -- cat LOG   (vault as the parent, masking)
#   redact       sh -c 'vault redact -s bench < LOG'      (the filter)
# and peak memory of run-redact (GNU time). Output goes to /dev/null, which
# is not a terminal, so --redact masks. Figures: medians of wall time;
# throughput is BYTES over the median of the whole command.
#
# Options: --quick, --bytes N, --rounds N, --bin PATH, --out DIR (default
# benches/out/redact), --publish (copy results.md to
# benches/results/redact.md). Needs hyperfine, age-keygen and python3.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$here")"
quick=0
bytes=100000000
rounds=10
bin=""
out="$root/benches/out/redact"
publish=0
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) quick=1; bytes=10000000; rounds=2 ;;
    --bytes) bytes="$2"; shift ;;
    --rounds) rounds="$2"; shift ;;
    --bin) bin="$2"; shift ;;
    --out) out="$2"; shift ;;
    --publish) publish=1 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "benches/redact.sh: unknown option $1 (try --help)" >&2; exit 2 ;;
  esac
  shift
done
for tool in hyperfine age-keygen python3; do
  command -v "$tool" >/dev/null 2>&1 || { echo "benches/redact.sh: missing $tool" >&2; exit 1; }
done
say() { printf '\n== %s\n' "$*" >&2; }

if [ -z "$bin" ]; then
  if [ "$quick" = 1 ]; then
    (cd "$root" && cargo build --quiet); bin="$root/target/debug/vault"
  else
    say "cargo build --release"
    (cd "$root" && cargo build --release --quiet); bin="$root/target/release/vault"
  fi
fi
for v in $(env | sed -n 's/^\(VAULT_[A-Z_]*\)=.*/\1/p'); do unset "$v"; done
unset RUST_BACKTRACE
export NO_COLOR=1
rm -rf "$out"
mkdir -p "$out"
out="$(cd "$out" && pwd)"
cp "$bin" "$out/vault"
bin="$out/vault"
export VAULT_DIR="$out/vault-dir" VAULT_IDENTITY="$out/key.txt"
age-keygen -o "$VAULT_IDENTITY" 2>/dev/null

say "a secret and a log of $bytes bytes"
log="$out/log.txt"
quotes="$(python3 "$here/gen_log.py" "$out/secret.json" "$log" "$bytes")"
"$bin" import --from-json "$out/secret.json" >/dev/null 2>&1

say "check: every quote masked, no value left"
"$bin" redact -s bench <"$log" >"$out/redacted.txt"
python3 - "$out/secret.json" "$out/redacted.txt" "$quotes" "$bytes" <<'EOF'
import json, sys
values = json.load(open(sys.argv[1]))["bench"]
text = open(sys.argv[2]).read()
quotes, size = int(sys.argv[3]), int(sys.argv[4])
pem_lines = values["PEM"].strip("\n").split("\n")
left = [k for k, v in values.items() if k != "PEM" and v in text] + [l for l in pem_lines[1:-1] if l in text]
masks = text.count("token=********")
assert not left, f"values left in the output: {left}"
assert masks == quotes, f"{masks} masks for {quotes} quotes"
print(f"ok: {quotes} quotes masked, none left")
EOF

{
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "nproc: $(nproc)"
  echo "cpu: $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)"
  echo "load: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "commit: $(cd "$root" && git rev-parse --short HEAD 2>/dev/null || echo unknown)"
  echo "mode: $([ "$quick" = 1 ] && echo quick || echo full)"
  echo "bytes: $bytes"
  echo "rounds: $rounds"
} >"$out/machine.txt"

names=(cat pipe run run-redact redact)
cmd_of() {
  case "$1" in
    cat) echo "cat $log" ;;
    pipe) echo "sh -c 'cat $log | cat'" ;;
    run) echo "$bin run -s bench -- cat $log" ;;
    run-redact) echo "$bin run --redact -s bench -- cat $log" ;;
    redact) echo "sh -c '$bin redact -s bench < $log'" ;;
  esac
}
say "$rounds hyperfine rounds, each command once a round"
for r in $(seq 0 "$rounds"); do
  args=()
  for i in "${!names[@]}"; do
    n="${names[$(((i + r) % ${#names[@]}))]}"
    args+=(-n "$n" "$(cmd_of "$n")")
  done
  # Round 0 warms the page cache and is not kept.
  hyperfine -N --runs 1 --style none --export-json "$out/round-$r.json" "${args[@]}" >/dev/null
done
peak=""
if [ -x /usr/bin/time ] && /usr/bin/time -v true >/dev/null 2>&1; then
  /usr/bin/time -v -o "$out/time.txt" "$bin" run --redact -s bench -- cat "$log" >/dev/null
  peak="$(sed -n 's/.*Maximum resident set size (kbytes): //p' "$out/time.txt")"
fi

python3 - "$out" "$rounds" "$bytes" "$peak" <<'EOF'
import json, statistics, sys
out, rounds, size, peak = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
times, cpu = {}, {}
for r in range(1, rounds + 1):
    for res in json.load(open(f"{out}/round-{r}.json"))["results"]:
        times.setdefault(res["command"], []).extend(res["times"])
        cpu.setdefault(res["command"], []).append(res["user"] + res["system"])
order = ["cat", "pipe", "run", "run-redact", "redact"]
what = {
    "cat": "`cat LOG`",
    "pipe": "`sh -c 'cat LOG \\| cat'`",
    "run": "`vault run -s bench -- cat LOG`",
    "run-redact": "`vault run --redact -s bench -- cat LOG`",
    "redact": "`sh -c 'vault redact -s bench < LOG'`",
}
machine = open(f"{out}/machine.txt").read()
lines = [
    "# Redaction throughput",
    "",
    "```",
    machine.strip(),
    "```",
    "",
    f"{size / 1e6:.0f} MB of log lines, one in 500 quoting a secret value; medians of {rounds} rounds.",
    "",
    "| row | command | median wall | MB/s (wall) | mean CPU (user + sys) |",
    "|---|---|---|---|---|",
]
for name in order:
    med = statistics.median(times[name])
    c = statistics.mean(cpu[name])
    lines.append(f"| {name} | {what[name]} | {med * 1000:.0f} ms | {size / 1e6 / med:.0f} | {c * 1000:.0f} ms |")
lines += ["", "The CPU column counts the measured process and its children (for `sh -c`, the shell's); on a busy machine it moves far less than wall time."]
if peak:
    lines += ["", f"Peak memory of run-redact: {int(peak) / 1024:.1f} MiB."]
goal = min(size / 1e6 / statistics.median(times[n]) for n in ("run-redact", "redact"))
verdict = "met" if goal >= 200 else "NOT met"
if "mode: quick" in machine:
    verdict = "not checked (quick: a debug build)"
lines += ["", f"Goal (≥ 200 MB/s through the redactor): {verdict} ({goal:.0f} MB/s, the slower of run-redact and redact)."]
open(f"{out}/results.md", "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
EOF
if [ "$publish" = 1 ]; then
  mkdir -p "$root/benches/results"
  cp "$out/results.md" "$root/benches/results/redact.md"
  say "published to benches/results/redact.md"
fi
