#!/usr/bin/env python3
"""Writes the JSON that `vault import --from-json` takes for a benchmark vault.

    python3 benches/gen_vault.py N [SEED] > secrets.json

N secrets named s000000, s000001, ..., each with ten keys KEY_0..KEY_9 whose
values are 60 random letters and digits (about what an API key or a database
password is). Seeded (SEED, default 6), so every run builds the same vault;
another SEED gives the same names with other values (benches/history.sh).
"""

import json
import random
import string
import sys

KEYS = 10
VALUE_LEN = 60


def main() -> None:
    n = int(sys.argv[1])
    rnd = random.Random(int(sys.argv[2]) if len(sys.argv) > 2 else 6)
    alphabet = string.ascii_letters + string.digits
    out = sys.stdout
    out.write("{")
    for i in range(n):
        entries = {
            f"KEY_{k}": "".join(rnd.choices(alphabet, k=VALUE_LEN)) for k in range(KEYS)
        }
        out.write("," if i else "")
        out.write(json.dumps(f"s{i:06d}"))
        out.write(":")
        out.write(json.dumps(entries))
    out.write("}\n")


if __name__ == "__main__":
    main()
