//! Reading secret values from where users keep them: `KEY=VALUE` arguments,
//! hidden prompts, stdin, JSON and dotenv files. Values never pass through
//! argv of ours and never appear in errors.

use std::{collections::BTreeMap, io::IsTerminal, path::Path};

use zeroize::Zeroizing;

use crate::{
    cli::SetArg,
    dotenv,
    error::{Error, Result},
    fsio,
    names::{EnvKey, SecretValue},
};

/// Ordered key → value pairs; a later insert of the same key replaces it.
#[derive(Default)]
pub(crate) struct Pairs(BTreeMap<EnvKey, SecretValue>);

impl Pairs {
    pub(crate) fn insert(&mut self, key: EnvKey, value: SecretValue) {
        self.0.insert(key, value);
    }

    pub(crate) fn extend(&mut self, other: Pairs) {
        self.0.extend(other.0);
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub(crate) fn contains(&self, key: &str) -> bool {
        self.0.keys().any(|k| k.as_str() == key)
    }

    pub(crate) fn into_vec(self) -> Vec<(EnvKey, SecretValue)> {
        self.0.into_iter().collect()
    }
}

/// `KEY=VALUE` and bare `KEY` arguments. A bare key is prompted for (hidden)
/// when stdin is a terminal, else read from stdin, which only one may do.
pub(crate) fn from_args(args: &[SetArg]) -> Result<Pairs> {
    check_args(args)?.read()
}

/// `KEY=VALUE` and bare `KEY` arguments checked, nothing read yet: every
/// key valid, every value given storable, one bare key at most when stdin
/// is no terminal. In the order given; a bare key's value is `None`.
pub(crate) struct CheckedArgs(Vec<(EnvKey, Option<SecretValue>)>);

/// The checks of `from_args` that need no input, so that a command can
/// make them (and its own) before it prompts or waits on stdin.
pub(crate) fn check_args(args: &[SetArg]) -> Result<CheckedArgs> {
    let bare = args.iter().filter(|a| a.split().is_none()).count();
    if bare > 1 && !std::io::stdin().is_terminal() {
        return Err(Error::new(format!(
            "{bare} keys have no value, but only one can read stdin"
        ))
        .hint("give the others as KEY=VALUE, or run in a terminal to be prompted for each"));
    }
    let mut out = Vec::with_capacity(args.len());
    for (i, arg) in args.iter().enumerate() {
        out.push(match arg.split() {
            Some((k, v)) => {
                let key = positional_key(k, i)?;
                let value = SecretValue::new(&key, Zeroizing::new(v.to_string()))?;
                (key, Some(value))
            }
            None => (positional_key(arg.text(), i)?, None),
        });
    }
    Ok(CheckedArgs(out))
}

impl CheckedArgs {
    /// Prompts for (or reads from stdin) the value of each bare key.
    pub(crate) fn read(self) -> Result<Pairs> {
        let stdin_is_terminal = std::io::stdin().is_terminal();
        let mut pairs = Pairs::default();
        for (key, value) in self.0 {
            let value = match value {
                Some(v) => v,
                None => {
                    let text = if stdin_is_terminal {
                        prompt_value(&key)?
                    } else {
                        read_stdin_value(&key)?
                    };
                    SecretValue::new(&key, text)?
                }
            };
            pairs.insert(key, value);
        }
        Ok(pairs)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Refuses a command line on which stdin would serve two readers (`-` as
/// `--from-json` and `--from-dotenv`, bare `KEY`s when stdin is no
/// terminal): the first would take all of it and the second get nothing,
/// silently an empty value.
pub(crate) fn one_stdin_reader(files: &[Option<&Path>], args: &[SetArg]) -> Result<()> {
    let mut readers: Vec<String> = files
        .iter()
        .zip(["--from-dotenv -", "--from-json -"])
        .filter(|(f, _)| f.is_some_and(|f| f == Path::new("-")))
        .map(|(_, what)| what.to_string())
        .collect();
    // Bare keys alone are `from_args`'s to count.
    if readers.is_empty() {
        return Ok(());
    }
    if !std::io::stdin().is_terminal() {
        readers.extend(
            args.iter()
                .filter(|a| a.split().is_none())
                .filter_map(|a| EnvKey::parse(a.text()).ok())
                .map(|k| format!("`{k}` (a key with no value)")),
        );
    }
    if readers.len() > 1 {
        return Err(Error::new(format!(
            "stdin can be read once, but {} would read it",
            readers.join(" and ")
        ))
        .hint("give the file by its path, or the values as KEY=VALUE"));
    }
    Ok(())
}

/// The key of the `n`th (from 0) `KEY[=VALUE]` argument. A rejected one is
/// named by its position, never shown: `create db K=v p@ssw0rd` puts a
/// value where a key goes, and `p@ss=w0rd` has a value on both sides.
fn positional_key(text: &str, n: usize) -> Result<EnvKey> {
    EnvKey::parse(text).map_err(|_| {
        Error::new(format!(
            "KEY[=VALUE] argument {}: invalid key (not shown, as it may hold a value)",
            n + 1
        ))
        .hint("a key is a portable environment variable name: letters, digits and `_`, not starting with a digit; give each pair as KEY=VALUE")
    })
}

/// The nearest `.env` from the folder `start` upward (absolute), for
/// `vault import` and `run --dotenv`, by the one upward search
/// (`fsio::find_upward`: never into another user's folders); `hint` says
/// how to name one instead.
pub(crate) fn nearest_env(start: &Path, hint: &str) -> Result<std::path::PathBuf> {
    let start = std::path::absolute(start).map_err(|e| Error::io("resolve", start, e))?;
    fsio::find_upward(&start, ".env", &mut |w| crate::term::warn(w)).map_err(|stop| {
        Error::new(format!(
            "no .env file in {} or the folders above it ({stop})",
            start.display()
        ))
        .hint(hint)
    })
}

/// The nearest file called `name` from the folder `start` upward, by the
/// same search as `.env` (`--dotenv-name`).
pub(crate) fn nearest_named(start: &Path, name: &str, hint: &str) -> Result<std::path::PathBuf> {
    // Where the search stopped depends on who runs it (`/tmp` stops it
    // for a user, not for root): not part of the message.
    crate::project::find_upward(start, name).map_err(|_| {
        Error::new(format!(
            "no file named {} in {} or the folders above it",
            crate::names::printable(name),
            start.display()
        ))
        .hint(hint.to_string())
    })
}

pub(crate) fn prompt_value(key: &EnvKey) -> Result<Zeroizing<String>> {
    crate::term::hidden(&format!("Value for {key}: ")).map_err(|e| {
        Error::new(format!(
            "cannot read the value of `{key}` from the terminal: {}",
            crate::error::describe_io(&e)
        ))
        .hint(format!(
            "pipe it on stdin instead: `printf %s \"$VALUE\" | vault … {key}`"
        ))
    })
}

/// All of stdin, less one trailing newline.
fn read_stdin_value(key: &EnvKey) -> Result<Zeroizing<String>> {
    let mut bytes = Zeroizing::new(fsio::read_all(std::io::stdin(), vec![], "stdin", |e| {
        Error::new(format!(
            "cannot read the value of `{key}` from stdin: {}",
            crate::error::describe_io(&e)
        ))
    })?);
    if bytes.last() == Some(&b'\n') {
        bytes.pop();
    }
    if bytes.is_empty() {
        // `vault secret create x K < /dev/null` or a pipe whose writer
        // failed: store it (an empty value is a value), but say so.
        crate::term::warn(&format!(
            "the value of `{key}` read from stdin is empty; it is stored as an empty string"
        ));
    }
    let text = std::str::from_utf8(&bytes).map_err(|_| {
        Error::new(format!("the value of `{key}` on stdin is not UTF-8 text"))
            .hint("store binary data base64-encoded")
    })?;
    Ok(Zeroizing::new(text.to_string()))
}

/// A JSON object of string values, from a file or `-` (stdin).
pub(crate) fn from_json(path: &Path) -> Result<Pairs> {
    let (bytes, source) = read_source(path)?;
    let value: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| {
        // serde_json's message names a line and column, never the text.
        Error::new(format!(
            "{source} is not valid JSON (line {}, column {})",
            e.line(),
            e.column()
        ))
        .hint("expected an object of strings, like {\"KEY\": \"value\"}")
    })?;
    let serde_json::Value::Object(map) = value else {
        return Err(Error::new(format!("{source} is not a JSON object"))
            .hint("expected an object of strings, like {\"KEY\": \"value\"}"));
    };
    let mut pairs = Pairs::default();
    for (k, v) in map {
        let key = EnvKey::parse(&k).map_err(|e| in_file(e, &source))?;
        let serde_json::Value::String(s) = v else {
            return Err(Error::new(format!(
                "{source}: the value of `{key}` is {}, not a string",
                json_kind(&v)
            ))
            .hint("quote it: environment variables are strings"));
        };
        let value = SecretValue::new(&key, Zeroizing::new(s)).map_err(|e| in_file(e, &source))?;
        pairs.insert(key, value);
    }
    Ok(pairs)
}

fn json_kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

/// A dotenv file read by our own reader, no variables from the invoking
/// shell (the result must not depend on who imports).
/// `skip`: the command has `--skip-invalid`, which the hint may name.
pub(crate) fn from_dotenv(path: &Path, opts: &dotenv::Options, skip: bool) -> Result<Pairs> {
    let (bytes, source) = read_source(path)?;
    let parsed = dotenv::parse(&bytes, opts, &|_| None).map_err(|e| {
        Error::new(format!("{source}, {e}")).hint(if skip {
            "fix that line, or pass --skip-invalid to import the rest"
        } else {
            "fix that line (`vault import --skip-invalid` imports the rest of a file)"
        })
    })?;
    for w in parsed.warnings.iter().chain(&parsed.commands) {
        crate::term::warn(&format!("{source}, {w}"));
    }
    let mut pairs = Pairs::default();
    for entry in parsed.entries {
        let key = EnvKey::parse(&entry.key).map_err(|e| in_file(e, &source))?;
        let value = SecretValue::new(&key, entry.value)
            .map_err(|e| in_file(e, &source).hint(format!("line {}", entry.line)))?;
        pairs.insert(key, value);
    }
    Ok(pairs)
}

fn in_file(e: Error, source: &str) -> Error {
    e.context(source)
}

/// Reads `path` (or stdin for `-`), with a name for messages.
pub(crate) fn read_source(path: &Path) -> Result<(Zeroizing<Vec<u8>>, String)> {
    if path.as_os_str() == "-" {
        let bytes = fsio::read_all(std::io::stdin(), vec![], "stdin", |e| {
            Error::new(format!(
                "cannot read stdin: {}",
                crate::error::describe_io(&e)
            ))
        })?;
        return Ok((Zeroizing::new(bytes), "stdin".to_string()));
    }
    Ok((
        Zeroizing::new(fsio::read(path)?),
        path.display().to_string(),
    ))
}
