//! The vault payload: encrypting a database image to a set of recipients,
//! and decrypting one, binary or armored, by one reader or, for a large
//! file, by several at once. `open` decides which.

use std::{
    fs::File,
    io::{self, BufReader, Read, Seek, SeekFrom, Write},
    sync::Mutex,
};

use age::secrecy::ExposeSecret;
use zeroize::Zeroizing;

use super::{Keys, age_reason, recipient::parse_recipients};
use crate::error::{Error, Result};

/// The plaintext of a vault payload and its authenticated length, read the
/// way the file asks: a binary age file with `pread`, a chunk at a time,
/// and when its plaintext is at least `parallel_min` bytes by up to
/// `threads` readers at once (issue 6, BENCHMARKS.md); an armored one (made
/// by hand with `age -a`) through age's ArmoredReader, and so is anything
/// that is no age file at all, for the message.
pub(crate) fn open<'f>(
    input: &'f dyn ReadAt,
    keys: &Keys,
    source: &str,
    parallel_min: u64,
    threads: usize,
) -> Result<(Box<dyn Read + Send + 'f>, u64)> {
    let mut at = read_from(input);
    let binary = looks_like_binary_age(&mut at)
        .map_err(|e| Error::io("read", std::path::Path::new(source), e))?;
    if binary {
        let plain = Plaintext::open(input, keys, source, parallel_min, threads)?;
        let len = plain.len();
        return Ok((Box::new(plain), len));
    }
    let mut plain = decrypt_stream(at, keys, source)?;
    let len = stream_len(&mut plain).map_err(|e| damaged(&e, source))?;
    Ok((Box::new(plain), len))
}

/// Encrypts `plaintext` to `recipients`, streaming into `out`.
pub(crate) fn encrypt_to(
    recipients: &[Box<dyn age::Recipient + Send>],
    plaintext: &[u8],
    out: &mut impl Write,
) -> io::Result<()> {
    let enc = age::Encryptor::with_recipients(
        recipients.iter().map(|r| r.as_ref() as &dyn age::Recipient),
    )
    .map_err(io::Error::other)?;
    let mut w = enc.wrap_output(out)?;
    w.write_all(plaintext)?;
    w.finish()?;
    Ok(())
}

/// A reader of the plaintext of `input`, which must be seekable so that its
/// length is known before reading (SQLite wants one buffer of the right size).
///
/// ASCII-armored input (`age -a`) is accepted as `age -d` accepts it: a
/// vault re-encrypted by hand after a recovery must open.
fn decrypt_stream<R: Read + Seek>(
    input: R,
    keys: &Keys,
    source: &str,
) -> Result<age::stream::StreamReader<age::armor::ArmoredReader<io::BufReader<R>>>> {
    let mut input = input;
    if !looks_like_age(&mut input)
        .map_err(|e| decrypt_error(age::DecryptError::Io(e), keys, source))?
    {
        return Err(not_an_age_file(source));
    }
    let dec = age::Decryptor::new_buffered(age::armor::ArmoredReader::new(input))
        .map_err(|e| decrypt_error(e, keys, source))?;
    if dec.is_scrypt() {
        return Err(Error::new(format!(
            "{source} is encrypted with a passphrase, not to a key"
        ))
        .hint("a vault file is encrypted to recipients; is this identity.age?"));
    }
    dec.decrypt(std::iter::once(keys as &dyn age::Identity))
        .map_err(|e| decrypt_error(e, keys, source))
}

/// What a vault file that does not even start as an age file is: a text
/// file or `vault.toml` given as `--vault`, or damage past repair.
pub(crate) fn not_an_age_file(source: &str) -> Error {
    Error::new(format!("{source} is not a vault: it is not an age file"))
        .hint("check the path, or restore the file from a backup or from version control")
}

/// The first bytes of `input`, enough to tell what it is, leaving it at the
/// start.
fn head(input: &mut (impl Read + Seek)) -> io::Result<Vec<u8>> {
    let mut head = Vec::with_capacity(64);
    input.by_ref().take(64).read_to_end(&mut head)?;
    input.seek(io::SeekFrom::Start(0))?;
    Ok(head)
}

const BINARY_MAGIC: &[u8] = b"age-encryption.org/";

/// Whether `input` starts as a binary (not armored) age file does,
/// leaving it at the start.
fn looks_like_binary_age(input: &mut (impl Read + Seek)) -> io::Result<bool> {
    Ok(head(input)?.starts_with(BINARY_MAGIC))
}

/// Whether `input` starts as an age file does, binary or armored (or is
/// too short to tell), leaving it at the start. Anything else is "not an
/// age file", which says more than age's "truncated" for a short text file.
pub(crate) fn looks_like_age(input: &mut (impl Read + Seek)) -> io::Result<bool> {
    const ARMORED: &[u8] = b"-----BEGIN AGE ENCRYPTED FILE-----";
    let head = head(input)?;
    // Armor may follow whitespace.
    let head = head.trim_ascii_start();
    let starts = |magic: &[u8]| {
        let n = head.len().min(magic.len());
        head[..n] == magic[..n]
    };
    Ok(starts(BINARY_MAGIC) || starts(ARMORED))
}

/// `keys` as one identity that remembers the file key of the header it
/// unwrapped last, so that more readers of the same file (`Plaintext`) get
/// it for free: no second X25519 operation, no second round trip to the
/// agent. A header with other stanzas is unwrapped afresh.
pub(crate) struct Remembering<'k> {
    keys: &'k Keys,
    last: std::cell::RefCell<Option<(Vec<age_core::format::Stanza>, age_core::format::FileKey)>>,
}

