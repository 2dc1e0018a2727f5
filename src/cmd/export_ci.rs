//! `vault export --format docker|k8s|github` (issue 19; DESIGN.md, "v2: CI
//! and output"): the formats CI systems and container tools read, each
//! written so that its reader gets every value back byte for byte, or
//! refused with the key named when it cannot.
//!
//! - docker: `KEY=VALUE` lines as `docker run --env-file` reads them: no
//!   quotes, no escapes, nothing expanded (docker/cli `pkg/kvfile`). Its
//!   reader splits lines at LF and drops a CR before it, and takes lines of
//!   at most 64 KiB, so a value with CR or LF, or a longer line, is an error.
//! - k8s: a `v1` `Secret` manifest with base64 `data`. Every scalar is
//!   double-quoted, so that no YAML 1.1 reader turns a key `ON` into a
//!   boolean or a name `1e3` into a number.
//! - github: appends `KEY<<DELIMITER` blocks to `$GITHUB_ENV`, with a random
//!   delimiter found in no value, after printing `::add-mask::` for every
//!   line of every value, so the runner masks them in later logs.

use std::io::Write;

use base64::Engine;

use crate::{
    error::{Error, Result, describe_io},
    fsio,
    names::printable,
};

/// The longest line docker's env-file reader takes: `bufio.Scanner`'s
/// default `MaxScanTokenSize` (64 KiB) holds the line and its LF.
pub(crate) const DOCKER_MAX_LINE: usize = 64 * 1024 - 1;

/// `docker run --env-file` lines.
pub(crate) fn docker(pairs: &[(&str, &str)]) -> Result<String> {
    let mut out = String::new();
    for (key, value) in pairs {
        if value.contains(['\n', '\r']) {
            return Err(Error::new(format!(
                "`{key}` holds a line break, which docker's --env-file cannot carry"
            ))
            .hint(format!(
                "pass it another way (`vault run -s NAME -- docker run -e {key} …` passes it from the environment), or use --format k8s"
            )));
        }
        let line = key.len() + 1 + value.len();
        if line > DOCKER_MAX_LINE {
            return Err(Error::new(format!(
                "`{key}` makes a line of {line} bytes, more than docker's --env-file reads ({DOCKER_MAX_LINE})"
            ))
            .hint(format!(
                "pass it from the environment instead: `vault run -s NAME -- docker run -e {key} …`"
            )));
        }
        out.push_str(key);
        out.push('=');
        out.push_str(value);
        out.push('\n');
    }
    Ok(out)
}

/// A `v1 Secret` manifest named `name` (checked), or else after `first`.
pub(crate) fn k8s(pairs: &[(&str, &str)], name: Option<&str>, default: &str) -> Result<String> {
    let name = match name {
        Some(n) if is_k8s_name(n) => n.to_string(),
        Some(n) => {
            return Err(Error::new(format!(
                "--k8s-name `{}` is not a valid Kubernetes name",
                printable(n)
            ))
            .hint("use lower-case letters, digits, `-` and `.`, starting and ending with a letter or digit (RFC 1123), at most 253"));
        }
        None => default.to_string(),
    };
    let mut out =
        format!("apiVersion: v1\nkind: Secret\nmetadata:\n  name: \"{name}\"\ntype: Opaque\n");
    if pairs.is_empty() {
        out.push_str("data: {}\n");
        return Ok(out);
    }
    out.push_str("data:\n");
    let b64 = base64::engine::general_purpose::STANDARD;
    for (key, value) in pairs {
        // Keys are `[A-Za-z_][A-Za-z0-9_]*` and base64 is `[A-Za-z0-9+/=]`:
        // nothing to escape inside the quotes.
        out.push_str(&format!("  \"{key}\": \"{}\"\n", b64.encode(value)));
    }
    Ok(out)
}

/// RFC 1123 subdomain, as Kubernetes checks object names: labels of
/// `[a-z0-9]([-a-z0-9]*[a-z0-9])?` joined by `.`, at most 253 in all.
pub(crate) fn is_k8s_name(name: &str) -> bool {
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    name.len() <= 253 && name.split('.').all(label_ok)
}

