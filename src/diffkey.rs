//! The value fingerprints of `vault git show` (DESIGN v2 "Git"): the first
//! 12 lowercase hex digits of HMAC-SHA256 under the vault's `diff_key`
//! (256 random bits inside the encrypted file, so every member computes
//! the same fingerprints and nobody else can test a guess against one) of
//! `env 0x00 name 0x00 key 0x00 value`. Names, keys and values cannot hold
//! NUL, so the message is unambiguous.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Hex digits of a fingerprint: 48 bits, enough to tell a change in a diff
/// (a collision between two values of one key is a 2^-48 event), too few
/// to be worth anything as a MAC.
pub(crate) const DIGITS: usize = 12;

/// HMAC-SHA256 of the concatenation of `parts` under `key`.
pub(crate) fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    // An HMAC takes a key of any length.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().into()
}

/// The fingerprint of one value.
pub(crate) fn fingerprint(
    diff_key: &[u8; 32],
    env: &str,
    name: &str,
    key: &str,
    value: &str,
) -> String {
    let mac = hmac_sha256(
        diff_key,
        &[
            env.as_bytes(),
            b"\0",
            name.as_bytes(),
            b"\0",
            key.as_bytes(),
            b"\0",
            value.as_bytes(),
        ],
    );
    const HEX: &[u8; 16] = b"0123456789abcdef";
    mac[..DIGITS / 2]
        .iter()
        .flat_map(|b| [HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]])
        .map(char::from)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(b: &[u8]) -> String {
        b.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// RFC 4231, test cases 1 to 7 (HMAC-SHA-256); case 5 is compared on
    /// its first 128 bits, as the RFC truncates it.
    #[test]
    fn rfc_4231_vectors() {
        let key4: Vec<u8> = (1..=25).collect();
        let cases: [(&[u8], &[u8], &str); 7] = [
            (&[0x0b; 20], b"Hi There", "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"),
            (b"Jefe", b"what do ya want for nothing?", "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"),
            (&[0xaa; 20], &[0xdd; 50], "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe"),
            (&key4, &[0xcd; 50], "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b"),
            (&[0x0c; 20], b"Test With Truncation", "a3b6167473100ee06e0c796c2955552b"),
            (&[0xaa; 131], b"Test Using Larger Than Block-Size Key - Hash Key First", "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"),
            (&[0xaa; 131], b"This is a test using a larger than block-size key and a larger than block-size data. The key needs to be hashed before being used by the HMAC algorithm.", "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2"),
        ];
        for (i, (key, data, want)) in cases.iter().enumerate() {
            let got = hex(&hmac_sha256(key, &[data]));
            assert_eq!(&got[..want.len()], *want, "RFC 4231 case {}", i + 1);
        }
        // Parts are concatenated: a split message is the same message.
        assert_eq!(
            hmac_sha256(b"Jefe", &[b"what do ya ", b"want for nothing?"]),
            hmac_sha256(b"Jefe", &[b"what do ya want for nothing?"])
        );
    }

    #[test]
    fn fingerprints_are_twelve_hex_digits_and_separate_their_fields() {
        let k = [7u8; 32];
        let f = fingerprint(&k, "main", "db", "PW", "x");
        assert_eq!(f.len(), DIGITS);
        assert!(
            f.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        );
        // Python: hmac.new(bytes([7]*32), b"main\0db\0PW\0x", "sha256").hexdigest()[:12]
        assert_eq!(f, "11b5233597fa");
        assert_ne!(f, fingerprint(&k, "main", "db", "P", "Wx"));
        assert_ne!(f, fingerprint(&[8; 32], "main", "db", "PW", "x"));
    }
}
