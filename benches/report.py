#!/usr/bin/env python3
"""Turns what benches/run.sh measured into results.md, results.json and a plot.

    python3 benches/report.py OUT_DIR

Reads OUT_DIR/hyperfine-<N>-r<k>.json (one hyperfine run per size and round;
samples of all rounds are pooled), rss-<N>.txt, size-<N>.txt,
hyperfine-peers.json and machine.txt. Every figure is a median; every ratio
is a ratio of medians of commands timed in the same hyperfine runs, with the
spread of the per-round ratios beside it. Checks the goals of DESIGN.md
("Performance") and prints them; it never fails because of a figure (this
is a report, not a test). Uses only the standard library, plus matplotlib
(or the gnuplot program) for the plot when available.
"""

import glob
import json
import os
import re
import shutil
import statistics
import subprocess
import sys

MIB = 1024 * 1024


def median(xs):
    return statistics.median(xs) if xs else None


def ms(x):
    return None if x is None else x * 1000.0


def fmt(x, digits=1):
    return "-" if x is None else f"{x:.{digits}f}"


def load_size(out, n):
    """Pooled samples (seconds) per command name, and per-round medians."""
    pooled, rounds, cpu = {}, [], {}
    for path in sorted(glob.glob(os.path.join(out, f"hyperfine-{n}-r*.json"))):
        with open(path) as f:
            data = json.load(f)
        round_medians = {}
        for r in data["results"]:
            pooled.setdefault(r["command"], []).extend(r["times"])
            round_medians[r["command"]] = r["median"]
            cpu.setdefault(r["command"], []).extend(
                [r["user"] + r["system"]] * len(r["times"])
            )
        rounds.append(round_medians)
    return pooled, rounds, cpu


def load_rss(out, n):
    path = os.path.join(out, f"rss-{n}.txt")
    rss = {}
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                what, kib = line.split()
                rss.setdefault(what, []).append(int(kib) * 1024)
    return {k: median(v) for k, v in rss.items()}


def ratio_spread(rounds, a, b):
    """The interquartile range of the per-round ratios a/b."""
    rs = sorted(r[a] / r[b] for r in rounds if a in r and b in r and r[b])
    if len(rs) < 2:
        return None
    q = statistics.quantiles(rs, n=4, method="inclusive")
    return (q[0], q[2])


