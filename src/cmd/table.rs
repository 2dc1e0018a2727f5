//! Human output: aligned tables and local times.

use std::{borrow::Cow, fmt::Write};

/// Left-aligned columns separated by two spaces; the header row first.
/// Every cell has its control characters escaped (`escape_controls`):
/// names, timestamps and recipients come from a database that someone else
/// may have written, and a terminal obeys what it is sent.
pub(crate) fn render(header: &[&str], rows: &[Vec<String>]) -> String {
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| r.iter().map(|c| escape_controls(c).into_owned()).collect())
        .collect();
    let rows = &rows[..];
    let mut widths: Vec<usize> = header.iter().map(|h| width(h)).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(width(cell));
        }
    }
    let mut out = String::new();
    let header: Vec<String> = header.iter().map(|s| s.to_string()).collect();
    for row in std::iter::once(&header).chain(rows) {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i + 1 == row.len() {
                line.push_str(cell);
            } else {
                let _ = write!(line, "{cell}{}  ", " ".repeat(widths[i] - width(cell)));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// Text with every control character (C0, DEL, C1) and every bidirectional
/// override or isolate (which reorder what a terminal shows) written as an
/// escape, `\x1b` or `\u{202e}`, terminal or not: output piped to `less -R`
/// or a log viewer reaches a terminal later.
pub(crate) fn escape_controls(s: &str) -> Cow<'_, str> {
    let bad = |c: char| {
        c.is_control()
            || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
    };
    if !s.chars().any(bad) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            c if !bad(c) => out.push(c),
            c if (c as u32) < 0x80 => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
        }
    }
    Cow::Owned(out)
}

/// Display width in terminal columns (wide East Asian characters count two).
pub(crate) fn width(s: &str) -> usize {
    s.chars().map(char_width).sum()
}

fn char_width(c: char) -> usize {
    let c = c as u32;
    let wide = matches!(c,
        0x1100..=0x115F | 0x2E80..=0x303E | 0x3041..=0x33FF | 0x3400..=0x4DBF
        | 0x4E00..=0x9FFF | 0xA000..=0xA4CF | 0xAC00..=0xD7A3 | 0xF900..=0xFAFF
        | 0xFE30..=0xFE4F | 0xFF00..=0xFF60 | 0xFFE0..=0xFFE6
        | 0x1F300..=0x1F64F | 0x1F900..=0x1F9FF | 0x20000..=0x3FFFD);
    if wide { 2 } else { 1 }
}

/// A stored UTC timestamp shown in local time, to the minute.
pub(crate) fn local_time(stored: &str) -> String {
    match stored.parse::<jiff::Timestamp>() {
        Ok(ts) => ts
            .to_zoned(jiff::tz::TimeZone::system())
            .strftime("%Y-%m-%d %H:%M")
            .to_string(),
        Err(_) => stored.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_line_up_with_wide_characters() {
        let t = render(
            &["NAME", "KEYS"],
            &[
                vec!["数据库".into(), "3".into()],
                vec!["db".into(), "10".into()],
            ],
        );
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines[0], "NAME    KEYS");
        assert_eq!(lines[1], "数据库  3");
        assert_eq!(lines[2], "db      10");
    }

    #[test]
    fn control_characters_are_escaped_in_every_cell() {
        let t = render(
            &["NAME", "WHEN"],
            &[vec!["a\x1b[2Jb".into(), "\u{202e}x\u{9b}\ty\n".into()]],
        );
        assert_eq!(
            t,
            "NAME       WHEN\na\\x1b[2Jb  \\u{202e}x\\u{9b}\\x09y\\x0a\n"
        );
        assert!(!t.chars().any(|c| c.is_control() && c != '\n'));
        assert_eq!(escape_controls("plain é 日"), "plain é 日");
    }
}
