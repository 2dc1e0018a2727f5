//! The streaming replacer behind `vault run --redact` and `vault redact`
//! (DESIGN.md, "v2: CI and output"; issue 19): every occurrence of a secret
//! value in a byte stream, and of each line of a multi-line value, becomes
//! `********`, whatever the read boundaries (a value written one byte per
//! `write` is still caught).
//!
//! Matching is aho-corasick's, every occurrence of every pattern, overlaps
//! included; occurrences that overlap are masked as one span (a whole
//! multi-line value and its lines; `user-7f3a` and `7f3a-TOKEN` in
//! `user-7f3a-TOKEN`, where the leftmost match alone left `-TOKEN` out).
//! Across reads a `Redactor` keeps back only what may still turn into a
//! match: the bytes from the earliest position whose rest is a proper
//! prefix of some pattern (never more than the longest pattern less one
//! byte), and a span that such a position overlaps. Everything before is
//! decided and passed on at once, so output that cannot begin a secret is
//! not delayed (a prompt, a progress line), and at end of input the rest is
//! flushed.
//!
//! Values and lines shorter than `MIN_LEN` bytes are not masked: replacing
//! every `1` or `yes` in a log destroys it and hides nothing worth hiding.
//!
//! No processes here; `supervise` runs the child and feeds its output in.
//! Pattern bytes and pending output are wiped on drop; aho-corasick's own
//! tables are not (SECURITY.md says so).

use std::io::{self, Read, Write};

use aho_corasick::{AhoCorasick, MatchKind};
use zeroize::{Zeroize, Zeroizing};

use crate::{
    error::{Error, Result},
    names::MASK,
};

/// The shortest value, or line of a multi-line value, that is masked.
pub(crate) const MIN_LEN: usize = 4;

/// How much `copy` reads at a time: two pipe buffers' worth.
const CHUNK: usize = 128 * 1024;

/// The patterns for a set of values: each value of at least `MIN_LEN`
/// bytes, and each line of a multi-line value (split at LF, a CR before it
/// dropped, as a terminal or log shows it) of at least `MIN_LEN` bytes.
/// Sorted and without repeats.
pub(crate) fn patterns<'a>(values: impl IntoIterator<Item = &'a str>) -> Vec<Zeroizing<Vec<u8>>> {
    let mut out: Vec<Zeroizing<Vec<u8>>> = vec![];
    for value in values {
        if value.len() >= MIN_LEN {
            out.push(Zeroizing::new(value.as_bytes().to_vec()));
        }
        if value.contains('\n') {
            for line in value.split('\n') {
                let line = line.strip_suffix('\r').unwrap_or(line);
                if line.len() >= MIN_LEN {
                    out.push(Zeroizing::new(line.as_bytes().to_vec()));
                }
            }
        }
    }
    out.sort_unstable_by(|a, b| a.as_slice().cmp(b.as_slice()));
    out.dedup_by(|a, b| a.as_slice() == b.as_slice());
    out
}

/// A stream filter: `feed` it input as it comes, `finish` at the end.
/// A clone made before feeding serves a second stream (the matcher is
/// shared, not rebuilt).
#[derive(Clone)]
pub(crate) struct Redactor {
    /// `None` without patterns: everything passes through.
    matcher: Option<AhoCorasick>,
    /// The patterns, sorted, for "is this a prefix of one?".
    sorted: Vec<Zeroizing<Vec<u8>>>,
    /// Bytes some pattern starts with.
    first: [bool; 256],
    max_len: usize,
    /// Input not yet decided: a possible beginning of a match.
    pending: Zeroizing<Vec<u8>>,
}