def main():
    out = sys.argv[1]
    machine = {}
    with open(os.path.join(out, "machine.txt")) as f:
        for line in f:
            k, _, v = line.partition(": ")
            machine[k.strip()] = v.strip()
    sizes = sorted(
        int(m.group(1))
        for p in glob.glob(os.path.join(out, "size-*.txt"))
        if (m := re.search(r"size-(\d+)\.txt$", p))
    )

    per_size = {}
    for n in sizes:
        with open(os.path.join(out, f"size-{n}.txt")) as f:
            file_bytes = int(f.read())
        pooled, rounds, cpu = load_size(out, n)
        med = {k: ms(median(v)) for k, v in pooled.items()}
        # CPU time is accounted in ticks, so a mean over many runs, not a
        # median; it moves far less than wall time when other work shares
        # the cores, and estimates the wall time of an idle machine.
        cpu_mean = {k: ms(statistics.fmean(v)) for k, v in cpu.items() if v}
        samples = {k: len(v) for k, v in pooled.items()}
        rss = load_rss(out, n)
        base_bytes = None
        if os.path.exists(os.path.join(out, f"size-base-{n}.txt")):
            with open(os.path.join(out, f"size-base-{n}.txt")) as f:
                base_bytes = int(f.read())
        imported = None
        if os.path.exists(os.path.join(out, f"import-{n}.txt")):
            with open(os.path.join(out, f"import-{n}.txt")) as f:
                fields = f.read().split()
            if len(fields) >= 2:
                imported = {"seconds": float(fields[0]), "peak_rss_bytes": int(fields[1]) * 1024}

        def ratio(a, b):
            if med.get(a) is None or not med.get(b):
                return None
            return med[a] / med[b]

        def over_write_bound(what):
            # The write goal's bound: 2 x age -d + dd conv=fsync.
            if med.get(what) is None or med.get("age") is None or med.get("dd") is None:
                return None
            return med[what] / (2 * med["age"] + med["dd"])

        ratios = {
            "run/age": ratio("run", "age"),
            "run-1cpu/age-1cpu": ratio("run-1cpu", "age-1cpu"),
            "run-first/age": ratio("run-first", "age"),
            "write/run": ratio("write", "run"),
            "write/(2 age + dd)": over_write_bound("write"),
            "write-first/(2 age + dd)": over_write_bound("write-first"),
            "list/run": ratio("list", "run"),
            "run-base/run": ratio("run-base", "run"),
            "write-base/write": ratio("write-base", "write"),
        }
        spreads = {
            "run/age": ratio_spread(rounds, "run", "age"),
            "run-1cpu/age-1cpu": ratio_spread(rounds, "run-1cpu", "age-1cpu"),
            "write/run": ratio_spread(rounds, "write", "run"),
            "run-first/age": ratio_spread(rounds, "run-first", "age"),
        }
        diffs = {
            "run-agent - run (ms)": None
            if med.get("run-agent") is None
            else med["run-agent"] - med["run"],
            "run - true (ms)": None if med.get("true") is None else med["run"] - med["true"],
            "run-project - run-dir (ms)": None
            if med.get("run-project") is None or med.get("run-dir") is None
            else med["run-project"] - med["run-dir"],
        }
        per_size[n] = {
            "file_bytes": file_bytes,
            "baseline_file_bytes": base_bytes,
            "import": imported,
            "median_ms": med,
            "cpu_mean_ms": cpu_mean,
            "samples": samples,
            "ratios": ratios,
            "ratio_spread_over_rounds": spreads,
            "differences": diffs,
            "peak_rss_bytes": rss,
            "rounds": len(rounds),
        }

    peers = None
    pooled, _, _ = load_size(out, "peers")
    if pooled:
        order = ["vault run", "vault run (agent)"]
        names = order + sorted(k for k in pooled if k not in order)
        peers = {k: ms(median(pooled[k])) for k in names if k in pooled}
    peer_notes = []
    notes_path = os.path.join(out, "peer-notes.txt")
    if os.path.exists(notes_path):
        with open(notes_path) as f:
            peer_notes = [line.strip() for line in f if line.strip()]

    goals = check_goals(per_size)
    results = {
        "machine": machine,
        "sizes": per_size,
        "peers_median_ms": peers,
        "peer_notes": peer_notes,
        "goals": goals,
    }
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump(results, f, indent=2, sort_keys=True)
        f.write("\n")
    md = markdown(results)
    with open(os.path.join(out, "results.md"), "w") as f:
        f.write(md)
    plot(out, per_size, machine)
    print(md)


