//! Validated newtypes for what users name and store: secret names, keys
//! (portable environment variable names) and values. Values are wiped on
//! drop and never printed by `Debug`.

use std::fmt;

use zeroize::Zeroizing;

use crate::error::{Error, Result};

/// How a masked value is shown everywhere: never its length.
pub(crate) const MASK: &str = "********";

/// Linux's `MAX_ARG_STRLEN` (32 pages) less the terminating NUL: the longest
/// `KEY=VALUE` string `execve` accepts. A pair that does not fit could never
/// reach a child, so it is refused when written.
pub(crate) const MAX_PAIR_LEN: usize = 131_071;

/// `[A-Za-z0-9][A-Za-z0-9._-]{0,63}`
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SecretName(String);

impl SecretName {
    pub fn parse(s: &str) -> Result<Self> {
        if is_secret_name(s) {
            Ok(SecretName(s.to_string()))
        } else if let Some((name, _)) = s.split_once('=') {
            // `vault secret create API_KEY=sk_live_…` (the name forgotten):
            // what follows `=` may be a secret, so it is not shown.
            Err(Error::new(format!(
                "invalid secret name `{}=…` (what follows `=` is not shown)",
                printable(name)
            ))
            .hint("name the secret first: `vault secret create NAME KEY=VALUE…`"))
        } else if let Some((env, name)) = s
            .split_once('/')
            .filter(|(env, name)| is_secret_name(env) && is_secret_name(name))
        {
            // `vault secret show prod/db`, as `run -s prod/db` would name it:
            // the secret commands take the environment from `-e`.
            Err(
                Error::new(format!("invalid secret name `{}`", printable(s))).hint(format!(
                    "a secret name has no `/`; for `{name}` in environment `{env}`, pass `-e {env}`"
                )),
            )
        } else {
            Err(Error::new(format!("invalid secret name `{}`", printable(s))).hint(
                "a secret name is 1-64 characters of letters, digits, `.`, `_` and `-`, starting with a letter or digit",
            ))
        }
    }

    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SecretName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

pub(crate) fn is_secret_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 64
        && b[0].is_ascii_alphanumeric()
        && b[1..]
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'))
}

/// `[A-Za-z_][A-Za-z0-9_]*`: a name every shell and `execve` user accepts.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EnvKey(String);

impl EnvKey {
    pub fn parse(s: &str) -> Result<Self> {
        if is_env_key(s) {
            Ok(EnvKey(s.to_string()))
        } else if let Some((key, _)) = s.split_once('=') {
            // `KEY=VALUE` where only a key belongs: the value may be a
            // secret, so only what comes before `=` is shown.
            Err(Error::new(format!(
                "invalid key `{}=…` (what follows `=` is not shown)",
                printable(key)
            ))
            .hint("this takes a key name only, without `=VALUE`; values are set with `vault secret set NAME KEY=VALUE`"))
        } else {
            Err(Error::new(format!("invalid key `{}`", printable(s))).hint(
                "a key is a portable environment variable name: letters, digits and `_`, not starting with a digit",
            ))
        }
    }

    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for EnvKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

pub fn is_env_key(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && (b[0].is_ascii_alphabetic() || b[0] == b'_')
        && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'_')
}

/// A secret value: UTF-8 without NUL, wiped when dropped, `********` in `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretValue(Zeroizing<String>);

/// Whether `key=value` may be stored (what `SecretValue::new` checks, on
/// borrowed text: the write path's row validation runs it on every row).
pub(crate) fn storable(key: &str, value: &str) -> bool {
    !value.contains('\0') && key.len() + 1 + value.len() <= MAX_PAIR_LEN
}