impl Redactor {
    /// A filter for `patterns` (from `patterns()`; sorted, no repeats).
    pub(crate) fn new(patterns: Vec<Zeroizing<Vec<u8>>>) -> Result<Redactor> {
        let mut first = [false; 256];
        for p in &patterns {
            first[usize::from(p[0])] = true;
        }
        let max_len = patterns.iter().map(|p| p.len()).max().unwrap_or(0);
        let matcher = if patterns.is_empty() {
            None
        } else {
            // Building fails only past aho-corasick's size limits (billions
            // of states); without a matcher nothing would be masked, so
            // that is an error, not a quiet pass-through.
            let built = AhoCorasick::builder()
                .match_kind(MatchKind::Standard)
                .build(patterns.iter().map(|p| p.as_slice()))
                .map_err(|_| {
                    Error::new(format!(
                        "too many or too large values to mask ({} patterns)",
                        patterns.len()
                    ))
                    .hint("mask fewer secrets: name only the sources the command needs")
                })?;
            Some(built)
        };
        Ok(Redactor {
            matcher,
            sorted: patterns,
            first,
            max_len,
            pending: Zeroizing::new(Vec::new()),
        })
    }

    /// Whether anything can be masked at all.
    pub(crate) fn is_empty(&self) -> bool {
        self.matcher.is_none()
    }

    /// Takes `input`, appends to `out` everything that is now decided.
    pub(crate) fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) {
        if self.matcher.is_none() {
            out.extend_from_slice(input);
            return;
        }
        self.pending.extend_from_slice(input);
        self.process(false, out);
    }

    /// End of input: appends the rest to `out`.
    pub(crate) fn finish(&mut self, out: &mut Vec<u8>) {
        if self.matcher.is_some() {
            self.process(true, out);
        }
    }

    /// Emits every decided byte of `pending` (with matches replaced) and
    /// keeps the undecided rest.
    fn process(&mut self, eof: bool, out: &mut Vec<u8>) {
        let Some(matcher) = &self.matcher else {
            return;
        };
        let buf = &self.pending[..];
        // `hold`: the first position from which more input could still
        // make a match that ends beyond `buf`. A span that ends at or
        // before it is final; one that reaches past it waits, since a
        // match starting inside it may still grow it.
        let hold = if eof {
            buf.len()
        } else {
            self.first_open(buf, 0)
        };
        let mut spans: Vec<(usize, usize)> = matcher
            .find_overlapping_iter(buf)
            .map(|m| (m.start(), m.end()))
            .collect();
        spans.sort_unstable();
        let mut pos = 0;
        let mut cut = hold;
        let mut i = 0;
        while i < spans.len() {
            let (start, mut end) = spans[i];
            i += 1;
            while i < spans.len() && spans[i].0 < end {
                end = end.max(spans[i].1);
                i += 1;
            }
            if start >= hold {
                break;
            }
            if end > hold {
                cut = start;
                break;
            }
            out.extend_from_slice(&buf[pos..start]);
            out.extend_from_slice(MASK.as_bytes());
            pos = end;
        }
        let hold = cut.max(pos);
        out.extend_from_slice(&buf[pos..hold]);
        // Shift the undecided tail to the front; the bytes it leaves behind
        // are wiped, not just forgotten.
        let keep = buf.len() - hold;
        self.pending.copy_within(hold.., 0);
        self.pending[keep..].zeroize();
        self.pending.truncate(keep);
    }

    /// The first position at or after `from` whose rest of `buf` is a proper
    /// prefix of some pattern; `buf.len()` if none is.
    fn first_open(&self, buf: &[u8], from: usize) -> usize {
        let start = from.max(buf.len().saturating_sub(self.max_len.saturating_sub(1)));
        (start..buf.len())
            .find(|&p| self.first[usize::from(buf[p])] && self.is_proper_prefix(&buf[p..]))
            .unwrap_or(buf.len())
    }

    /// Whether some pattern is longer than `s` and starts with it. Patterns
    /// that start with `s` sort right after `s` itself, so looking at the
    /// first two at or after it is enough (there are no repeats).
    fn is_proper_prefix(&self, s: &[u8]) -> bool {
        let i = self.sorted.partition_point(|p| p.as_slice() < s);
        self.sorted[i..]
            .iter()
            .take(2)
            .any(|p| p.len() > s.len() && p.starts_with(s))
    }
}

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Redactor({} patterns)", self.sorted.len())
    }
}

