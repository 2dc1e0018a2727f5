//! Signatures over vault files (DESIGN v2 "Trust"): what is signed, the
//! three kinds of signing key a member can have, and verification with the
//! member's *recipient* string, so that no new key is ever handed around.
//!
//! - `age1…` (X25519): XEdDSA, Signal's signature scheme over a Montgomery
//!   key (<https://signal.org/docs/specifications/xeddsa/>), on
//!   curve25519-dalek, checked byte for byte against libxeddsa
//!   (`sign/xeddsa_vectors.json`, made by `sign/xeddsa_vectors.py`);
//! - `ssh-ed25519`: Ed25519 (ed25519-dalek), strict verification;
//! - `ssh-rsa`: RSASSA-PSS with SHA-256, MGF1-SHA-256 and a 32-byte salt
//!   (the `rsa` crate, blinded signing).
//!
//! No file I/O, no age headers here: `vault.rs` puts a signature into the
//! header and takes it out; `trust.rs` decides whether a signer is trusted.

use std::fmt;

use age::secrecy::ExposeSecret;
use base64::Engine;
use curve25519_dalek::{
    edwards::{CompressedEdwardsY, EdwardsPoint},
    montgomery::MontgomeryPoint,
    scalar::{Scalar, clamp_integer},
};
use sha2::{Digest, Sha256, Sha512};
use zeroize::Zeroizing;

use crate::error::{Error, Result};

/// What every signed message starts with: a signature made for a vault can
/// never be mistaken for one over anything else (the agent signs nothing
/// without it).
pub(crate) const PREFIX: &[u8] = b"vault-signature-v1\0";

/// The length of a message: the prefix, the vault id (16 bytes), the
/// generation (8) and the SHA-256 of the serialized database (32).
pub(crate) const MESSAGE_LEN: usize = PREFIX.len() + 16 + 8 + 32;

/// The age header stanza that carries the signature:
/// `-> vault-sig v1 <fingerprint>`, body = the signature.
pub(crate) const STANZA_TAG: &str = "vault-sig";
pub(crate) const STANZA_VERSION: &str = "v1";

/// `"vault-signature-v1\0" || vault_id || generation (u64 BE) || SHA-256(db)`.
pub(crate) fn message(vault_id: &[u8; 16], generation: u64, db_sha256: &[u8; 32]) -> Vec<u8> {
    let mut m = Vec::with_capacity(MESSAGE_LEN);
    m.extend_from_slice(PREFIX);
    m.extend_from_slice(vault_id);
    m.extend_from_slice(&generation.to_be_bytes());
    m.extend_from_slice(db_sha256);
    m
}

/// Whether `m` has the shape of a message `vault` signs (what the agent
/// checks before it signs anything).
pub(crate) fn is_message(m: &[u8]) -> bool {
    m.len() == MESSAGE_LEN && m.starts_with(PREFIX)
}

/// The signer's fingerprint in the stanza: SHA-256 of the canonical
/// recipient string, standard base64 without padding (as age encodes its
/// own stanza arguments).
pub(crate) fn fingerprint(recipient: &str) -> String {
    base64::engine::general_purpose::STANDARD_NO_PAD.encode(Sha256::digest(recipient.as_bytes()))
}

/// A signature with the recipient that verifies it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Signature {
    pub(crate) recipient: String,
    pub(crate) bytes: Vec<u8>,
}

/// The secret half of a member's key, able to sign.
pub(crate) enum SigningKey {
    /// The X25519 secret as age stores it (clamped when used).
    X25519(Zeroizing<[u8; 32]>),
    Ed25519(Box<ed25519_dalek::SigningKey>),
    Rsa(Box<rsa::RsaPrivateKey>),
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self {
            SigningKey::X25519(_) => "X25519",
            SigningKey::Ed25519(_) => "Ed25519",
            SigningKey::Rsa(_) => "Rsa",
        };
        write!(f, "SigningKey::{kind}({})", crate::names::MASK)
    }
}

