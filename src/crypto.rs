//! age, and only age: generating and sealing the owner's identity, parsing
//! identity files and recipients, encrypting a vault payload to a set of
//! recipients and opening a decrypting reader. No file paths are chosen here.

use std::{
    cell::OnceCell,
    fmt,
    fs::File,
    io::{self, BufReader, Read, Seek, SeekFrom, Write},
    str::FromStr,
    sync::Mutex,
};

use age::secrecy::{ExposeSecret, SecretString};
use zeroize::Zeroizing;

use crate::error::{Error, Result};

/// The largest scrypt work factor (log2 N) `vault` accepts when opening
/// `identity.age`: deterministic, unlike age's "calibrated target + 4", and
/// high enough for files made on a faster machine.
const MAX_WORK_FACTOR: u8 = 22;

/// What can open a vault: one or more age identities, plus the public
/// recipients they correspond to (used to create a vault for them and to say
/// "this vault is not encrypted to your key …").
pub struct Keys {
    identities: Vec<Box<dyn age::Identity>>,
    recipients: OnceCell<Vec<String>>,
    /// Where the recipients come from when they are not known up front:
    /// the agent is asked only if they are needed (`run` never needs them,
    /// and one round trip to the agent is a third of a millisecond).
    lookup: Option<Box<dyn Fn() -> Vec<String>>>,
}

impl fmt::Debug for Keys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keys")
            .field("identities", &crate::MASK)
            .field("recipients", &self.recipients.get())
            .finish()
    }
}

impl Keys {
    pub fn from_x25519(id: age::x25519::Identity) -> Self {
        let recipient = id.to_public().to_string();
        Keys::known(vec![Box::new(id)], vec![recipient])
    }

    fn known(identities: Vec<Box<dyn age::Identity>>, recipients: Vec<String>) -> Self {
        Keys {
            identities,
            recipients: OnceCell::from(recipients),
            lookup: None,
        }
    }

    /// Keys whose secret half lives elsewhere (the agent); `recipients`
    /// asks for the public half the first time it is needed.
    pub fn from_agent(
        identities: Vec<Box<dyn age::Identity>>,
        recipients: impl Fn() -> Vec<String> + 'static,
    ) -> Self {
        Keys {
            identities,
            recipients: OnceCell::new(),
            lookup: Some(Box::new(recipients)),
        }
    }

    pub fn recipients(&self) -> &[String] {
        self.recipients
            .get_or_init(|| self.lookup.as_ref().map_or_else(Vec::new, |ask| ask()))
    }

    /// The file key of an age header, if one of these identities can
    /// unwrap one of its stanzas (what the agent does for its clients).
    pub fn unwrap_stanzas(
        &self,
        stanzas: &[age_core::format::Stanza],
    ) -> Option<std::result::Result<age_core::format::FileKey, age::DecryptError>> {
        self.identities
            .iter()
            .find_map(|i| i.unwrap_stanzas(stanzas))
    }

    fn identities(&self) -> impl Iterator<Item = &dyn age::Identity> {
        self.identities
            .iter()
            .map(|i| i.as_ref() as &dyn age::Identity)
    }
}

/// A fresh X25519 identity for a new vault owner.
pub fn generate() -> age::x25519::Identity {
    age::x25519::Identity::generate()
}

/// An identity file as `age -i` accepts it: `age-keygen` output (comments,
/// blank lines and `AGE-SECRET-KEY-1…` lines), or an ssh private key
/// (ed25519 or rsa; an encrypted one asks its passphrase on the terminal).
/// Errors name the line number, never the line.
pub fn parse_identity_file(text: &[u8], source: &str) -> Result<Keys> {
    let not_identity = || {
        Error::new(format!(
            "{source} is not an age identity file or ssh private key"
        ))
        .hint("create one with `age-keygen -o key.txt`")
    };
    let text = std::str::from_utf8(text).map_err(|_| not_identity())?;
    if text.trim_start().starts_with("-----BEGIN") {
        return parse_ssh_identity(text, source);
    }
    let (mut identities, mut recipients) = (vec![], vec![]);
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let id = age::x25519::Identity::from_str(line).map_err(|_| {
            Error::new(format!(
                "{source}, line {}: not an age identity (`AGE-SECRET-KEY-1…`)",
                n + 1
            ))
            .hint("create one with `age-keygen -o key.txt`")
        })?;
        recipients.push(id.to_public().to_string());
        identities.push(Box::new(id) as Box<dyn age::Identity>);
    }
    if identities.is_empty() {
        return Err(not_identity());
    }
    Ok(Keys::known(identities, recipients))
}

