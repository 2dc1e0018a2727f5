//! Interim dotenv reader on top of dotenvy; replaced by our own reader.

use std::fmt;

use zeroize::Zeroizing;

pub struct Options {
    pub expand: bool,
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

pub struct Entry {
    pub key: String,
    pub value: Zeroizing<String>,
    pub line: usize,
}

pub struct Parsed {
    pub entries: Vec<Entry>,
    pub warnings: Vec<String>,
}

#[derive(Debug)]
pub struct ParseError {
    pub line: usize,
    pub reason: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.reason)
    }
}

impl std::error::Error for ParseError {}

pub fn parse(
    input: &[u8],
    _opts: &Options,
    _lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<Parsed, ParseError> {
    let mut entries = vec![];
    for (i, item) in dotenvy::from_read_iter(input).enumerate() {
        let (key, value) = item.map_err(|_| ParseError {
            line: i + 1,
            reason: "invalid line".into(),
        })?;
        entries.push(Entry {
            key,
            value: Zeroizing::new(value),
            line: i + 1,
        });
    }
    Ok(Parsed {
        entries,
        warnings: vec![],
    })
}
