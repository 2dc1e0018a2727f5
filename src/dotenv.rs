//! Reading and writing `.env` files.
//!
//! The dialect is what python-dotenv (with interpolation) and node `dotenv` +
//! `dotenv-expand` agree on, except that single quotes are always literal and
//! keys must be portable names. Where those two disagree, these rules decide:
//!
//! - Lines are `KEY=value`, `KEY = value` or `export KEY=value`. A BOM is
//!   dropped; `\r\n` and a lone `\r` end lines like `\n` (both references do
//!   this, also inside quoted values). Blank lines and lines whose first
//!   non-space character is `#` are comments.
//! - Keys match `[A-Za-z_][A-Za-z0-9_]*`.
//! - Unquoted values run to the end of the line or to a `#` that follows
//!   whitespace, and are trimmed; everything else (quotes, `=`, `#`,
//!   backslashes) is kept as written.
//! - `'single'` quotes are literal and may span lines.
//! - `"double"` quotes may span lines; `\n \r \t \" \\ \$` are escapes and any
//!   other backslash is kept. After a closing quote only whitespace and a
//!   `#` comment may follow.
//! - Unquoted and double-quoted values expand `$NAME`, `${NAME}`,
//!   `${NAME:-default}` (unset or empty) and `${NAME-default}` (unset) once:
//!   a value brought in by expansion is never expanded again, while the
//!   default text is expanded once, as `sh` does. Names resolve against keys
//!   defined earlier in the file, then the caller's lookup; an unresolved
//!   name becomes empty with a warning. A `$` that starts no name, `$(…)` and
//!   backticks are literal text: nothing is ever executed (a value that a
//!   shell would have run is listed in `Parsed::commands`, for import to
//!   warn about). `\$` is a literal `$`, in unquoted values as in double
//!   quotes. `${A:+alt}`, `${A+alt}`, `${A:?msg}` and `${A?msg}` follow
//!   POSIX sh; the `?` forms are errors naming the key and the message
//!   (shown as written, never expanded). `${…}` without a closing brace is
//!   literal; other `${…}` forms (`${1}`, `${A#x}`) become empty with a
//!   warning.
//! - Expansion stops as soon as a value passes the pair limit
//!   (`names::MAX_PAIR_LEN`), and once substitutions have produced
//!   `MAX_SUBSTITUTED` bytes in one file: a chain `K2=${K1}${K1}` doubles
//!   per line, and must fail at its 18th line, not eat all memory.
//! - A repeated key keeps the position of its first definition and takes the
//!   last value (warning if the values differ); `Entry::line` is the line of
//!   the definition that won.
//! - Any other line is an error naming its 1-based line number. With
//!   `skip_invalid` it is a warning instead and reading resumes on the next
//!   line, even when the statement began a quoted value that spans lines (an
//!   unterminated quote, or one "closed" by the next value's opening quote).
//! - Errors and warnings name lines, keys and variable names, never values.
//!
//! We do not use `dotenvy`: it resolves `$NAME` against the process
//! environment before the file's own keys (so `vault import` would pick up
//! the invoking shell) and it deletes a `$` that starts no name, so a value
//! such as `ab#$%^&*` or `^(a|b)$` silently changes.

use std::collections::{HashMap, HashSet};
use std::fmt;

use zeroize::Zeroizing;

use crate::names::MAX_PAIR_LEN;

/// How [`parse`] reads a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// Expand `$NAME` references (`false` is `--no-expand`).
    pub expand: bool,
    /// Skip statements that do not parse, each with a warning, instead of failing.
    pub skip_invalid: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            expand: true,
            skip_invalid: false,
        }
    }
}

/// One key and its final value.
#[derive(Clone, PartialEq, Eq)]
pub struct Entry {
    pub key: String,
    pub value: Zeroizing<String>,
    /// 1-based line of the definition the value comes from.
    pub(crate) line: usize,
    /// Whether the value is the text as written, with nothing substituted
    /// into it (`$NAME` brought nothing in): only such a value can be a
    /// `vault://` reference, so that a reference is always there to read.
    pub(crate) as_written: bool,
}

impl fmt::Debug for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Entry")
            .field("key", &self.key)
            .field("value", &"********")
            .field("line", &self.line)
            .finish()
    }
}

/// The result of [`parse`]: entries in order of first definition, one per key.
#[derive(Default)]
pub struct Parsed {
    pub entries: Vec<Entry>,
    pub(crate) warnings: Vec<String>,
    /// `line N: KEY: …` for unquoted or double-quoted values holding `$(`
    /// or a backtick, which a shell would have run and `vault` keeps as
    /// text. `import` warns about them; `run --dotenv` need not.
    pub(crate) commands: Vec<String>,
}

impl fmt::Debug for Parsed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Parsed")
            .field("entries", &self.entries)
            .field("warnings", &self.warnings)
            .field("commands", &self.commands)
            .finish()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub(crate) line: usize,
    pub(crate) reason: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.reason)
    }
}

impl std::error::Error for ParseError {}

/// Bounds the recursion of `${A:-${B:-…}}` so hostile input cannot exhaust the stack.
const MAX_DEFAULT_DEPTH: usize = 16;

/// The most bytes substitutions may produce in one file, over all its
/// values. Each value is also held to the pair limit, but 5,000 lines of
/// `K=${BIG}` (100 KiB each) would still be 500 MB from a 100 KB file; no
/// real `.env` comes near this.
pub(crate) const MAX_SUBSTITUTED: usize = 64 << 20;

/// Parses a `.env` file. `lookup` answers names the file has not defined
/// (yet); it is never consulted for a name the file defined earlier.
pub fn parse(
    input: &[u8],
    opts: &Options,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<Parsed, ParseError> {
    let (text, bad_lines) = decode(input);
    let mut sc = Scanner {
        s: &text,
        pos: 0,
        line: 1,
    };
    let mut out = Parsed::default();
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut budget = MAX_SUBSTITUTED;

    while sc.pos < sc.s.len() {
        let (start_pos, start_line) = (sc.pos, sc.line);
        let mut result = statement(&mut sc);
        let end_line = sc.line;

        let first_bad = bad_lines.partition_point(|&l| l < start_line);
        if let Some(&bad) = bad_lines.get(first_bad).filter(|&&l| l <= end_line) {
            result = Err(if bad == start_line {
                "invalid UTF-8".to_owned()
            } else {
                format!("invalid UTF-8 on line {bad}")
            });
        }
        let outcome = result.and_then(|statement| match statement {
            Some((key, raw)) => define(
                key,
                raw,
                start_line,
                opts,
                lookup,
                &mut out,
                &mut index,
                &mut budget,
            ),
            None => Ok(()),
        });
        if outcome.is_err() {
            // Whatever went wrong, only the first line of the statement is
            // skipped: a stray quote must never swallow the lines after it.
            sc.pos = start_pos;
            sc.line = start_line;
        }
        sc.skip_line();

        if let Err(reason) = outcome {
            let err = ParseError {
                line: start_line,
                reason,
            };
            if !opts.skip_invalid {
                return Err(err);
            }
            out.warnings.push(format!("{err}; skipped"));
        }
    }
    Ok(out)
}

/// Returns the input as text whose lines all end in `\n`, and the lines that
/// held invalid UTF-8 (decoded as U+FFFD so scanning can go on and report them).
fn decode(input: &[u8]) -> (Zeroizing<String>, Vec<usize>) {
    let input = input.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(input);
    // Normalising bytes first is safe: `\r` and `\n` never occur inside a
    // UTF-8 sequence, valid or not.
    let mut bytes = Zeroizing::new(Vec::with_capacity(input.len()));
    for (i, &b) in input.iter().enumerate() {
        match b {
            b'\r' => bytes.push(b'\n'),
            b'\n' if i > 0 && input[i - 1] == b'\r' => {}
            _ => bytes.push(b),
        }
    }

    let mut s = Zeroizing::new(String::with_capacity(bytes.len()));
    let mut bad_lines = Vec::new();
    let mut line = 1;
    let mut rest: &[u8] = &bytes;
    loop {
        match std::str::from_utf8(rest) {
            Ok(valid) => {
                s.push_str(valid);
                break;
            }
            Err(e) => {
                let (valid, after) = rest.split_at(e.valid_up_to());
                let valid = std::str::from_utf8(valid).unwrap_or_default();
                line += valid.bytes().filter(|&b| b == b'\n').count();
                s.push_str(valid);
                s.push(char::REPLACEMENT_CHARACTER);
                if bad_lines.last() != Some(&line) {
                    bad_lines.push(line);
                }
                rest = &after[e.error_len().unwrap_or(after.len())..];
            }
        }
    }
    (s, bad_lines)
}

struct Scanner<'a> {
    s: &'a str,
    pos: usize,
    line: usize,
}

