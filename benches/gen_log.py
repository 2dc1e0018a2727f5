#!/usr/bin/env python3
"""Makes the redaction benchmark's input (benches/redact.sh).

    gen_log.py SECRETS.json LOG BYTES

SECRETS.json gets one secret, `bench`, of 10 keys with values of 60 random
letters and digits (as gen_vault.py makes them) and a 5-line PEM-like key,
for `vault import --from-json`. LOG gets BYTES bytes of log lines, one in
every 500 quoting a value or a line of the key, and prints how many
quotes it wrote (each one becomes `********`). Deterministic (seeded).
"""
import json
import random
import string
import sys


def main() -> None:
    secrets_path, log_path, size = sys.argv[1], sys.argv[2], int(sys.argv[3])
    rng = random.Random(19)
    alphabet = string.ascii_letters + string.digits
    values = {f"KEY_{i}": "".join(rng.choice(alphabet) for _ in range(60)) for i in range(10)}
    pem_lines = ["".join(rng.choice(alphabet) for _ in range(64)) for _ in range(3)]
    values["PEM"] = "-----BEGIN BENCH KEY-----\n" + "\n".join(pem_lines) + "\n-----END BENCH KEY-----\n"
    with open(secrets_path, "w") as f:
        json.dump({"bench": values}, f)

    quotable = [v for k, v in values.items() if k != "PEM"] + pem_lines
    levels = ["INFO", "DEBUG", "WARN"]
    paths = ["/api/v1/items", "/api/v1/users", "/healthz", "/metrics", "/api/v2/orders"]
    written = 0
    quotes = 0
    n = 0
    with open(log_path, "w") as f:
        while written < size:
            n += 1
            line = (
                f"2026-12-02T01:{(n // 60000) % 60:02d}:{(n // 1000) % 60:02d}.{n % 1000:03d}Z "
                f"{rng.choice(levels)} req={rng.getrandbits(48):012x} "
                f"path={rng.choice(paths)}/{rng.randrange(100000)} "
                f"status={rng.choice([200, 200, 200, 201, 404, 500])} dur={rng.randrange(1, 900)}ms"
            )
            quoted = n % 500 == 0
            if quoted:
                line += f" token={rng.choice(quotable)}"
            line += "\n"
            if written + len(line) > size:
                # The last line: filler up to exactly BYTES, no quote.
                rest = size - written
                line = "." * (rest - 1) + "\n" if rest > 1 else "\n" * rest
                quoted = False
            quotes += quoted
            f.write(line)
            written += len(line)
    print(quotes)


if __name__ == "__main__":
    main()