/// A secret's name made a Kubernetes name: lower case, `_` as `-`, each
/// `.`-separated part trimmed of `-`, empty parts dropped. A secret name
/// starts with a letter or digit, so something is always left.
pub(crate) fn k8s_name_from(secret: &str) -> String {
    let lowered: String = secret
        .chars()
        .map(|c| match c {
            '_' => '-',
            c => c.to_ascii_lowercase(),
        })
        .collect();
    lowered
        .split('.')
        .map(|l| l.trim_matches('-'))
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(".")
}

/// The GitHub Actions step: masks on stdout first (if they cannot be
/// printed, nothing is exported), then one append to `$GITHUB_ENV`.
pub(crate) fn github(pairs: &[(&str, &str)]) -> Result<()> {
    let target = std::env::var_os("GITHUB_ENV")
        .filter(|v| !v.is_empty())
        .ok_or_else(|| {
            Error::new("GITHUB_ENV is not set: --format github writes to the file a GitHub Actions step is given")
                .hint("run it in a step of a GitHub Actions job; elsewhere use --format dotenv, docker or json")
        })?;
    let delimiter = delimiter(pairs)?;
    let block = zeroize::Zeroizing::new(github_env(pairs, &delimiter));
    let masks = zeroize::Zeroizing::new(github_masks(pairs));
    // Opened before anything is printed: a GITHUB_ENV that cannot take
    // the values (a directory, a missing directory) prints no masks.
    let target = std::path::Path::new(&target);
    let file = fsio::open_append(target)?;

    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(masks.as_bytes())
        .and_then(|()| stdout.flush())
        .map_err(|e| {
            Error::new(format!(
                "cannot print the masks: {}; GITHUB_ENV was not changed",
                describe_io(&e)
            ))
        })?;
    // One write of the whole block, so a reader never sees half a key.
    fsio::append_to(file, target, block.as_bytes())
}

/// `KEY<<DELIMITER`, the value, `DELIMITER`, for every pair: what the
/// runner reads back exactly (the value is everything between the header
/// line and the newline before the delimiter line).
pub(crate) fn github_env(pairs: &[(&str, &str)], delimiter: &str) -> String {
    let mut out = String::new();
    for (key, value) in pairs {
        out.push_str(&format!("{key}<<{delimiter}\n{value}\n{delimiter}\n"));
    }
    out
}

/// `::add-mask::LINE` for every non-blank line of every value, escaped as
/// the runner unescapes command data. Lines end at LF, CR or CRLF: the
/// runner reads a step's output line by line the same way, so that is the
/// unit its masker sees.
/// A line with a lone CR in it (`a\rb`, not a CRLF ending) is masked
/// both ways: as the two lines a terminal shows, and whole, its CR as
/// `%0D` (DESIGN's escaping), for a log that keeps the CR in one line.
pub(crate) fn github_masks(pairs: &[(&str, &str)]) -> String {
    let mut out = String::new();
    for (_, value) in pairs {
        let mut lines: Vec<&str> = value.split(['\n', '\r']).collect();
        lines.extend(
            value
                .split('\n')
                .map(|l| l.strip_suffix('\r').unwrap_or(l))
                .filter(|l| l.contains('\r')),
        );
        let mut seen = std::collections::HashSet::new();
        for line in lines {
            if !line.trim().is_empty() && seen.insert(line) {
                out.push_str("::add-mask::");
                out.push_str(&escape_command_data(line));
                out.push('\n');
            }
        }
    }
    out
}

