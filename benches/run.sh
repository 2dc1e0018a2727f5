#!/usr/bin/env bash
# The performance harness (issue 6; DESIGN.md "Performance"). One command:
#
#   bash benches/run.sh            # release build, 1k/10k/100k secrets, peers, plot
#   bash benches/run.sh --quick    # what CI runs: debug binary, 1k secrets, few runs
#
# It builds vaults of N secrets x 10 keys through `vault import --from-json`,
# then for each size times, side by side in one hyperfine invocation per round:
#   run        vault run -s <one> -- true         (identity file; a file
#              version verified before, so read through the VFS, issue 20)
#   run-first  the same, verified in full every time: a vault directory
#              whose cache cannot be written (what the first read of a new
#              file version costs)
#   run-agent  the same through the agent           (vault unlock, no identity file)
#   age        age -d -i key.txt vault.age          (stock age, same file)
#   true       bare `true`                          (process start floor)
#   write      vault secret set <one> KEY_0=...     (fsync included; on a
#              copy of the vault, so that `run` keeps reading one version)
#   write-first  the same where the cache cannot be used (a file in its
#              place): the write hashes and validates every row, as the
#              first write after a `git pull` does
#   dd         dd conv=fsync of a file of the vault's size: what writing
#              and fsyncing the file costs by itself (the write goal)
#   list       vault secret list
#   run-dir    run -s <one> -- true from a folder with no vault.toml above
#   run-project  run -- true from three folders below a vault.toml that
#              names <one> (both through `env -C DIR`, first size only):
#              what finding, reading and checking a project costs
#   run-1cpu   run, pinned to one core (taskset -c 0): no spare core for
#   age-1cpu   the parallel decryption of large vaults; what a machine
#              whose other cores are busy sees (age -d likewise)
# measures peak RSS with /usr/bin/time -v, compares `vault run` with dotenvx
# and python-dotenv on the same ten keys, and writes results.md,
# results.json and latency.png into the output directory. Figures are
# medians; ratios are ratios of medians from the same hyperfine run.
#
# Options:
#   --quick          1,000 secrets, one round of few runs, no peers; uses the
#                    debug binary (CI has just built it for `cargo test`)
#   --sizes "N ..."  vault sizes (default: 1000 10000 100000)
#   --rounds N       hyperfine runs per size (default 60, 40, 20 for 1k,
#                    10k, 100k; 3 with --quick), each timing every command
#                    once, the list rotated by one each round; samples are
#                    pooled. hyperfine times one command after another, and
#                    on a shared machine load comes in bursts of seconds:
#                    one-run rounds interleave the commands, so a burst hits
#                    them alike and the ratios stay put
#   --bin PATH       time this vault binary instead of building one
#   --baseline PATH  also time another vault binary (say, a build of main)
#                    side by side, on a vault it imported itself: rows
#                    run-base and write-base (before/after of a change)
#   --no-peers       skip dotenvx and python-dotenv
#   --wait-quiet S   first wait up to S seconds for the 1-minute load
#                    average to drop below the number of cores
#   --out DIR        where vaults and results go (default benches/out/full
#                    or benches/out/quick; benches/out is gitignored)
#   --publish        copy results.md, results.json and latency.png to
#                    benches/results/ (the figures BENCHMARKS.md quotes)
#
# Needs hyperfine, age, age-keygen, python3 and GNU time
# (`apt-get install -y hyperfine age time`). Peers and matplotlib are
# installed on demand into the output directory (npm, pip); when that fails
# the report says so and carries on. Plaintext: the peers' .env files and
# the generated JSON are benchmark data, written only under --out.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$here")"

quick=0
sizes="1000 10000 100000"
rounds=""
bin=""
baseline=""
peers=1
out=""
publish=0
wait_quiet=0
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) quick=1 ;;
    --sizes) sizes="$2"; shift ;;
    --rounds) rounds="$2"; shift ;;
    --bin) bin="$2"; shift ;;
    --baseline) baseline="$2"; shift ;;
    --no-peers) peers=0 ;;
    --wait-quiet) wait_quiet="$2"; shift ;;
    --out) out="$2"; shift ;;
    --publish) publish=1 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "benches/run.sh: unknown option $1 (try --help)" >&2; exit 2 ;;
  esac
  shift
done

if [ "$quick" = 1 ]; then
  sizes="1000"
  peers=0
  : "${rounds:=3}"
  out="${out:-$root/benches/out/quick}"
else
  out="${out:-$root/benches/out/full}"
fi

say() { printf '\n== %s\n' "$*" >&2; }