impl<'k> Remembering<'k> {
    pub(crate) fn new(keys: &'k Keys) -> Self {
        Remembering {
            keys,
            last: std::cell::RefCell::new(None),
        }
    }
}

impl Remembering<'_> {
    /// A copy of the file key it unwrapped last.
    fn file_key(&self) -> Option<age_core::format::FileKey> {
        let last = self.last.borrow();
        let (_, key) = last.as_ref()?;
        Some(age_core::format::FileKey::init_with_mut(|c| {
            c.copy_from_slice(key.expose_secret());
        }))
    }
}

impl age::Identity for Remembering<'_> {
    fn unwrap_stanza(
        &self,
        stanza: &age_core::format::Stanza,
    ) -> Option<std::result::Result<age_core::format::FileKey, age::DecryptError>> {
        self.unwrap_stanzas(std::slice::from_ref(stanza))
    }

    fn unwrap_stanzas(
        &self,
        stanzas: &[age_core::format::Stanza],
    ) -> Option<std::result::Result<age_core::format::FileKey, age::DecryptError>> {
        use age_core::format::{FileKey, Stanza};
        let copy = |k: &FileKey| FileKey::init_with_mut(|c| c.copy_from_slice(k.expose_secret()));
        if let Some((seen, key)) = self.last.borrow().as_ref()
            && seen.as_slice() == stanzas
        {
            return Some(Ok(copy(key)));
        }
        let result = self.keys.unwrap_stanzas(stanzas)?;
        if let Ok(key) = &result {
            let seen = stanzas
                .iter()
                .map(|s| Stanza {
                    tag: s.tag.clone(),
                    args: s.args.clone(),
                    body: s.body.clone(),
                })
                .collect();
            *self.last.borrow_mut() = Some((seen, copy(key)));
        }
        Some(result)
    }
}

/// The stanzas of an age file's header, read with no key at all (`vault
/// git show` without an identity shows what they say): an identity that
/// unwraps nothing is handed the whole header, keeps a copy, and declines.
pub(crate) fn header_stanzas(
    mut input: impl Read + Seek,
    source: &str,
) -> Result<Vec<age_core::format::Stanza>> {
    use age_core::format::Stanza;
    struct Recorder(std::cell::RefCell<Vec<Stanza>>);
    impl age::Identity for Recorder {
        fn unwrap_stanza(
            &self,
            stanza: &Stanza,
        ) -> Option<std::result::Result<age_core::format::FileKey, age::DecryptError>> {
            self.unwrap_stanzas(std::slice::from_ref(stanza))
        }
        fn unwrap_stanzas(
            &self,
            stanzas: &[Stanza],
        ) -> Option<std::result::Result<age_core::format::FileKey, age::DecryptError>> {
            *self.0.borrow_mut() = stanzas
                .iter()
                .map(|s| Stanza {
                    tag: s.tag.clone(),
                    args: s.args.clone(),
                    body: s.body.clone(),
                })
                .collect();
            None
        }
    }
    let not_age = || not_an_age_file(source);
    if !looks_like_age(&mut input)
        .map_err(|e| Error::io("read", std::path::Path::new(source), e))?
    {
        return Err(not_age());
    }
    let dec = age::Decryptor::new_buffered(age::armor::ArmoredReader::new(BufReader::new(input)))
        .map_err(|e| match e {
        age::DecryptError::Io(ref io) if io.kind() == io::ErrorKind::UnexpectedEof => {
            Error::new(format!("{source} is truncated"))
        }
        other => Error::new(format!("{source} is damaged: {}", age_reason(&other))),
    })?;
    if dec.is_scrypt() {
        return Err(Error::new(format!(
            "{source} is encrypted with a passphrase, not to a key"
        )));
    }
    let recorder = Recorder(std::cell::RefCell::default());
    // It declines every stanza, so this always fails; the copy is the point.
    let _ = dec.decrypt(std::iter::once(&recorder as &dyn age::Identity));
    Ok(recorder.0.into_inner())
}

fn decrypt_error(e: age::DecryptError, keys: &Keys, source: &str) -> Error {
    // The agent's silence is not the file's fault (issue 14).
    if let age::DecryptError::Io(ref io) = e
        && let Some(silent) = crate::agent::no_answer(io)
    {
        return silent;
    }
    match e {
        // For X25519, a stanza that is not ours and one of ours with a
        // flipped byte look the same (the AEAD just fails): both causes are
        // named, the backup first, since "ask to be added" cannot fix damage.
        age::DecryptError::NoMatchingKeys => {
            let key = keys.recipients().first().cloned().unwrap_or_default();
            Error::new(format!(
                "{source} is not encrypted to your key {key}, or its header is damaged"
            ))
            .hint(format!(
                "if it opened before, restore it from a backup or from version control; if it was shared with you, ask a member to run `vault recipients add {key}`"
            ))
        }
        age::DecryptError::Io(ref io) if io.kind() == io::ErrorKind::UnexpectedEof => {
            Error::new(format!("{source} is truncated"))
                .hint("restore it from a backup or from version control")
        }
        other => Error::new(format!("{source} is damaged: {}", age_reason(&other)))
            .hint("restore it from a backup or from version control"),
    }
}

/// The length of a seekable plaintext stream, leaving it at the start.
fn stream_len(r: &mut (impl Read + Seek)) -> io::Result<u64> {
    let len = r.seek(io::SeekFrom::End(0))?;
    r.seek(io::SeekFrom::Start(0))?;
    Ok(len)
}

