//! The one door into the crate for `tests/` and `fuzz/`: exactly what they
//! use, and nothing a user of the binary could depend on. Everything else
//! is `pub(crate)`, so the compiler finds what nobody calls.

pub use crate::{
    agent::{AgentState, respond},
    cli::full_command,
    cmd::export::render_json,
    crypto::{
        Keys,
        identity::{generate, identity_file_text},
        payload::{decrypt_vec, encrypt_vec},
    },
    dotenv::{Entry, Options, ParseError, Parsed, parse, render_dotenv},
    error::Error,
    fsio::stale_temps,
    names::{EnvKey, SecretName, SecretValue, is_env_key},
    store::{
        RecipientInfo, SecretInfo, create_secret, delete, entries, envs, info, list, recipients,
        recipients_info, set_author,
    },
    vault::{forge, load_bytes, load_plaintext},
    verified::{cached_hash, cached_stanza, record_hash},
};

/// `crypto::parse_identity_file` for identity text that must not prompt:
/// an encrypted ssh key in it is an error.
pub fn parse_identity_file(text: &[u8], source: &str) -> Result<Keys, Error> {
    crate::crypto::parse_identity_file(text, source, &crate::crypto::never_ask)
}

/// What `secret history`, `show --rev` and `rollback` run on a database, for
/// the `db_load` fuzz target: errors are fine, panics are not.
pub fn exercise_history(conn: &rusqlite::Connection, name: &SecretName) {
    let _ = crate::store::descriptions(conn, "main", name);
    if let Ok(versions) = crate::store::history::versions(conn, "main", name) {
        let _ = crate::store::history::changes(&versions);
        for v in &versions {
            let _ = crate::store::history::version(conn, "main", name, v.number);
        }
    }
    let _ = crate::store::history::rollback(conn, "main", name, None);
}