impl SigningKey {
    /// The signing key of an age X25519 identity: its 32 secret bytes, out
    /// of the `AGE-SECRET-KEY-1…` text (age keeps them private otherwise;
    /// the text is age's own encoding, so decoding it cannot fail).
    pub(crate) fn x25519(id: &age::x25519::Identity) -> Self {
        let text = id.to_string();
        let (_, bytes) =
            bech32::decode(text.expose_secret()).expect("age writes its keys in bech32");
        let bytes = Zeroizing::new(bytes);
        let mut k = Zeroizing::new([0u8; 32]);
        k.copy_from_slice(&bytes[..32]);
        SigningKey::X25519(k)
    }

    /// The signing key of an unencrypted OpenSSH private key (age keeps
    /// its parsed key to itself, so the `ssh-key` crate reads it again).
    pub(crate) fn from_ssh(key: &ssh_key::PrivateKey) -> Result<Self> {
        let unusable = || {
            Error::new("cannot sign with this ssh key")
                .hint("age and vault accept ssh-ed25519 and ssh-rsa keys")
        };
        if key.is_encrypted() {
            return Err(unusable());
        }
        match key.key_data() {
            ssh_key::private::KeypairData::Ed25519(pair) => Ok(SigningKey::Ed25519(Box::new(
                ed25519_dalek::SigningKey::try_from(pair).map_err(|_| unusable())?,
            ))),
            ssh_key::private::KeypairData::Rsa(pair) => Ok(SigningKey::Rsa(Box::new(
                rsa_key(pair).ok_or_else(unusable)?,
            ))),
            _ => Err(unusable()),
        }
    }

    pub(crate) fn sign(&self, msg: &[u8]) -> Result<Vec<u8>> {
        match self {
            SigningKey::X25519(k) => {
                let mut z = Zeroizing::new([0u8; 64]);
                getrandom_fill(&mut z[..])?;
                Ok(xeddsa_sign(k, msg, &z).to_vec())
            }
            SigningKey::Ed25519(k) => {
                use ed25519_dalek::Signer;
                Ok(k.sign(msg).to_bytes().to_vec())
            }
            SigningKey::Rsa(k) => {
                use rsa::signature::{RandomizedSigner, SignatureEncoding};
                let signer =
                    rsa::pss::BlindedSigningKey::<Sha256>::new_with_salt_len((**k).clone(), 32);
                let sig = signer
                    .try_sign_with_rng(&mut rand_core::OsRng, msg)
                    .map_err(|_| Error::new("cannot sign with the ssh-rsa key"))?;
                Ok(sig.to_vec())
            }
        }
    }
}

/// The `rsa` crate's key from ssh-key's parts. (Not ssh-key's own
/// `TryFrom`: 0.6.7 passes `p` twice where `q` belongs, and gets a key
/// that cannot sign.)
fn rsa_key(pair: &ssh_key::private::RsaKeypair) -> Option<rsa::RsaPrivateKey> {
    let int = |m: &ssh_key::Mpint| m.as_positive_bytes().map(rsa::BigUint::from_bytes_be);
    let key = rsa::RsaPrivateKey::from_components(
        int(&pair.public.n)?,
        int(&pair.public.e)?,
        int(&pair.private.d)?,
        vec![int(&pair.private.p)?, int(&pair.private.q)?],
    )
    .ok()?;
    key.validate().ok()?;
    Some(key)
}

fn getrandom_fill(buf: &mut [u8]) -> Result<()> {
    use rand_core::RngCore;
    rand_core::OsRng
        .try_fill_bytes(buf)
        .map_err(|e| Error::new(format!("no randomness from the system: {e}")))
}

