"""Regenerates xeddsa_vectors.json: XEdDSA signatures made by libxeddsa
(PyPI `xeddsa`, Python bindings of Syndace's C library on libsodium), a
second implementation that `src/sign.rs` is checked against byte for byte.

    pip install xeddsa==1.2.0 && python3 src/sign/xeddsa_vectors.py > src/sign/xeddsa_vectors.json

Fixed seeds, so the output is the same on every run.
"""
import hashlib
import json

import xeddsa


def det(label, i, n):
    out = b""
    ctr = 0
    while len(out) < n:
        out += hashlib.sha512(f"{label}/{i}/{ctr}".encode()).digest()
        ctr += 1
    return out[:n]


PREFIX = b"vault-signature-v1\x00"
cases = []
for i in range(12):
    priv = det("priv", i, 32)
    nonce = det("nonce", i, 64)
    if i == 0:
        msg = b""
    elif i < 6:
        # What vault signs: prefix, vault_id, generation, SHA-256 of the db.
        msg = PREFIX + det("id", i, 16) + (i * 1000003).to_bytes(8, "big") + hashlib.sha256(det("db", i, 777)).digest()
    else:
        msg = det("msg", i, i * 37)
    pub = xeddsa.priv_to_curve25519_pub(priv)
    # XEdDSA: the clamped key, negated if need be so that its Ed25519 public
    # key has sign bit 0 (libxeddsa splits the two steps).
    sig = xeddsa.ed25519_priv_sign(xeddsa.priv_force_sign(priv, False), msg, nonce)
    ed = xeddsa.curve25519_pub_to_ed25519_pub(pub, False)
    assert xeddsa.ed25519_verify(sig, ed, msg)
    cases.append({"priv": priv.hex(), "curve25519_pub": pub.hex(), "msg": msg.hex(), "nonce": nonce.hex(), "sig": sig.hex()})
print(json.dumps(cases, indent=1))