/// A vault file's plaintext, decrypted by one age reader or, for a large
/// file on a machine with a core to spare, by several at once (issue 6: at
/// 100,000 secrets decryption and faulting in SQLite's buffer are most of
/// `vault run`; BENCHMARKS.md has the figures). age authenticates each
/// 64 KiB chunk on its own, its place fixed by a counter nonce, so readers
/// can start at any chunk: each takes the next piece of SQLite's buffer
/// from a shared queue, seeks there and decrypts straight into it. A reader
/// that gets no core (another process has it) simply takes no pieces. The
/// length of the whole is authenticated first (age decrypts the last chunk
/// as the last one), so a truncated or altered file fails as it does when
/// read in one piece.
///
/// All readers share one open file and read it at offsets of their own
/// (`pread`): they see the same bytes even if a writer renames a new vault
/// over the path meanwhile.
struct Plaintext<'f> {
    /// `readers[0]` reads in order from the start; the others only help
    /// `fill`.
    readers: Vec<age::stream::StreamReader<BufReader<FileAt<'f>>>>,
    len: u64,
    pos: u64,
}

/// What a helping reader takes at a time: 16 of age's chunks.
const PIECE: usize = 1 << 20;

impl<'f> Plaintext<'f> {
    /// Opens `file` for `keys`, with one reader per core up to `threads`
    /// if the plaintext is at least `parallel_min` bytes. Each extra reader
    /// costs an unwrap of the age header (an X25519 operation, or a round
    /// trip to the agent).
    fn open(
        file: &'f dyn ReadAt,
        keys: &Keys,
        source: &str,
        parallel_min: u64,
        threads: usize,
    ) -> Result<Self> {
        let keys = Remembering::new(keys);
        let mut plain = Plaintext::with_readers(file, &keys, source, 1)?;
        if plain.len >= parallel_min && threads > 1 {
            let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
            for _ in 1..cores.min(threads) {
                plain.readers.push(reader(file, &keys, source)?);
            }
        }
        Ok(plain)
    }

    fn with_readers(
        file: &'f dyn ReadAt,
        keys: &Remembering,
        source: &str,
        count: usize,
    ) -> Result<Self> {
        let mut first = reader(file, keys, source)?;
        let len = stream_len(&mut first).map_err(|e| damaged(&e, source))?;
        let mut readers = vec![first];
        for _ in 1..count {
            readers.push(reader(file, keys, source)?);
        }
        Ok(Plaintext {
            readers,
            len,
            pos: 0,
        })
    }

    /// The plaintext's length, authenticated.
    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    /// How many readers decrypt it.
    #[cfg(test)]
    fn readers(&self) -> usize {
        self.readers.len()
    }

    /// Fills `buf`, the whole plaintext, piece by piece, with every reader
    /// on a thread of its own (the first on this one).
    fn fill(&mut self, buf: &mut [u8]) -> io::Result<()> {
        let queue = Mutex::new(buf.chunks_mut(PIECE).enumerate());
        let work = |reader: &mut age::stream::StreamReader<_>| -> io::Result<()> {
            loop {
                let next = queue
                    .lock()
                    .map_err(|_| io::Error::other("poisoned"))?
                    .next();
                let Some((i, piece)) = next else {
                    return Ok(());
                };
                reader.seek(SeekFrom::Start((i * PIECE) as u64))?;
                reader.read_exact(piece)?;
            }
        };
        std::thread::scope(|s| {
            let (first, others) = self.readers.split_first_mut().expect("a reader");
            let helpers: Vec<_> = others.iter_mut().map(|r| s.spawn(|| work(r))).collect();
            let mut result = work(first);
            for h in helpers {
                let theirs = h
                    .join()
                    .unwrap_or_else(|_| Err(io::Error::other("a decrypting thread panicked")));
                result = result.and(theirs);
            }
            result
        })
    }
}

impl Read for Plaintext<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        // SQLite asks for the whole database at once: the case worth helpers.
        if self.pos == 0 && self.readers.len() > 1 && buf.len() as u64 == self.len {
            self.fill(buf)?;
            self.pos = self.len;
            return Ok(buf.len());
        }
        if self.pos >= self.len {
            return Ok(0);
        }
        let n = self.readers[0].read(buf)?;
        self.pos += n as u64;
        Ok(n)
    }
}

fn reader<'f>(
    file: &'f dyn ReadAt,
    keys: &Remembering,
    source: &str,
) -> Result<age::stream::StreamReader<BufReader<FileAt<'f>>>> {
    let input = BufReader::new(FileAt { file, pos: 0 });
    let dec =
        age::Decryptor::new_buffered(input).map_err(|e| decrypt_error(e, keys.keys, source))?;
    if dec.is_scrypt() {
        return Err(Error::new(format!(
            "{source} is encrypted with a passphrase, not to a key"
        ))
        .hint("a vault file is encrypted to recipients; is this identity.age?"));
    }
    dec.decrypt(std::iter::once(keys as &dyn age::Identity))
        .map_err(|e| decrypt_error(e, keys.keys, source))
}

/// The size of age's payload chunks: each is decrypted and authenticated
/// on its own.
pub(crate) const CHUNK: usize = 64 << 10;

/// How many decrypted chunks `Chunks` keeps: a b-tree descent in an index
/// and a table touches about six; 16 are 1 MiB.
const CACHED_CHUNKS: usize = 16;

