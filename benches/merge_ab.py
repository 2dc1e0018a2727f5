#!/usr/bin/env python3
"""Side-by-side timing of `vault git merge` built different ways (issue 18).

    python3 benches/merge_ab.py ROUNDS DIR BIN...

DIR is the --out directory of a `bash benches/merge.sh` run (its
base.age, ours.age, theirs.age, key.txt and dir/). Every round, in a fresh
random order, each BIN merges THEIRS into a fresh copy of OURS (the copy is
made before the clock starts) and stock `age -d` decrypts OURS once; five
untimed rounds come first. Prints each command's median, its ratio to
`age -d`'s median, and the quartiles of the per-round ratios: a burst of load
on a shared machine hits every command of a round alike.
"""

import os
import random
import shutil
import statistics
import subprocess
import sys
import time


def main(argv):
    if len(argv) < 3 or not argv[0].isdigit():
        sys.exit(__doc__.split("\n\n")[1])
    rounds, d, bins = int(argv[0]), argv[1], argv[2:]
    age = ["age", "-d", "-i", f"{d}/key.txt", "-o", os.devnull, f"{d}/ours.age"]

    def merge(b, work):
        return [b, "--vault-dir", f"{d}/dir", "--identity", f"{d}/key.txt",
                "git", "merge", f"{d}/base.age", work, f"{d}/theirs.age", "team.age"]

    times = {name: [] for name in bins + ["age"]}
    with open(os.devnull, "w") as null:
        for r in range(rounds + 5):
            order = bins + ["age"]
            random.shuffle(order)
            for name in order:
                cmd = age
                if name != "age":
                    work = f"{d}/ab-{bins.index(name)}.age"
                    shutil.copyfile(f"{d}/ours.age", work)
                    cmd = merge(name, work)
                start = time.perf_counter()
                code = subprocess.run(cmd, stdout=null, stderr=null).returncode
                took = (time.perf_counter() - start) * 1000
                if code != 0:
                    sys.exit(f"{' '.join(cmd)}: exit {code}")
                if r >= 5:
                    times[name].append(took)
    ref = statistics.median(times["age"])
    print(f"{rounds} rounds; medians, and ratios to age -d")
    for name, t in times.items():
        ratios = [x / a for x, a in zip(t, times["age"])]
        q = statistics.quantiles(ratios, n=4)
        print(f"{name:40s} {statistics.median(t):8.2f} ms  x{statistics.median(t) / ref:.2f}"
              f"  ({q[0]:.2f}-{q[2]:.2f})")


if __name__ == "__main__":
    main(sys.argv[1:])