impl<'a> Scanner<'a> {
    fn peek(&self) -> Option<char> {
        self.s[self.pos..].chars().next()
    }

    fn bump(&mut self, c: char) {
        self.pos += c.len_utf8();
        if c == '\n' {
            self.line += 1;
        }
    }

    /// Skips spaces and tabs (any Unicode whitespace, as both references
    /// do) but not the end of the line; tells whether it skipped any.
    fn skip_ws(&mut self) -> bool {
        let start = self.pos;
        while let Some(c) = self.peek().filter(|&c| c != '\n' && c.is_whitespace()) {
            self.bump(c);
        }
        self.pos > start
    }

    fn line_end(&self) -> usize {
        self.s[self.pos..]
            .find('\n')
            .map_or(self.s.len(), |i| self.pos + i)
    }

    fn advance_to(&mut self, end: usize) {
        self.line += self.s[self.pos..end]
            .bytes()
            .filter(|&b| b == b'\n')
            .count();
        self.pos = end;
    }

    /// Moves past the end of the current line.
    fn skip_line(&mut self) {
        let end = self.line_end();
        if end < self.s.len() {
            self.pos = end + 1;
            self.line += 1;
        } else {
            self.pos = end;
        }
    }
}

/// A value after quote processing, before expansion.
struct RawValue {
    text: Zeroizing<String>,
    /// Offsets in `text` of `$` signs that were escaped and must stay literal.
    literal_dollars: Vec<usize>,
    /// False for single-quoted values.
    expandable: bool,
}

fn is_name_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_'
}

fn is_name_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

fn name_len(s: &str) -> usize {
    match s.as_bytes().first() {
        Some(&b) if is_name_start(b) => s.bytes().take_while(|&b| is_name_char(b)).count(),
        _ => 0,
    }
}

fn is_portable_name(s: &str) -> bool {
    !s.is_empty() && name_len(s) == s.len()
}

/// Reads one statement, leaving the scanner on its last line. `Ok(None)` is
/// a blank or comment line.
fn statement<'a>(sc: &mut Scanner<'a>) -> Result<Option<(&'a str, RawValue)>, String> {
    sc.skip_ws();
    match sc.peek() {
        None | Some('\n') => return Ok(None),
        Some('#') => {
            sc.pos = sc.line_end();
            return Ok(None);
        }
        Some(_) => {}
    }

    let before_export = sc.pos;
    if let Some(after) = sc.s[sc.pos..].strip_prefix("export")
        && after.starts_with(|c: char| c != '\n' && c.is_whitespace())
    {
        sc.pos += "export".len();
        sc.skip_ws();
        // `export = 1` defines a key named `export`, as both references agree.
        if sc.peek() == Some('=') {
            sc.pos = before_export;
        }
    }

    let key_start = sc.pos;
    while let Some(c) = sc
        .peek()
        .filter(|&c| c != '=' && c != '\n' && !c.is_whitespace())
    {
        sc.bump(c);
    }
    let key = &sc.s[key_start..sc.pos];
    sc.skip_ws();
    // The key is not echoed until the line is known to be `KEY=…`: a bare
    // word on a line of its own may well be a pasted secret.
    if key.is_empty() || sc.peek() != Some('=') {
        return Err("not a KEY=value line".to_owned());
    }
    if !is_portable_name(key) {
        return Err("invalid key name (keys must match [A-Za-z_][A-Za-z0-9_]*)".to_owned());
    }
    sc.bump('=');
    let spaced = sc.skip_ws();

    let raw = match sc.peek() {
        Some(q @ ('\'' | '"')) => {
            let opened_at = sc.line;
            sc.bump(q);
            let raw = if q == '\'' {
                single_quoted(sc)
            } else {
                double_quoted(sc)
            };
            let Some(raw) = raw else {
                return Err(format!("{key}: unterminated {q} quote"));
            };
            sc.skip_ws();
            match sc.peek() {
                None | Some('\n') => {}
                Some('#') => sc.pos = sc.line_end(),
                Some(_) if sc.line > opened_at => {
                    return Err(format!(
                        "{key}: the {q} quote opened here closes on line {} and is followed by other text",
                        sc.line
                    ));
                }
                Some(_) => return Err(format!("{key}: text after the closing quote")),
            }
            raw
        }
        _ => unquoted(sc, spaced),
    };
    Ok(Some((key, raw)))
}

fn single_quoted(sc: &mut Scanner) -> Option<RawValue> {
    let close = sc.pos + sc.s[sc.pos..].find('\'')?;
    let text = Zeroizing::new(sc.s[sc.pos..close].to_owned());
    sc.advance_to(close + 1);
    Some(RawValue {
        text,
        literal_dollars: Vec::new(),
        expandable: false,
    })
}

fn double_quoted(sc: &mut Scanner) -> Option<RawValue> {
    let (s, b) = (sc.s, sc.s.as_bytes());
    let mut text = Zeroizing::new(String::new());
    let mut literal_dollars = Vec::new();
    // Scanning bytes is sound: `"` and `\` never occur inside a multi-byte
    // character, so every slice boundary below is a character boundary.
    let (mut i, mut chunk) = (sc.pos, sc.pos);
    while i < b.len() {
        match b[i] {
            b'"' => {
                text.push_str(&s[chunk..i]);
                sc.advance_to(i + 1);
                return Some(RawValue {
                    text,
                    literal_dollars,
                    expandable: true,
                });
            }
            b'\\' => {
                let escaped = match b.get(i + 1) {
                    Some(b'n') => Some('\n'),
                    Some(b'r') => Some('\r'),
                    Some(b't') => Some('\t'),
                    Some(&c @ (b'"' | b'\\' | b'$')) => Some(char::from(c)),
                    // Kept as written, so Windows paths like "C:\Users" survive.
                    _ => None,
                };
                if let Some(c) = escaped {
                    text.push_str(&s[chunk..i]);
                    if c == '$' {
                        literal_dollars.push(text.len());
                    }
                    text.push(c);
                    i += 2;
                    chunk = i;
                } else {
                    i += 1;
                }
            }
            _ => i += 1,
        }
    }
    None
}