/// The plaintext of a binary vault file, decrypted a chunk at a time where
/// SQLite asks (the VFS, `crate::vfs`; issue 20). age unwraps the header
/// and checks its MAC; the chunks are then read here, age's STREAM
/// (ChaCha20-Poly1305 over 64 KiB chunks, the nonce an 11-byte big-endian
/// counter and a last-chunk flag, the key HKDF-SHA256 of the file key and
/// the payload nonce), with `pread` into a few reused `Zeroizing` buffers:
/// age's seekable reader decrypts into a buffer of its own and copies out,
/// and decrypts the final chunk twice to learn the length. Every chunk is
/// authenticated before a byte of it is handed out; the final chunk is
/// decrypted, as the final one, at `open`, which authenticates the length
/// (a truncated or extended file fails there). The tests read every file
/// they make both here and through age's `StreamReader`, and require the
/// same plaintext or the same refusal. After one chunk fails, every read
/// fails.
pub(crate) struct Chunks {
    file: File,
    aead: chacha20poly1305::ChaCha20Poly1305,
    /// Where chunk 0 starts, after the header and the payload nonce.
    start: u64,
    /// How many chunks there are (at least one), and the final one's size.
    count: u64,
    last_sealed: usize,
    len: u64,
    /// Decrypted chunks by index, the most recently used last.
    cache: Vec<(u64, Zeroizing<Vec<u8>>)>,
    failed: bool,
}

/// A chunk's size in the file: its plaintext and a Poly1305 tag.
const SEALED_CHUNK: u64 = CHUNK as u64 + 16;

impl Chunks {
    /// Opens `file`, a binary age file (`crypto::looks_like_binary`), for
    /// `keys`: its header unwrapped (so the signature stanza is seen) and
    /// its MAC checked by age, its final chunk authenticated.
    pub(crate) fn open(file: File, keys: &Keys, source: &str) -> Result<Chunks> {
        use chacha20poly1305::KeyInit;
        let bad = |what: &str| damaged(&what, source);
        let dec = age::Decryptor::new_buffered(BufReader::new(&file))
            .map_err(|e| decrypt_error(e, keys, source))?;
        if dec.is_scrypt() {
            return Err(Error::new(format!(
                "{source} is encrypted with a passphrase, not to a key"
            ))
            .hint("a vault file is encrypted to recipients; is this identity.age?"));
        }
        let identity = Remembering::new(keys);
        // age checks the header's MAC under the file key before it returns
        // a reader; the reader itself is not used.
        dec.decrypt(std::iter::once(&identity as &dyn age::Identity))
            .map_err(|e| decrypt_error(e, keys, source))?;
        let file_key = identity.file_key().ok_or_else(|| bad("no file key"))?;
        let header = header_len(&file).ok_or_else(|| bad("its header does not end"))?;
        let mut nonce = [0; 16];
        std::os::unix::fs::FileExt::read_exact_at(&file, &mut nonce, header)
            .map_err(|_| bad("age file is truncated"))?;
        let payload_key = Zeroizing::new(age_core::primitives::hkdf(
            &nonce,
            b"payload",
            file_key.expose_secret(),
        ));
        let start = header + 16;
        let size = file.metadata().map_err(|e| damaged(&e, source))?.len();
        let sealed = size
            .checked_sub(start)
            .filter(|&n| n > 0)
            .ok_or_else(|| bad("age file is truncated"))?;
        let count = sealed.div_ceil(SEALED_CHUNK);
        let last_sealed = usize::try_from(sealed - (count - 1) * SEALED_CHUNK)
            .map_err(|_| bad("age file is truncated"))?;
        // A final chunk shorter than a tag, or empty after a full one (age
        // writes an empty chunk only as the whole of an empty payload).
        if last_sealed < 16 || (last_sealed == 16 && count > 1) {
            return Err(bad("last chunk is invalid, stream might be truncated"));
        }
        let mut chunks = Chunks {
            file,
            aead: chacha20poly1305::ChaCha20Poly1305::new((&*payload_key).into()),
            start,
            count,
            last_sealed,
            len: sealed - 16 * count,
            cache: Vec::with_capacity(CACHED_CHUNKS),
            failed: false,
        };
        chunks
            .chunk(count - 1)
            .map_err(|_| bad("last chunk is invalid, stream might be truncated"))?;
        Ok(chunks)
    }

    /// The plaintext's length, authenticated.
    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    /// Chunk `index`, decrypted, as the last entry of the cache.
    fn chunk(&mut self, index: u64) -> io::Result<&[u8]> {
        use chacha20poly1305::AeadInPlace;
        if let Some(i) = self.cache.iter().position(|(k, _)| *k == index) {
            let hit = self.cache.remove(i);
            self.cache.push(hit);
        } else {
            let last = index + 1 == self.count;
            let sealed = if last {
                self.last_sealed
            } else {
                SEALED_CHUNK as usize
            };
            let mut buf = if self.cache.len() == CACHED_CHUNKS {
                self.cache.remove(0).1
            } else {
                Zeroizing::new(Vec::with_capacity(SEALED_CHUNK as usize))
            };
            buf.resize(sealed, 0);
            let at = self.start + index * SEALED_CHUNK;
            std::os::unix::fs::FileExt::read_exact_at(&self.file, &mut buf, at)?;
            let (text, tag) = buf.split_at_mut(sealed - 16);
            let mut nonce = [0; 12];
            nonce[3..11].copy_from_slice(&index.to_be_bytes());
            nonce[11] = u8::from(last);
            self.aead
                .decrypt_in_place_detached(&nonce.into(), b"", text, (&*tag).into())
                .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "decryption error"))?;
            buf.truncate(sealed - 16);
            self.cache.push((index, buf));
        }
        Ok(&self.cache.last().expect("just pushed").1)
    }
}