# hyperfine_rounds NAME ROUNDS -n name1 cmd1 -n name2 cmd2 ...: a warm-up
# round (not kept), then ROUNDS hyperfine runs timing each command once,
# the command list rotated by one each round, exported to
# $out/hyperfine-NAME-rK.json.
hyperfine_rounds() {
  local tag="$1" rounds="$2"
  shift 2
  local pairs=("$@") count=$(($# / 3)) r i k args
  say "$tag: $rounds hyperfine rounds, each command once a round"
  hyperfine -N --runs 1 --style none --export-json "$out/warmup-$tag.json" "$@" >/dev/null
  for r in $(seq 1 "$rounds"); do
    args=()
    for i in $(seq 0 $((count - 1))); do
      k=$(((i + r - 1) % count))
      args+=(-n "${pairs[$((3 * k + 1))]}" "${pairs[$((3 * k + 2))]}")
    done
    hyperfine -N --runs 1 --style basic \
      --export-json "$out/hyperfine-$tag-r$r.json" "${args[@]}" >"$out/hyperfine-$tag-r$r.txt" 2>&1
  done
}

missing=()
for tool in hyperfine age age-keygen python3; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "benches/run.sh: missing ${missing[*]}; apt-get install -y hyperfine age python3" >&2
  exit 1
fi
gnu_time=""
if [ -x /usr/bin/time ] && /usr/bin/time -v true >/dev/null 2>&1; then
  gnu_time=/usr/bin/time
else
  echo "benches/run.sh: no GNU time, so no peak memory (apt-get install -y time)" >&2
fi

# ---------------------------------------------------------------- binary
if [ -z "$bin" ]; then
  if [ "$quick" = 1 ]; then
    say "cargo build (debug: --quick proves the harness works, it is no measurement)"
    (cd "$root" && cargo build --quiet)
    bin="$root/target/debug/vault"
  else
    say "cargo build --release"
    (cd "$root" && cargo build --release --quiet)
    bin="$root/target/release/vault"
  fi
fi

# A clean environment for everything below: no vault of the caller's, no
# agent of the caller's, no colour, no backtraces.
for v in $(env | sed -n 's/^\(VAULT_[A-Z_]*\)=.*/\1/p'); do unset "$v"; done
unset RUST_BACKTRACE
export NO_COLOR=1
rm -rf "$out"
mkdir -p "$out"
out="$(cd "$out" && pwd)"
# Copies of the binaries side by side in one directory: a file the linker
# has just written times differently from a settled copy (seen here: 0.4 ms
# on a 6 ms run), and a rebuild during the run must not change them.
mkdir -p "$out/bin"
cp "$bin" "$out/bin/vault"
bin="$out/bin/vault"
if [ -n "$baseline" ]; then
  cp "$baseline" "$out/bin/vault-base"
  baseline="$out/bin/vault-base"
fi
# The agent's socket path must fit in 107 bytes, whatever the checkout's path.
XDG_RUNTIME_DIR="$(mktemp -d /tmp/vault-bench.XXXXXX)"
export XDG_RUNTIME_DIR
# Debug builds only: a cheap scrypt for the agent's identity.age (release
# builds ignore this and use age's calibrated work factor).
export VAULT_SCRYPT_WORK_FACTOR=12

key="$out/key.txt"
pass="$out/pass.txt"
agent_dir="$out/agent"
age-keygen -o "$key" 2>/dev/null
(umask 077; echo "benchmark passphrase" >"$pass")

cleanup() {
  "$bin" --vault-dir "$agent_dir" lock >/dev/null 2>&1 || true
  rm -rf "$XDG_RUNTIME_DIR"
}
trap cleanup EXIT

if [ "$wait_quiet" -gt 0 ]; then
  say "waiting up to ${wait_quiet}s for a load average below $(nproc)"
  deadline=$((SECONDS + wait_quiet))
  while [ "$SECONDS" -lt "$deadline" ] &&
        awk -v n="$(nproc)" '{exit !($1 >= n)}' /proc/loadavg; do
    sleep 10
  done
fi

# ---------------------------------------------------------------- machine
{
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "nproc: $(nproc)"
  echo "cpu: $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)"
  echo "memory: $(free -h | awk '/^Mem:/ {print $2}')"
  echo "kernel: $(uname -r)"
  echo "load: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "vault: $bin"
  echo "commit: $(cd "$root" && git rev-parse --short HEAD 2>/dev/null || echo unknown)"
  echo "hyperfine: $(hyperfine --version | awk '{print $2}')"
  echo "age: $(age --version)"
  echo "mode: $([ "$quick" = 1 ] && echo quick || echo full)"
  echo "rounds: ${rounds:-60/40/20 by size}"
} >"$out/machine.txt"

# ---------------------------------------------------------------- agent
say "agent: identity.age with a passphrase, then vault unlock"
VAULT_PASSPHRASE_FILE="$pass" "$bin" --vault-dir "$agent_dir" init >/dev/null 2>&1
agent_recipient="$("$bin" --vault-dir "$agent_dir" --passphrase-file "$pass" recipient)"
"$bin" --vault-dir "$agent_dir" --passphrase-file "$pass" unlock --timeout 2h >/dev/null 2>&1

# ---------------------------------------------------------------- per size
rounds_for() { # hyperfine rounds for a vault of $1 secrets
  if [ -n "$rounds" ]; then echo "$rounds"; elif [ "$1" -le 1000 ]; then echo 60;
  elif [ "$1" -le 10000 ]; then echo 40; else echo 20; fi
}

for n in $sizes; do
  dir="$out/v$n"
  file="$dir/vault.age"
  one="$(printf 's%06d' $((n / 2)))"
  say "$n secrets: import"
  python3 "$here/gen_vault.py" "$n" >"$out/s$n.json"
  timed=()
  [ -n "$gnu_time" ] && timed=("$gnu_time" -f "%e %M" -o "$out/import-$n.txt")
  "${timed[@]}" "$bin" --vault-dir "$dir" --identity "$key" import --from-json "$out/s$n.json" 2>/dev/null
  # The agent's recipient too, so the one file opens both ways.
  "$bin" --vault-dir "$dir" --identity "$key" recipients add "$agent_recipient" >/dev/null 2>&1
  stat -c %s "$file" >"$out/size-$n.txt"
  # The writes' own copy (so `run` keeps reading a verified version), and a
  # vault directory whose cache is a file: every read there is a first read.
  cp -a "$dir" "$dir-w"
  # A write whose vault directory has no usable cache: every write hashes
  # and validates every row (the first write after a `git pull`).
  cp -a "$dir" "$dir-wf"
  rm -rf "$dir-wf/cache"
  echo "not a directory: every write hashes and validates in full" >"$dir-wf/cache"
  mkdir -p "$dir-first"
  echo "not a directory: every read verifies in full" >"$dir-first/cache"
  if [ -n "$baseline" ]; then
    "$baseline" --vault-dir "$dir-base" --identity "$key" import --from-json "$out/s$n.json" 2>/dev/null
    "$baseline" --vault-dir "$dir-base" --identity "$key" recipients add "$agent_recipient" >/dev/null 2>&1
    stat -c %s "$dir-base/vault.age" >"$out/size-base-$n.txt"
  fi
  rm -f "$out/s$n.json"

  id=(--vault-dir "$dir" --identity "$key")
  cmds=(
    -n run "$bin ${id[*]} run -s $one -- true"
    -n run-first "$bin --vault-dir $dir-first --identity $key --vault $file run -s $one -- true"
    -n run-agent "$bin --vault-dir $agent_dir --vault $file run -s $one -- true"
    -n age "age -d -i $key $file"
    -n true "true"
    -n write "$bin --vault-dir $dir-w --identity $key secret set $one KEY_0=written-by-the-benchmark"
    -n write-first "$bin --vault-dir $dir-wf --identity $key secret set $one KEY_0=written-by-the-benchmark"
    -n dd "dd if=$file of=$out/dd-$n.out bs=1M conv=fsync status=none"
    -n list "$bin ${id[*]} secret list"
  )
  if [ "$n" = "$(echo "$sizes" | awk '{print $1}')" ] && env -C / true 2>/dev/null; then
    plain="$out/plain-$n/a/b/c"
    proj="$out/proj-$n"
    mkdir -p "$plain" "$proj/a/b/c"
    printf 'secrets = ["%s"]\n' "$one" >"$proj/vault.toml"
    "$bin" "${id[@]}" allow "$proj/vault.toml" >/dev/null 2>&1
    cmds+=(
      -n run-dir "env -C $plain $bin ${id[*]} run -s $one -- true"
      -n run-project "env -C $proj/a/b/c $bin ${id[*]} run -- true"
    )
  fi
  if command -v taskset >/dev/null 2>&1; then
    cmds+=(
      -n run-1cpu "taskset -c 0 $bin ${id[*]} run -s $one -- true"
      -n age-1cpu "taskset -c 0 age -d -i $key $file"
    )
  fi
  if [ -n "$baseline" ]; then
    base=(--vault-dir "$dir-base" --identity "$key")
    cp -a "$dir-base" "$dir-base-w"
    cmds+=(
      -n run-base "$baseline ${base[*]} run -s $one -- true"
      -n write-base "$baseline --vault-dir $dir-base-w --identity $key secret set $one KEY_0=written-by-the-benchmark"
    )
  fi
  hyperfine_rounds "$n" "$(rounds_for "$n")" "${cmds[@]}"

  if [ -n "$gnu_time" ]; then
    say "$n secrets: peak memory"
    for r in 1 2 3; do
      for what in run run-first run-agent age write list; do
        case "$what" in
          run) c=("$bin" "${id[@]}" run -s "$one" -- true) ;;
          run-first) c=("$bin" --vault-dir "$dir-first" --identity "$key" --vault "$file" run -s "$one" -- true) ;;
          run-agent) c=("$bin" --vault-dir "$agent_dir" --vault "$file" run -s "$one" -- true) ;;
          age) c=(age -d -i "$key" "$file") ;;
          write) c=("$bin" --vault-dir "$dir-w" --identity "$key" secret set "$one" KEY_0=written-by-the-benchmark) ;;
          list) c=("$bin" "${id[@]}" secret list) ;;
        esac
        "$gnu_time" -v -o "$out/time.txt" "${c[@]}" >/dev/null 2>&1
        kib="$(sed -n 's/.*Maximum resident set size (kbytes): //p' "$out/time.txt")"
        echo "$what $kib" >>"$out/rss-$n.txt"
      done
    done
  fi
  rm -f "$out/dd-$n.out"