def check_goals(per_size):
    """DESIGN.md's performance goals (version 2's, and version 1's that
    still hold), each with the figure it rests on."""
    goals = []

    def goal(name, ok, figure):
        goals.append({"goal": name, "holds": ok, "figure": figure})

    small = per_size.get(1000)
    if small:
        r = small["ratios"]["run/age"]
        goal(
            "run/age <= 0.6 at 1,000 x 10 (v2; verified file)",
            r is not None and r <= 0.6,
            f"{fmt(r, 2)}",
        )
        run = small["median_ms"]["run"]
        own = small["differences"]["run - true (ms)"]
        cpu = small["cpu_mean_ms"].get("run")
        # vault's own cost: starting the child (`true`) is the child's.
        goal(
            "run costs a few ms at 1,000 x 10 (its own cost, run - true, <= 5 ms)",
            own is not None and own <= 5.0,
            f"{fmt(own, 2)} ms over bare `true`; {fmt(run, 2)} ms wall, CPU time {fmt(cpu, 2)} ms",
        )
        f = small["ratios"].get("run-first/age")
        if f is not None:
            goal("first read: run-first/age <= 1.0 at 1,000 x 10 (v1's run goal)", f <= 1.0, f"{fmt(f, 2)}")
        m = small["median_ms"]
        for what, name in [
            ("write", "write <= 2 x age -d + dd conv=fsync at 1,000 x 10 (v2)"),
            ("write-first", "the same for a write with no usable cache (hashes and validates every row; our own goal)"),
        ]:
            w = small["ratios"].get(f"{what}/(2 age + dd)")
            if w is not None:
                goal(
                    name,
                    w <= 1.0,
                    f"{what} {fmt(m[what], 2)} ms, 2 x age {fmt(2 * m['age'], 2)} + dd {fmt(m['dd'], 2)} ms: {fmt(w, 2)} of the bound",
                )
    # Our own goal, not DESIGN.md's. The agent replaces one X25519 unwrap by
    # a round trip, whatever the vault's size; at 1,000 secrets that is
    # visible, at 100,000 it drowns in the decryption's noise (the table
    # still shows the difference at every size).
    if small:
        d = small["differences"]["run-agent - run (ms)"]
        if d is not None:
            goal("agent costs <= 1 ms over the identity file (1,000)", d <= 1.0, f"{fmt(d, 2)} ms")
    big = per_size.get(100000)
    if big and small:
        r = big["median_ms"]["run"] / small["median_ms"]["run"]
        goal(
            "run at 100,000 x 10 <= 1.5 x run at 1,000 x 10, verified file (v2)",
            r <= 1.5,
            f"{fmt(big['median_ms']['run'], 2)} / {fmt(small['median_ms']['run'], 2)} ms = {fmt(r, 2)}",
        )
    if big:
        # A first read at 100,000 is a full verification of 80+ MB; version
        # 2 holds it to "linear" (below), not to this bound.
        for what in ("run",):
            t = big["median_ms"].get(what)
            if t is None:
                continue
            goal(
                f"{what} < 150 ms at 100,000 x 10 (v1)",
                t < 150.0,
                f"{fmt(t)} ms wall (CPU time {fmt(big['cpu_mean_ms'].get(what))} ms)",
            )
        one = big["median_ms"].get("run-1cpu")
        if one is not None:
            goal(
                "run < 150 ms at 100,000 x 10 on one core (taskset -c 0)",
                one < 150.0,
                f"{fmt(one)} ms wall; age -d on one core {fmt(big['median_ms'].get('age-1cpu'))} ms",
            )
    if len(per_size) >= 3:
        ns = sorted(per_size)
        # Version 2: "linear" applies to writes and first reads only.
        for what in ("run-first", "write"):
            if any(per_size[n]["median_ms"].get(what) is None for n in ns):
                continue
            t = [per_size[n]["median_ms"][what] for n in ns]
            slopes = [
                (t[i + 1] - t[i]) / ((ns[i + 1] - ns[i]) / 1000) for i in range(len(ns) - 1)
            ]
            # Linear: the cost of another 1,000 secrets does not grow with
            # the vault (allowing 50% for noise and cache effects).
            ok = all(b <= 1.5 * a for a, b in zip(slopes, slopes[1:]))
            goal(
                f"{what} cost linear in vault size",
                ok,
                "ms per 1,000 secrets: " + ", ".join(fmt(x, 2) for x in slopes),
            )
    for n, s in sorted(per_size.items()):
        rss = s["peak_rss_bytes"]
        if rss.get("run"):
            goal(
                f"peak memory of run (verified file) < 16 MiB ({n:,})",
                rss["run"] < 16 * MIB,
                f"{rss['run'] / MIB:.1f} MiB",
            )
        limit = 3 * s["file_bytes"] + 16 * MIB
        rest = {k: v for k, v in rss.items() if k not in ("age", "run")}
        if rest:
            worst = max(rest, key=rest.get)
            goal(
                f"peak memory of the rest < 3 x file + 16 MiB ({n:,}: {limit / MIB:.1f} MiB)",
                rest[worst] < limit,
                f"largest: {worst} {rest[worst] / MIB:.1f} MiB",
            )
    return goals