impl SecretValue {
    /// Checks that `key=value` can be stored and later passed to `execve`.
    pub fn new(key: &EnvKey, value: Zeroizing<String>) -> Result<Self> {
        if value.contains('\0') {
            return Err(
                Error::new(format!("the value of `{key}` contains a NUL byte")).hint(
                    "environment variables cannot hold NUL; store binary data base64-encoded",
                ),
            );
        }
        let pair = key.as_str().len() + 1 + value.len();
        if pair > MAX_PAIR_LEN {
            return Err(Error::new(format!(
                "the value of `{key}` is too large: `{key}=…` is {pair} bytes, and one environment variable holds at most {MAX_PAIR_LEN}"
            ))
            .hint("store large files elsewhere and keep their path or a key to them in the vault"));
        }
        Ok(SecretValue(value))
    }

    /// The plaintext. Named so that every use stands out in review.
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(MASK)
    }
}

/// Variables that change how the child or its loader behaves rather than
/// configuring it: setting one from a shared vault or a cloned project's
/// `.env` is a code-execution path (DESIGN "v2: Hardening" lists them).
/// `SHELL` is one only for `vault shell`, which runs it: see
/// [`warn_dangerous_at_run`].
pub(crate) fn is_dangerous_key(key: &str) -> bool {
    const EXACT: &[&str] = &[
        "PERL5DB",
        "LESSOPEN",
        "LESSCLOSE",
        "ZDOTDIR",
        "GCONV_PATH",
        "GIT_CONFIG",
        "LD_PRELOAD",
        "LD_LIBRARY_PATH",
        "LD_AUDIT",
        "NODE_OPTIONS",
        "NODE_PATH",
        "PYTHONSTARTUP",
        "PYTHONPATH",
        "PYTHONHOME",
        "PERL5OPT",
        "PERL5LIB",
        "RUBYOPT",
        "RUBYLIB",
        "BASH_ENV",
        "ENV",
        "PROMPT_COMMAND",
        "PS4",
        "SHELLOPTS",
        "IFS",
        "PATH",
        "GIT_SSH_COMMAND",
        "GIT_EXEC_PATH",
        "JAVA_TOOL_OPTIONS",
        "_JAVA_OPTIONS",
        "LUA_INIT",
    ];
    EXACT.contains(&key)
        || key.starts_with("DYLD_")
        || key.starts_with("LD_")
        || key.starts_with("GIT_CONFIG_")
        // curl, git, pip and npm read `http_proxy` as well as `HTTP_PROXY`:
        // a proxy sees (and may change) every request the command makes.
        || key.to_ascii_uppercase().ends_with("_PROXY")
}

/// Prints the warning secret writes give for dangerous keys.
pub(crate) fn warn_dangerous<'a>(keys: impl IntoIterator<Item = &'a str>) {
    for key in keys {
        if is_dangerous_key(key) {
            crate::term::warn(&format!(
                "`{key}` changes how programs start; a command run with this secret will load what it names"
            ));
        }
    }
}

/// Warns, before `run` or `shell` execs, about each dangerous key a stored
/// secret or a dotenv file sets (`--set` and `--local-env` are the user's
/// own command line). A write warns its writer; this warns the one who
/// runs, who may not be the same person (a teammate's vault, a cloned
/// repository's `.env`). `shell` also runs `SHELL`.
pub(crate) fn warn_dangerous_at_run<'a>(
    source: &str,
    keys: impl IntoIterator<Item = &'a str>,
    shell: bool,
) {
    for key in keys {
        if is_dangerous_key(key) || (shell && key == "SHELL") {
            crate::term::warn(&format!(
                "{source} sets `{key}`, which changes how programs start: the command will load or run what it names"
            ));
        }
    }
}

/// Whether text looks like key material (an age secret key, a PEM or
/// OpenSSH private key): never echoed, wherever it turns up.
pub(crate) fn looks_like_key_material(s: &str) -> bool {
    let upper = s.to_ascii_uppercase();
    upper.contains("AGE-SECRET-KEY-") || upper.contains("-----BEGIN")
}