/// `spaced` tells whether whitespace preceded the value, which makes a
/// leading `#` a comment (`A= #x` is empty, `A=#x` is `#x`).
fn unquoted(sc: &mut Scanner, spaced: bool) -> RawValue {
    let end = sc.line_end();
    let line = &sc.s[sc.pos..end];
    let mut cut = line.len();
    let mut prev_ws = spaced;
    for (i, c) in line.char_indices() {
        if c == '#' && prev_ws {
            cut = i;
            break;
        }
        prev_ws = c.is_whitespace();
    }
    let value = line[..cut].trim_end();
    // `\$` is a literal `$` (the backslash goes); every other backslash is
    // kept as written.
    let mut text = Zeroizing::new(String::with_capacity(value.len()));
    let mut literal_dollars = Vec::new();
    let mut rest = value;
    while let Some(i) = rest.find("\\$") {
        text.push_str(&rest[..i]);
        literal_dollars.push(text.len());
        text.push('$');
        rest = &rest[i + 2..];
    }
    text.push_str(rest);
    sc.pos = end;
    RawValue {
        text,
        literal_dollars,
        expandable: true,
    }
}

/// Whether a shell would run part of this text: `$(` at a `$` that is not
/// escaped, or a backtick.
fn runs_a_command(raw: &RawValue) -> bool {
    raw.expandable
        && (raw.text.contains('`')
            || raw
                .text
                .match_indices("$(")
                .any(|(i, _)| raw.literal_dollars.binary_search(&i).is_err()))
}

/// Expands (unless disabled) and records one definition.
#[allow(clippy::too_many_arguments)]
fn define(
    key: &str,
    raw: RawValue,
    line: usize,
    opts: &Options,
    lookup: &dyn Fn(&str) -> Option<String>,
    out: &mut Parsed,
    index: &mut HashMap<String, usize>,
    budget: &mut usize,
) -> Result<(), String> {
    let command = runs_a_command(&raw);
    let mut as_written = true;
    let (value, mut warnings) = if opts.expand && raw.expandable {
        let mut ex = Expander {
            text: &raw.text,
            literal_dollars: &raw.literal_dollars,
            closes: match_braces(&raw.text, &raw.literal_dollars),
            entries: &out.entries,
            index,
            lookup,
            out: Zeroizing::new(String::with_capacity(raw.text.len())),
            seen: HashSet::new(),
            warnings: Vec::new(),
            prefix: format!("line {line}: {key}"),
            limit: MAX_PAIR_LEN.saturating_sub(key.len() + 1),
            budget: *budget,
        };
        ex.expand(0, raw.text.len(), 0)
            .map_err(|reason| format!("{key}: {reason}"))?;
        *budget = ex.budget;
        as_written = *ex.out == *raw.text;
        (ex.out, ex.warnings)
    } else {
        (raw.text, Vec::new())
    };
    if value.contains('\0') {
        return Err(format!("{key}: NUL character in the value"));
    }

    out.warnings.append(&mut warnings);
    if command {
        out.commands.push(format!(
            "line {line}: {key}: `$(…)` and backticks are not run: the value keeps them as text (single-quote it to say that is meant)"
        ));
    }
    if let Some(&i) = index.get(key) {
        let entry = &mut out.entries[i];
        if entry.value != value {
            out.warnings.push(format!(
                "line {line}: {key}: repeated key with a different value (previously on line {}); the later value wins",
                entry.line
            ));
        }
        entry.value = value;
        entry.line = line;
        entry.as_written = as_written;
    } else {
        index.insert(key.to_owned(), out.entries.len());
        out.entries.push(Entry {
            key: key.to_owned(),
            value,
            line,
            as_written,
        });
    }
    Ok(())
}

/// Maps the offset of each `${` to its matching `}`, in one pass so that a
/// value full of unclosed `${` stays linear.
fn match_braces(text: &str, literal_dollars: &[usize]) -> HashMap<usize, usize> {
    let b = text.as_bytes();
    let mut open = Vec::new();
    let mut closes = HashMap::new();
    for i in 0..b.len() {
        if b[i] == b'$' && b.get(i + 1) == Some(&b'{') && literal_dollars.binary_search(&i).is_err()
        {
            open.push(i);
        } else if b[i] == b'}'
            && let Some(o) = open.pop()
        {
            closes.insert(o, i);
        }
    }
    closes
}

struct Expander<'a> {
    text: &'a str,
    literal_dollars: &'a [usize],
    closes: HashMap<usize, usize>,
    entries: &'a [Entry],
    index: &'a HashMap<String, usize>,
    lookup: &'a dyn Fn(&str) -> Option<String>,
    out: Zeroizing<String>,
    /// Unresolved names already warned about.
    seen: HashSet<&'a str>,
    warnings: Vec<String>,
    /// `line N: KEY`, for warnings.
    prefix: String,
    /// The longest value `out` may become: the pair limit less `KEY=`.
    limit: usize,
    /// What substitutions may still add in this file (`MAX_SUBSTITUTED`).
    budget: usize,
}

impl<'a> Expander<'a> {
    fn resolve(&self, name: &str) -> Option<Zeroizing<String>> {
        match self.index.get(name) {
            Some(&i) => Some(self.entries[i].value.clone()),
            None => (self.lookup)(name).map(Zeroizing::new),
        }
    }

    /// Warns once per name. A bare `$name` may be part of a password
    /// (`pa$sw0rd`), so only a braced `${NAME}`, a deliberate reference, is
    /// named in the message.
    fn unresolved(&mut self, name: &'a str, braced: bool) {
        if self.seen.insert(name) {
            let prefix = &self.prefix;
            self.warnings.push(if braced {
                format!("{prefix}: ${{{name}}} is not set; it was replaced by an empty string")
            } else {
                format!(
                    "{prefix}: a `$` reference to an unset variable was replaced by an empty string (single-quote the value if the `$` is literal)"
                )
            });
        }
    }

    /// Appends text to the value, failing as soon as the value passes the
    /// pair limit (or substitutions their budget), before it can grow more.
    fn push(&mut self, s: &str, substituted: bool) -> Result<(), String> {
        if self.out.len() + s.len() > self.limit {
            return Err(format!(
                "the value is too large: more than {MAX_PAIR_LEN} bytes with its key, the most one environment variable holds"
            ));
        }
        if substituted {
            self.budget = self.budget.checked_sub(s.len()).ok_or_else(|| {
                format!(
                    "expanding the file's values produces more than {} MiB in total",
                    MAX_SUBSTITUTED >> 20
                )
            })?;
        }
        self.out.push_str(s);
        Ok(())
    }

