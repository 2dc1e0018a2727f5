//! The owner's identity: generating it, sealing it in `identity.age` with
//! a passphrase (age's scrypt recipient), opening it, and parsing identity
//! files as `age -i` accepts them. An encrypted ssh key's passphrase is
//! asked of the caller through a callback, as age's `Callbacks` trait does:
//! this module never touches the terminal.

use std::{io, str::FromStr};

use age::secrecy::{ExposeSecret, SecretString};
use zeroize::Zeroizing;

use super::{Keys, age_reason, payload::looks_like_age};
use crate::error::{Error, Result};

/// The largest scrypt work factor (log2 N) `vault` accepts when opening
/// `identity.age`: deterministic, unlike age's "calibrated target + 4", and
/// high enough for files made on a faster machine.
const MAX_WORK_FACTOR: u8 = 22;

/// How crypto gets the passphrase of an encrypted ssh key, given the
/// key's name (`source`), as age's `Callbacks::request_passphrase` does:
/// the caller decides whether there is a terminal to ask on, and words the
/// failure when there is not.
pub(crate) type AskPassphrase<'a> = &'a dyn Fn(&str) -> Result<SecretString>;

/// For identity text that must never prompt (the agent's, a fuzzer's): an
/// encrypted ssh key in it is refused.
pub(crate) fn never_ask(source: &str) -> Result<SecretString> {
    Err(Error::new(format!(
        "{source} is an encrypted ssh key, and there is nobody to ask for its passphrase"
    ))
    .hint("use an unencrypted key for automation, or run in a terminal"))
}

/// A fresh X25519 identity for a new vault owner.
pub fn generate() -> age::x25519::Identity {
    age::x25519::Identity::generate()
}

/// An identity file as `age -i` accepts it: `age-keygen` output (comments,
/// blank lines and `AGE-SECRET-KEY-1…` lines), or an ssh private key
/// (ed25519 or rsa; the passphrase of an encrypted one comes from `ask`).
/// Errors name the line number, never the line.
pub(crate) fn parse_identity_file(
    text: &[u8],
    source: &str,
    ask: AskPassphrase<'_>,
) -> Result<Keys> {
    let not_identity = || {
        Error::new(format!(
            "{source} is not an age identity file or ssh private key"
        ))
        .hint("create one with `age-keygen -o key.txt`")
    };
    // An age-encrypted file (`age -p`, or vault's own identity.age) is not
    // a plain identity, and not an ssh key either, which is what the armored
    // form's `-----BEGIN` made it look like.
    let start = text.trim_ascii_start();
    if start.starts_with(b"age-encryption.org/")
        || start.starts_with(b"-----BEGIN AGE ENCRYPTED FILE-----")
    {
        return Err(Error::new(format!(
            "{source} is an encrypted age file (a passphrase-protected identity?), not a plain identity file"
        ))
        .hint(format!("decrypt it once (`age -d -o key.txt {source}`) and pass key.txt; if it is vault's own identity.age, put it in VAULT_DIR and drop --identity / VAULT_IDENTITY")));
    }
    let text = std::str::from_utf8(text).map_err(|_| not_identity())?;
    if text.trim_start().starts_with("-----BEGIN") {
        return parse_ssh_identity(text, source, ask);
    }
    let (mut identities, mut signers) = (vec![], vec![]);
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let id = age::x25519::Identity::from_str(line).map_err(|_| {
            Error::new(format!(
                "{source}, line {}: not an age identity (`AGE-SECRET-KEY-1…`)",
                n + 1
            ))
            .hint("create one with `age-keygen -o key.txt`")
        })?;
        signers.push((
            id.to_public().to_string(),
            crate::sign::SigningKey::x25519(&id),
        ));
        identities.push(Box::new(id) as Box<dyn age::Identity>);
    }
    if identities.is_empty() {
        return Err(not_identity());
    }
    Ok(Keys::known(identities, signers))
}

fn parse_ssh_identity(text: &str, source: &str, ask: AskPassphrase<'_>) -> Result<Keys> {
    use age::ssh::Identity as Ssh;
    let unsupported = || {
        Error::new(format!(
            "{source} is an ssh key of a type age does not support"
        ))
        .hint("age accepts ssh-ed25519 and ssh-rsa keys")
    };
    let id = Ssh::from_buffer(text.as_bytes(), Some(source.to_string())).map_err(|_| {
        Error::new(format!("{source} is not an ssh private key age can use"))
            .hint("age accepts ssh-ed25519 and ssh-rsa keys")
    })?;
    let recipient = age::ssh::Recipient::try_from(id.clone())
        .map_err(|_| unsupported())?
        .to_string();
    // The key signs too (DESIGN v2 "Trust"), and age keeps its parsed key
    // to itself: `ssh-key` reads it, decrypting it if need be (one
    // passphrase prompt, one bcrypt), and age is given the decrypted text.
    let key = ssh_key::PrivateKey::from_openssh(text).map_err(|_| unsupported())?;
    let (key, id) = match id {
        Ssh::Encrypted(_) => {
            let pass = ask(source)?;
            let key = key
                .decrypt(pass.expose_secret())
                .map_err(|_| Error::new(format!("wrong passphrase for the ssh key {source}")))?;
            let plain = key
                .to_openssh(ssh_key::LineEnding::LF)
                .map_err(|_| unsupported())?;
            let id = Ssh::from_buffer(plain.as_bytes(), Some(source.to_string()))
                .map_err(|_| unsupported())?;
            (key, id)
        }
        Ssh::Unencrypted(key_) => (key, Ssh::Unencrypted(key_)),
        Ssh::Unsupported(_) => return Err(unsupported()),
    };
    if !matches!(id, Ssh::Unencrypted(_)) {
        return Err(unsupported());
    }
    let signer = crate::sign::SigningKey::from_ssh(&key)?;
    Ok(Keys::known(vec![Box::new(id)], vec![(recipient, signer)]))
}