/// Whether `sig` is `recipient`'s signature of `msg`. `recipient` is in
/// the canonical form `recipients` stores.
pub(crate) fn verify(recipient: &str, msg: &[u8], sig: &[u8]) -> bool {
    if recipient.starts_with("age1") {
        let Ok((hrp, u)) = bech32::decode(recipient) else {
            return false;
        };
        let (Ok(u), Ok(sig)) = (<[u8; 32]>::try_from(u), <&[u8; 64]>::try_from(sig)) else {
            return false;
        };
        return hrp.as_str() == "age" && xeddsa_verify(&u, msg, sig);
    }
    let Some(blob) = ssh_blob(recipient) else {
        return false;
    };
    let mut r = SshReader(&blob);
    match r.string() {
        Some(b"ssh-ed25519") if recipient.starts_with("ssh-ed25519 ") => {
            let (Some(pk), true) = (r.string(), r.0.is_empty()) else {
                return false;
            };
            let (Ok(pk), Ok(sig)) = (<[u8; 32]>::try_from(pk), <[u8; 64]>::try_from(sig)) else {
                return false;
            };
            let Ok(vk) = ed25519_dalek::VerifyingKey::from_bytes(&pk) else {
                return false;
            };
            vk.verify_strict(msg, &ed25519_dalek::Signature::from_bytes(&sig))
                .is_ok()
        }
        Some(b"ssh-rsa") if recipient.starts_with("ssh-rsa ") => {
            use rsa::signature::Verifier;
            let (Some(e), Some(n), true) = (r.string(), r.string(), r.0.is_empty()) else {
                return false;
            };
            let key = rsa::RsaPublicKey::new(
                rsa::BigUint::from_bytes_be(n),
                rsa::BigUint::from_bytes_be(e),
            );
            let (Ok(key), Ok(sig)) = (key, rsa::pss::Signature::try_from(sig)) else {
                return false;
            };
            rsa::pss::VerifyingKey::<Sha256>::new_with_salt_len(key, 32)
                .verify(msg, &sig)
                .is_ok()
        }
        _ => false,
    }
}

/// The key blob of `type base64` (a trailing comment ignored).
fn ssh_blob(recipient: &str) -> Option<Vec<u8>> {
    let b64 = recipient.split(' ').nth(1)?;
    base64::engine::general_purpose::STANDARD.decode(b64).ok()
}

/// The SSH wire format's length-prefixed strings.
struct SshReader<'a>(&'a [u8]);

impl<'a> SshReader<'a> {
    fn string(&mut self) -> Option<&'a [u8]> {
        let (len, rest) = self.0.split_first_chunk::<4>()?;
        let len = u32::from_be_bytes(*len) as usize;
        if rest.len() < len {
            return None;
        }
        let (s, rest) = rest.split_at(len);
        self.0 = rest;
        Some(s)
    }
}

/// XEdDSA's `hash_1`: SHA-512 of (2^256 - 2, little-endian) || X.
fn hash1() -> Sha512 {
    let mut pad = [0xffu8; 32];
    pad[0] = 0xfe;
    let mut h = Sha512::new();
    h.update(pad);
    h
}

/// XEdDSA `xeddsa_sign(k, M, Z)` with the X25519 secret `k` (clamped here,
/// as X25519 uses it) and 64 random bytes `z`.
pub(crate) fn xeddsa_sign(k: &[u8; 32], msg: &[u8], z: &[u8; 64]) -> [u8; 64] {
    // calculate_key_pair: A = kB with its sign bit forced to 0, negating k
    // when kB's is 1. `a` enters the nonce hash as 32 bytes: k as clamped
    // (not reduced) when kept, -k mod q when negated, as libsignal and
    // libxeddsa do (the test vectors pin it).
    let clamped = Zeroizing::new(clamp_integer(*k));
    let k_scalar = Scalar::from_bytes_mod_order(*clamped);
    let mut a_pub = EdwardsPoint::mul_base(&k_scalar).compress().to_bytes();
    let (a, a_bytes) = if a_pub[31] & 0x80 != 0 {
        let neg = -k_scalar;
        (neg, Zeroizing::new(neg.to_bytes()))
    } else {
        (k_scalar, Zeroizing::new(*clamped))
    };
    a_pub[31] &= 0x7f;
    let mut h1 = hash1();
    h1.update(&a_bytes[..]);
    h1.update(msg);
    h1.update(z);
    let r = Scalar::from_bytes_mod_order_wide(&h1.finalize().into());
    let big_r = EdwardsPoint::mul_base(&r).compress().to_bytes();
    let h = challenge(&big_r, &a_pub, msg);
    let s = r + h * a;
    let mut sig = [0u8; 64];
    sig[..32].copy_from_slice(&big_r);
    sig[32..].copy_from_slice(s.as_bytes());
    sig
}