    /// Expands `text[start..end]` into `out`. Substituted values are copied,
    /// never rescanned: that is what makes expansion happen once.
    fn expand(&mut self, start: usize, end: usize, depth: usize) -> Result<(), String> {
        if depth > MAX_DEFAULT_DEPTH {
            return Err(format!(
                "${{...}} defaults nested more than {MAX_DEFAULT_DEPTH} deep"
            ));
        }
        let (text, b) = (self.text, self.text.as_bytes());
        let (mut i, mut literal_from) = (start, start);
        while i < end {
            if b[i] != b'$' || self.literal_dollars.binary_search(&i).is_ok() || i + 1 >= end {
                i += 1;
                continue;
            }
            if b[i + 1] == b'{' {
                if let Some(&close) = self.closes.get(&i).filter(|&&c| c < end) {
                    self.push(&text[literal_from..i], false)?;
                    self.braced(i + 2, close, depth)?;
                    i = close + 1;
                    literal_from = i;
                    continue;
                }
            } else if is_name_start(b[i + 1]) {
                let name_end = i + 1 + name_len(&text[i + 1..end]);
                self.push(&text[literal_from..i], false)?;
                let name = &text[i + 1..name_end];
                match self.resolve(name) {
                    Some(v) => self.push(&v, true)?,
                    None => self.unresolved(name, false),
                }
                i = name_end;
                literal_from = i;
                continue;
            }
            i += 1;
        }
        self.push(&text[literal_from..end], false)
    }

    /// Expands the inside of `${…}`, `text[start..close]`, as POSIX sh does
    /// for the forms below (`:` makes an empty value count as unset):
    /// `${A}`, `${A:-word}`/`${A-word}` (word if unset), `${A:+word}`/
    /// `${A+word}` (word if set), `${A:?msg}`/`${A?msg}` (an error if unset).
    fn braced(&mut self, start: usize, close: usize, depth: usize) -> Result<(), String> {
        let inner = &self.text[start..close];
        let n = name_len(inner);
        let name = &inner[..n];
        let rest = &inner[n..];
        let colon = rest.starts_with(':');
        let op = rest[usize::from(colon)..].chars().next();
        let word = start + n + usize::from(colon) + 1..close;
        let form = match (n, rest.is_empty(), op) {
            (0, _, _) => None,
            (_, true, _) => Some('='),
            (_, false, Some(c @ ('-' | '+' | '?'))) => Some(c),
            _ => None,
        };
        // Anything else (`${1}`, `${A#x}`, `${A:=x}`, `${}`) names no key we
        // could hold or changes one; both references also turn the common
        // ones into "".
        let Some(form) = form else {
            let prefix = &self.prefix;
            self.warnings.push(format!(
                "{prefix}: unsupported ${{...}} form; it was replaced by an empty string"
            ));
            return Ok(());
        };
        let value = self.resolve(name);
        let set = match &value {
            Some(v) => !(colon && v.is_empty()),
            None => false,
        };
        match (form, value) {
            ('=', Some(v)) => self.push(&v, true)?,
            ('=', None) => self.unresolved(name, true),
            ('-', Some(v)) if set => self.push(&v, true)?,
            ('-', _) => self.expand(word.start, word.end, depth + 1)?,
            ('+', _) if set => self.expand(word.start, word.end, depth + 1)?,
            ('+', _) => {}
            ('?', Some(v)) if set => self.push(&v, true)?,
            _ => {
                // The message is the file's own text, shown as written:
                // expanding it could put a value into an error.
                let msg = &self.text[word];
                let unset = if colon { "not set or empty" } else { "not set" };
                return Err(if msg.trim().is_empty() {
                    format!("`{name}` is {unset}")
                } else {
                    format!(
                        "`{name}` is {unset}: {}",
                        crate::names::printable(msg.trim())
                    )
                });
            }
        }
        Ok(())
    }
}

/// Characters that need no quoting in any dotenv dialect or shell.
fn is_plain(value: &str) -> bool {
    !value.is_empty()
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_./:@,+=%-".contains(&b))
}

