//! Where the identity that opens the vault comes from, in DESIGN.md's order:
//!
//! 1. `--identity FILE` / `VAULT_IDENTITY`: a plain age identity file;
//!    then `VAULT_AGE_KEY`: the text of one, as CI systems hand secrets
//!    over (sops's `SOPS_AGE_KEY`);
//! 2. the agent started by `vault unlock`, while it is alive;
//! 3. `--passphrase-file FILE` / `VAULT_PASSPHRASE_FILE` (must be private);
//! 4. `VAULT_PASSPHRASE`;
//! 5. a prompt on `/dev/tty`; with no terminal, an immediate error.
//!
//! Sources 3-5 yield a passphrase that opens `identity.age` (scrypt, about a
//! second). Everything here runs *before* a writer takes the lock.

use age::secrecy::SecretString;
use zeroize::Zeroizing;

use crate::{
    agent,
    context::Context,
    crypto::{self, Keys},
    env::AGE_KEY_VAR,
    error::{Error, Result},
    fsio, term,
    vault::{self, WriteKeys},
};

/// The keys for an existing identity, from the first source that applies.
pub(crate) fn unlock(ctx: &Context) -> Result<Keys> {
    fsio::check_vault_dir(&ctx.paths.dir)?;
    if let Some(path) = &ctx.sources.identity {
        return identity_file(path, &ssh_passphrase);
    }
    if let Some(keys) = age_key(&ssh_passphrase)? {
        return Ok(keys);
    }
    if let Some(keys) = agent::keys(&ctx.paths.dir)? {
        return Ok(keys);
    }
    let text = identity_text(ctx)?;
    crypto::parse_identity_file(
        text.as_bytes(),
        &ctx.paths.identity.display().to_string(),
        &ssh_passphrase,
    )
}

/// The keys from sources 1-4 only: what runs under git (`vault git show`,
/// the merge driver), which must never prompt, not even for an ssh key's
/// passphrase. `Ok(None)` when no source applies, so that the caller can
/// say what it does without keys.
pub(crate) fn without_prompt(ctx: &Context) -> Result<Option<Keys>> {
    fsio::check_vault_dir(&ctx.paths.dir)?;
    if let Some(path) = &ctx.sources.identity {
        return identity_file(path, &crypto::never_ask).map(Some);
    }
    if let Some(keys) = age_key(&crypto::never_ask)? {
        return Ok(Some(keys));
    }
    if let Some(keys) = agent::keys(&ctx.paths.dir)? {
        return Ok(Some(keys));
    }
    let Some(pass) = configured_passphrase(ctx)? else {
        return Ok(None);
    };
    let sealed_path = &ctx.paths.identity;
    if !sealed_path.exists() {
        return Ok(None);
    }
    let sealed = fsio::read(sealed_path)?;
    let text = crypto::open_identity_text(&sealed, &pass, &sealed_path.display().to_string())?;
    crypto::parse_identity_file(
        text.as_bytes(),
        &sealed_path.display().to_string(),
        &crypto::never_ask,
    )
    .map(Some)
}

/// The text of `identity.age`, opened with a passphrase (sources 3-5; the
/// agent cannot help, since it never hands the identity out).
pub(crate) fn identity_text(ctx: &Context) -> Result<Zeroizing<String>> {
    fsio::check_vault_dir(&ctx.paths.dir)?;
    let sealed_path = &ctx.paths.identity;
    if !sealed_path.exists() {
        let e = Error::new(format!("no identity at {}", sealed_path.display()));
        // In CI a secret that is not defined expands to "": say so.
        if std::env::var_os(AGE_KEY_VAR).is_some_and(|v| v.is_empty()) {
            return Err(e.hint(format!(
                "{AGE_KEY_VAR} is set but empty (is the CI secret that should fill it defined?); it takes the text of an age identity file"
            )));
        }
        // With the vault still there, `vault init` would refuse (it never
        // buries a vault under a new key): the way back is the old key.
        return Err(if ctx.paths.file.exists() {
            e.hint(format!(
                "restore identity.age from a backup, or open {} with the age identity it is encrypted to (--identity / VAULT_IDENTITY)",
                ctx.paths.file.display()
            ))
        } else {
            e.hint("create one with `vault init`, or pass an age identity file with --identity / VAULT_IDENTITY")
        });
    }
    let sealed = fsio::read(sealed_path)?;
    let pass = passphrase(ctx, "Passphrase for the vault: ")?;
    crypto::open_identity_text(&sealed, &pass, &sealed_path.display().to_string())
}

/// The keys to read an existing vault: "no vault at …" comes first, before
/// any passphrase is asked for.
pub(crate) fn for_read(ctx: &Context) -> Result<Keys> {
    vault::require_exists(&ctx.paths.file)?;
    unlock(ctx)
}