fn challenge(r: &[u8; 32], a: &[u8; 32], msg: &[u8]) -> Scalar {
    let mut h = Sha512::new();
    h.update(r);
    h.update(a);
    h.update(msg);
    Scalar::from_bytes_mod_order_wide(&h.finalize().into())
}

/// Whether `bytes`, little-endian, is below p = 2^255 - 19.
fn below_p(bytes: &[u8; 32]) -> bool {
    const P: [u8; 32] = {
        let mut p = [0xffu8; 32];
        p[0] = 0xed;
        p[31] = 0x7f;
        p
    };
    for i in (0..32).rev() {
        if bytes[i] != P[i] {
            return bytes[i] < P[i];
        }
    }
    false
}

/// XEdDSA `xeddsa_verify(u, M, (R || s))`, with the checks of the
/// specification (u, R.y below p; s below q) and, as libsodium does,
/// no small-order A or R (with those a signature could be guessed).
pub(crate) fn xeddsa_verify(u: &[u8; 32], msg: &[u8], sig: &[u8; 64]) -> bool {
    if !below_p(u) {
        return false;
    }
    let Some(a) = MontgomeryPoint(*u).to_edwards(0) else {
        return false;
    };
    let r_bytes: [u8; 32] = sig[..32].try_into().expect("32 bytes");
    let s_bytes: [u8; 32] = sig[32..].try_into().expect("32 bytes");
    let mut r_y = r_bytes;
    r_y[31] &= 0x7f;
    if !below_p(&r_y) {
        return false;
    }
    let Some(s) = Option::<Scalar>::from(Scalar::from_canonical_bytes(s_bytes)) else {
        return false;
    };
    let Some(r_point) = CompressedEdwardsY(r_bytes).decompress() else {
        return false;
    };
    if a.is_small_order() || r_point.is_small_order() {
        return false;
    }
    let a_bytes = a.compress().to_bytes();
    let h = challenge(&r_bytes, &a_bytes, msg);
    let check = EdwardsPoint::vartime_double_scalar_mul_basepoint(&-h, &a, &s);
    check.compress().to_bytes() == r_bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    /// libxeddsa's signatures, with its nonces: ours are the same bytes
    /// (so it verifies ours), and we verify its.
    #[test]
    fn xeddsa_matches_libxeddsa() {
        let cases: serde_json::Value =
            serde_json::from_str(include_str!("sign/xeddsa_vectors.json")).unwrap();
        let cases = cases.as_array().unwrap();
        assert!(cases.len() >= 10);
        for c in cases {
            let get = |k: &str| unhex(c[k].as_str().unwrap());
            let k: [u8; 32] = get("priv").try_into().unwrap();
            let u: [u8; 32] = get("curve25519_pub").try_into().unwrap();
            let z: [u8; 64] = get("nonce").try_into().unwrap();
            let want: [u8; 64] = get("sig").try_into().unwrap();
            let msg = get("msg");
            // The vectors' public key is X25519's.
            assert_eq!(MontgomeryPoint::mul_base_clamped(k).to_bytes(), u);
            assert_eq!(xeddsa_sign(&k, &msg, &z), want, "{c}");
            assert!(xeddsa_verify(&u, &msg, &want));
            let mut bad = want;
            bad[40] ^= 1;
            assert!(!xeddsa_verify(&u, &msg, &bad));
            let mut other = msg.clone();
            other.push(0);
            assert!(!xeddsa_verify(&u, &other, &want));
        }
    }

    #[test]
    fn xeddsa_rejects_non_canonical_and_small_order() {
        let k = [7u8; 32];
        let u = MontgomeryPoint::mul_base_clamped(k).to_bytes();
        let sig = xeddsa_sign(&k, b"m", &[1; 64]);
        assert!(xeddsa_verify(&u, b"m", &sig));
        // s + q is the same scalar, not the same encoding.
        // q, the order of the base point, little-endian.
        let q = unhex("edd3f55c1a631258d69cf7a2def9de1400000000000000000000000000000010");
        let s = Scalar::from_bytes_mod_order(sig[32..].try_into().unwrap());
        let mut s_plus_q = [0u8; 32];
        let mut carry = 0u16;
        for i in 0..32 {
            let v = s.as_bytes()[i] as u16 + q[i] as u16 + carry;
            s_plus_q[i] = v as u8;
            carry = v >> 8;
        }
        let mut bad = sig;
        bad[32..].copy_from_slice(&s_plus_q);
        assert!(!xeddsa_verify(&u, b"m", &bad));
        // u = 0 and u = 1 are small-order points; u >= p is no encoding.
        for u in [[0u8; 32], {
            let mut one = [0u8; 32];
            one[0] = 1;
            one
        }] {
            assert!(!xeddsa_verify(&u, b"m", &sig));
            assert!(!xeddsa_verify(&u, b"m", &[0; 64]));
        }
        let mut big = [0xffu8; 32];
        big[31] = 0x7f;
        assert!(!xeddsa_verify(&big, b"m", &sig));
    }

    #[test]
    fn message_layout() {
        let m = message(&[0xaa; 16], 0x0102_0304_0506_0708, &[0xbb; 32]);
        assert_eq!(m.len(), MESSAGE_LEN);
        assert!(m.starts_with(b"vault-signature-v1\0"));
        assert_eq!(&m[19..35], &[0xaa; 16]);
        assert_eq!(&m[35..43], &[1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(&m[43..], &[0xbb; 32]);
        assert!(is_message(&m));
        assert!(!is_message(&m[1..]));
        let mut other = m.clone();
        other[0] = b'V';
        assert!(!is_message(&other));
    }

    #[test]
    fn fingerprint_is_base64_sha256_without_padding() {
        // SHA-256("abc") = ba7816bf…; in base64 without the trailing `=`.
        assert_eq!(
            fingerprint("abc"),
            "ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0"
        );
    }

    #[test]
    fn age_identity_signs_and_its_recipient_verifies() {
        let id = age::x25519::Identity::generate();
        let recipient = id.to_public().to_string();
        let key = SigningKey::x25519(&id);
        assert!(format!("{key:?}").contains(crate::names::MASK));
        let msg = message(&[1; 16], 5, &[2; 32]);
        let sig = key.sign(&msg).unwrap();
        assert!(verify(&recipient, &msg, &sig));
        assert!(!verify(&recipient, &message(&[1; 16], 6, &[2; 32]), &sig));
        let other = age::x25519::Identity::generate().to_public().to_string();
        assert!(!verify(&other, &msg, &sig));
        // Random nonces: two signatures differ, both verify.
        let sig2 = key.sign(&msg).unwrap();
        assert_ne!(sig, sig2);
        assert!(verify(&recipient, &msg, &sig2));
        assert!(!verify("age1nonsense", &msg, &sig));
        assert!(!verify(&recipient, &msg, &sig[..63]));
    }

    /// Throwaway ssh keys made for these tests (`ssh-keygen -N ""`): unencrypted
    /// ed25519 and rsa keys, as `age -i` reads them.
    fn ssh_key(text: &str) -> (SigningKey, String) {
        let id = age::ssh::Identity::from_buffer(text.as_bytes(), None).unwrap();
        let recipient = age::ssh::Recipient::try_from(id).unwrap().to_string();
        let key = ssh_key::PrivateKey::from_openssh(text).unwrap();
        (SigningKey::from_ssh(&key).unwrap(), recipient)
    }

    #[test]
    fn ssh_keys_sign_and_verify() {
        for text in [
            include_str!("sign/test_ed25519"),
            include_str!("sign/test_rsa"),
        ] {
            let (key, recipient) = ssh_key(text);
            let msg = message(&[3; 16], 1, &[4; 32]);
            let sig = key.sign(&msg).unwrap();
            assert!(verify(&recipient, &msg, &sig), "{recipient}");
            let mut bad = sig.clone();
            bad[10] ^= 1;
            assert!(!verify(&recipient, &msg, &bad));
            assert!(!verify(&recipient, &msg[1..], &sig));
            // With its comment, as users paste it, it is the same key.
            assert!(verify(&format!("{recipient} me@host"), &msg, &sig));
        }
        // A signature of one type does not pass as another.
        let (ed, ed_r) = ssh_key(include_str!("sign/test_ed25519"));
        let (_, rsa_r) = ssh_key(include_str!("sign/test_rsa"));
        let msg = message(&[3; 16], 1, &[4; 32]);
        let sig = ed.sign(&msg).unwrap();
        assert!(!verify(&rsa_r, &msg, &sig));
        let swapped = ed_r.replacen("ssh-ed25519", "ssh-rsa", 1);
        assert!(!verify(&swapped, &msg, &sig));
    }

    /// RSA-PSS with SHA-256, MGF1-SHA-256 and a 32-byte salt: the
    /// parameters are what the `rsa` crate checks, so a signature with a
    /// salt of another length is refused.
    #[test]
    fn rsa_pss_salt_is_32_bytes() {
        use rsa::signature::{RandomizedSigner, SignatureEncoding};
        let (_, recipient) = ssh_key(include_str!("sign/test_rsa"));
        let key = ssh_key::PrivateKey::from_openssh(include_str!("sign/test_rsa")).unwrap();
        let ssh_key::private::KeypairData::Rsa(pair) = key.key_data() else {
            panic!("rsa");
        };
        let sk = rsa_key(pair).unwrap();
        let msg = message(&[3; 16], 1, &[4; 32]);
        for (salt, ok) in [(32, true), (20, false), (0, false)] {
            let sig = rsa::pss::BlindedSigningKey::<Sha256>::new_with_salt_len(sk.clone(), salt)
                .sign_with_rng(&mut rand_core::OsRng, &msg)
                .to_vec();
            assert_eq!(verify(&recipient, &msg, &sig), ok, "salt {salt}");
        }
    }

    /// The cost of signing and verifying, on top of hashing the database
    /// (DESIGN v2 goal: at most 0.5 ms each at 1,000 secrets x 10 keys, a
    /// 768 KiB database). A benchmark, not a unit test: `benches/sign.sh`
    /// runs it in a release build and BENCHMARKS.md has its figures.
    #[test]
    #[ignore = "a benchmark: run by benches/sign.sh in release"]
    fn bench_sign_and_verify() {
        use std::time::Instant;
        fn median(mut xs: Vec<f64>) -> f64 {
            xs.sort_by(f64::total_cmp);
            xs[xs.len() / 2]
        }
        let time = |n: usize, f: &mut dyn FnMut()| {
            median(
                (0..n)
                    .map(|_| {
                        let t = Instant::now();
                        f();
                        t.elapsed().as_secs_f64() * 1e3
                    })
                    .collect(),
            )
        };
        let db = vec![0x5au8; 768 << 10];
        let hash = time(200, &mut || {
            std::hint::black_box(Sha256::digest(&db));
        });
        println!("sha256 of a 768 KiB database: {hash:.3} ms");
        let msg = message(&[1; 16], 42, &Sha256::digest(&db).into());
        let id = age::x25519::Identity::generate();
        let recipient = id.to_public().to_string();
        let (ed, ed_r) = ssh_key(include_str!("sign/test_ed25519"));
        let (rsa, rsa_r) = ssh_key(include_str!("sign/test_rsa"));
        let mut worst = 0f64;
        for (name, key, r, budget) in [
            ("xeddsa (age1)", SigningKey::x25519(&id), recipient, true),
            ("ed25519 (ssh-ed25519)", ed, ed_r, true),
            ("rsa-pss 2048 (ssh-rsa)", rsa, rsa_r, false),
        ] {
            let sig = key.sign(&msg).unwrap();
            let sign = time(if budget { 500 } else { 30 }, &mut || {
                std::hint::black_box(key.sign(&msg).unwrap());
            });
            let verify = time(500, &mut || {
                assert!(verify(&r, &msg, &sig));
            });
            println!("{name}: sign {sign:.3} ms, verify {verify:.3} ms");
            if budget {
                worst = worst.max(sign).max(verify);
            }
        }
        if !cfg!(debug_assertions) {
            assert!(worst <= 0.5, "over the 0.5 ms budget: {worst:.3} ms");
        }
    }
}