def markdown(res):
    m = res["machine"]
    lines = [
        f"Measured {m.get('date', '?')} ({m.get('mode', '?')} mode, {m.get('rounds', '?')} rounds) "
        f"on {m.get('nproc', '?')} cores of {m.get('cpu', '?')}, {m.get('memory', '?')} memory, "
        f"Linux {m.get('kernel', '?')}, load average at start {m.get('load', '?')}; "
        f"vault at {m.get('commit', '?')}, {m.get('age', '?')}, hyperfine {m.get('hyperfine', '?')}.",
        "",
        "Medians in ms (samples pooled over rounds):",
        "",
    ]
    cols = [
        "run",
        "run-first",
        "run-agent",
        "age",
        "true",
        "write",
        "write-first",
        "dd",
        "list",
        "run-1cpu",
        "age-1cpu",
        "run-dir",
        "run-project",
        "run-base",
        "write-base",
    ]
    present = [c for c in cols if any(c in s["median_ms"] for s in res["sizes"].values())]
    lines.append("| secrets | file MiB | " + " | ".join(present) + " |")
    lines.append("|---:|---:|" + "---:|" * len(present))
    for n, s in sorted(res["sizes"].items()):
        size = f"{s['file_bytes'] / MIB:.2f}"
        if s.get("baseline_file_bytes"):
            size += f" (base {s['baseline_file_bytes'] / MIB:.2f})"
        row = [f"{n:,}", size]
        row += [fmt(s["median_ms"].get(c), 2) for c in present]
        lines.append("| " + " | ".join(row) + " |")
    lines += [
        "",
        "CPU time (user + system), mean in ms: what the command costs when it has a core",
        "to itself; other work on the machine moves it far less than wall time:",
        "",
    ]
    lines.append("| secrets | " + " | ".join(present) + " | run/age |")
    lines.append("|---:|" + "---:|" * (len(present) + 1))
    for n, s in sorted(res["sizes"].items()):
        c = s["cpu_mean_ms"]
        r = c["run"] / c["age"] if c.get("run") and c.get("age") else None
        lines.append(
            f"| {n:,} | " + " | ".join(fmt(c.get(k), 2) for k in present) + f" | {fmt(r, 2)} |"
        )
    lines += ["", "Ratios of medians (in brackets: quartiles of the per-round ratios):", ""]
    lines.append(
        "| secrets | run/age | run-first/age | run/age on one core | write/(2 age + dd) | list/run | agent - run (ms) | run - true (ms) |"
        + (" run-base/run | write-base/write |" if "run-base" in present else "")
    )
    lines.append(
        "|---:|---:|---:|---:|---:|---:|---:|---:|" + ("---:|---:|" if "run-base" in present else "")
    )
    for n, s in sorted(res["sizes"].items()):
        r, sp, d = s["ratios"], s["ratio_spread_over_rounds"], s["differences"]

        def with_spread(key):
            v = fmt(r[key], 2)
            if sp.get(key) and s["rounds"] > 1:
                v += f" ({sp[key][0]:.2f}-{sp[key][1]:.2f})"
            return v

        row = [
            f"{n:,}",
            with_spread("run/age"),
            with_spread("run-first/age"),
            with_spread("run-1cpu/age-1cpu"),
            fmt(r["write/(2 age + dd)"], 2),
            fmt(r["list/run"], 2),
            fmt(d["run-agent - run (ms)"], 2),
            fmt(d["run - true (ms)"], 2),
        ]
        if "run-base" in present:
            row += [fmt(r["run-base/run"], 2), fmt(r["write-base/write"], 2)]
        lines.append("| " + " | ".join(row) + " |")
    project = [
        (n, s["differences"]["run-project - run-dir (ms)"])
        for n, s in sorted(res["sizes"].items())
        if s["differences"].get("run-project - run-dir (ms)") is not None
    ]
    if project:
        lines += [
            "",
            "A project file found upward (goal: at most 0.3 ms at 1,000 x 10): `run -- true`",
            "three folders below a vault.toml naming the secret, against `run -s NAME -- true`",
            "from a folder with none above, both through `env -C`, medians:",
            "",
            "| secrets | run-dir | run-project | difference (ms) | CPU run-dir | CPU run-project | CPU difference (ms) |",
            "|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for n, d in project:
            med = res["sizes"][n]["median_ms"]
            cpu = res["sizes"][n]["cpu_mean_ms"]
            cd = (
                cpu["run-project"] - cpu["run-dir"]
                if cpu.get("run-project") is not None and cpu.get("run-dir") is not None
                else None
            )
            lines.append(
                f"| {n:,} | {fmt(med['run-dir'], 2)} | {fmt(med['run-project'], 2)} | {fmt(d, 2)}"
                f" | {fmt(cpu.get('run-dir'), 2)} | {fmt(cpu.get('run-project'), 2)} | {fmt(cd, 2)} |"
            )
    if any(s["peak_rss_bytes"] for s in res["sizes"].values()):
        lines += [
            "",
            "Peak RSS in MiB (median of 3; limits: run 16 MiB, the rest 3 x file + 16 MiB):",
            "",
        ]
        what = ["run", "run-first", "run-agent", "write", "list", "age"]
        lines.append("| secrets | limit | " + " | ".join(what) + " |")
        lines.append("|---:|---:|" + "---:|" * len(what))
        for n, s in sorted(res["sizes"].items()):
            rss = s["peak_rss_bytes"]
            limit = (3 * s["file_bytes"] + 16 * MIB) / MIB
            cells = [fmt(rss[w] / MIB if rss.get(w) else None) for w in what]
            lines.append(f"| {n:,} | {limit:.1f} | " + " | ".join(cells) + " |")
    if any(s.get("import") for s in res["sizes"].values()):
        lines += ["", "Building the vault (`vault import --from-json`, once, /usr/bin/time):", ""]
        lines.append("| secrets | seconds | peak RSS MiB |")
        lines.append("|---:|---:|---:|")
        for n, s in sorted(res["sizes"].items()):
            if s.get("import"):
                i = s["import"]
                lines.append(f"| {n:,} | {i['seconds']:.2f} | {i['peak_rss_bytes'] / MIB:.1f} |")
    if res["peers_median_ms"]:
        lines += ["", "Peers, loading the same ten keys and running `true` (medians, ms):", ""]
        lines.append("| command | median ms |")
        lines.append("|---|---:|")
        for k, v in res["peers_median_ms"].items():
            lines.append(f"| {k} | {fmt(v, 2)} |")
        for k in ("dotenvx", "python-dotenv"):
            if k in m:
                lines.append(f"\n{k} {m[k]}.")
    for note in res["peer_notes"]:
        lines.append(f"\nNot measured: {note}")
    lines += ["", "Goals (DESIGN.md, Performance):", ""]
    if m.get("mode") == "quick":
        lines += [
            "(Quick mode times the debug build on a loaded CI machine: it proves the",
            "harness works; the goals are about release builds, see BENCHMARKS.md.)",
            "",
        ]
    for g in res["goals"]:
        mark = "holds" if g["holds"] else "FAILS"
        lines.append(f"- {mark}: {g['goal']} — {g['figure']}")
    return "\n".join(lines) + "\n"


SERIES = [
    ("run", "vault run (identity file, verified file)", "o-"),
    ("run-first", "vault run, first read (full verification)", "v-"),
    ("run-agent", "vault run (agent)", "s--"),
    ("age", "age -d (stock)", "^-"),
    ("write", "vault secret set (write)", "D-"),
    ("run-1cpu", "vault run, one core", "o:"),
    ("age-1cpu", "age -d, one core", "^:"),
]


def plot(out, per_size, machine):
    png = os.path.join(out, "latency.png")
    ns = sorted(per_size)
    if len(ns) < 2:
        print("(one vault size: no plot)", file=sys.stderr)
        return
    title = f"median latency, {machine.get('nproc', '?')} cores of {machine.get('cpu', '?')}"
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        plt = None
    if plt is not None:
        fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=100)
        for key, label, style in SERIES:
            ys = [per_size[n]["median_ms"].get(key) for n in ns]
            if all(y is not None for y in ys):
                ax.plot(ns, ys, style, label=label)
        if 100000 in per_size and 1000 in per_size:
            bound = 1.5 * per_size[1000]["median_ms"]["run"]
            ax.axhline(bound, linestyle=":", color="gray", label=f"goal for run at 100,000: 1.5 x run at 1,000 ({bound:.1f} ms)")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("secrets in the vault (10 keys each)")
        ax.set_ylabel("ms (median)")
        ax.set_title(title, fontsize=9)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(png)
        print(f"plot: {png}", file=sys.stderr)
        return
    if shutil.which("gnuplot"):
        dat = os.path.join(out, "latency.dat")
        with open(dat, "w") as f:
            for n in ns:
                f.write(
                    f"{n} "
                    + " ".join(fmt(per_size[n]["median_ms"].get(k), 3) for k, _, _ in SERIES)
                    + "\n"
                )
        script = "\n".join(
            [
                "set terminal pngcairo size 640,420",
                f"set output '{png}'",
                "set logscale xy",
                "set datafile missing '-'",
                "set xlabel 'secrets in the vault (10 keys each)'",
                "set ylabel 'ms (median)'",
                f"set title '{title}'",
                "set key top left",
                "plot "
                + ", ".join(
                    f"'{dat}' using 1:{i + 2} with linespoints title '{label}'"
                    for i, (_, label, _) in enumerate(SERIES)
                ),
            ]
        )
        subprocess.run(["gnuplot"], input=script, text=True, check=False)
        print(f"plot: {png} (gnuplot)", file=sys.stderr)
        return
    print("(no matplotlib and no gnuplot: no plot; pip install matplotlib)", file=sys.stderr)


if __name__ == "__main__":
    main()