/// `text` with every private key in it replaced by `(a private key, not
/// shown)`: an age secret key (`AGE-SECRET-KEY-1` and its bech32 data), or
/// a PEM or OpenSSH private key block (from `-----BEGIN … PRIVATE KEY-----`
/// to its `-----END …-----`, or to the end of `text` when cut short). What
/// every message on stderr goes through: a key pasted where a path belongs
/// (`VAULT_IDENTITY="$(cat key.txt)"`) reaches errors as that path.
pub(crate) fn mask_key_material(text: &str) -> std::borrow::Cow<'_, str> {
    const MASK: &str = "(a private key, not shown)";
    if !looks_like_key_material(text) {
        return text.into();
    }
    let upper = text.to_ascii_uppercase();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < text.len() {
        let rest = &upper[i..];
        if let Some(after) = rest.strip_prefix("AGE-SECRET-KEY-") {
            let data = after.bytes().take_while(u8::is_ascii_alphanumeric).count();
            // `AGE-SECRET-KEY-1…` in a message is a shape, not a key.
            if data >= 8 {
                out.push_str(MASK);
                i += "AGE-SECRET-KEY-".len() + data;
                continue;
            }
        }
        if let Some(after) = rest.strip_prefix("-----BEGIN") {
            let header_end = after.find("-----").map(|e| 10 + e + 5);
            if let Some(h) = header_end.filter(|&h| rest[..h].contains("PRIVATE KEY")) {
                let end = rest[h..]
                    .find("-----END")
                    .and_then(|e| rest[h + e + 8..].find("-----").map(|f| h + e + 8 + f + 5))
                    .unwrap_or(rest.len());
                out.push_str(MASK);
                i += end;
                continue;
            }
        }
        let c = text[i..].chars().next().unwrap_or_default();
        out.push(c);
        i += c.len_utf8().max(1);
    }
    out.into()
}

/// User input echoed in an error: control characters escaped, length capped.
/// Only for names and keys, which are not secret; text that looks like key
/// material is not shown at all.
pub(crate) fn printable(s: &str) -> String {
    if looks_like_key_material(s) {
        return "(text that looks like a private key, not shown)".to_string();
    }
    let mut out: String = s.chars().take(80).flat_map(char::escape_debug).collect();
    if s.chars().count() > 80 {
        out.push('…');
    }
    out
}