fn parse_ssh_identity(text: &str, source: &str) -> Result<Keys> {
    use age::ssh::Identity as Ssh;
    let id = Ssh::from_buffer(text.as_bytes(), Some(source.to_string())).map_err(|_| {
        Error::new(format!("{source} is not an ssh private key age can use"))
            .hint("age accepts ssh-ed25519 and ssh-rsa keys")
    })?;
    let recipient = age::ssh::Recipient::try_from(id.clone())
        .map_err(|_| {
            Error::new(format!(
                "{source} is an ssh key of a type age does not support"
            ))
            .hint("age accepts ssh-ed25519 and ssh-rsa keys")
        })?
        .to_string();
    let id = match id {
        Ssh::Encrypted(enc) => {
            let prompt = format!("Passphrase for the ssh key {source}: ");
            let pass = rpassword::prompt_password(prompt).map_err(|e| {
                if crate::unlock::no_terminal(&e) {
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
            })?;
            let key = enc
                .decrypt(SecretString::from(pass))
                .map_err(|_| Error::new(format!("wrong passphrase for the ssh key {source}")))?;
            Ssh::Unencrypted(key)
        }
        Ssh::Unencrypted(key) => Ssh::Unencrypted(key),
        Ssh::Unsupported(_) => {
            return Err(Error::new(format!(
                "{source} is an ssh key of a type age does not support"
            ))
            .hint("age accepts ssh-ed25519 and ssh-rsa keys"));
        }
    };
    Ok(Keys::known(vec![Box::new(id)], vec![recipient]))
}

/// The text of an identity file for `id`, as `age-keygen` writes it.
pub fn identity_file_text(id: &age::x25519::Identity) -> Zeroizing<String> {
    Zeroizing::new(format!(
        "# public key: {}\n{}\n",
        id.to_public(),
        id.to_string().expose_secret()
    ))
}

/// In debug builds only, tests may lower scrypt's cost; a release build
/// always uses age's calibrated work factor (about a second).
fn work_factor_override() -> Option<u8> {
    if cfg!(debug_assertions) {
        std::env::var("VAULT_SCRYPT_WORK_FACTOR")
            .ok()
            .and_then(|v| v.parse().ok())
    } else {
        None
    }
}

/// `identity.age`: the identity file text, encrypted with a passphrase
/// (age's scrypt recipient, ASCII-armored like `age -p -a`).
pub fn seal_identity(id: &age::x25519::Identity, passphrase: &SecretString) -> Result<Vec<u8>> {
    seal_identity_text(&identity_file_text(id), passphrase)
}

/// Seals identity file text with a passphrase (also used by `passwd`).
pub fn seal_identity_text(text: &str, passphrase: &SecretString) -> Result<Vec<u8>> {
    let mut rcpt = age::scrypt::Recipient::new(passphrase.clone());
    if let Some(wf) = work_factor_override() {
        rcpt.set_work_factor(wf);
    }
    age::encrypt_and_armor(&rcpt, text.as_bytes())
        .map(String::into_bytes)
        .map_err(|e| Error::new(format!("cannot encrypt the identity: {}", age_reason(&e))))
}

/// Opens `identity.age` with a passphrase.
pub fn open_identity(sealed: &[u8], passphrase: &SecretString, source: &str) -> Result<Keys> {
    let text = open_identity_text(sealed, passphrase, source)?;
    parse_identity_file(text.as_bytes(), source)
}

/// The identity file text inside `identity.age` (for `passwd` to re-seal
/// and `unlock` to hand to the agent).
pub fn open_identity_text(
    sealed: &[u8],
    passphrase: &SecretString,
    source: &str,
) -> Result<Zeroizing<String>> {
    if sealed.is_empty() {
        return Err(
            Error::new(format!("{source} is empty")).hint("restore identity.age from a backup")
        );
    }
    if !looks_like_age(&mut io::Cursor::new(sealed)).unwrap_or(true) {
        return Err(Error::new(format!("{source} is not an age file")).hint(
            "restore identity.age from a backup; a plain identity file is passed with --identity",
        ));
    }
    let mut ident = age::scrypt::Identity::new(passphrase.clone());
    ident.set_max_work_factor(MAX_WORK_FACTOR);
    let plain = age::decrypt(&ident, sealed).map_err(|e| match e {
        age::DecryptError::DecryptionFailed | age::DecryptError::KeyDecryptionFailed => {
            Error::new(format!("wrong passphrase for {source}"))
                .hint("try again; `vault passwd` changes the passphrase once you are in")
        }
        age::DecryptError::NoMatchingKeys => {
            Error::new(format!("{source} is not protected by a passphrase"))
                .hint("if it is a plain identity file, pass it with --identity")
        }
        age::DecryptError::ExcessiveWork { .. } => Error::new(format!(
            "{source} asks for more scrypt work than vault accepts"
        ))
        .hint("re-create it with `age -p` on this machine"),
        age::DecryptError::Io(ref io) if io.kind() == io::ErrorKind::UnexpectedEof => {
            Error::new(format!("{source} is truncated")).hint("restore identity.age from a backup")
        }
        other => Error::new(format!("{source} is damaged: {}", age_reason(&other)))
            .hint("restore identity.age from a backup"),
    })?;
    let plain = Zeroizing::new(plain);
    let text = std::str::from_utf8(&plain).map_err(|_| {
        Error::new(format!("{source} does not hold an identity file"))
            .hint("restore identity.age from a backup")
    })?;
    Ok(Zeroizing::new(text.to_string()))
}

/// A recipient as users write them: `age1…`, `ssh-ed25519 …` or
/// `ssh-rsa …` (a trailing comment is dropped).
pub fn parse_recipient(text: &str) -> Result<Box<dyn age::Recipient + Send>> {
    let text = text.trim();
    let invalid = || {
        Error::new(format!("`{}` is not an age or ssh recipient", crate::names::printable(text)))
            .hint("a recipient is `age1…` (from `vault recipient` or age-keygen) or an ssh-ed25519/ssh-rsa public key")
    };
    if text.starts_with("age1") {
        return age::x25519::Recipient::from_str(text)
            .map(|r| Box::new(r) as Box<dyn age::Recipient + Send>)
            .map_err(|_| invalid());
    }
    if text.starts_with("ssh-") {
        return age::ssh::Recipient::from_str(text)
            .map(|r| Box::new(r) as Box<dyn age::Recipient + Send>)
            .map_err(|_| invalid());
    }
    Err(invalid())
}

/// The form a recipient is stored and compared in: validated, and for ssh
/// keys without the comment (`ssh-ed25519 AAAA…`).
pub fn canonical_recipient(text: &str) -> Result<String> {
    parse_recipient(text)?;
    let text = text.trim();
    if text.starts_with("ssh-") {
        let r =
            age::ssh::Recipient::from_str(text).map_err(|_| Error::new("invalid ssh recipient"))?;
        return Ok(r.to_string());
    }
    Ok(text.to_string())
}

/// Parses stored recipient strings.
pub fn parse_recipients(recipients: &[String]) -> Result<Vec<Box<dyn age::Recipient + Send>>> {
    recipients
        .iter()
        .map(|r| {
            parse_recipient(r).map_err(|_| {
                Error::new(format!(
                    "the vault lists an invalid recipient `{}`",
                    crate::names::printable(r)
                ))
            })
        })
        .collect()
}

/// Encrypts `plaintext` to `recipients`, streaming into `out`.
pub fn encrypt_to(
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
pub fn decrypt_stream<R: Read + Seek>(
    input: R,
    keys: &Keys,
    source: &str,
) -> Result<age::stream::StreamReader<age::armor::ArmoredReader<io::BufReader<R>>>> {
    let mut input = input;
    if !looks_like_age(&mut input)
        .map_err(|e| decrypt_error(age::DecryptError::Io(e), keys, source))?
    {
        return Err(Error::new(format!("{source} is not an age file"))
            .hint("restore it from a backup or from version control"));
    }
    let dec = age::Decryptor::new_buffered(age::armor::ArmoredReader::new(input))
        .map_err(|e| decrypt_error(e, keys, source))?;
    if dec.is_scrypt() {
        return Err(Error::new(format!(
            "{source} is encrypted with a passphrase, not to a key"
        ))
        .hint("a vault file is encrypted to recipients; is this identity.age?"));
    }
    dec.decrypt(keys.identities())
        .map_err(|e| decrypt_error(e, keys, source))
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
pub fn looks_like_binary_age(input: &mut (impl Read + Seek)) -> io::Result<bool> {
    Ok(head(input)?.starts_with(BINARY_MAGIC))
}

/// Whether `input` starts as an age file does, binary or armored (or is
/// too short to tell), leaving it at the start. Anything else is "not an
/// age file", which says more than age's "truncated" for a short text file.
fn looks_like_age(input: &mut (impl Read + Seek)) -> io::Result<bool> {
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
pub struct Remembering<'k> {
    keys: &'k Keys,
    last: std::cell::RefCell<Option<(Vec<age_core::format::Stanza>, age_core::format::FileKey)>>,
}

impl<'k> Remembering<'k> {
    pub fn new(keys: &'k Keys) -> Self {
        Remembering {
            keys,
            last: std::cell::RefCell::new(None),
        }
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

fn decrypt_error(e: age::DecryptError, keys: &Keys, source: &str) -> Error {
    match e {
        age::DecryptError::NoMatchingKeys => {
            let key = keys.recipients().first().cloned().unwrap_or_default();
            Error::new(format!("{source} is not encrypted to your key {key}")).hint(format!(
                "ask a member of this vault to run `vault recipients add {key}`"
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

/// age's messages wrap numbers in invisible isolation marks, and some run
/// on over several lines ("unknown age format.\nhave you tried upgrading
/// …"): keep the first line, without the marks, so that an error stays one
/// line.
pub fn age_reason(e: &dyn std::fmt::Display) -> String {
    let text = e.to_string().replace(['\u{2068}', '\u{2069}'], "");
    text.lines()
        .next()
        .unwrap_or_default()
        .trim()
        .trim_end_matches('.')
        .to_lowercase()
}

/// The length of a seekable plaintext stream, leaving it at the start.
pub fn stream_len(r: &mut (impl Read + Seek)) -> io::Result<u64> {
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
pub struct Plaintext<'f> {
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
    pub fn open(
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
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// How many readers decrypt it.
    pub fn readers(&self) -> usize {
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

/// What `Plaintext` reads from: an open file (`pread`), or bytes in memory
/// (the fuzz targets), at any offset, from several threads at once.
pub trait ReadAt: Sync {
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
pub fn read_from(input: &dyn ReadAt) -> impl Read + Seek + '_ {
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
pub fn damaged(e: &dyn std::fmt::Display, source: &str) -> Error {
    Error::new(format!("{source} is damaged: {}", age_reason(e)))
        .hint("restore it from a backup or from version control")
}

/// A passphrase typed twice must match; compared in constant time.
pub fn same_passphrase(a: &SecretString, b: &SecretString) -> bool {
    use subtle::ConstantTimeEq;
    let (a, b) = (a.expose_secret().as_bytes(), b.expose_secret().as_bytes());
    // ct_eq on slices of different lengths is already false; lengths are not secret here.
    bool::from(a.ct_eq(b))
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
    fn sealed_identity_round_trip_and_wrong_passphrase() {
        let id = generate();
        let public = id.to_public().to_string();
        let pass = SecretString::from("correct horse".to_string());
        let mut rcpt = age::scrypt::Recipient::new(pass.clone());
        rcpt.set_work_factor(10);
        let sealed = age::encrypt_and_armor(&rcpt, identity_file_text(&id).as_bytes()).unwrap();
        let keys = open_identity(sealed.as_bytes(), &pass, "identity.age").unwrap();
        assert_eq!(keys.recipients(), [public]);
        let wrong = SecretString::from("wrong".to_string());
        let err = open_identity(sealed.as_bytes(), &wrong, "identity.age").unwrap_err();
        assert!(err.message().contains("wrong passphrase"), "{err:?}");
    }

    #[test]
    fn identity_file_errors_name_the_line_not_the_text() {
        let err = parse_identity_file(b"# c\nAGE-SECRET-KEY-1NOPE\n", "key.txt").unwrap_err();
        assert!(err.message().contains("line 2"));
        assert!(!err.message().contains("NOPE"));
        assert!(parse_identity_file(b"# only a comment\n", "key.txt").is_err());
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

    #[test]
    fn age_reasons_are_one_line() {
        let e = age::DecryptError::UnknownFormat;
        let reason = age_reason(&e);
        assert!(!reason.contains('\n'), "{reason:?}");
        assert_eq!(reason, "unknown age format");
    }

    #[test]
    fn agent_keys_ask_for_recipients_once_and_only_when_needed() {
        use std::{cell::Cell, rc::Rc};
        let asked = Rc::new(Cell::new(0));
        let counter = asked.clone();
        let keys = Keys::from_agent(vec![], move || {
            counter.set(counter.get() + 1);
            vec!["age1x".to_string()]
        });
        assert_eq!(asked.get(), 0, "creating them asks nothing");
        assert!(format!("{keys:?}").contains("None"));
        assert_eq!(keys.recipients(), ["age1x"]);
        assert_eq!(keys.recipients(), ["age1x"]);
        assert_eq!(asked.get(), 1);
    }

    /// A file encrypted to `keys` holding 3 MiB and a bit: pieces of 1 MiB,
    /// and a last chunk that is not full.
    fn sealed_file(keys: &Keys) -> (Vec<u8>, tempfile::NamedTempFile) {
        let plain: Vec<u8> = (0..3 * PIECE + 12_345)
            .map(|i| (i * 7 % 251) as u8)
            .collect();
        let f = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(f.path(), encrypt_vec(keys.recipients(), &plain).unwrap()).unwrap();
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
            std::fs::write(f.path(), &bad).unwrap();
            let file = File::open(f.path()).unwrap();
            let mut all = vec![0; plain.len()];
            let read = Plaintext::with_readers(&file, &Remembering::new(&keys), "t", 3)
                .and_then(|mut p| p.read_exact(&mut all).map_err(|e| damaged(&e, "t")));
            assert!(read.is_err(), "flipped at {at}");
        }
        // Truncated: at the last chunk boundary, and in the middle.
        let last_chunk = 12_345 + 16;
        for keep in [good.len() - last_chunk, good.len() / 2] {
            std::fs::write(f.path(), &good[..keep]).unwrap();
            let file = File::open(f.path()).unwrap();
            assert!(
                Plaintext::with_readers(&file, &Remembering::new(&keys), "t", 3).is_err(),
                "{keep}"
            );
        }
    }

    #[test]
    fn more_readers_of_one_file_unwrap_its_header_once() {
        struct Counting(age::x25519::Identity, std::rc::Rc<std::cell::Cell<u32>>);
        impl age::Identity for Counting {
            fn unwrap_stanza(
                &self,
                s: &age_core::format::Stanza,
            ) -> Option<std::result::Result<age_core::format::FileKey, age::DecryptError>>
            {
                self.1.set(self.1.get() + 1);
                self.0.unwrap_stanza(s)
            }
        }
        let id = generate();
        let recipient = id.to_public().to_string();
        let count = std::rc::Rc::new(std::cell::Cell::new(0));
        let keys = Keys::known(vec![Box::new(Counting(id, count.clone()))], vec![recipient]);
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

    #[test]
    fn passphrase_compare() {
        let a = SecretString::from("abc".to_string());
        assert!(same_passphrase(&a, &SecretString::from("abc".to_string())));
        assert!(!same_passphrase(&a, &SecretString::from("abd".to_string())));
        assert!(!same_passphrase(&a, &SecretString::from("ab".to_string())));
    }
}
