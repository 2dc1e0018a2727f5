#!/usr/bin/env bash
# Signing and verifying vault files (issue 15; DESIGN v2 "Trust"): what a
# write pays to sign and a read pays to verify, on top of hashing the
# database (which the signature covers), for each kind of member key. The
# budget is 0.5 ms each at 1,000 secrets x 10 keys (a 768 KiB database);
# the benchmark fails above it for age (XEdDSA) and ssh-ed25519 keys.
#
#   bash benches/sign.sh
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --release --lib sign::tests::bench_sign_and_verify -- --ignored --nocapture --test-threads 1 2>&1 |
    grep -E 'sha256 of|xeddsa|ed25519 \(|rsa-pss|test result|panicked'