/// Where `copy` stopped.
#[derive(Debug)]
pub(crate) enum Copied {
    /// End of input, everything written.
    Done,
    /// The output was closed (EPIPE): the caller should stop reading, so
    /// that the writer on the other side learns it as it would have.
    Closed,
    /// Another write error (a full disk, say).
    WriteFailed(io::Error),
    /// A read error.
    ReadFailed(io::Error),
}

/// Copies `from` to `to` through `redactor`, writing after every read so
/// that output keeps flowing.
pub(crate) fn copy(redactor: &mut Redactor, from: &mut impl Read, to: &mut impl Write) -> Copied {
    let mut buf = Zeroizing::new(vec![0u8; CHUNK]);
    let mut out: Zeroizing<Vec<u8>> = Zeroizing::new(Vec::with_capacity(CHUNK + MASK.len()));
    loop {
        let n = match from.read(&mut buf) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Copied::ReadFailed(e),
        };
        out.clear();
        if n == 0 {
            redactor.finish(&mut out);
        } else {
            redactor.feed(&buf[..n], &mut out);
        }
        if let Err(e) = to.write_all(&out).and_then(|()| to.flush()) {
            out.zeroize();
            return if e.kind() == io::ErrorKind::BrokenPipe {
                Copied::Closed
            } else {
                Copied::WriteFailed(e)
            };
        }
        // Wipe what was written (it may be output around a secret).
        out.zeroize();
        if n == 0 {
            return Copied::Done;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redactor(values: &[&str]) -> Redactor {
        Redactor::new(patterns(values.iter().copied())).unwrap()
    }

    /// Feeds `input` in pieces of `size` bytes and returns the output.
    fn through(values: &[&str], input: &[u8], size: usize) -> Vec<u8> {
        let mut r = redactor(values);
        let mut out = vec![];
        for piece in input.chunks(size.max(1)) {
            r.feed(piece, &mut out);
        }
        r.finish(&mut out);
        out
    }

    /// The answer by another method: every occurrence of every pattern by
    /// plain slice comparison at every position, a byte masked when any
    /// covers it; runs of masked bytes are one mask, except where one
    /// occurrence ends exactly where the next begins.
    fn naive(values: &[&str], input: &[u8]) -> Vec<u8> {
        let pats = patterns(values.iter().copied());
        // For each byte: covered, and whether an occurrence covering the
        // byte before it also covers it (the same span goes on).
        let mut covered = vec![false; input.len()];
        let mut joined = vec![false; input.len()];
        for p in &pats {
            for i in 0..input.len() {
                if input[i..].starts_with(p) {
                    for j in i..i + p.len() {
                        covered[j] = true;
                        if j > i {
                            joined[j] = true;
                        }
                    }
                }
            }
        }
        let mut out = vec![];
        for (i, &b) in input.iter().enumerate() {
            if !covered[i] {
                out.push(b);
            } else if i == 0 || !covered[i - 1] || !joined[i] {
                out.extend_from_slice(MASK.as_bytes());
            }
        }
        out
    }

    #[test]
    fn overlapping_values_are_masked_as_one_span() {
        let values = ["user-7f3a9c", "7f3a9c-TOPSECRET-TAIL"];
        let input = b"token: user-7f3a9c-TOPSECRET-TAIL.";
        for size in 1..12 {
            assert_eq!(through(&values, input, size), b"token: ********.", "{size}");
        }
        // Adjacent occurrences stay two masks, as before.
        assert_eq!(through(&["abcd"], b"abcdabcd", 3), b"****************");
    }

    #[test]
    fn masks_values_at_any_read_size() {
        let values = ["hunter2!", "s3cr3t-token", "abcd"];
        let input = b"user=x pass=hunter2! token=s3cr3t-token abcd abc hunter2";
        let want = b"user=x pass=******** token=******** ******** abc hunter2";
        for size in [1, 2, 3, 5, 7, 64, 4096] {
            assert_eq!(through(&values, input, size), want, "read size {size}");
        }
    }

    #[test]
    fn short_values_and_lines_are_left_alone() {
        let values = ["abc", "x", "line1\nab\r\nlong-line\r\n"];
        let input = b"abc x line1 ab long-line\r\n";
        let out = through(&values, input, 1);
        assert_eq!(out, b"abc x ******** ab ********\r\n");
    }

    #[test]
    fn a_whole_multi_line_value_is_one_mask() {
        let values = ["first-line\nsecond-line"];
        let out = through(&values, b"<first-line\nsecond-line>", 1);
        assert_eq!(out, b"<********>");
        let out = through(&values, b"second-line only", 3);
        assert_eq!(out, b"******** only");
    }

    #[test]
    fn longest_match_wins_across_boundaries() {
        let values = ["abcd", "abcdefgh"];
        for size in 1..10 {
            assert_eq!(through(&values, b"xabcdefghy", size), b"x********y");
            assert_eq!(through(&values, b"xabcdefgy", size), b"x********efgy");
        }
    }

    #[test]
    fn holds_back_only_a_possible_beginning() {
        let mut r = redactor(&["secret-value"]);
        let mut out = vec![];
        r.feed(b"no match here\n", &mut out);
        assert_eq!(out, b"no match here\n", "nothing kept back");
        out.clear();
        r.feed(b"prompt: secr", &mut out);
        assert_eq!(out, b"prompt: ", "kept: `secr`");
        out.clear();
        r.feed(b"et", &mut out);
        assert!(out.is_empty());
        r.feed(b"-valu!", &mut out);
        assert_eq!(out, b"secret-valu!", "not the value after all");
        out.clear();
        r.feed(b"sesecret-value", &mut out);
        assert_eq!(out, b"se********");
        out.clear();
        r.feed(b"secret", &mut out);
        r.finish(&mut out);
        assert_eq!(out, b"secret", "a beginning at the end is output");
    }

    #[test]
    fn no_patterns_pass_everything() {
        let mut r = redactor(&["", "ab"]);
        assert!(r.is_empty());
        let mut out = vec![];
        r.feed(b"ab cd", &mut out);
        r.finish(&mut out);
        assert_eq!(out, b"ab cd");
    }

    #[test]
    fn debug_shows_no_pattern() {
        let r = redactor(&["hunter2-secret"]);
        assert_eq!(format!("{r:?}"), "Redactor(1 patterns)");
    }

    #[test]
    fn copy_reports_a_closed_output() {
        struct Closed;
        impl Write for Closed {
            fn write(&mut self, _: &[u8]) -> io::Result<usize> {
                Err(io::ErrorKind::BrokenPipe.into())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let mut r = redactor(&["abcd"]);
        let got = copy(&mut r, &mut &b"data"[..], &mut Closed);
        assert!(matches!(got, Copied::Closed), "{got:?}");
        let mut sink = vec![];
        let mut r = redactor(&["abcd"]);
        let got = copy(&mut r, &mut &b"xabcdx"[..], &mut sink);
        assert!(matches!(got, Copied::Done));
        assert_eq!(sink, b"x********x");
    }

    proptest::proptest! {
        #[test]
        fn same_as_naive_for_any_split(
            values in proptest::collection::vec("[ab\n]{0,7}", 0..5),
            input in proptest::collection::vec(proptest::sample::select(b"ab\n".to_vec()), 0..80),
            size in 1usize..9,
        ) {
            let values: Vec<&str> = values.iter().map(String::as_str).collect();
            proptest::prop_assert_eq!(through(&values, &input, size), naive(&values, &input));
        }
    }
}