/// The keys for a write that changes what a vault already holds (`secret
/// set`, `rename`, `delete`, `recipients add`, …). Only `init`, `secret
/// create`, `generate` and `import` make a missing vault (DESIGN "Command
/// line"); a change to one that does not exist is "no vault at …", as a
/// read is, before a new passphrase is asked for, an identity made or a
/// lock file left behind.
pub(crate) fn for_change(ctx: &Context) -> Result<WriteKeys<'_>> {
    vault::require_exists(&ctx.paths.file)?;
    for_write(ctx)
}

/// The keys a write needs. With no identity file and no `identity.age`, a
/// new identity is generated and sealed with a new passphrase, ready for
/// `vault` to write once it holds the lock (and has re-checked).
pub(crate) fn for_write(ctx: &Context) -> Result<WriteKeys<'_>> {
    fsio::check_vault_dir(&ctx.paths.dir)?;
    if identity_given(ctx) || ctx.paths.identity.exists() {
        // (An agent only runs for an existing identity.age.)
        return unlock(ctx).map(WriteKeys::Existing);
    }
    if ctx.paths.file.exists() {
        return Err(vault::orphaned_vault(&ctx.paths));
    }
    let pass = new_passphrase(ctx)?;
    let id = crypto::generate();
    let sealed = crypto::seal_identity(&id, &pass)?;
    Ok(WriteKeys::NewOwner {
        keys: Keys::from_x25519(id),
        sealed,
        existing: Box::new(|| unlock(ctx)),
    })
}

/// Whether the identity is given directly (`--identity`/`VAULT_IDENTITY`
/// or `VAULT_AGE_KEY`), so that no agent or passphrase is involved.
pub(crate) fn identity_given(ctx: &Context) -> bool {
    ctx.sources.identity.is_some() || std::env::var_os(AGE_KEY_VAR).is_some_and(|v| !v.is_empty())
}

/// `VAULT_AGE_KEY`, when set and not empty. A malformed one is named by
/// the variable and a line number, never shown: it is key material.
fn age_key(ask: crypto::AskPassphrase<'_>) -> Result<Option<Keys>> {
    let Some(text) = std::env::var_os(AGE_KEY_VAR).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    let text = Zeroizing::new(text.into_encoded_bytes());
    crypto::parse_identity_file(&text, AGE_KEY_VAR, ask)
        .map(Some)
        .map_err(|e| {
            e.hint(format!(
                "{AGE_KEY_VAR} holds the text of an age identity file (`{AGE_KEY_VAR}=\"$(cat key.txt)\"`), not a path: a path goes in VAULT_IDENTITY"
            ))
        })
}

/// `--identity` / `VAULT_IDENTITY`: a key file must be as private as ssh
/// demands of its keys (a world-readable one was used silently).
fn identity_file(path: &std::path::Path, ask: crypto::AskPassphrase<'_>) -> Result<Keys> {
    // `VAULT_IDENTITY="$(cat key.txt)"`: the key's text, not a path.
    if crate::names::looks_like_key_material(&path.to_string_lossy()) {
        return Err(Error::new(
            "--identity / VAULT_IDENTITY holds the text of a key (not shown), not a file's path",
        )
        .hint(format!(
            "put the text in {AGE_KEY_VAR} (`{AGE_KEY_VAR}=\"$(cat key.txt)\"`), or the file's path in VAULT_IDENTITY"
        )));
    }
    if path.exists() {
        fsio::check_private(path)?;
    }
    let text = Zeroizing::new(fsio::read(path).map_err(|e| {
        e.hint(
            "--identity / VAULT_IDENTITY must name an age identity file (`age-keygen -o key.txt`)",
        )
    })?);
    crypto::parse_identity_file(&text, &path.display().to_string(), ask)
}

/// The passphrase of an existing identity, from file, environment or prompt.
pub(crate) fn passphrase(ctx: &Context, prompt: &str) -> Result<SecretString> {
    if let Some(pass) = configured_passphrase(ctx)? {
        return Ok(pass);
    }
    ask(prompt)
}

/// Whether a passphrase is given without a terminal (a file, or
/// `VAULT_PASSPHRASE`): else one would have to be asked for.
pub(crate) fn passphrase_given(ctx: &Context) -> bool {
    ctx.sources.passphrase_file.is_some()
        || std::env::var_os("VAULT_PASSPHRASE").is_some_and(|p| !p.is_empty())
}

/// A passphrase from `--passphrase-file` or `VAULT_PASSPHRASE`, if given.
fn configured_passphrase(ctx: &Context) -> Result<Option<SecretString>> {
    if let Some(path) = &ctx.sources.passphrase_file {
        return read_passphrase_file(path).map(Some);
    }
    match std::env::var("VAULT_PASSPHRASE") {
        Ok(p) if !p.is_empty() => Ok(Some(SecretString::from(p))),
        // An error, not a fall through to the prompt (or "no terminal") as
        // if it were unset; its bytes are never shown.
        Err(std::env::VarError::NotUnicode(bytes)) => {
            drop(Zeroizing::new(bytes.into_encoded_bytes()));
            Err(Error::new("VAULT_PASSPHRASE is not valid UTF-8 (not shown)").hint(
                "a passphrase is UTF-8 text: set VAULT_PASSPHRASE to the passphrase, or unset it (or use --passphrase-file / VAULT_PASSPHRASE_FILE)",
            ))
        }
        _ => Ok(None),
    }
}