done

# ---------------------------------------------------------------- peers
venv_python=""
if [ "$peers" = 1 ]; then
  first="$(echo "$sizes" | awk '{print $1}')"
  dir="$out/v$first"
  one="$(printf 's%06d' $((first / 2)))"
  peer="$out/peers"
  mkdir -p "$peer"
  (umask 077; "$bin" --vault-dir "$dir" --identity "$key" export "$one" --format dotenv >"$peer/plain.env")
  cmds=(
    -n "vault run" "$bin --vault-dir $dir --identity $key run -s $one -- true"
    -n "vault run (agent)" "$bin --vault-dir $agent_dir --vault $dir/vault.age run -s $one -- true"
  )
  notes=()
  say "peers: npm install @dotenvx/dotenvx"
  if (cd "$peer" && npm install --silent --no-audit --no-fund --prefix "$peer/node" @dotenvx/dotenvx >/dev/null 2>"$peer/npm.err"); then
    dx="$peer/node/node_modules/.bin/dotenvx"
    cp "$peer/plain.env" "$peer/encrypted.env"
    (cd "$peer" && "$dx" encrypt -f encrypted.env >/dev/null 2>&1)
    echo "dotenvx: $("$dx" --version)" >>"$out/machine.txt"
    cmds+=(
      -n "dotenvx run" "$dx run -f $peer/plain.env -- true"
      -n "dotenvx run (encrypted .env)" "$dx run -f $peer/encrypted.env -fk $peer/.env.keys -- true"
    )
  else
    notes+=("dotenvx: npm install failed: $(head -c 300 "$peer/npm.err" | tr '\n' ' ')")
  fi
  say "peers: pip install python-dotenv[cli] (and matplotlib for the plot)"
  if python3 -m venv "$out/venv" >/dev/null 2>&1 &&
     "$out/venv/bin/pip" install --quiet --disable-pip-version-check "python-dotenv[cli]" >/dev/null 2>"$peer/pip.err"; then
    venv_python="$out/venv/bin/python"
    echo "python-dotenv: $("$out/venv/bin/pip" show python-dotenv | sed -n 's/^Version: //p')" >>"$out/machine.txt"
    cmds+=(-n "dotenv run (python-dotenv)" "$out/venv/bin/dotenv -f $peer/plain.env run -- true")
    "$out/venv/bin/pip" install --quiet --disable-pip-version-check matplotlib >/dev/null 2>&1 || true
  else
    notes+=("python-dotenv: pip install failed: $(head -c 300 "$peer/pip.err" 2>/dev/null | tr '\n' ' ')")
  fi
  cmds+=(-n true "true")
  hyperfine_rounds peers "${rounds:-10}" "${cmds[@]}"
  for note in "${notes[@]+"${notes[@]}"}"; do echo "$note" >>"$out/peer-notes.txt"; done
fi

# ---------------------------------------------------------------- report
say "report"
python="python3"
if [ -n "$venv_python" ] && "$venv_python" -c 'import matplotlib' 2>/dev/null; then
  python="$venv_python"
fi
"$python" "$here/report.py" "$out"

if [ "$publish" = 1 ]; then
  mkdir -p "$root/benches/results"
  for f in results.md results.json latency.png; do
    [ -f "$out/$f" ] && cp "$out/$f" "$root/benches/results/$f"
  done
  say "published to benches/results/"
fi
