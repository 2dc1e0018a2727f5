#!/usr/bin/env python3
"""Side-by-side timing of a few commands, for before/after comparisons.

    python3 benches/ab.py ROUNDS NAME=COMMAND... [--ref NAME] [--any-status]

Every round runs every command once, in a fresh random order, started with
posix_spawn (no shell; stdout and stderr to /dev/null) and timed from spawn
to exit; five untimed rounds come first. A burst of load on a shared
machine hits every command alike, so the ratios hold where the absolute
figures move. Prints each command's median, its ratio to the reference
(the last command, or --ref), and the quartiles of the per-round ratios.
A command that exits non-zero stops the run, unless --any-status (for a
command timed on purpose up to an error, such as `run` with no vault
there). COMMAND is split on spaces.

BENCHMARKS.md ("Issue 20, follow-up 3") quotes figures made with it, e.g.

    python3 benches/ab.py 300 \\
        "old=$OLD --vault-dir $D1 --identity key.txt run -s s000500 -- true" \\
        "new=$NEW --vault-dir $D2 --identity key.txt run -s s000500 -- true" \\
        "age=age -d -i key.txt -o /dev/null $D2/vault.age"
"""

import os
import random
import statistics
import sys
import time


def main(argv):
    ref = None
    any_status = "--any-status" in argv
    if any_status:
        argv.remove("--any-status")
    if "--ref" in argv:
        i = argv.index("--ref")
        ref = argv[i + 1]
        del argv[i : i + 2]
    if len(argv) < 2 or not argv[0].isdigit() or any("=" not in a for a in argv[1:]):
        sys.exit(__doc__.split("\n\n")[1])
    rounds = int(argv[0])
    cmds = [tuple(a.split("=", 1)) for a in argv[1:]]
    ref = ref or cmds[-1][0]
    devnull = os.open(os.devnull, os.O_WRONLY)
    actions = [(os.POSIX_SPAWN_DUP2, devnull, 1), (os.POSIX_SPAWN_DUP2, devnull, 2)]
    argvs = [(name, cmd.split()) for name, cmd in cmds]

    def once(name, args):
        start = time.perf_counter()
        pid = os.posix_spawnp(args[0], args, os.environ, file_actions=actions)
        _, status = os.waitpid(pid, 0)
        took = time.perf_counter() - start
        if status != 0 and not any_status:
            sys.exit(f"{name}: exit status {status}: {' '.join(args)}")
        return took

    for _ in range(5):
        for name, args in argvs:
            once(name, args)
    times = {name: [] for name, _ in cmds}
    for _ in range(rounds):
        order = argvs[:]
        random.shuffle(order)
        for name, args in order:
            times[name].append(once(name, args))
    base = statistics.median(times[ref])
    print(f"{rounds} rounds; medians, and ratios to {ref}")
    for name, _ in cmds:
        m = statistics.median(times[name])
        per_round = sorted(a / b for a, b in zip(times[name], times[ref]))
        q1, _, q3 = statistics.quantiles(per_round, n=4)
        print(f"{name:14s} {m * 1000:8.3f} ms  x{m / base:.3f}  ({q1:.3f}-{q3:.3f})")


if __name__ == "__main__":
    main(sys.argv[1:])