/// The length of the header of the binary age file `file`, up to and
/// including the newline after its MAC line (the payload nonce follows),
/// if it ends within the first MiB.
pub(crate) fn header_len(file: &impl ReadAt) -> Option<u64> {
    let mut head = Vec::new();
    let mut buf = vec![0; 8192];
    loop {
        if let Some(mac) = head.windows(4).position(|w| w == b"\n---") {
            let nl = head[mac + 1..].iter().position(|&b| b == b'\n');
            if let Some(nl) = nl {
                return head
                    .starts_with(BINARY_MAGIC)
                    .then_some((mac + 1 + nl + 1) as u64);
            }
        }
        if head.len() >= 1 << 20 {
            return None;
        }
        let n = ReadAt::read_at(file, &mut buf, head.len() as u64).ok()?;
        if n == 0 {
            return None;
        }
        head.extend_from_slice(&buf[..n]);
    }
}

impl crate::vfs::Pages for Chunks {
    fn len(&self) -> u64 {
        self.len
    }

    fn read_exact_at(&mut self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        if self.failed {
            return Err(io::Error::other("an earlier chunk failed to authenticate"));
        }
        if offset
            .checked_add(buf.len() as u64)
            .is_none_or(|end| end > self.len)
        {
            return Err(io::Error::from(io::ErrorKind::UnexpectedEof));
        }
        let mut done = 0;
        while done < buf.len() {
            let at = offset + done as u64;
            let within = (at % CHUNK as u64) as usize;
            let chunk = match self.chunk(at / CHUNK as u64) {
                Ok(c) => c,
                Err(e) => {
                    self.failed = true;
                    return Err(e);
                }
            };
            let n = (chunk.len() - within).min(buf.len() - done);
            buf[done..done + n].copy_from_slice(&chunk[within..within + n]);
            done += n;
        }
        Ok(())
    }
}

/// What `Plaintext` reads from: an open file (`pread`), or bytes in memory
/// (the fuzz targets), at any offset, from several threads at once.
pub(crate) trait ReadAt: Sync {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize>;
    fn size(&self) -> io::Result<u64>;
}

impl ReadAt for File {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        std::os::unix::fs::FileExt::read_at(self, buf, offset)
    }

    fn size(&self) -> io::Result<u64> {
        Ok(self.metadata()?.len())
    }
}

impl ReadAt for &[u8] {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let start = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(self.len());
        let n = buf.len().min(self.len() - start);
        buf[..n].copy_from_slice(&self[start..start + n]);
        Ok(n)
    }

    fn size(&self) -> io::Result<u64> {
        Ok(self.len() as u64)
    }
}

/// `input` as a `Read + Seek` from its start, with a position of its own.
fn read_from(input: &dyn ReadAt) -> impl Read + Seek + '_ {
    FileAt {
        file: input,
        pos: 0,
    }
}

/// One source, read at an offset of its own, so that several readers can
/// share it.
struct FileAt<'f> {
    file: &'f dyn ReadAt,
    pos: u64,
}

impl Read for FileAt<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.file.read_at(buf, self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for FileAt<'_> {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let pos = match to {
            SeekFrom::Start(n) => Some(n),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
            SeekFrom::End(d) => self.file.size()?.checked_add_signed(d),
        };
        self.pos = pos.ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "bad seek"))?;
        Ok(self.pos)
    }
}

/// A vault file whose payload fails to decrypt or authenticate.
pub(crate) fn damaged(e: &dyn std::fmt::Display, source: &str) -> Error {
    Error::new(format!("{source} is damaged: {}", age_reason(e)))
        .hint("restore it from a backup or from version control")
}

/// Encrypts `plaintext` in memory; for tests and small files.
pub fn encrypt_vec(recipients: &[String], plaintext: &[u8]) -> Result<Vec<u8>> {
    let rs = parse_recipients(recipients)?;
    let mut out = vec![];
    encrypt_to(&rs, plaintext, &mut out).map_err(|e| Error::new(format!("cannot encrypt: {e}")))?;
    Ok(out)
}

