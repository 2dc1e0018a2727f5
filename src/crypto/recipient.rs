//! Recipients as users write them (`age1…`, `ssh-ed25519 …`, `ssh-rsa …`),
//! and the canonical form the vault stores and compares.

use std::str::FromStr;

use crate::error::{Error, Result};

/// A recipient as users write them: `age1…`, `ssh-ed25519 …` or
/// `ssh-rsa …` (a trailing comment is dropped).
pub(crate) fn parse_recipient(text: &str) -> Result<Box<dyn age::Recipient + Send>> {
    let text = text.trim();
    let invalid = || {
        Error::new(format!("`{}` is not an age or ssh recipient", crate::names::printable(text)))
            .hint("a recipient is `age1…` (from `vault recipient` or age-keygen) or an ssh-ed25519/ssh-rsa public key")
    };
    if text.starts_with("age1") {
        return age::x25519::Recipient::from_str(text)
            .map(|r| Box::new(r) as Box<dyn age::Recipient + Send>)
            .map_err(|_| invalid());
    }
    if text.starts_with("ssh-") {
        return age::ssh::Recipient::from_str(text)
            .map(|r| Box::new(r) as Box<dyn age::Recipient + Send>)
            .map_err(|_| invalid());
    }
    Err(invalid())
}

/// The form a recipient is stored and compared in: validated, and for ssh
/// keys without the comment (`ssh-ed25519 AAAA…`).
pub(crate) fn canonical_recipient(text: &str) -> Result<String> {
    parse_recipient(text)?;
    let text = text.trim();
    if text.starts_with("ssh-") {
        let r =
            age::ssh::Recipient::from_str(text).map_err(|_| Error::new("invalid ssh recipient"))?;
        return Ok(r.to_string());
    }
    Ok(text.to_string())
}

/// Parses stored recipient strings.
pub(crate) fn parse_recipients(
    recipients: &[String],
) -> Result<Vec<Box<dyn age::Recipient + Send>>> {
    recipients
        .iter()
        .map(|r| {
            parse_recipient(r).map_err(|_| {
                Error::new(format!(
                    "the vault lists an invalid recipient `{}`",
                    crate::names::printable(r)
                ))
            })
        })
        .collect()
}