/// The closest candidate by edit distance, for "did you mean".
pub(crate) fn closest<'a>(
    wanted: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let limit = (wanted.chars().count() / 3).max(2);
    candidates
        .into_iter()
        .map(|c| (edit_distance(&wanted.to_lowercase(), &c.to_lowercase()), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, c)| (*d, c.len()))
        .map(|(_, c)| c)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_material_is_masked_wherever_it_sits_in_a_message() {
        let age = "AGE-SECRET-KEY-1QQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQ9HUNTER";
        let pem = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEhunter\n-----END OPENSSH PRIVATE KEY-----";
        for (text, want) in [
            (
                format!("cannot read # created: x\n# public key: age1abc\n{age}: no such file"),
                "cannot read # created: x\n# public key: age1abc\n(a private key, not shown): no such file",
            ),
            (
                format!("cannot read {pem}: no such file"),
                "cannot read (a private key, not shown): no such file",
            ),
            (
                "cannot read -----BEGIN RSA PRIVATE KEY-----\nMIIhunter".to_string(),
                "cannot read (a private key, not shown)",
            ),
            // Shapes in messages are no keys.
            (
                "not an age identity (`AGE-SECRET-KEY-1…`)".to_string(),
                "not an age identity (`AGE-SECRET-KEY-1…`)",
            ),
            (
                "-----BEGIN AGE ENCRYPTED FILE----- is armor".to_string(),
                "-----BEGIN AGE ENCRYPTED FILE----- is armor",
            ),
            ("é plain".to_string(), "é plain"),
        ] {
            let got = mask_key_material(&text);
            assert_eq!(got, want);
            assert!(!got.to_ascii_lowercase().contains("hunter"), "{got}");
        }
    }

    #[test]
    fn secret_names() {
        for ok in ["a", "db", "db-prod", "A.b_c-9", "0", &"x".repeat(64)] {
            assert!(is_secret_name(ok), "{ok}");
        }
        for bad in [
            "",
            "-a",
            ".a",
            "_a",
            "a b",
            "a/b",
            "é",
            &"x".repeat(65),
            "a\0",
        ] {
            assert!(!is_secret_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn env_keys() {
        for ok in ["A", "_", "_A1", "PGHOST", "a_b"] {
            assert!(is_env_key(ok), "{ok}");
        }
        for bad in ["", "1A", "A-B", "A.B", "A B", "É", "A="] {
            assert!(!is_env_key(bad), "{bad:?}");
        }
    }

    /// `KEY=VALUE` given where only a key belongs (`secret unset db
    /// PW=hunter2`): the error names the key, never the value.
    #[test]
    fn a_key_with_a_value_is_refused_without_showing_the_value() {
        let e = EnvKey::parse("PW=hunter2").unwrap_err().to_string();
        assert!(e.contains("`PW=…`"), "{e}");
        assert!(!e.contains("hunter2"), "{e}");
        let e = EnvKey::parse("1A=x=hunter2").unwrap_err().to_string();
        assert!(!e.contains("hunter2") && e.contains("`1A=…`"), "{e}");
        let e = EnvKey::parse("A-B").unwrap_err().to_string();
        assert!(e.contains("`A-B`"), "{e}");
    }

    #[test]
    fn values_fit_one_env_string() {
        let k = EnvKey::parse("K").unwrap();
        let fits = "v".repeat(MAX_PAIR_LEN - 2);
        assert!(SecretValue::new(&k, Zeroizing::new(fits.clone())).is_ok());
        let too_big = fits + "v";
        let err = SecretValue::new(&k, Zeroizing::new(too_big)).unwrap_err();
        assert!(err.message().contains("too large"));
        assert!(SecretValue::new(&k, Zeroizing::new("a\0b".into())).is_err());
    }

    #[test]
    fn debug_is_redacted() {
        let k = EnvKey::parse("K").unwrap();
        let v = SecretValue::new(&k, Zeroizing::new("hunter2".into())).unwrap();
        assert_eq!(format!("{v:?}"), "********");
    }

    #[test]
    fn did_you_mean() {
        assert_eq!(closest("db-prd", ["db-prod", "web"]), Some("db-prod"));
        assert_eq!(closest("zzzzzz", ["db-prod", "web"]), None);
        assert_eq!(closest("PGHOTS", ["PGHOST", "PGUSER"]), Some("PGHOST"));
    }

    #[test]
    fn dangerous() {
        // DESIGN "v2: Hardening", every name and pattern it lists.
        for k in [
            "LD_PRELOAD",
            "LD_AUDIT",
            "DYLD_INSERT_LIBRARIES",
            "BASH_ENV",
            "ENV",
            "PROMPT_COMMAND",
            "NODE_OPTIONS",
            "PYTHONSTARTUP",
            "PERL5OPT",
            "PERL5DB",
            "RUBYOPT",
            "JAVA_TOOL_OPTIONS",
            "GIT_CONFIG_COUNT",
            "GIT_CONFIG_KEY_0",
            "GIT_CONFIG_GLOBAL",
            "LESSOPEN",
            "LESSCLOSE",
            "ZDOTDIR",
            "GCONV_PATH",
            "HTTP_PROXY",
            "https_proxy",
            "ALL_PROXY",
        ] {
            assert!(is_dangerous_key(k), "{k}");
        }
        for k in [
            "PGHOST",
            "SHELL",
            "PROXY",
            "GIT_AUTHOR_NAME",
            "DATABASE_URL",
        ] {
            assert!(!is_dangerous_key(k), "{k}");
        }
    }

    #[test]
    fn key_material_is_never_printable() {
        for s in [
            "AGE-SECRET-KEY-1QQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQ",
            "age-secret-key-1qqqq",
            "-----BEGIN OPENSSH PRIVATE KEY-----",
            "x -----begin rsa private key",
        ] {
            let shown = printable(s);
            assert!(!shown.to_lowercase().contains("key-1"), "{shown}");
            assert!(!shown.contains("-----"), "{shown}");
        }
        assert_eq!(printable("db\u{1b}[2J"), "db\\u{1b}[2J");
    }
}