/// Renders entries as a `.env` file that [`parse`] reads back to the same
/// values (for any value without NUL; keys must be portable names).
pub fn render_dotenv(entries: &[(&str, &str)]) -> String {
    let mut out = String::new();
    for (key, value) in entries {
        out.push_str(key);
        out.push('=');
        if is_plain(value) {
            out.push_str(value);
        } else if !value.contains(['\'', '\r', '\n']) && !value.ends_with('\\') {
            // Single quotes hold everything else literally; CR and LF are
            // left to double quotes, where they can be escaped and so survive
            // line-end normalisation. So is a final backslash: `'a\'` reads
            // back as an escaped quote in python-dotenv, docker and others.
            out.push('\'');
            out.push_str(value);
            out.push('\'');
        } else {
            out.push('"');
            for c in value.chars() {
                match c {
                    '\\' => out.push_str("\\\\"),
                    '"' => out.push_str("\\\""),
                    '$' => out.push_str("\\$"),
                    '\n' => out.push_str("\\n"),
                    '\r' => out.push_str("\\r"),
                    c => out.push(c),
                }
            }
            out.push('"');
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Every value a row marks as secret contains this; no warning or error may.
    const SECRET: &str = "s3cr3t";

    #[derive(Clone, Copy, Debug)]
    enum Mode {
        Strict,
        Skip,
        NoExpand,
    }

    fn opts(mode: Mode) -> Options {
        match mode {
            Mode::Strict => Options::default(),
            Mode::Skip => Options {
                expand: true,
                skip_invalid: true,
            },
            Mode::NoExpand => Options {
                expand: false,
                skip_invalid: false,
            },
        }
    }

    fn test_lookup(name: &str) -> Option<String> {
        (name == "FROM_ENV").then(|| "env".to_owned())
    }

    fn no_lookup(_: &str) -> Option<String> {
        None
    }

    fn pairs(p: &Parsed) -> Vec<(&str, &str)> {
        p.entries
            .iter()
            .map(|e| (e.key.as_str(), e.value.as_str()))
            .collect()
    }

    type Want = Result<&'static [(&'static str, &'static str)], usize>;
    use Mode::*;

    /// (input, mode, expected pairs in order or the failing line, substrings
    /// expected in the warnings: one per warning, in order).
    #[rustfmt::skip]
    const ROWS: &[(&str, Mode, Want, &[&str])] = &[
        // Line shapes, BOM, line ends, comments.
        ("A=1", Strict, Ok(&[("A", "1")]), &[]),
        ("export A=1\n", Strict, Ok(&[("A", "1")]), &[]),
        ("  export   A = 1  \n", Strict, Ok(&[("A", "1")]), &[]),
        ("A = value", Strict, Ok(&[("A", "value")]), &[]),
        ("A\t=\tvalue\t", Strict, Ok(&[("A", "value")]), &[]),
        ("\u{feff}A=1\nB=2", Strict, Ok(&[("A", "1"), ("B", "2")]), &[]),
        ("A=1\r\nB=2\r\n", Strict, Ok(&[("A", "1"), ("B", "2")]), &[]),
        ("A=1\rB=2\r", Strict, Ok(&[("A", "1"), ("B", "2")]), &[]),
        ("A=\"l1\r\nl2\r\n\"\r\nB=x\r\n", Strict, Ok(&[("A", "l1\nl2\n"), ("B", "x")]), &[]),
        ("A='l1\r\nl2'\r\nB=x", Strict, Ok(&[("A", "l1\nl2"), ("B", "x")]), &[]),
        ("\n\n \t\n# comment\n   # indented = comment\nA=1\n#B=2\n", Strict, Ok(&[("A", "1")]), &[]),
        ("", Strict, Ok(&[]), &[]),
        ("export=1\nexport = 2\n", Strict, Ok(&[("export", "2")]), &["line 2: export: repeated key"]),
        ("lower_case=1\n_A9=2", Strict, Ok(&[("lower_case", "1"), ("_A9", "2")]), &[]),
        ("export A=1 # trailing comment", Strict, Ok(&[("A", "1")]), &[]),
        // Keys must be portable names; other lines are errors.
        ("1A=s3cr3t", Strict, Err(1), &[]),
        ("A=1\nA.B=s3cr3t", Strict, Err(2), &[]),
        ("A-B=s3cr3t", Strict, Err(1), &[]),
        ("A B=s3cr3t", Strict, Err(1), &[]),
        ("=s3cr3t", Strict, Err(1), &[]),
        ("s3cr3t", Strict, Err(1), &[]),
        ("A=1\nKEY\nB=2", Strict, Err(2), &[]),
        ("export KEY", Strict, Err(1), &[]),
        ("// comment\nA=1", Strict, Err(1), &[]),
        ("A=1\n{{ s3cr3t }}\n", Strict, Err(2), &[]),
        ("A=1\n{% if x %}\nB=2\n{% endif %}", Skip, Ok(&[("A", "1"), ("B", "2")]), &["line 2: not a KEY=value line", "line 4:"]),
        ("KEY: value", Strict, Err(1), &[]),
        // Unquoted values.
        ("A=foo#bar", Strict, Ok(&[("A", "foo#bar")]), &[]),
        ("A=foo #bar", Strict, Ok(&[("A", "foo")]), &[]),
        ("A=foo\t#bar", Strict, Ok(&[("A", "foo")]), &[]),
        ("A=", Strict, Ok(&[("A", "")]), &[]),
        ("A=   \nB=x", Strict, Ok(&[("A", ""), ("B", "x")]), &[]),
        ("A= #comment", Strict, Ok(&[("A", "")]), &[]),
        ("A=#x", Strict, Ok(&[("A", "#x")]), &[]),
        ("A=OpenID Connect", Strict, Ok(&[("A", "OpenID Connect")]), &[]),
        ("A={\"a\": \"b\"}", Strict, Ok(&[("A", "{\"a\": \"b\"}")]), &[]),
        ("A=a=b==", Strict, Ok(&[("A", "a=b==")]), &[]),
        ("A=it's \"quoted\" here", Strict, Ok(&[("A", "it's \"quoted\" here")]), &[]),
        ("A=   padded value   ", Strict, Ok(&[("A", "padded value")]), &[]),
        ("A=a\u{a0}#b", Strict, Ok(&[("A", "a")]), &[]),
        ("A=C:\\temp\\new", Strict, Ok(&[("A", "C:\\temp\\new")]), &[]),
        ("A=héllo wörld ✓ 日本", Strict, Ok(&[("A", "héllo wörld ✓ 日本")]), &[]),
        // Single quotes: literal, multi-line.
        ("A='$B ${C} \\n \\ \"'", Strict, Ok(&[("A", "$B ${C} \\n \\ \"")]), &[]),
        ("A='a\nb # c'\nB=2", Strict, Ok(&[("A", "a\nb # c"), ("B", "2")]), &[]),
        ("A='  x  ' # c", Strict, Ok(&[("A", "  x  ")]), &[]),
        ("A=''", Strict, Ok(&[("A", "")]), &[]),
        ("A = 'spaced'", Strict, Ok(&[("A", "spaced")]), &[]),
        ("A='s3cr3t\\'s'", Strict, Err(1), &[]),
        // Double quotes: escapes, multi-line, Windows paths.
        ("A=\"a\\nb\\rc\\td\\\"e\\\\f\\$g\"", Strict, Ok(&[("A", "a\nb\rc\td\"e\\f$g")]), &[]),
        ("A=\"C:\\Users\\app\\bin\"", Strict, Ok(&[("A", "C:\\Users\\app\\bin")]), &[]),
        ("A=\"a\\qb\\x\\\\\"", Strict, Ok(&[("A", "a\\qb\\x\\")]), &[]),
        ("A=\"a\\\nb\"", Strict, Ok(&[("A", "a\\\nb")]), &[]),
        ("A=\"multi\nline # not a comment\"\nB=2", Strict, Ok(&[("A", "multi\nline # not a comment"), ("B", "2")]), &[]),
        ("A=\"a # b\" # comment", Strict, Ok(&[("A", "a # b")]), &[]),
        ("A=\"a\"# comment", Strict, Ok(&[("A", "a")]), &[]),
        ("A=\"  \"", Strict, Ok(&[("A", "  ")]), &[]),
        // Text after a closing quote.
        ("KEY=\"s3cr3t\"b", Strict, Err(1), &[]),
        ("KEY='s3cr3t'b", Strict, Err(1), &[]),
        ("A=1\nKEY=\"s3cr3t\" b", Strict, Err(2), &[]),
        ("KEY=\"s3cr3t\"b\nB=2", Skip, Ok(&[("B", "2")]), &["line 1: KEY: text after the closing quote; skipped"]),
        // Unterminated quotes: error on the opening line; skipping resumes on the next.
        ("A=1\nKEY=\"s3cr3t\nB=2", Strict, Err(2), &[]),
        ("KEY=\"s3cr3t\nB=2\nC=3", Skip, Ok(&[("B", "2"), ("C", "3")]), &["line 1: KEY: unterminated \" quote"]),
        ("KEY='s3cr3t\nB=2", Skip, Ok(&[("B", "2")]), &["line 1: KEY: unterminated ' quote"]),
        ("KEY=\"s3cr3t\nB=\"b\"\nC=3", Skip, Ok(&[("B", "b"), ("C", "3")]), &["line 1: KEY: the \" quote opened here closes on line 2"]),
        ("KEY=\"s3cr3t\nB=\"b\"", Strict, Err(1), &[]),
        // Expansion.
        ("A=x\nB=$A\nC=${A}y\nD=\"$A-${A}\"", Strict, Ok(&[("A", "x"), ("B", "x"), ("C", "xy"), ("D", "x-x")]), &[]),
        ("A=x\nD=$Ay", Strict, Ok(&[("A", "x"), ("D", "")]), &["line 2: D: a `$` reference to an unset variable"]),
        ("A=\nB=${A:-d}\nC=${A-d}", Strict, Ok(&[("A", ""), ("B", "d"), ("C", "")]), &[]),
        ("D=${U:-d}\nE=${U-d}", Strict, Ok(&[("D", "d"), ("E", "d")]), &[]),
        ("A=x\nB=${A:-d}\nC=${A-d}", Strict, Ok(&[("A", "x"), ("B", "x"), ("C", "x")]), &[]),
        ("A=${U:-${V:-deep}}", Strict, Ok(&[("A", "deep")]), &[]),
        ("B='$x'\nA=${U:-$B}", Strict, Ok(&[("B", "$x"), ("A", "$x")]), &[]),
        ("A='$B'\nB=s3cr3t\nC=$A", Strict, Ok(&[("A", "$B"), ("B", "s3cr3t"), ("C", "$B")]), &[]),
        ("SECRET=ab#$%^&*", Strict, Ok(&[("SECRET", "ab#$%^&*")]), &[]),
        ("HOSTS=^(localhost|php)$", Strict, Ok(&[("HOSTS", "^(localhost|php)$")]), &[]),
        ("A=$\nB=a$ b\nC=$$\nD=$1\nE=\"$\"", Strict, Ok(&[("A", "$"), ("B", "a$ b"), ("C", "$$"), ("D", "$1"), ("E", "$")]), &[]),
        ("C=$(rm -rf x)\nD=`id`\nE=\"$(id) `id`\"", Strict, Ok(&[("C", "$(rm -rf x)"), ("D", "`id`"), ("E", "$(id) `id`")]), &[]),
        ("B=1\nA=\"\\$B\"\nC=\"\\${B}\"", Strict, Ok(&[("B", "1"), ("A", "$B"), ("C", "${B}")]), &[]),
        ("B=1\nA=x\\$B\nC=\\${B}\\\\$B", Strict, Ok(&[("B", "1"), ("A", "x$B"), ("C", "${B}\\$B")]), &[]),
        ("A=C:\\dir\\ x\\", Strict, Ok(&[("A", "C:\\dir\\ x\\")]), &[]),
        ("A=$FROM_ENV", Strict, Ok(&[("A", "env")]), &[]),
        ("FROM_ENV=file\nA=${FROM_ENV}", Strict, Ok(&[("FROM_ENV", "file"), ("A", "file")]), &[]),
        ("A=$B\nB=s3cr3t", Strict, Ok(&[("A", ""), ("B", "s3cr3t")]), &["line 1: A: a `$` reference to an unset variable"]),
        ("A=${MISSING}x${MISSING}", Strict, Ok(&[("A", "x")]), &["line 1: A: ${MISSING} is not set"]),
        ("A=x\nB=${A}${A\nC=${A", Strict, Ok(&[("A", "x"), ("B", "x${A"), ("C", "${A")]), &[]),
        ("A=${1}\nB=${X:=s3cr3t}\nC=${}\nD=${X#s3cr3t}", Strict, Ok(&[("A", ""), ("B", ""), ("C", ""), ("D", "")]), &["line 1: A: unsupported", "line 2: B: unsupported", "line 3: C: unsupported", "line 4: D: unsupported"]),
        // POSIX `+` and `?` forms (`:` counts an empty value as unset).
        ("E=\nS=x\nA=${S:+alt}\nB=${E:+alt}\nC=${U:+alt}\nD=${S+alt}\nF=${E+alt}\nG=${U+alt}", Strict, Ok(&[("E", ""), ("S", "x"), ("A", "alt"), ("B", ""), ("C", ""), ("D", "alt"), ("F", "alt"), ("G", "")]), &[]),
        ("S=x\nA=${S:+<$S>}\nB=${S:+${U:-d}}", Strict, Ok(&[("S", "x"), ("A", "<x>"), ("B", "d")]), &[]),
        ("E=\nS=x\nA=${S:?must be set}\nB=${E?unused}\nC=${S?m}", Strict, Ok(&[("E", ""), ("S", "x"), ("A", "x"), ("B", ""), ("C", "x")]), &[]),
        ("A=${U:?set U first}", Strict, Err(1), &[]),
        ("E=\nA=${E:?}", Strict, Err(2), &[]),
        ("A=${U?}\nB=2", Skip, Ok(&[("B", "2")]), &["line 1: A: `U` is not set; skipped"]),
        ("E=\nA=\"${E:?E is empty}\"", Skip, Ok(&[("E", "")]), &["line 2: A: `E` is not set or empty: E is empty; skipped"]),
        ("A=1\nA=${A}2", Strict, Ok(&[("A", "12")]), &["line 2: A: repeated key"]),
        ("A=x\nB=$A\nC=\"${A}\\$\\n\"\nD='$A'", NoExpand, Ok(&[("A", "x"), ("B", "$A"), ("C", "${A}$\n"), ("D", "$A")]), &[]),
        // Repeated keys: first position, last value, warning only when the value changes.
        ("A=s3cr3t1\nB=2\nA=s3cr3t2", Strict, Ok(&[("A", "s3cr3t2"), ("B", "2")]), &["line 3: A: repeated key with a different value (previously on line 1)"]),
        ("A=1\nA=1", Strict, Ok(&[("A", "1")]), &[]),
        // NUL.
        ("A=1\nB=s3cr3t\0x", Strict, Err(2), &[]),
        ("B=\"s3cr3t\0\"\nC=1", Skip, Ok(&[("C", "1")]), &["line 1: B: NUL character in the value; skipped"]),
    ];

    #[test]
    fn rule_table() {
        assert!(ROWS.len() >= 60, "only {} rows", ROWS.len());
        for (input, mode, want, want_warnings) in ROWS {
            let ctx = format!("input {input:?} ({mode:?})");
            let got = parse(input.as_bytes(), &opts(*mode), &test_lookup);
            match (got, want) {
                (Ok(p), Ok(want)) => {
                    assert_eq!(pairs(&p), *want, "{ctx}");
                    assert_eq!(
                        p.warnings.len(),
                        want_warnings.len(),
                        "{ctx}: {:?}",
                        p.warnings
                    );
                    for (w, sub) in p.warnings.iter().zip(*want_warnings) {
                        assert!(w.contains(sub), "{ctx}: warning {w:?} lacks {sub:?}");
                        assert!(!w.contains(SECRET), "{ctx}: warning {w:?} leaks a value");
                    }
                }
                (Err(e), Err(line)) => {
                    assert_eq!(e.line, *line, "{ctx}: {e}");
                    assert_eq!(e.to_string(), format!("line {}: {}", e.line, e.reason));
                    assert!(
                        !e.to_string().contains(SECRET),
                        "{ctx}: error {e} leaks a value"
                    );
                    // The same input with skip_invalid never fails, and skips that line.
                    let skipped = parse(input.as_bytes(), &opts(Skip), &test_lookup).expect(&ctx);
                    assert!(
                        skipped
                            .warnings
                            .iter()
                            .any(|w| w.starts_with(&format!("line {line}: "))),
                        "{ctx}"
                    );
                    assert!(
                        skipped.warnings.iter().all(|w| !w.contains(SECRET)),
                        "{ctx}"
                    );
                }
                (got, want) => panic!("{ctx}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn windows_temp_path_meets_the_tab_escape() {
        // `\t` is a listed escape, so `"C:\temp"` holds a tab; unquoted or
        // single-quoted paths keep every backslash.
        let p = parse(
            b"A=\"C:\\temp\"\nB='C:\\temp'\nC=C:\\temp",
            &Options::default(),
            &no_lookup,
        )
        .unwrap();
        assert_eq!(
            pairs(&p),
            [("A", "C:\temp"), ("B", "C:\\temp"), ("C", "C:\\temp")]
        );
    }

    #[test]
    fn invalid_utf8_names_its_line() {
        let input = b"A=1\n# caf\xe9\nB=\"x\ny\xff\"\nC=3\n";
        let err = parse(input, &Options::default(), &no_lookup).unwrap_err();
        assert_eq!((err.line, err.reason.as_str()), (2, "invalid UTF-8"));
        let p = parse(input, &opts(Skip), &no_lookup).unwrap();
        assert_eq!(pairs(&p), [("A", "1"), ("C", "3")]);
        assert_eq!(
            p.warnings,
            [
                "line 2: invalid UTF-8; skipped",
                "line 3: invalid UTF-8 on line 4; skipped",
                "line 4: invalid UTF-8; skipped",
            ]
        );
    }

    #[test]
    fn entry_debug_redacts_the_value() {
        let p = parse(b"\n\nA=s3cr3t", &Options::default(), &no_lookup).unwrap();
        assert_eq!(
            format!("{:?}", p.entries[0]),
            r#"Entry { key: "A", value: "********", line: 3 }"#
        );
        assert!(!format!("{p:?}").contains(SECRET));
        assert!(!format!("{:#?}", p.entries).contains(SECRET));
    }

    #[test]
    fn entry_line_is_the_winning_definition() {
        let p = parse(b"A=1\nB=2\nA=3\n", &Options::default(), &no_lookup).unwrap();
        assert_eq!((p.entries[0].key.as_str(), p.entries[0].line), ("A", 3));
    }

    #[test]
    fn lookup_is_consulted_only_for_names_the_file_has_not_defined() {
        let asked = std::cell::RefCell::new(Vec::new());
        let lookup = |name: &str| {
            asked.borrow_mut().push(name.to_owned());
            Some(format!("<{name}>"))
        };
        let p = parse(b"A=$HOME\nHOME=mine\nB=$HOME", &Options::default(), &lookup).unwrap();
        assert_eq!(
            pairs(&p),
            [("A", "<HOME>"), ("HOME", "mine"), ("B", "mine")]
        );
        assert_eq!(*asked.borrow(), ["HOME"]);
        assert!(p.warnings.is_empty());
    }

    #[test]
    fn deeply_nested_defaults_are_an_error_not_a_stack_overflow() {
        let n = 10_000;
        let input = format!("A={}x{}\nB=1", "${U:-".repeat(n), "}".repeat(n));
        let err = parse(input.as_bytes(), &Options::default(), &no_lookup).unwrap_err();
        assert_eq!(err.line, 1);
        let p = parse(input.as_bytes(), &opts(Skip), &no_lookup).unwrap();
        assert_eq!(pairs(&p), [("B", "1")]);
        let ok = format!("A={}x{}", "${U:-".repeat(16), "}".repeat(16));
        let p = parse(ok.as_bytes(), &Options::default(), &no_lookup).unwrap();
        assert_eq!(pairs(&p), [("A", "x")]);
    }

    /// A chain `K{n+1}=${Kn}${Kn}` doubles per line: 30 lines took 2.6 GB
    /// and 5,000 got vault killed, because the size was checked after
    /// expansion (issue 14). Now the line that passes the pair limit fails.
    #[test]
    fn doubling_chains_stop_at_the_pair_limit() {
        let mut chain = String::from("K0=x\n");
        for i in 0..5000 {
            chain.push_str(&format!("K{}=${{K{i}}}${{K{i}}}\n", i + 1));
        }
        let err = parse(chain.as_bytes(), &Options::default(), &no_lookup).unwrap_err();
        // K17 would be 2^17 = 131,072 bytes, one past the limit.
        assert_eq!(err.line, 18, "{err}");
        assert!(
            err.reason
                .starts_with("K17: the value is too large: more than 131071 bytes"),
            "{err}"
        );
        let p = parse(chain.as_bytes(), &opts(Skip), &no_lookup).unwrap();
        assert_eq!(p.entries.len(), 5000, "K17 skipped, the rest defined");
        assert!(p.entries.iter().all(|e| e.value.len() <= MAX_PAIR_LEN));
        // The limit counts the key: `K=` plus the value must fit.
        let fits = format!("A={}\nK=$A", "v".repeat(MAX_PAIR_LEN - 2));
        let p = parse(fits.as_bytes(), &Options::default(), &no_lookup).unwrap();
        assert_eq!(p.entries[1].value.len(), MAX_PAIR_LEN - 2);
        let over = format!("A={}\nKK=$A", "v".repeat(MAX_PAIR_LEN - 2));
        assert_eq!(
            parse(over.as_bytes(), &Options::default(), &no_lookup)
                .unwrap_err()
                .line,
            2
        );
    }

    /// Each value under the limit, many of them: the file's total is capped.
    #[test]
    fn substitutions_have_a_budget_per_file() {
        let big = "v".repeat(100_000);
        let mut file = format!("B={big}\n");
        for i in 0..1000 {
            file.push_str(&format!("K{i}=$B\n"));
        }
        let err = parse(file.as_bytes(), &Options::default(), &no_lookup).unwrap_err();
        let first_over = MAX_SUBSTITUTED / 100_000; // K0 .. this one fit
        assert_eq!(err.line, first_over + 2, "{err}");
        assert!(err.reason.contains("more than 64 MiB in total"), "{err}");
        // Literal text is bounded by the input and does not count.
        let literal = format!("A={big}\n").repeat(1000);
        assert!(parse(literal.as_bytes(), &Options::default(), &no_lookup).is_ok());
    }

    #[test]
    fn command_substitutions_are_listed_for_import_to_warn() {
        let input =
            "A=$(id)\nB=\"x `id`\"\nC='$(id)'\nD=\\$(id)\nE=\"\\$(id)\"\nF=$ (id)\nG=s3cr3t$(x)";
        let p = parse(input.as_bytes(), &Options::default(), &no_lookup).unwrap();
        assert_eq!(
            pairs(&p),
            [
                ("A", "$(id)"),
                ("B", "x `id`"),
                ("C", "$(id)"),
                ("D", "$(id)"),
                ("E", "$(id)"),
                ("F", "$ (id)"),
                ("G", "s3cr3t$(x)")
            ]
        );
        let lines: Vec<&str> = p
            .commands
            .iter()
            .map(|c| &c[..c.find(": `").unwrap()])
            .collect();
        assert_eq!(lines, ["line 1: A", "line 2: B", "line 7: G"]);
        assert!(p.commands.iter().all(|c| !c.contains(SECRET)));
        assert!(p.warnings.is_empty());
    }

    /// Hostile shapes (deep `${`, runs of `$`, unterminated quotes) parse
    /// without panicking or overflowing. How their cost grows is measured in
    /// `benches/`, not asserted here: timings do not belong in `cargo test`.
    #[test]
    fn large_and_hostile_inputs_do_not_panic() {
        let mut big = String::new();
        for i in 0..20_000 {
            big.push_str(&format!("KEY_{i}=\"value {i} ${{KEY_{}}}\" # c\n", i / 2));
        }
        let p = parse(big.as_bytes(), &Options::default(), &no_lookup).unwrap();
        assert_eq!(p.entries.len(), 20_000);
        let hostile = [
            "${".repeat(40_000),
            format!("A={}", "${".repeat(40_000)),
            format!("A=\"{}", "\\$".repeat(40_000)),
            format!("A={}", "$A".repeat(20_000)),
            format!("A={}", "$U".repeat(20_000)),
            "A=\"x\n".repeat(20_000),
            "A='x\n".repeat(20_000),
            "A=\"\nB=\"\n".repeat(10_000),
            format!("A={}", " #".repeat(40_000)),
            "#".repeat(80_000),
            "\n".repeat(80_000),
            "\r".repeat(80_000),
        ];
        for input in &hostile {
            for skip_invalid in [false, true] {
                let o = Options {
                    expand: true,
                    skip_invalid,
                };
                let _ = parse(input.as_bytes(), &o, &no_lookup);
            }
        }
    }

    // ---- dotenvy as an oracle where its dialect and ours coincide

    #[derive(Debug, Clone)]
    enum Simple {
        Unquoted(String),
        Single(String),
        /// Source text between the quotes, and the value it means.
        Double(String, String),
    }

    fn simple_value() -> impl Strategy<Value = Simple> {
        let double_piece = prop_oneof![
            4 => "[ !#%-\\[\\]-~]{1,4}".prop_map(|s| (s.clone(), s)),
            1 => Just(("\\\\".to_owned(), "\\".to_owned())),
            1 => Just(("\\\"".to_owned(), "\"".to_owned())),
            1 => Just(("\\n".to_owned(), "\n".to_owned())),
        ];
        prop_oneof![
            "[A-Za-z0-9_./:@,+=%-]{0,12}".prop_map(Simple::Unquoted),
            // dotenvy mishandles a backslash inside single quotes.
            "[ -&(-\\[\\]-~é✓]{0,12}".prop_map(Simple::Single),
            proptest::collection::vec(double_piece, 0..6).prop_map(|pieces| {
                let (src, val): (Vec<String>, Vec<String>) = pieces.into_iter().unzip();
                Simple::Double(src.concat(), val.concat())
            }),
        ]
    }

    fn simple_line() -> impl Strategy<Value = (String, String, String)> {
        (
            any::<bool>(),
            "[A-Za-z_][A-Za-z0-9_]{0,6}",
            prop_oneof![Just("="), Just(" = "), Just("= "), Just(" =")],
            simple_value(),
            prop_oneof![Just(""), Just(" # note"), Just("  #")],
        )
            .prop_map(|(export, key, eq, value, comment)| {
                let (src, val) = match value {
                    Simple::Unquoted(v) => (v.clone(), v),
                    Simple::Single(v) => (format!("'{v}'"), v),
                    Simple::Double(src, v) => (format!("\"{src}\""), v),
                };
                let export = if export { "export " } else { "" };
                (format!("{export}{key}{eq}{src}{comment}"), key, val)
            })
    }

    proptest! {
        #[test]
        fn agrees_with_dotenvy_on_simple_files(
            lines in proptest::collection::vec((simple_line(), 0..4usize), 0..8),
            crlf in any::<bool>(),
        ) {
            let eol = if crlf { "\r\n" } else { "\n" };
            let mut file = String::new();
            for ((line, _, _), filler) in &lines {
                match filler {
                    0 => file.push_str(eol),
                    1 => file.push_str(&format!("# a comment = 'x' \"{eol}")),
                    _ => {}
                }
                file.push_str(line);
                file.push_str(eol);
            }
            let theirs: Vec<(String, String)> = dotenvy::from_read_iter(file.as_bytes())
                .collect::<Result<_, _>>()
                .map_err(|e| TestCaseError::fail(format!("dotenvy: {e}")))?;
            let ours = parse(file.as_bytes(), &Options::default(), &no_lookup)
                .map_err(|e| TestCaseError::fail(format!("ours: {e}")))?;
            // Collapse dotenvy's pairs the way we do: first position, last value.
            let mut want: Vec<(String, String)> = Vec::new();
            for (k, v) in theirs {
                match want.iter_mut().find(|(wk, _)| *wk == k) {
                    Some(slot) => slot.1 = v,
                    None => want.push((k, v)),
                }
            }
            let got: Vec<(String, String)> = ours
                .entries
                .iter()
                .map(|e| (e.key.clone(), e.value.to_string()))
                .collect();
            prop_assert_eq!(got, want, "file {:?}", file);
        }
    }

    // ---- rendering round trips

    /// Any string without NUL, biased towards the characters that matter here.
    pub(crate) fn any_value() -> impl Strategy<Value = String> {
        prop_oneof![
            any::<String>(),
            "[ \t\r\n\u{1}\u{8}\u{c}\u{1f}\u{7f}'\"$`{}()\\\\#=:;!*?~&|<>a-zA-Z0-9_\u{a0}\u{feff}\u{2028}é日]{0,24}",
        ]
        .prop_map(|s| s.replace('\0', ""))
    }

    pub(crate) fn any_entries() -> impl Strategy<Value = Vec<(String, String)>> {
        proptest::collection::vec(any_value(), 0..6).prop_map(|values| {
            values
                .into_iter()
                .enumerate()
                .map(|(i, v)| (format!("K{i}"), v))
                .collect()
        })
    }

    pub(crate) fn borrowed(entries: &[(String, String)]) -> Vec<(&str, &str)> {
        entries
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect()
    }

    proptest! {
        #[test]
        fn render_dotenv_round_trips(entries in any_entries()) {
            let text = render_dotenv(&borrowed(&entries));
            for o in [Options::default(), Options { expand: false, skip_invalid: false }] {
                let parsed = parse(text.as_bytes(), &o, &no_lookup)
                    .map_err(|e| TestCaseError::fail(format!("{e} in {text:?}")))?;
                prop_assert_eq!(pairs(&parsed), borrowed(&entries), "{:?}", text);
                prop_assert!(parsed.warnings.is_empty());
            }
        }

    }

    #[test]
    fn render_examples() {
        let entries = [
            ("A", "plain-1.2/x@y:z"),
            ("B", ""),
            ("C", "a b $x #y"),
            ("D", "it's\n"),
            ("E", "\\$\"\r"),
            ("F", "C:\\dir\\"),
        ];
        assert_eq!(
            render_dotenv(&entries),
            "A=plain-1.2/x@y:z\nB=''\nC='a b $x #y'\nD=\"it's\\n\"\nE=\"\\\\\\$\\\"\\r\"\nF=\"C:\\\\dir\\\\\"\n"
        );
    }

    // ---- no input makes the parser panic

    fn check_invariants(input: &[u8]) -> Result<(), TestCaseError> {
        for expand in [true, false] {
            let strict = parse(
                input,
                &Options {
                    expand,
                    skip_invalid: false,
                },
                &test_lookup,
            );
            let lenient = parse(
                input,
                &Options {
                    expand,
                    skip_invalid: true,
                },
                &test_lookup,
            );
            let lenient =
                lenient.map_err(|e| TestCaseError::fail(format!("skip_invalid failed: {e}")))?;
            let lines = input.iter().filter(|&&b| b == b'\n' || b == b'\r').count() + 1;
            for e in &lenient.entries {
                prop_assert!(is_portable_name(&e.key) && !e.value.contains('\0'));
                prop_assert!(e.line >= 1 && e.line <= lines);
            }
            match strict {
                Ok(p) => prop_assert_eq!(pairs(&p), pairs(&lenient)),
                Err(e) => {
                    prop_assert!(e.line >= 1 && e.line <= lines);
                    let first = format!("line {}: ", e.line);
                    prop_assert!(lenient.warnings.iter().any(|w| w.starts_with(&first)));
                }
            }
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1000))]
        #[test]
        fn arbitrary_bytes_never_panic(input in proptest::collection::vec(any::<u8>(), 0..200)) {
            check_invariants(&input)?;
        }

        #[test]
        fn dotenv_like_text_never_panics(input in "(export |[=' \"${}\\\\#\n\r\tAB_a1:-]|\u{feff}|\0|\u{e9}){0,80}") {
            check_invariants(input.as_bytes())?;
        }
    }
}
