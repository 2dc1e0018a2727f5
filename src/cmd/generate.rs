//! `vault secret generate NAME KEY… [--length N] [--chars SET]`: fresh
//! random values from the operating system's CSPRNG (`getrandom`), for
//! creating or rotating keys without a value ever being typed or shown.

use zeroize::Zeroizing;

use crate::output::note;
use crate::{
    cli::Chars,
    context::Context,
    error::{Error, Result},
    names::{EnvKey, SecretName, SecretValue},
    store, unlock, vault,
};

const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
const HEX: &[u8] = b"0123456789abcdef";
const URL: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// The characters of each `--chars` set.
pub(crate) fn alphabet(chars: Chars) -> Vec<u8> {
    match chars {
        Chars::Alnum => ALNUM.to_vec(),
        Chars::Hex => HEX.to_vec(),
        Chars::Url => URL.to_vec(),
        // Printable ASCII but space, which trims away in too many places.
        Chars::Ascii => (b'!'..=b'~').collect(),
    }
}

/// `len` characters drawn uniformly from `alphabet` with random bytes from
/// `fill`. A byte is used only below the largest multiple of the alphabet's
/// size that fits in a byte (rejection sampling), so no character is more
/// likely than another.
pub(crate) fn value(
    len: usize,
    alphabet: &[u8],
    fill: &mut dyn FnMut(&mut [u8]) -> Result<()>,
) -> Result<Zeroizing<String>> {
    assert!((2..=256).contains(&alphabet.len()));
    let n = alphabet.len();
    let limit = 256 - 256 % n;
    let mut out = Zeroizing::new(String::with_capacity(len));
    let mut buf = Zeroizing::new([0u8; 64]);
    while out.len() < len {
        fill(&mut buf[..])?;
        for &b in buf.iter() {
            if usize::from(b) < limit && out.len() < len {
                out.push(char::from(alphabet[usize::from(b) % n]));
            }
        }
    }
    Ok(out)
}

/// The operating system's CSPRNG.
fn os_random(buf: &mut [u8]) -> Result<()> {
    getrandom::fill(buf).map_err(|e| {
        Error::new(format!("the system's random number generator failed: {e}"))
            .hint("nothing was changed; try again")
    })
}

pub(crate) fn run(
    ctx: &Context,
    name: &str,
    keys: &[String],
    length: usize,
    chars: Chars,
) -> Result<()> {
    let name = SecretName::parse(name)?;
    let mut parsed: Vec<EnvKey> = vec![];
    for k in keys {
        let k = EnvKey::parse(k)?;
        if !parsed.contains(&k) {
            parsed.push(k);
        }
    }
    crate::names::warn_dangerous(parsed.iter().map(EnvKey::as_str));
    let set = alphabet(chars);
    let entries = parsed
        .into_iter()
        .map(|k| {
            let v = value(length, &set, &mut os_random)?;
            let v = SecretValue::new(&k, v)?;
            Ok((k, v))
        })
        .collect::<Result<Vec<_>>>()?;
    let created = vault::write(&ctx.paths, unlock::for_write(ctx)?, |db| {
        if store::exists(db, &ctx.scope.env, &name)? {
            store::set(db, &ctx.scope.env, &name, &entries)?;
            Ok(false)
        } else {
            store::create_secret(db, &ctx.scope.env, &name, &entries, false)?;
            Ok(true)
        }
    })?;
    let n = entries.len();
    let keys = super::secret::plural(n, "key", "keys");
    let verb = if created { "Created" } else { "Generated" };
    let what = if created {
        format!("`{name}` with {n} generated {keys}")
    } else {
        format!("{n} {keys} in `{name}`")
    };
    let set = match chars {
        Chars::Alnum => "alnum",
        Chars::Hex => "hex",
        Chars::Url => "url",
        Chars::Ascii => "ascii",
    };
    note!(
        "{verb} {what} ({length} {set} characters each); `vault secret show {name} --reveal` shows them"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejection_sampling_skips_the_biased_tail() {
        // 62 characters: bytes 248..=255 would favour the first eight.
        let mut bytes = (240u8..=255).chain(0..4).collect::<Vec<u8>>().into_iter();
        let mut fill = |buf: &mut [u8]| {
            for b in buf.iter_mut() {
                *b = bytes.next().unwrap_or(61);
            }
            Ok(())
        };
        let v = value(12, ALNUM, &mut fill).unwrap();
        // 240..=247 map to 240 % 62 = 54.. = "2".."9", 248..=255 are
        // skipped, then 0..4 = "ABCD".
        assert_eq!(v.as_str(), "23456789ABCD");
    }

    #[test]
    fn os_values_have_the_length_and_only_the_characters_asked_for() {
        for chars in [Chars::Alnum, Chars::Hex, Chars::Url, Chars::Ascii] {
            let set = alphabet(chars);
            let v = value(1000, &set, &mut os_random).unwrap();
            assert_eq!(v.len(), 1000);
            assert!(v.bytes().all(|b| set.contains(&b)), "{chars:?}");
        }
        assert_eq!(alphabet(Chars::Ascii).len(), 94);
        assert_ne!(
            value(32, ALNUM, &mut os_random).unwrap(),
            value(32, ALNUM, &mut os_random).unwrap()
        );
    }

    #[test]
    fn os_values_are_uniform() {
        // 62,000 draws: each character is expected 1,000 times (sd ~31.4);
        // a bias as small as the one rejection sampling removes (8 of 62
        // characters at 5/4 the odds) puts them near 1,240.
        let v = value(62_000, ALNUM, &mut os_random).unwrap();
        let mut counts = [0u32; 256];
        for b in v.bytes() {
            counts[usize::from(b)] += 1;
        }
        for &c in ALNUM {
            let n = counts[usize::from(c)];
            assert!((830..=1170).contains(&n), "{} drawn {n} times", c as char);
        }
    }
}