/// Decrypts `ciphertext` in memory; for tests and small files.
pub fn decrypt_vec(ciphertext: &[u8], keys: &Keys) -> Result<Zeroizing<Vec<u8>>> {
    let mut r = decrypt_stream(io::Cursor::new(ciphertext), keys, "input")?;
    let mut out = Zeroizing::new(vec![]);
    r.read_to_end(&mut out)
        .map_err(|e| Error::new(format!("input is damaged: {}", age_reason(&e))))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::generate;
    #[test]
    fn round_trip_to_own_key() {
        let id = generate();
        let keys = Keys::from_x25519(id);
        let ct = encrypt_vec(keys.recipients(), b"hello").unwrap();
        assert_eq!(&*decrypt_vec(&ct, &keys).unwrap(), b"hello");
    }
    #[test]
    fn other_key_gets_a_worded_error() {
        let a = Keys::from_x25519(generate());
        let b = Keys::from_x25519(generate());
        let ct = encrypt_vec(a.recipients(), b"x").unwrap();
        let err = decrypt_vec(&ct, &b).unwrap_err();
        assert!(
            err.message().contains("is not encrypted to your key age1"),
            "{err:?}"
        );
        assert!(!err.message().contains("No matching keys"));
    }
    #[test]
    fn truncated_and_flipped_files_fail_cleanly() {
        let keys = Keys::from_x25519(generate());
        let ct = encrypt_vec(keys.recipients(), &[7u8; 100_000]).unwrap();
        assert!(decrypt_vec(&ct[..ct.len() / 2], &keys).is_err());
        let mut flipped = ct.clone();
        let n = flipped.len() - 10;
        flipped[n] ^= 1;
        assert!(decrypt_vec(&flipped, &keys).is_err());
        assert!(decrypt_vec(b"", &keys).is_err());
    }
    /// A file encrypted to `keys` holding 3 MiB and a bit: pieces of 1 MiB,
    /// and a last chunk that is not full.
    fn sealed_file(keys: &Keys) -> (Vec<u8>, tempfile::NamedTempFile) {
        let plain: Vec<u8> = (0..3 * PIECE + 12_345)
            .map(|i| (i * 7 % 251) as u8)
            .collect();
        let f = tempfile::NamedTempFile::new().unwrap();
        crate::fsio::write_fixture(f.path(), encrypt_vec(keys.recipients(), &plain).unwrap());
        (plain, f)
    }
    #[test]
    fn plaintext_read_by_several_threads_or_in_order_is_the_plaintext() {
        let keys = Keys::from_x25519(generate());
        let (plain, f) = sealed_file(&keys);
        let file = File::open(f.path()).unwrap();
        for readers in [1, 2, 3] {
            let mut p =
                Plaintext::with_readers(&file, &Remembering::new(&keys), "t", readers).unwrap();
            assert_eq!(p.len(), plain.len() as u64);
            let mut all = vec![0; plain.len()];
            p.read_exact(&mut all).unwrap();
            assert!(all == plain, "{readers} readers, at once");
            assert_eq!(p.read(&mut [0; 8]).unwrap(), 0);

            let mut p =
                Plaintext::with_readers(&file, &Remembering::new(&keys), "t", readers).unwrap();
            let mut in_order = vec![];
            p.read_to_end(&mut in_order).unwrap();
            assert!(in_order == plain, "{readers} readers, in order");
        }
        // The same from bytes in memory (what the fuzz targets read).
        let bytes = std::fs::read(f.path()).unwrap();
        let bytes = bytes.as_slice();
        for readers in [1, 3] {
            let mut p =
                Plaintext::with_readers(&bytes, &Remembering::new(&keys), "t", readers).unwrap();
            let mut all = vec![0; plain.len()];
            p.read_exact(&mut all).unwrap();
            assert!(all == plain, "{readers} readers over bytes");
        }
        let mut past_the_end = [1; 4];
        assert_eq!(
            ReadAt::read_at(&bytes, &mut past_the_end, u64::MAX).unwrap(),
            0
        );
        assert_eq!(
            ReadAt::read_at(&bytes, &mut past_the_end, bytes.len() as u64 - 2).unwrap(),
            2
        );

        let p = Plaintext::open(&file, &keys, "t", 0, 4).unwrap();
        assert!(p.readers() >= 1);
        assert_eq!(
            Plaintext::open(&file, &keys, "t", u64::MAX, 4)
                .unwrap()
                .readers(),
            1
        );
    }
    #[test]
    fn damage_anywhere_fails_with_several_readers() {
        let keys = Keys::from_x25519(generate());
        let (plain, f) = sealed_file(&keys);
        let good = std::fs::read(f.path()).unwrap();
        // A flipped byte in each third of the file: opening succeeds (the
        // length is fine), filling fails.
        for at in [good.len() / 6, good.len() / 2, good.len() - 5] {
            let mut bad = good.clone();
            bad[at] ^= 1;
            crate::fsio::write_fixture(f.path(), &bad);
            let file = File::open(f.path()).unwrap();
            let mut all = vec![0; plain.len()];
            let read = Plaintext::with_readers(&file, &Remembering::new(&keys), "t", 3)
                .and_then(|mut p| p.read_exact(&mut all).map_err(|e| damaged(&e, "t")));
            assert!(read.is_err(), "flipped at {at}");
        }
        // Truncated: at the last chunk boundary, and in the middle.
        let last_chunk = 12_345 + 16;
        for keep in [good.len() - last_chunk, good.len() / 2] {
            crate::fsio::write_fixture(f.path(), &good[..keep]);
            let file = File::open(f.path()).unwrap();
            assert!(
                Plaintext::with_readers(&file, &Remembering::new(&keys), "t", 3).is_err(),
                "{keep}"
            );
        }
    }
    /// Chunks read at offsets around every chunk boundary, and across the
    /// whole file at a stride, with lengths from one byte to more than a
    /// chunk, give what a full decryption gives.
    #[test]
    fn chunks_read_anywhere_are_the_plaintext() {
        use crate::vfs::Pages;
        let keys = Keys::from_x25519(generate());
        for size in [10, CHUNK, 3 * CHUNK + 4321] {
            let plain: Vec<u8> = (0..size).map(|i| (i * 13 % 251) as u8).collect();
            let f = tempfile::NamedTempFile::new().unwrap();
            crate::fsio::write_fixture(f.path(), encrypt_vec(keys.recipients(), &plain).unwrap());
            let mut c = Chunks::open(File::open(f.path()).unwrap(), &keys, "t").unwrap();
            assert_eq!(Pages::len(&c), size as u64);
            let mut offsets: Vec<usize> = (0..size).step_by(997).collect();
            for k in 0..=size / CHUNK {
                let b = k * CHUNK;
                offsets.extend(b.saturating_sub(20)..(b + 20).min(size));
            }
            for &at in offsets.iter().rev() {
                for n in [1, 7, 4096, CHUNK + 100] {
                    let n = n.min(size - at);
                    let mut buf = vec![0; n];
                    c.read_exact_at(&mut buf, at as u64).unwrap();
                    assert!(buf == plain[at..at + n], "size {size}, {n} at {at}");
                }
            }
            let mut buf = [0; 2];
            assert!(c.read_exact_at(&mut buf, size as u64 - 1).is_err());
        }
    }

    /// The length comes out right at every shape of final chunk, and a
    /// file cut anywhere near a chunk's end (inside its tag too) is refused.
    #[test]
    fn chunks_know_their_length_and_refuse_any_cut() {
        let keys = Keys::from_x25519(generate());
        let f = tempfile::NamedTempFile::new().unwrap();
        for size in [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 2 * CHUNK, 2 * CHUNK + 17] {
            let good = encrypt_vec(keys.recipients(), &vec![3; size]).unwrap();
            crate::fsio::write_fixture(f.path(), &good);
            let c = Chunks::open(File::open(f.path()).unwrap(), &keys, "t").unwrap();
            assert_eq!(c.len(), size as u64);
            for cut in 1..40.min(good.len() - 100) {
                crate::fsio::write_fixture(f.path(), &good[..good.len() - cut]);
                let r = Chunks::open(File::open(f.path()).unwrap(), &keys, "t");
                assert!(r.is_err(), "size {size}, cut {cut}");
            }
        }
    }

    #[test]
    fn a_flipped_chunk_fails_when_read_and_a_damaged_end_at_open() {
        use crate::vfs::Pages;
        let keys = Keys::from_x25519(generate());
        let plain: Vec<u8> = (0..3 * CHUNK + 99).map(|i| (i % 7) as u8).collect();
        let good = encrypt_vec(keys.recipients(), &plain).unwrap();
        let f = tempfile::NamedTempFile::new().unwrap();
        let open = |bytes: &[u8]| {
            crate::fsio::write_fixture(f.path(), bytes);
            Chunks::open(File::open(f.path()).unwrap(), &keys, "t")
        };
        let payload = good.len() - (3 * (CHUNK + 16) + 99 + 16);
        // A byte of chunk 1 flipped: chunk 0 still reads, chunk 1 does not,
        // and after that nothing does.
        let mut bad = good.clone();
        bad[payload + (CHUNK + 16) + 500] ^= 1;
        let mut c = open(&bad).unwrap();
        let mut buf = vec![0; 100];
        c.read_exact_at(&mut buf, 10).unwrap();
        assert!(c.read_exact_at(&mut buf, CHUNK as u64 + 10).is_err());
        assert!(c.read_exact_at(&mut buf, 10).is_err());
        // The final chunk, the header, or a truncation: refused at open.
        let mut bad = good.clone();
        *bad.last_mut().unwrap() ^= 1;
        assert!(open(&bad).is_err());
        let mut bad = good.clone();
        bad[30] ^= 1;
        assert!(open(&bad).is_err());
        for keep in [good.len() - 115, good.len() - 1, payload + CHUNK + 16] {
            assert!(open(&good[..keep]).is_err(), "{keep}");
        }
    }

    /// What age's own `StreamReader` makes of `file`: its plaintext, or
    /// `None` if it refuses it.
    fn through_age(file: &[u8], keys: &Keys) -> Option<Vec<u8>> {
        let dec = age::Decryptor::new(file).ok()?;
        let mut reader = dec
            .decrypt(std::iter::once(keys as &dyn age::Identity))
            .ok()?;
        let mut out = vec![];
        reader.read_to_end(&mut out).ok()?;
        Some(out)
    }

    /// What `Chunks` makes of `file`, read last chunk first: its
    /// plaintext, or `None` if it refuses it at open or at any chunk.
    fn through_chunks(file: &[u8], keys: &Keys) -> Option<Vec<u8>> {
        use crate::vfs::Pages;
        let f = tempfile::NamedTempFile::new().unwrap();
        crate::fsio::write_fixture(f.path(), file);
        let mut c = Chunks::open(File::open(f.path()).unwrap(), keys, "t").ok()?;
        let len = usize::try_from(c.len()).unwrap();
        let mut out = vec![0; len];
        for at in (0..len).step_by(CHUNK).rev() {
            let n = CHUNK.min(len - at);
            c.read_exact_at(&mut out[at..at + n], at as u64).ok()?;
        }
        Some(out)
    }

    /// An age file's header and payload nonce, and its payload key.
    fn payload_key(file: &[u8], keys: &Keys) -> (Vec<u8>, [u8; 32]) {
        let identity = Remembering::new(keys);
        age::Decryptor::new(file)
            .unwrap()
            .decrypt(std::iter::once(&identity as &dyn age::Identity))
            .unwrap();
        let header = usize::try_from(header_len(&file).unwrap()).unwrap();
        let nonce = &file[header..header + 16];
        let key = identity.file_key().unwrap();
        let key = age_core::primitives::hkdf(nonce, b"payload", key.expose_secret());
        (file[..header + 16].to_vec(), key)
    }

    /// `head` and then `plain` in chunks of `sizes`, the ones in `last`
    /// flagged last: the same key and nonces as age, framed at will.
    fn framed(
        head: &[u8],
        key: &[u8; 32],
        plain: &[u8],
        sizes: &[usize],
        last: &[usize],
    ) -> Vec<u8> {
        use chacha20poly1305::{KeyInit, aead::Aead};
        let aead = chacha20poly1305::ChaCha20Poly1305::new(key.into());
        let mut out = head.to_vec();
        let mut at = 0;
        for (i, &n) in sizes.iter().enumerate() {
            let mut nonce = [0; 12];
            nonce[3..11].copy_from_slice(&(i as u64).to_be_bytes());
            nonce[11] = u8::from(last.contains(&i));
            out.extend(aead.encrypt(&nonce.into(), &plain[at..at + n]).unwrap());
            at += n;
        }
        out
    }

    /// A second implementation: every file below, good or not, is read
    /// both by `Chunks` and by age's `StreamReader`, which must agree on
    /// the plaintext or on refusing it. Beyond cuts and flips, the chunks
    /// are re-sealed under the file's real payload key with the framing
    /// changed (no last flag, a last flag too early, an empty final chunk,
    /// swapped chunks), which only a member could do, and which age
    /// refuses.
    #[test]
    fn chunks_read_what_age_reads_and_refuse_what_it_refuses() {
        let keys = Keys::from_x25519(generate());
        let mut cases: Vec<(String, Vec<u8>)> = vec![];
        for size in [
            0,
            1,
            CHUNK - 1,
            CHUNK,
            CHUNK + 1,
            2 * CHUNK,
            2 * CHUNK + 777,
        ] {
            let plain: Vec<u8> = (0..size).map(|i| (i * 31 % 253) as u8).collect();
            let good = encrypt_vec(keys.recipients(), &plain).unwrap();
            let (head, key) = payload_key(&good, &keys);
            let payload = head.len();
            cases.push((format!("{size}: as age wrote it"), good.clone()));
            for cut in [1, 15, 16, 17, SEALED_CHUNK as usize] {
                if let Some(keep) = good.len().checked_sub(cut) {
                    cases.push((format!("{size}: {cut} cut"), good[..keep].to_vec()));
                }
            }
            cases.push((format!("{size}: payload only"), good[..payload].to_vec()));
            let mut extra = good.clone();
            extra.extend([0; 16]);
            cases.push((format!("{size}: 16 bytes appended"), extra));
            for at in (payload - 16..good.len())
                .step_by(CHUNK / 2 + 3)
                .chain([good.len() - 1])
            {
                let mut bad = good.clone();
                bad[at] ^= 0x40;
                cases.push((format!("{size}: byte {at} flipped"), bad));
            }
            let full = size / CHUNK;
            let rest = size % CHUNK;
            let mut sizes = vec![CHUNK; full];
            if rest > 0 || size == 0 {
                sizes.push(rest);
            }
            let n = sizes.len();
            let refr = |name: &str, sizes: &[usize], last: &[usize]| {
                (
                    format!("{size}: {name}"),
                    framed(&head, &key, &plain, sizes, last),
                )
            };
            cases.push(refr("re-sealed as age does", &sizes, &[n - 1]));
            cases.push(refr("no last flag", &sizes, &[]));
            if n > 1 {
                cases.push(refr("last flag too early", &sizes, &[n - 2]));
                cases.push(refr("two last flags", &sizes, &[n - 2, n - 1]));
            }
            if size > 0 && rest == 0 {
                let mut more = sizes.clone();
                more.push(0);
                cases.push(refr("an empty final chunk", &more, &[n]));
            }
            if n > 1 {
                let mut swapped = good[..payload].to_vec();
                let sealed = &good[payload..];
                let (first, second) = sealed.split_at(SEALED_CHUNK as usize);
                let (second, tail) =
                    second.split_at(SEALED_CHUNK.min(second.len() as u64) as usize);
                if second.len() == SEALED_CHUNK as usize {
                    swapped.extend_from_slice(second);
                    swapped.extend_from_slice(first);
                    swapped.extend_from_slice(tail);
                    cases.push((format!("{size}: chunks 0 and 1 swapped"), swapped));
                }
            }
        }
        let mut accepted = 0;
        for (name, file) in &cases {
            let age = through_age(file, &keys);
            assert!(
                age == through_chunks(file, &keys),
                "{name}: age says {:?}",
                age.as_ref().map(Vec::len)
            );
            accepted += usize::from(age.is_some());
        }
        // Each size as age wrote it and as re-sealed the same way.
        assert_eq!(accepted, 14, "of {}", cases.len());
    }

    #[test]
    fn more_readers_of_one_file_unwrap_its_header_once() {
        let (keys, count) = crate::crypto::counting(generate());
        let (plain, f) = sealed_file(&keys);
        let file = File::open(f.path()).unwrap();
        let mut p = Plaintext::with_readers(&file, &Remembering::new(&keys), "t", 3).unwrap();
        assert_eq!(count.get(), 1);
        let mut all = vec![0; plain.len()];
        p.read_exact(&mut all).unwrap();
        assert!(all == plain);
        // Another file (another header) is unwrapped afresh, and a key that
        // does not fit is still refused.
        let (_, other) = sealed_file(&keys);
        let remembering = Remembering::new(&keys);
        for f in [f.path(), other.path(), f.path()] {
            let file = File::open(f).unwrap();
            Plaintext::with_readers(&file, &remembering, "t", 2).unwrap();
        }
        assert_eq!(count.get(), 4);
        let stranger = Keys::from_x25519(generate());
        let file = File::open(f.path()).unwrap();
        let err = Plaintext::with_readers(&file, &Remembering::new(&stranger), "t", 2)
            .err()
            .unwrap();
        assert!(
            err.message().contains("not encrypted to your key"),
            "{err:?}"
        );
    }
}