/// The first line of a private file.
pub(crate) fn read_passphrase_file(path: &std::path::Path) -> Result<SecretString> {
    fsio::check_private(path)?;
    let bytes = Zeroizing::new(fsio::read(path)?);
    let text = std::str::from_utf8(&bytes)
        .map_err(|_| Error::new(format!("{} is not UTF-8 text", path.display())))?;
    let line = text.lines().next().unwrap_or("");
    if line.is_empty() {
        return Err(Error::new(format!(
            "{} is empty: its first line is the passphrase",
            path.display()
        )));
    }
    Ok(SecretString::from(line.to_string()))
}

/// A new passphrase: from file or environment, else typed twice.
pub(crate) fn new_passphrase(ctx: &Context) -> Result<SecretString> {
    if let Some(pass) = configured_passphrase(ctx)? {
        return Ok(pass);
    }
    ask_new_passphrase(NewFor::Identity)
}

/// What a new passphrase is for, which decides where else it can come
/// from when there is no terminal to type it on.
#[derive(Clone, Copy)]
pub(crate) enum NewFor {
    /// A new `identity.age` (`init`, or a first write).
    Identity,
    /// `passwd`, which has unlocked with the old one already.
    Passwd,
}

/// A new passphrase typed twice on the terminal, compared in constant time.
pub(crate) fn ask_new_passphrase(new_for: NewFor) -> Result<SecretString> {
    // Nothing is locked here: `init` has no vault yet, and `passwd` has
    // read the old passphrase; the remedy is where the new one can come from.
    let no_terminal = || {
        match new_for {
        NewFor::Identity => Error::new(
            "there is no terminal to ask for the passphrase of a new identity",
        )
        .hint(
            "pass it in a file (--passphrase-file / VAULT_PASSPHRASE_FILE) or set VAULT_PASSPHRASE, or make the vault for an identity file (`age-keygen -o key.txt; VAULT_IDENTITY=key.txt vault init`)",
        ),
        NewFor::Passwd => Error::new(
            "the old passphrase was read, but there is no terminal to ask for the new one",
        )
        .hint("pass it in a file: `vault passwd --new-passphrase-file FILE`"),
    }
    };
    let first = ask_or("New passphrase for the vault: ", no_terminal)?;
    if age::secrecy::ExposeSecret::expose_secret(&first).is_empty() {
        return Err(Error::new("the passphrase is empty")
            .hint("choose a passphrase, or use an identity file (`age-keygen -o key.txt; VAULT_IDENTITY=key.txt vault init`)"));
    }
    let second = ask_or("Repeat the passphrase: ", no_terminal)?;
    if !crypto::same_passphrase(&first, &second) {
        return Err(Error::new("the two passphrases differ").hint("run the command again"));
    }
    Ok(first)
}

/// A hidden prompt on the controlling terminal for the passphrase that
/// unlocks. Without one, fail at once (never hang on stdin, which may carry
/// data).
fn ask(prompt: &str) -> Result<SecretString> {
    ask_or(prompt, || {
        Error::new("the vault is locked and there is no terminal to ask for the passphrase")
            .hint(
                "run `vault unlock` in a terminal first, or pass an identity file (--identity / VAULT_IDENTITY) or its text (VAULT_AGE_KEY), a passphrase file (--passphrase-file / VAULT_PASSPHRASE_FILE), or set VAULT_PASSPHRASE",
            )
    })
}

/// A hidden prompt; `no_terminal` is the error when there is no terminal.
fn ask_or(prompt: &str, no_terminal: impl FnOnce() -> Error) -> Result<SecretString> {
    match term::hidden_secret(prompt) {
        Ok(p) => Ok(p),
        Err(e) if term::no_terminal(&e) => Err(no_terminal()),
        Err(e) => Err(Error::new(format!(
            "cannot read the passphrase from the terminal: {}",
            crate::error::describe_io(&e)
        ))),
    }
}

/// The passphrase of an encrypted ssh key given as the identity, asked on
/// the terminal (crypto asks for it through this callback).
fn ssh_passphrase(source: &str) -> Result<SecretString> {
    term::hidden_secret(&format!("Passphrase for the ssh key {source}: ")).map_err(|e| {
        if term::no_terminal(&e) {
            Error::new(format!(
                "{source} is encrypted and there is no terminal to ask for its passphrase"
            ))
            .hint("use an unencrypted key for automation, or run in a terminal")
        } else {
            Error::new(format!(
                "cannot read the passphrase: {}",
                crate::error::describe_io(&e)
            ))
        }
    })
}