/// The text of an identity file for `id`, as `age-keygen` writes it.
pub fn identity_file_text(id: &age::x25519::Identity) -> Zeroizing<String> {
    Zeroizing::new(format!(
        "# public key: {}\n{}\n",
        id.to_public(),
        id.to_string().expose_secret()
    ))
}

/// In debug builds only, tests may lower scrypt's cost; a release build
/// always uses age's calibrated work factor (about a second).
fn work_factor_override() -> Option<u8> {
    if cfg!(debug_assertions) {
        std::env::var("VAULT_SCRYPT_WORK_FACTOR")
            .ok()
            .and_then(|v| v.parse().ok())
    } else {
        None
    }
}

/// `identity.age`: the identity file text, encrypted with a passphrase
/// (age's scrypt recipient, ASCII-armored like `age -p -a`).
pub(crate) fn seal_identity(
    id: &age::x25519::Identity,
    passphrase: &SecretString,
) -> Result<Vec<u8>> {
    seal_identity_text(&identity_file_text(id), passphrase)
}

/// Seals identity file text with a passphrase (also used by `passwd`).
pub(crate) fn seal_identity_text(text: &str, passphrase: &SecretString) -> Result<Vec<u8>> {
    let mut rcpt = age::scrypt::Recipient::new(passphrase.clone());
    if let Some(wf) = work_factor_override() {
        rcpt.set_work_factor(wf);
    }
    age::encrypt_and_armor(&rcpt, text.as_bytes())
        .map(String::into_bytes)
        .map_err(|e| Error::new(format!("cannot encrypt the identity: {}", age_reason(&e))))
}

/// The identity file text inside `identity.age` (for `passwd` to re-seal
/// and `unlock` to hand to the agent).
pub(crate) fn open_identity_text(
    sealed: &[u8],
    passphrase: &SecretString,
    source: &str,
) -> Result<Zeroizing<String>> {
    if sealed.is_empty() {
        return Err(
            Error::new(format!("{source} is empty")).hint("restore identity.age from a backup")
        );
    }
    if !looks_like_age(&mut io::Cursor::new(sealed)).unwrap_or(true) {
        return Err(Error::new(format!("{source} is not an age file")).hint(
            "restore identity.age from a backup; a plain identity file is passed with --identity",
        ));
    }
    let mut ident = age::scrypt::Identity::new(passphrase.clone());
    ident.set_max_work_factor(MAX_WORK_FACTOR);
    let plain = age::decrypt(&ident, sealed).map_err(|e| match e {
        age::DecryptError::DecryptionFailed | age::DecryptError::KeyDecryptionFailed => {
            Error::new(format!("wrong passphrase for {source}"))
                .hint("try again; `vault passwd` changes the passphrase once you are in")
        }
        age::DecryptError::NoMatchingKeys => {
            Error::new(format!("{source} is not protected by a passphrase"))
                .hint("if it is a plain identity file, pass it with --identity")
        }
        age::DecryptError::ExcessiveWork { .. } => Error::new(format!(
            "{source} asks for more scrypt work than vault accepts"
        ))
        .hint("re-create it with `age -p` on this machine"),
        age::DecryptError::Io(ref io) if io.kind() == io::ErrorKind::UnexpectedEof => {
            Error::new(format!("{source} is truncated")).hint("restore identity.age from a backup")
        }
        other => Error::new(format!("{source} is damaged: {}", age_reason(&other)))
            .hint("restore identity.age from a backup"),
    })?;
    let plain = Zeroizing::new(plain);
    let text = std::str::from_utf8(&plain).map_err(|_| {
        Error::new(format!("{source} does not hold an identity file"))
            .hint("restore identity.age from a backup")
    })?;
    Ok(Zeroizing::new(text.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::generate;

    fn open_identity(sealed: &[u8], pass: &SecretString) -> Result<Keys> {
        let text = open_identity_text(sealed, pass, "identity.age")?;
        parse_identity_file(text.as_bytes(), "identity.age", &never_ask)
    }
    #[test]
    fn sealed_identity_round_trip_and_wrong_passphrase() {
        let id = generate();
        let public = id.to_public().to_string();
        let pass = SecretString::from("correct horse".to_string());
        let mut rcpt = age::scrypt::Recipient::new(pass.clone());
        rcpt.set_work_factor(10);
        let sealed = age::encrypt_and_armor(&rcpt, identity_file_text(&id).as_bytes()).unwrap();
        let keys = open_identity(sealed.as_bytes(), &pass).unwrap();
        assert_eq!(keys.recipients(), [public]);
        let wrong = SecretString::from("wrong".to_string());
        let err = open_identity(sealed.as_bytes(), &wrong).unwrap_err();
        assert!(err.message().contains("wrong passphrase"), "{err:?}");
    }
    #[test]
    fn identity_file_errors_name_the_line_not_the_text() {
        let err =
            parse_identity_file(b"# c\nAGE-SECRET-KEY-1NOPE\n", "key.txt", &never_ask).unwrap_err();
        assert!(err.message().contains("line 2"));
        assert!(!err.message().contains("NOPE"));
        assert!(parse_identity_file(b"# only a comment\n", "key.txt", &never_ask).is_err());
    }
}