/// The workflow-command escaping of data: `%` as `%25`, CR as `%0D`, LF as
/// `%0A` (the runner's `ActionCommand` unescapes exactly these).
pub(crate) fn escape_command_data(s: &str) -> String {
    s.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// `ghadelimiter_` and 128 random bits in hex (as `@actions/core` does),
/// drawn again in the unthinkable case that a value contains it.
fn delimiter(pairs: &[(&str, &str)]) -> Result<String> {
    loop {
        let mut bytes = [0u8; 16];
        getrandom::fill(&mut bytes)
            .map_err(|e| Error::new(format!("cannot get random bytes for a delimiter: {e}")))?;
        let d: String = std::iter::once("ghadelimiter_".to_string())
            .chain(bytes.iter().map(|b| format!("{b:02x}")))
            .collect();
        if pairs.iter().all(|(_, v)| !v.contains(&d)) {
            return Ok(d);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// GitHub's runner reading an env file (actions/runner,
    /// `FileCommandManager`, Linux), written again from its description:
    /// `NAME=VALUE` lines, or `NAME<<DELIM` and the text up to the newline
    /// before a line that equals DELIM.
    fn runner_reads(text: &str) -> Vec<(String, String)> {
        let mut out = vec![];
        let mut rest = text;
        let next_line = |rest: &mut &str| -> Option<(String, bool)> {
            if rest.is_empty() {
                return None;
            }
            match rest.find('\n') {
                Some(i) => {
                    let line = rest[..i].to_string();
                    *rest = &rest[i + 1..];
                    Some((line, true))
                }
                None => {
                    let line = rest.to_string();
                    *rest = "";
                    Some((line, false))
                }
            }
        };
        while let Some((line, _)) = next_line(&mut rest) {
            if line.is_empty() {
                continue;
            }
            let (eq, heredoc) = (line.find('='), line.find("<<"));
            match (eq, heredoc) {
                (Some(e), h) if h.is_none_or(|h| e < h) => {
                    out.push((line[..e].to_string(), line[e + 1..].to_string()));
                }
                (_, Some(h)) => {
                    let (name, delim) = (&line[..h], &line[h + 2..]);
                    let mut value_lines: Vec<String> = vec![];
                    loop {
                        let (l, newline) = next_line(&mut rest).expect("delimiter found");
                        if l == delim {
                            break;
                        }
                        assert!(newline, "EOF marker missing new line");
                        value_lines.push(l);
                    }
                    out.push((name.to_string(), value_lines.join("\n")));
                }
                _ => panic!("invalid format"),
            }
        }
        out
    }

    #[test]
    fn github_env_reads_back_exactly() {
        let pairs = [
            ("EMPTY", ""),
            ("NL", "\n"),
            ("TWO_NL", "a\n\nb\n"),
            ("CRLF", "line1\r\nline2\r\n"),
            ("ODD", "x=y<<z %0A $HOME `cmd` 'q' \"d\" é"),
            ("EOFISH", "EOF\nghadelimiter\n"),
        ];
        let d = delimiter(&pairs).unwrap();
        assert!(d.starts_with("ghadelimiter_") && d.len() == 13 + 32, "{d}");
        let read = runner_reads(&github_env(&pairs, &d));
        let want: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert_eq!(read, want);
    }

    #[test]
    fn masks_every_nonblank_line_escaped() {
        let pairs = [("A", "100%\r\nsecond"), ("B", "  \n\tx\n"), ("C", "")];
        assert_eq!(
            github_masks(&pairs),
            "::add-mask::100%25\n::add-mask::second\n::add-mask::\tx\n"
        );
        assert_eq!(escape_command_data("a%b\rc\nd"), "a%25b%0Dc%0Ad");
        // A lone CR: both halves, and the whole line with `%0D`; a CRLF
        // ending is only a line end.
        assert_eq!(
            github_masks(&[("A", "left\rright\r\nnext\r\n")]),
            "::add-mask::left\n::add-mask::right\n::add-mask::next\n::add-mask::left%0Dright\n"
        );
    }

    #[test]
    fn k8s_names() {
        for (secret, want) in [
            ("db", "db"),
            ("My_App.prod", "my-app.prod"),
            ("a._b", "a.b"),
            ("A-", "a"),
            ("x..y", "x.y"),
            ("9lives", "9lives"),
        ] {
            let got = k8s_name_from(secret);
            assert_eq!(got, want, "{secret}");
            assert!(is_k8s_name(&got), "{got}");
        }
        for bad in ["", "Db", "-a", "a-", "a..b", "a_b", ".a", &"a".repeat(254)] {
            assert!(!is_k8s_name(bad), "{bad}");
        }
        assert!(is_k8s_name("a-b.c-d"));
    }

    #[test]
    fn docker_refuses_line_breaks_naming_the_key() {
        let e = docker(&[("K", "a\rb")]).unwrap_err();
        assert!(e.message().contains("`K`") && !e.message().contains("a\rb"));
        assert!(docker(&[("K", "a\nb")]).is_err());
        let long = "v".repeat(DOCKER_MAX_LINE - 2);
        assert_eq!(docker(&[("K", &long)]).unwrap().len(), DOCKER_MAX_LINE + 1);
        let longer = "v".repeat(DOCKER_MAX_LINE - 1);
        assert!(docker(&[("K", &longer)]).is_err());
    }
}
