//! The agent behind `vault unlock`: a detached `vault` process that holds the
//! owner's identity in memory for a while, so that each command does not pay
//! for a prompt and a second of scrypt.
//!
//! Like ssh-agent, which signs without revealing the key, the agent never
//! hands the identity out. A client sends the stanzas of an age header; the
//! agent unwraps the one meant for it and returns the 16-byte file key of
//! that one file. Clients see it as an `age::Identity` (`AgentIdentity`).
//!
//! It listens on a Unix socket (mode 0600, in a directory of the user's with
//! mode 0700; never an abstract socket) at
//! `$XDG_RUNTIME_DIR/vault/<hash of VAULT_DIR>.sock`, or
//! `VAULT_DIR/agent.sock` without a runtime directory, and answers only
//! peers with its own uid; clients in turn talk only to a socket, and a
//! listener, of their own uid. It exits when its time is up, on `vault
//! lock`, or when its socket is removed, wiping the identity.
//!
//! It serves every client on a thread of its own, and gives each a deadline
//! for its whole request (`REQUEST_DEADLINE`), so a client that trickles its
//! bytes delays nobody else (issue 14). No answer leaves it after its expiry
//! or a `lock`: both take the identity away under the lock every answer is
//! sent under. The identity lives only in a buffer of its own, locked in
//! memory and left out of core dumps (`Held`); each request parses what it
//! needs from there and wipes it again.
//!
//! Wire format: each message is a 4-byte big-endian length and a body of at
//! most `MAX_FRAME` bytes; one request and one answer per connection.
//! Requests are JSON (`{"op": "status"}`, `{"op": "lock"}`,
//! `{"op": "unwrap", "stanzas": [{"tag", "args", "body": hex}]}`); answers
//! are a kind byte and a payload (`S` + JSON, `K` + file key, `N` for no
//! matching stanza, `L` for locked, `E` + message).

use std::{
    fmt,
    io::{self, Read, Write},
    os::unix::{
        fs::{FileTypeExt, MetadataExt, PermissionsExt},
        net::{UnixListener, UnixStream},
    },
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::{
        Arc, RwLock,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use age::secrecy::ExposeSecret;
use age_core::format::{FileKey, Stanza};
use serde_json::json;
use zeroize::{Zeroize, Zeroizing};

use crate::{
    crypto::{self, Keys},
    error::{Error, Result},
    fsio,
};

/// The longest request or answer, far above any real age header.
pub(crate) const MAX_FRAME: usize = 1 << 20;

/// `sun_path` holds 108 bytes including the terminating NUL.
const MAX_SOCKET_PATH: usize = 107;

/// The longest an agent may live (`--timeout`): a week covers any working
/// session; more is a usage error.
pub(crate) const MAX_TIMEOUT: Duration = Duration::from_secs(7 * 24 * 3600);

/// How long the agent gives a client for its whole request, from accepting
/// the connection to the request's last byte. Real clients write theirs at
/// once (a few hundred bytes); one that trickles is cut off here.
pub(crate) const REQUEST_DEADLINE: Duration = Duration::from_secs(1);

/// How long a client waits for the agent's whole answer before saying
/// "the agent did not answer".
const CLIENT_DEADLINE: Duration = Duration::from_secs(3);

/// How long `unlock` waits for the agent it started to answer.
const START_DEADLINE: Duration = Duration::from_secs(10);

/// Connections served at once; more are closed unanswered. With the
/// request deadline, a flood of idle connections costs at most a second.
const MAX_CLIENTS: usize = 64;

/// The largest identity the agent takes: an RSA-4096 ssh key is 3.4 KiB.
const MAX_IDENTITY: usize = 16 << 10;

/// What `vault lock` and an agent that does not answer suggest.
const NO_ANSWER_HINT: &str = "`vault lock` stops it (it removes the socket of an agent that does not answer); `vault unlock` starts a new one";

/// Where the agent for a vault directory listens.
struct Place {
    socket: PathBuf,
    /// In `$XDG_RUNTIME_DIR/vault`, which must be the user's with mode
    /// 0700; else in the vault directory, whose own checks apply.
    runtime: bool,
}

/// Where the agent for `vault_dir` listens: the runtime directory if there
/// is one (set, and an existing directory) and the path fits, else inside
/// the vault directory. `None` when no candidate fits in `sun_path`: then
/// no agent can listen for this vault directory, so none is running
/// (`status`, `lock`), and `unlock` says why it cannot start one.
fn place(vault_dir: &Path) -> Result<Option<Place>> {
    let name = format!(
        "{}.sock",
        short_hash(vault_dir.as_os_str().as_encoded_bytes())
    );
    // A runtime directory that does not exist (a stale variable after
    // `su`, a typo) is none: vault creates its own `vault/` inside one,
    // never the runtime directory itself (as root, anywhere at all).
    if let Some(run) = runtime_dir() {
        // Absolute: the agent moves to `/` before it binds.
        let p = PathBuf::from(run).join("vault").join(&name);
        let p = std::path::absolute(&p).map_err(|e| Error::io("resolve", &p, e))?;
        if p.as_os_str().len() <= MAX_SOCKET_PATH {
            return Ok(Some(Place {
                socket: p,
                runtime: true,
            }));
        }
    }
    let p = vault_dir.join("agent.sock");
    if p.as_os_str().len() <= MAX_SOCKET_PATH {
        return Ok(Some(Place {
            socket: p,
            runtime: false,
        }));
    }
    Ok(None)
}

/// `$XDG_RUNTIME_DIR`, when it names an existing directory.
fn runtime_dir() -> Option<std::ffi::OsString> {
    std::env::var_os("XDG_RUNTIME_DIR").filter(|d| Path::new(d).is_dir())
}

/// Why no agent can run for `vault_dir` (`place` found no path that fits),
/// or `None` when one can: what `doctor` reports.
pub(crate) fn no_place(vault_dir: &Path) -> Result<Option<Error>> {
    Ok(place(vault_dir)?
        .is_none()
        .then(|| no_place_error(vault_dir)))
}

/// What `unlock` fails with when no socket path fits.
fn no_place_error(vault_dir: &Path) -> Error {
    let hint = if runtime_dir().is_some() {
        "use a shorter VAULT_DIR or XDG_RUNTIME_DIR"
    } else {
        "set XDG_RUNTIME_DIR to a short private directory (a login session has /run/user/UID), or use a shorter VAULT_DIR"
    };
    Error::new(format!(
        "no agent can run for {}: its socket path would be longer than the {MAX_SOCKET_PATH} bytes a Unix socket path may have",
        vault_dir.display()
    ))
    .hint(hint)
}

/// FNV-1a, enough to tell vault directories apart in a file name.
fn short_hash(bytes: &[u8]) -> String {
    let h = bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    });
    format!("{h:016x}")[..12].to_string()
}

fn my_uid() -> u32 {
    rustix::process::geteuid().as_raw()
}

/// `$XDG_RUNTIME_DIR/vault` must be a directory of the user's with mode
/// 0700: anyone else who could write there could put a socket of theirs in
/// the agent's place (and answer `status` and `lock`), or remove the
/// agent's. `Ok(false)` when it does not exist (so no agent runs there).
fn check_dir(place: &Place) -> Result<bool> {
    let dir = fsio::parent(&place.socket);
    let meta = match std::fs::symlink_metadata(&dir) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(Error::io("inspect", &dir, e)),
    };
    if !place.runtime {
        return Ok(true);
    }
    let recreate = "`vault unlock` creates it, mode 0700";
    if !meta.is_dir() {
        return Err(Error::new(format!(
            "{} is not a directory (the agent's directory must be)",
            dir.display()
        ))
        .hint(format!("remove it; {recreate}")));
    }
    if meta.uid() != my_uid() {
        return Err(Error::new(format!(
            "{} belongs to uid {}, not to you (uid {}): the agent's directory must be yours",
            dir.display(),
            meta.uid(),
            my_uid()
        ))
        .hint(format!(
            "remove it (as its owner or root: `rm -r {}`); {recreate}",
            dir.display()
        )));
    }
    let mode = meta.mode() & 0o777;
    if mode != 0o700 {
        return Err(Error::new(format!(
            "{} has mode {mode:04o}: the agent's directory must be 0700",
            dir.display()
        ))
        .hint(format!("chmod 700 {}", dir.display())));
    }
    Ok(true)
}

/// What a running agent reports about itself.
#[derive(Debug, Clone)]
pub(crate) struct Status {
    pub(crate) pid: u32,
    pub(crate) expires_at: u64,
    pub(crate) recipients: Vec<String>,
    pub(crate) socket: PathBuf,
    /// Whether the identity's buffer is locked in memory (`RLIMIT_MEMLOCK`
    /// allowing).
    pub(crate) memory_locked: bool,
}

impl Status {
    pub(crate) fn seconds_left(&self) -> u64 {
        self.expires_at.saturating_sub(unix_now())
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

// ---------------------------------------------------------------- client

/// An agent of ours is there (its socket exists and someone listens) but
/// gave no answer: a timeout, a hang-up, or an answer that makes no sense.
/// It travels inside `io::Error` through age, so that wherever it surfaces
/// it reads as what it is, never as a damaged vault (issue 14).
#[derive(Debug, Clone)]
pub(crate) struct NoAnswer {
    socket: PathBuf,
    why: String,
}

impl NoAnswer {
    fn new(socket: &Path, why: impl Into<String>) -> Self {
        NoAnswer {
            socket: socket.to_path_buf(),
            why: why.into(),
        }
    }

    fn from_io(socket: &Path, e: &io::Error) -> Self {
        let why = match e.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => {
                format!("nothing within {} s", CLIENT_DEADLINE.as_secs())
            }
            io::ErrorKind::UnexpectedEof => "it closed the connection".to_string(),
            _ => crate::error::describe_io(e),
        };
        NoAnswer::new(socket, why)
    }
}

impl fmt::Display for NoAnswer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the agent did not answer ({}) on {}",
            self.why,
            self.socket.display()
        )
    }
}

impl std::error::Error for NoAnswer {}

impl From<NoAnswer> for Error {
    fn from(n: NoAnswer) -> Error {
        Error::new(n.to_string()).hint(NO_ANSWER_HINT)
    }
}

/// The agent's silence inside an I/O error from age, if that is what it is.
pub(crate) fn no_answer(e: &io::Error) -> Option<Error> {
    let n = e.get_ref()?.downcast_ref::<NoAnswer>()?;
    Some(Error::new(n.to_string()).hint(NO_ANSWER_HINT))
}

/// Why a request got no answer.
enum Silence {
    /// Nobody there: no socket, or one nobody listens on (a killed agent;
    /// removed on the way).
    Gone,
    /// Something that is not an agent of ours: not a socket, another
    /// user's socket, or a listener of another uid. Never talked to.
    Foreign(String),
    /// An agent of ours that did not answer.
    Mute(NoAnswer),
}

/// Which file a path named when we looked: device, inode and change time,
/// so that a new socket on a reused inode number is not taken for the old
/// one (the kernel hands a freed inode number out again at once).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp(u64, u64, i64, i64);

impl Stamp {
    fn of(meta: &std::fs::Metadata) -> Stamp {
        Stamp(meta.dev(), meta.ino(), meta.ctime(), meta.ctime_nsec())
    }

    fn at(path: &Path) -> Option<Stamp> {
        std::fs::symlink_metadata(path).ok().map(|m| Stamp::of(&m))
    }
}

/// The socket's stamp if it is a socket of our own uid.
fn our_socket(socket: &Path) -> std::result::Result<Stamp, Silence> {
    let meta = match std::fs::symlink_metadata(socket) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(Silence::Gone),
        Err(e) => return Err(Silence::Mute(NoAnswer::from_io(socket, &e))),
    };
    if !meta.file_type().is_socket() {
        return Err(Silence::Foreign(format!(
            "{} is not a socket",
            socket.display()
        )));
    }
    if meta.uid() != my_uid() {
        return Err(Silence::Foreign(format!(
            "{} belongs to uid {}, not to you",
            socket.display(),
            meta.uid()
        )));
    }
    Ok(Stamp::of(&meta))
}

/// Connects to an agent of ours: the socket is ours, and so is whoever
/// listens on it (a socket renamed into place keeps its owner's uid on the
/// inode, but the listener's credentials are the kernel's word).
fn connect(socket: &Path) -> std::result::Result<(UnixStream, Stamp), Silence> {
    let stamp = our_socket(socket)?;
    let stream = match UnixStream::connect(socket) {
        Ok(s) => s,
        Err(e) if is_stale(&e) => {
            remove_if_same(socket, stamp);
            return Err(Silence::Gone);
        }
        Err(e) => return Err(Silence::Mute(NoAnswer::from_io(socket, &e))),
    };
    match rustix::net::sockopt::socket_peercred(&stream) {
        Ok(cred) if cred.uid.as_raw() == my_uid() => Ok((stream, stamp)),
        Ok(cred) => Err(Silence::Foreign(format!(
            "the process listening on {} runs as uid {}, not as you",
            socket.display(),
            cred.uid.as_raw()
        ))),
        Err(e) => Err(Silence::Mute(NoAnswer::from_io(socket, &e.into()))),
    }
}

/// One request, one answer, within `CLIENT_DEADLINE` in all. An agent
/// that gave no answer once is not asked again by this process: a stopped
/// agent (SIGSTOP) made a read wait one deadline for the unwrap and
/// another for whatever asked next, 6 s instead of 3.
fn ask(socket: &Path, req: &serde_json::Value) -> std::result::Result<Answer, Silence> {
    if let Some(n) = was_silent(socket) {
        return Err(Silence::Mute(n));
    }
    let answer = connect(socket).and_then(|(stream, stamp)| {
        let mut timed = Timed::new(&stream, CLIENT_DEADLINE);
        write_frame(&mut timed, req.to_string().as_bytes())
            .and_then(|()| read_frame(&mut timed))
            .map(|body| Answer { body, stamp })
            .map_err(|e| Silence::Mute(NoAnswer::from_io(socket, &e)))
    });
    if let Err(Silence::Mute(n)) = &answer
        && let Some(stamp) = Stamp::at(socket)
        && let Ok(mut silent) = SILENT.lock()
    {
        silent.push((stamp, n.clone()));
    }
    answer
}

/// The agents that gave this process no answer (see `ask`), by the socket
/// file they listen on: a new agent in the place of a silent one (`vault
/// unlock` replacing it) is a new socket, and is asked.
static SILENT: std::sync::Mutex<Vec<(Stamp, NoAnswer)>> = std::sync::Mutex::new(Vec::new());

fn was_silent(socket: &Path) -> Option<NoAnswer> {
    let silent = SILENT.lock().ok()?;
    if silent.is_empty() {
        // The usual case: no stat of the socket on every request.
        return None;
    }
    let stamp = Stamp::at(socket)?;
    silent
        .iter()
        .find(|(s, n)| *s == stamp && n.socket == socket)
        .map(|(_, n)| n.clone())
}

struct Answer {
    body: Zeroizing<Vec<u8>>,
    /// The socket when we asked: what `lock` may remove.
    stamp: Stamp,
}

/// Removes `socket` only if it is still the file we saw, so that a new
/// agent's socket that took its place in between is left alone.
fn remove_if_same(socket: &Path, stamp: Stamp) {
    if Stamp::at(socket) == Some(stamp) {
        let _ = std::fs::remove_file(socket);
    }
}

fn is_stale(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused | io::ErrorKind::NotFound
    )
}

fn ignore(why: &str) {
    crate::term::warn(&format!("{why}: not an agent of yours, ignored"));
}

/// The agent's status; `None` if no agent runs. An agent that is there but
/// does not answer is an error ("the agent did not answer"), never "locked";
/// so is a runtime directory that is not private.
pub(crate) fn status(vault_dir: &Path) -> Result<Option<Status>> {
    let Some(place) = place(vault_dir)? else {
        return Ok(None);
    };
    if !check_dir(&place)? {
        return Ok(None);
    }
    match ask(&place.socket, &json!({"op": "status"})) {
        Ok(a) => parse_status(&a.body, place.socket.clone())
            .map(Some)
            .ok_or_else(|| NoAnswer::new(&place.socket, "its answer makes no sense").into()),
        Err(Silence::Gone) => Ok(None),
        Err(Silence::Foreign(why)) => {
            ignore(&why);
            Ok(None)
        }
        Err(Silence::Mute(n)) => Err(n.into()),
    }
}

fn parse_status(answer: &[u8], socket: PathBuf) -> Option<Status> {
    let body = answer.strip_prefix(b"S")?;
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    Some(Status {
        pid: u32::try_from(v["pid"].as_u64()?).ok()?,
        expires_at: v["expires_at"].as_u64()?,
        recipients: v["recipients"]
            .as_array()?
            .iter()
            .filter_map(|r| r.as_str().map(String::from))
            .collect(),
        socket,
        memory_locked: v["memory_locked"].as_bool().unwrap_or(false),
    })
}

/// Keys backed by the agent, if one is running for `vault_dir`. Opening a
/// vault then costs one round trip (the unwrap), not two: whether the agent
/// is there is a bare connect, which the kernel answers without waiting for
/// the agent to be scheduled, and its recipients are asked for only if
/// something needs them (BENCHMARKS.md, "agent").
pub(crate) fn keys(vault_dir: &Path) -> Result<Option<Keys>> {
    let Ok(Some(place)) = place(vault_dir) else {
        return Ok(None);
    };
    if !check_dir(&place)? {
        return Ok(None);
    }
    // The agent reads an empty request from this connection and goes on.
    match connect(&place.socket) {
        Ok(_) => {}
        Err(Silence::Foreign(why)) => {
            ignore(&why);
            return Ok(None);
        }
        Err(_) => return Ok(None),
    }
    let id = AgentIdentity {
        socket: place.socket.clone(),
    };
    let socket = place.socket;
    let signing = socket.clone();
    Ok(Some(Keys::from_agent(
        vec![Box::new(id)],
        move || match ask(&socket, &json!({"op": "status"})) {
            Ok(a) => parse_status(&a.body, socket.clone())
                .map(|s| s.recipients)
                .unwrap_or_default(),
            Err(_) => Vec::new(),
        },
        move |msg| sign(&signing, msg),
    )))
}

/// Asks the agent for `vault_dir` to stop. `Ok(true)` if one was running
/// and has stopped, `Ok(false)` if none was; an agent that does not answer
/// is an error, after its socket is removed (which puts it out of reach,
/// and makes it exit as soon as it runs).
pub(crate) fn stop(vault_dir: &Path) -> Result<bool> {
    let Some(place) = place(vault_dir)? else {
        return Ok(false);
    };
    if !check_dir(&place)? {
        return Ok(false);
    }
    // Not in the middle of an `unlock`: this waits for it, then locks. Best
    // effort: a read-only vault directory (no agent can run there anyway)
    // must not make `lock` fail.
    let _serial = serialize(&place).ok();
    match stop_at(&place.socket) {
        Ok(stopped) => Ok(stopped),
        Err(Silence::Gone) => Ok(false),
        Err(Silence::Foreign(why)) => {
            ignore(&why);
            Ok(false)
        }
        Err(Silence::Mute(n)) => Err(Error::new(format!(
            "{n}; its socket is removed, so no command reaches it any more"
        ))
        .hint("it exits within a second of running again; `vault unlock` starts a new one")),
    }
}

fn stop_at(socket: &Path) -> std::result::Result<bool, Silence> {
    let stamp = our_socket(socket)?;
    let answer = match ask(socket, &json!({"op": "lock"})) {
        Ok(a) => a,
        Err(Silence::Mute(n)) => {
            remove_if_same(socket, stamp);
            return Err(Silence::Mute(n));
        }
        Err(other) => return Err(other),
    };
    if answer.body[..] != *b"L" {
        remove_if_same(socket, answer.stamp);
        return Err(Silence::Mute(NoAnswer::new(
            socket,
            "it did not confirm the lock",
        )));
    }
    // It removed its socket before it said so, so a following `unlock`
    // can take the place at once; the process itself exits right after.
    Ok(true)
}

/// `unlock` and `lock` for one vault directory take turns, so that six
/// `vault unlock`s at once leave exactly one agent (each replaces the one
/// before it) and every one of them reports an agent that was running.
fn serialize(place: &Place) -> Result<fsio::WriteLock> {
    fsio::WriteLock::acquire_within(
        &place.socket.with_extension("lock"),
        Duration::from_secs(30),
    )
}

/// An `age::Identity` whose secret half is in the agent.
pub(crate) struct AgentIdentity {
    socket: PathBuf,
}

impl age::Identity for AgentIdentity {
    fn unwrap_stanza(
        &self,
        stanza: &Stanza,
    ) -> Option<std::result::Result<FileKey, age::DecryptError>> {
        self.unwrap_stanzas(std::slice::from_ref(stanza))
    }

    /// All stanzas in one round trip.
    fn unwrap_stanzas(
        &self,
        stanzas: &[Stanza],
    ) -> Option<std::result::Result<FileKey, age::DecryptError>> {
        let stanzas: Vec<_> = stanzas
            .iter()
            .map(|s| json!({"tag": s.tag, "args": s.args, "body": hex(&s.body)}))
            .collect();
        let silent = |n: NoAnswer| Some(Err(age::DecryptError::Io(io::Error::other(n))));
        let answer = match ask(&self.socket, &json!({"op": "unwrap", "stanzas": stanzas})) {
            Ok(a) => a.body,
            Err(Silence::Mute(n)) => return silent(n),
            Err(Silence::Gone) => return silent(NoAnswer::new(&self.socket, "it has exited")),
            Err(Silence::Foreign(why)) => return silent(NoAnswer::new(&self.socket, why)),
        };
        match answer.split_first() {
            Some((b'K', key)) if key.len() == 16 => Some(Ok(FileKey::init_with_mut(|k| {
                k.copy_from_slice(key);
            }))),
            Some((b'N', _)) => None,
            _ => silent(NoAnswer::new(&self.socket, "its answer makes no sense")),
        }
    }
}

/// A stream whose reads and writes all end by one instant: a deadline for
/// a whole request or answer, not for each read (a peer sending a byte
/// every few seconds never trips a per-read timeout).
struct Timed<'a> {
    stream: &'a UnixStream,
    until: Instant,
}

impl<'a> Timed<'a> {
    fn new(stream: &'a UnixStream, within: Duration) -> Self {
        Timed {
            stream,
            until: Instant::now() + within,
        }
    }

    fn left(&self) -> io::Result<Duration> {
        let left = self.until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::ErrorKind::TimedOut.into());
        }
        Ok(left)
    }
}

impl Read for Timed<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.stream.set_read_timeout(Some(self.left()?))?;
        (&mut &*self.stream).read(buf)
    }
}

impl Write for Timed<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.stream.set_write_timeout(Some(self.left()?))?;
        (&mut &*self.stream).write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Asks the agent to sign a vault message (DESIGN v2 "Trust": the agent
/// signs for the identity it holds, and only messages with the prefix).
fn sign(socket: &Path, msg: &[u8]) -> Result<crate::sign::Signature> {
    let failed = |why: &str| {
        Error::new(format!("the agent did not sign the vault: {why}"))
            .hint("`vault lock`, then `vault unlock` again, or pass --identity")
    };
    let answer = ask(socket, &json!({"op": "sign", "message": hex(msg)}))
        .map_err(|_| failed("it did not answer"))?;
    match answer.body.split_first() {
        Some((b'G', body)) => {
            let v: serde_json::Value =
                serde_json::from_slice(body).map_err(|_| failed("unexpected answer"))?;
            match (
                v["recipient"].as_str(),
                v["signature"].as_str().and_then(unhex),
            ) {
                (Some(r), Some(bytes)) => Ok(crate::sign::Signature {
                    recipient: r.to_string(),
                    bytes,
                }),
                _ => Err(failed("unexpected answer")),
            }
        }
        Some((b'E', why)) => Err(failed(&String::from_utf8_lossy(why))),
        _ => Err(failed(
            "unexpected answer (an older agent? `vault lock` and unlock again)",
        )),
    }
}

fn write_frame(w: &mut impl Write, body: &[u8]) -> io::Result<()> {
    let len = u32::try_from(body.len()).map_err(|_| io::Error::other("frame too large"))?;
    let mut frame = Zeroizing::new(Vec::with_capacity(4 + body.len()));
    frame.extend_from_slice(&len.to_be_bytes());
    frame.extend_from_slice(body);
    w.write_all(&frame)?;
    w.flush()
}

fn read_frame(r: &mut impl Read) -> io::Result<Zeroizing<Vec<u8>>> {
    let mut len = [0u8; 4];
    r.read_exact(&mut len)?;
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_FRAME {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "frame too large",
        ));
    }
    let mut body = Zeroizing::new(vec![0u8; len]);
    r.read_exact(&mut body)?;
    Ok(body)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

// ---------------------------------------------------------------- starting

/// Starts an agent for `vault_dir` holding `identity` (identity file text)
/// for `timeout`, replacing any running one. The identity goes to the new
/// process through a pipe, never argv or the environment.
pub(crate) fn start(
    vault_dir: &Path,
    identity: &Zeroizing<String>,
    timeout: Duration,
) -> Result<Status> {
    if timeout.is_zero() || timeout > MAX_TIMEOUT {
        return Err(Error::usage("--timeout must be between 1 s and 7 days"));
    }
    let Some(place) = place(vault_dir)? else {
        return Err(no_place_error(vault_dir));
    };
    fsio::ensure_dir(&fsio::parent(&place.socket))?;
    check_dir(&place)?;
    let _serial = serialize(&place)?;
    match stop_at(&place.socket) {
        // Stopped, none there, or one that did not answer and whose socket
        // is now removed: the new agent takes the place.
        Ok(_) | Err(Silence::Gone) | Err(Silence::Mute(_)) => {}
        Err(Silence::Foreign(why)) => {
            return Err(
                Error::new(format!("{why}: not an agent of yours")).hint(format!(
                    "remove it (`rm {}`) and unlock again",
                    place.socket.display()
                )),
            );
        }
    }
    let exe = std::env::current_exe().map_err(|e| Error::io("find", Path::new("vault"), e))?;
    // Descriptors this process inherited without close-on-exec (a script's
    // `flock` on fd 9, say) would otherwise stay open, and locked, for the
    // agent's whole life. Marking them close-on-exec is I/O-safe (nothing
    // here uses them); closing raw descriptors is not, so the agent gets
    // only stdin, stdout and stderr.
    close_fds::CloseFdsBuilder::new().cloexecfrom(3);
    let mut child = Command::new(exe)
        .arg("__agent")
        .arg("--socket")
        .arg(&place.socket)
        .arg("--seconds")
        .arg(timeout.as_secs().to_string())
        .env_remove("VAULT_PASSPHRASE")
        // Hold no directory: one on a removable disk stays busy otherwise.
        .current_dir("/")
        .env_remove(crate::env::AGE_KEY_VAR)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        // Read only if it exits at start, to say why; once it serves,
        // the pipe's far end is closed and the agent writes nothing.
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            Error::new(format!(
                "cannot start the agent: {}",
                crate::error::describe_io(&e)
            ))
        })?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(identity.as_bytes()).map_err(|e| {
            Error::new(format!(
                "cannot hand the identity to the agent: {}",
                crate::error::describe_io(&e)
            ))
        })?;
    }
    // Generous: a loaded machine can take seconds to schedule a new
    // process, and a wait only ends early or in an error.
    let deadline = Instant::now() + START_DEADLINE;
    loop {
        if let Ok(a) = ask(&place.socket, &json!({"op": "status"}))
            && let Some(s) = parse_status(&a.body, place.socket.clone())
            && s.pid == child.id()
        {
            return Ok(s);
        }
        if let Ok(Some(code)) = child.try_wait() {
            return Err(Error::new(format!(
                "the agent exited at start ({code}){}",
                why_it_exited(child.stderr.take())
            ))
            .hint("`vault doctor` checks the runtime directory and the vault directory"));
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            return Err(Error::new(format!(
                "the agent did not start within {} s",
                START_DEADLINE.as_secs()
            )));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The first line of what an agent that exited at start wrote to stderr,
/// without its `vault: error: ` prefix, as `: <why>`; empty if nothing.
fn why_it_exited(stderr: Option<std::process::ChildStderr>) -> String {
    let mut text = String::new();
    if let Some(pipe) = stderr {
        // It has exited: the read ends at once. Bounded all the same.
        let _ = pipe.take(4096).read_to_string(&mut text);
    }
    let line = text.lines().next().unwrap_or("").trim();
    let line = line.strip_prefix("vault: error: ").unwrap_or(line);
    if line.is_empty() {
        String::new()
    } else {
        format!(": {line}")
    }
}

// ---------------------------------------------------------------- serving

/// What the agent knows while it answers one request.
pub struct AgentState {
    keys: Keys,
    expires_at: u64,
    memory_locked: bool,
}

impl AgentState {
    pub fn new(keys: Keys, expires_at: u64) -> Self {
        AgentState {
            keys,
            expires_at,
            memory_locked: false,
        }
    }

    fn memory_locked(mut self, locked: bool) -> Self {
        self.memory_locked = locked;
        self
    }
}

/// What the agent does with one request; `true` means "stop the agent".
/// Pure, so that malformed requests can be tested and fuzzed.
pub fn respond(state: &AgentState, request: &[u8]) -> (Zeroizing<Vec<u8>>, bool) {
    let error = |msg: &str| {
        let mut out = Zeroizing::new(b"E".to_vec());
        out.extend_from_slice(msg.as_bytes());
        (out, false)
    };
    let Ok(req) = serde_json::from_slice::<serde_json::Value>(request) else {
        return error("the request is not JSON");
    };
    match req["op"].as_str() {
        Some("status") => {
            let body = json!({
                "pid": std::process::id(),
                "expires_at": state.expires_at,
                "recipients": state.keys.recipients(),
                "memory_locked": state.memory_locked,
            });
            let mut out = Zeroizing::new(b"S".to_vec());
            out.extend_from_slice(body.to_string().as_bytes());
            (out, false)
        }
        Some("lock") => (Zeroizing::new(b"L".to_vec()), true),
        Some("unwrap") => {
            let Some(list) = req["stanzas"].as_array() else {
                return error("`stanzas` is missing");
            };
            let mut stanzas = Vec::with_capacity(list.len());
            for s in list {
                let (Some(tag), Some(args), Some(body)) = (
                    s["tag"].as_str(),
                    s["args"].as_array(),
                    s["body"].as_str().and_then(unhex),
                ) else {
                    return error("a stanza is malformed");
                };
                let Some(args) = args.iter().map(|a| a.as_str().map(String::from)).collect() else {
                    return error("a stanza argument is not a string");
                };
                stanzas.push(Stanza {
                    tag: tag.to_string(),
                    args,
                    body,
                });
            }
            match state.keys.unwrap_stanzas(&stanzas) {
                Some(Ok(key)) => {
                    let mut out = Zeroizing::new(b"K".to_vec());
                    out.extend_from_slice(key.expose_secret());
                    (out, false)
                }
                Some(Err(_)) => error("the stanza for this identity does not unwrap"),
                None => (Zeroizing::new(b"N".to_vec()), false),
            }
        }
        Some("sign") => {
            // Only what `vault` signs: a vault message, prefix and length
            // checked, so the agent is no signing oracle for anything else.
            let Some(msg) = req["message"].as_str().and_then(unhex) else {
                return error("`message` is missing");
            };
            if !crate::sign::is_message(&msg) {
                return error("the agent signs only vault messages");
            }
            match state.keys.sign(&msg, &[]) {
                Ok(sig) => {
                    let body = json!({"recipient": sig.recipient, "signature": hex(&sig.bytes)});
                    let mut out = Zeroizing::new(b"G".to_vec());
                    out.extend_from_slice(body.to_string().as_bytes());
                    (out, false)
                }
                Err(_) => error("the identity cannot sign"),
            }
        }
        _ => error("unknown operation"),
    }
}

/// The identity file text, in a buffer of its own: an anonymous mapping
/// that is `mlock`ed (never swapped out, where `RLIMIT_MEMLOCK` allows; the
/// default 8 MiB is far more than 16 KiB, while an all-process `mlockall`
/// does not fit in it) and `MADV_DONTDUMP` (left out of core dumps, should
/// one ever be written). Wiped when dropped. Read straight from the pipe
/// into it, so no other buffer ever holds the identity for long.
struct Held {
    buf: memmap2::MmapMut,
    len: usize,
    locked: bool,
}

impl Held {
    fn read_from(input: impl std::os::fd::AsFd) -> Result<Held> {
        let fail = |what: &str, e: io::Error| {
            Error::new(format!(
                "cannot {what} the identity: {}",
                crate::error::describe_io(&e)
            ))
        };
        let mut buf = memmap2::MmapMut::map_anon(MAX_IDENTITY).map_err(|e| fail("map", e))?;
        buf.advise(memmap2::Advice::DontDump)
            .map_err(|e| fail("protect", e))?;
        let locked = buf.lock().is_ok();
        let mut len = 0;
        loop {
            if len == buf.len() {
                return Err(Error::new("the identity is larger than 16 KiB"));
            }
            match rustix::io::read(&input, &mut buf[len..]) {
                Ok(0) => break,
                Ok(n) => len += n,
                Err(rustix::io::Errno::INTR) => {}
                Err(e) => return Err(fail("read", e.into())),
            }
        }
        Ok(Held { buf, len, locked })
    }

    fn text(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.buf[..].zeroize();
    }
}

/// What the agent's threads share.
struct Shared {
    /// The identity while the agent is open; `None` once it is locked or
    /// expired. Every answer is computed and sent under the read lock, and
    /// the identity is taken away under the write lock, so no answer
    /// leaves after that.
    held: RwLock<Option<Held>>,
    /// The end of its life, by both clocks: the monotonic one cannot be set
    /// back, the wall clock counts a suspend.
    until: Instant,
    until_wall: SystemTime,
    expires_at: u64,
    memory_locked: bool,
    clients: AtomicUsize,
    /// Written to by the thread that answers `lock`, to wake the main loop.
    wake: UnixStream,
    socket: PathBuf,
    /// Our socket file, as bound; `None` once we removed it.
    stamp: std::sync::Mutex<Option<Stamp>>,
}

impl Shared {
    fn left(&self) -> Duration {
        let wall = self
            .until_wall
            .duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO);
        self.until
            .saturating_duration_since(Instant::now())
            .min(wall)
    }

    /// Takes the identity away (and wipes it), once in-flight answers are
    /// out.
    fn close(&self) {
        let mut held = self.held.write().unwrap_or_else(|e| e.into_inner());
        *held = None;
    }

    /// Whether our socket is still in place: someone who removes or
    /// replaces it takes us out of reach, and we leave.
    fn reachable(&self) -> bool {
        let stamp = self.stamp.lock().unwrap_or_else(|e| e.into_inner());
        stamp.is_some() && Stamp::at(&self.socket) == *stamp
    }

    /// Removes our socket, once, and only if it is still ours.
    fn unlink(&self) {
        let mut stamp = self.stamp.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(ours) = stamp.take() {
            remove_if_same(&self.socket, ours);
        }
    }
}

/// Counts a connection for as long as its thread serves it.
struct Client(Arc<Shared>);

impl Drop for Client {
    fn drop(&mut self) {
        self.0.clients.fetch_sub(1, Ordering::SeqCst);
    }
}

/// One connection: its whole request within `REQUEST_DEADLINE`, then the
/// answer, sent only while the agent is open and not expired.
fn serve_one(client: &Client, stream: &UnixStream) {
    let shared = &client.0;
    let Ok(request) = read_frame(&mut Timed::new(stream, REQUEST_DEADLINE)) else {
        return;
    };
    let held = shared.held.read().unwrap_or_else(|e| e.into_inner());
    let Some(identity) = held.as_ref() else {
        return;
    };
    let Ok(keys) =
        crypto::parse_identity_file(identity.text(), "the agent's identity", &crypto::never_ask)
    else {
        return;
    };
    let state = AgentState::new(keys, shared.expires_at).memory_locked(shared.memory_locked);
    let (answer, stop) = respond(&state, &request);
    drop(state);
    if stop {
        drop(held);
        shared.close();
        // Out of reach before `lock` hears so: the `unlock` that may follow
        // binds at once, and never meets this agent still listening.
        shared.unlink();
        let _ = send_now(stream, &answer);
        let _ = (&shared.wake).write_all(b"L");
        return;
    }
    if shared.left().is_zero() {
        return;
    }
    let _ = send_now(stream, &answer);
    drop(held);
}

/// Sends without waiting: an answer is far smaller than a socket's buffer,
/// and the read lock it is sent under must not be held for a slow peer.
fn send_now(stream: &UnixStream, answer: &[u8]) -> io::Result<()> {
    stream.set_nonblocking(true)?;
    write_frame(&mut &*stream, answer)
}

/// Listens on `socket`, which appears there already listening and mode
/// 0600: bound under a temporary name beside it, then renamed into place
/// (over a stale socket, if one is left). A socket bound in place exists
/// for a moment before it listens, and a client that connects then is
/// refused and removes it as stale, which took the agent out of reach as
/// it started (one in a hundred concurrent `unlock`s on a loaded machine).
fn listen(socket: &Path) -> Result<UnixListener> {
    // No longer than the socket's own name (`agent.sock`, 10 bytes, or
    // `<hash>.sock`), so it fits wherever the socket does: a pid has at
    // most 7 digits. Unique among live processes; one left by a dead
    // agent with the same pid is removed.
    let temp = fsio::parent(socket).join(format!(".{}.s", std::process::id()));
    let _ = std::fs::remove_file(&temp);
    let listener = UnixListener::bind(&temp).map_err(|e| Error::io("listen on", &temp, e))?;
    let place = || -> Result<()> {
        std::fs::set_permissions(&temp, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| Error::io("protect", &temp, e))?;
        listener
            .set_nonblocking(true)
            .map_err(|e| Error::io("listen on", &temp, e))?;
        std::fs::rename(&temp, socket).map_err(|e| Error::io("place", socket, e))
    };
    place().inspect_err(|_| {
        let _ = std::fs::remove_file(&temp);
    })?;
    Ok(listener)
}

/// The agent process itself (`vault __agent`). Reads the identity from
/// stdin, serves until its time is up, `lock`, or its socket disappears.
pub(crate) fn serve(socket: &Path, seconds: u64) -> Result<()> {
    let life = Duration::from_secs(seconds);
    if life.is_zero() || life > MAX_TIMEOUT {
        return Err(Error::usage(format!(
            "--seconds must be between 1 and {}",
            MAX_TIMEOUT.as_secs()
        )));
    }
    if !socket.is_absolute() {
        return Err(Error::usage("--socket must be an absolute path"));
    }
    // A session of its own: the terminal that started it may close.
    let _ = rustix::process::setsid();
    // Hold no directory (`vault unlock` starts it in `/` already).
    std::env::set_current_dir("/").map_err(|e| Error::io("enter", Path::new("/"), e))?;
    let held = Held::read_from(std::io::stdin())?;
    // Check it once here, so that `unlock` reports a bad identity.
    crypto::parse_identity_file(held.text(), "the agent's identity", &crypto::never_ask)?;
    let memory_locked = held.locked;
    if UnixStream::connect(socket).is_ok() {
        return Err(Error::new("another agent is already listening"));
    }
    let listener = listen(socket)?;
    let stamp = Stamp::at(socket);
    let (wake_rx, wake_tx) = UnixStream::pair().map_err(|e| Error::io("listen on", socket, e))?;
    let me = rustix::process::geteuid();
    // The time counts from when clients can reach us, so a slow start on a
    // busy machine does not eat into it. Checked: `life` is at most a week.
    let too_long = || Error::usage("--seconds is too large");
    let until = Instant::now().checked_add(life).ok_or_else(too_long)?;
    let until_wall = SystemTime::now().checked_add(life).ok_or_else(too_long)?;
    let expires_at = until_wall
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let shared = Arc::new(Shared {
        held: RwLock::new(Some(held)),
        until,
        until_wall,
        expires_at,
        memory_locked,
        clients: AtomicUsize::new(0),
        wake: wake_tx,
        socket: socket.to_path_buf(),
        stamp: std::sync::Mutex::new(stamp),
    });

    loop {
        let left = shared.left();
        if left.is_zero() {
            break;
        }
        // Gone or replaced: someone removed our socket, so nobody can reach us.
        if !shared.reachable() {
            break;
        }
        let wait = left.min(Duration::from_secs(1));
        let wait = rustix::event::Timespec {
            tv_sec: i64::try_from(wait.as_secs()).unwrap_or(1),
            tv_nsec: i64::from(wait.subsec_nanos()),
        };
        let mut fds = [
            rustix::event::PollFd::new(&listener, rustix::event::PollFlags::IN),
            rustix::event::PollFd::new(&wake_rx, rustix::event::PollFlags::IN),
        ];
        if rustix::event::poll(&mut fds, Some(&wait)).unwrap_or(0) == 0 {
            continue;
        }
        if !fds[1].revents().is_empty() {
            break;
        }
        while let Ok((stream, _)) = listener.accept() {
            // Only our own uid; root passes the socket's mode, not this check.
            match rustix::net::sockopt::socket_peercred(&stream) {
                Ok(cred) if cred.uid == me => {}
                _ => continue,
            }
            if shared.clients.fetch_add(1, Ordering::SeqCst) >= MAX_CLIENTS {
                shared.clients.fetch_sub(1, Ordering::SeqCst);
                continue;
            }
            let client = Client(Arc::clone(&shared));
            // A connection accepted from a non-blocking listener blocks
            // (accept4 without SOCK_NONBLOCK); its reads are timed.
            let _ = std::thread::Builder::new()
                .name("client".into())
                .spawn(move || serve_one(&client, &stream));
        }
    }
    shared.close();
    shared.unlink();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;

    /// A client that finds the socket must find it listening: one that is
    /// refused takes it for stale and removes it (`connect`), which is how
    /// a concurrent `vault unlock` once removed the socket of an agent
    /// that was still starting. A client connects in a tight loop while the
    /// agent's socket appears and disappears 300 times; binding in place,
    /// without the rename, fails this within a few dozen. Only refusals
    /// while no socket was being torn down count: a client that looked the
    /// path up just before the agent unlinked it and closed is refused by
    /// the kernel, as it should be (and `remove_if_same` then finds the
    /// path changed and removes nothing).
    #[test]
    fn a_socket_appears_already_listening() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("agent.sock");
        let done = Arc::new(AtomicBool::new(false));
        let refused = Arc::new(AtomicUsize::new(0));
        // Even: a socket is being placed, or is in place; odd: torn down.
        let phase = Arc::new(AtomicUsize::new(0));
        let client = {
            let (socket, done, refused, phase) =
                (socket.clone(), done.clone(), refused.clone(), phase.clone());
            std::thread::spawn(move || {
                while !done.load(Ordering::SeqCst) {
                    let before = phase.load(Ordering::SeqCst);
                    let result = UnixStream::connect(&socket);
                    let after = phase.load(Ordering::SeqCst);
                    if let Err(e) = result
                        && e.kind() == io::ErrorKind::ConnectionRefused
                        && before == after
                        && before % 2 == 0
                    {
                        refused.fetch_add(1, Ordering::SeqCst);
                    }
                }
            })
        };
        for _ in 0..300 {
            let listener = listen(&socket).unwrap();
            let mode = std::fs::metadata(&socket).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
            // Gone from the path before it stops listening, as an agent
            // leaves (`Shared::unlink`, then exit).
            phase.fetch_add(1, Ordering::SeqCst);
            std::fs::remove_file(&socket).unwrap();
            drop(listener);
            phase.fetch_add(1, Ordering::SeqCst);
        }
        done.store(true, Ordering::SeqCst);
        client.join().unwrap();
        assert_eq!(refused.load(Ordering::SeqCst), 0);
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert!(left.is_empty(), "{left:?}");
    }

    #[test]
    fn an_agent_that_exits_at_start_says_why() {
        let mut child = Command::new("sh")
            .args([
                "-c",
                "echo 'vault: error: cannot protect /x: gone' >&2; echo hint >&2",
            ])
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.wait().unwrap();
        assert_eq!(
            why_it_exited(child.stderr.take()),
            ": cannot protect /x: gone"
        );
        let mut quiet = Command::new("true").stderr(Stdio::piped()).spawn().unwrap();
        quiet.wait().unwrap();
        assert_eq!(why_it_exited(quiet.stderr.take()), "");
        assert_eq!(why_it_exited(None), "");
    }

    fn state() -> (AgentState, age::x25519::Identity) {
        let id = crypto::generate();
        let text = crypto::identity_file_text(&id);
        let keys = crypto::parse_identity_file(text.as_bytes(), "t", &crypto::never_ask).unwrap();
        (AgentState::new(keys, 0), id)
    }

    #[test]
    fn signs_vault_messages_and_nothing_else() {
        let (state, id) = state();
        let me = id.to_public().to_string();
        let msg = crate::sign::message(&[7; 16], 3, &[9; 32]);
        let req = json!({"op": "sign", "message": hex(&msg)}).to_string();
        let (answer, stop) = respond(&state, req.as_bytes());
        assert!(!stop);
        assert_eq!(answer[0], b'G');
        let v: serde_json::Value = serde_json::from_slice(&answer[1..]).unwrap();
        assert_eq!(v["recipient"], me.as_str());
        let sig = unhex(v["signature"].as_str().unwrap()).unwrap();
        assert!(crate::sign::verify(&me, &msg, &sig));
        // Anything without the prefix, or of another length, is refused.
        let mut other = msg.clone();
        other[0] ^= 1;
        for m in [
            other,
            msg[..msg.len() - 1].to_vec(),
            b"hello".to_vec(),
            vec![],
        ] {
            let req = json!({"op": "sign", "message": hex(&m)}).to_string();
            let (answer, _) = respond(&state, req.as_bytes());
            assert_eq!(answer[0], b'E', "{m:?}");
        }
        let (answer, _) = respond(&state, br#"{"op": "sign"}"#);
        assert_eq!(answer[0], b'E');
    }

    #[test]
    fn unwraps_only_its_own_stanzas_and_never_reveals_the_identity() {
        let (state, id) = state();
        let ct = crypto::encrypt_vec(&[id.to_public().to_string()], b"payload").unwrap();
        // Pull the stanzas out of the header through the agent client code path.
        let header_end = ct.windows(4).position(|w| w == b"\n---").unwrap();
        let header = std::str::from_utf8(&ct[..header_end]).unwrap();
        let mut lines = header.lines().skip(1);
        let stanza_line = lines.next().unwrap();
        let body_line = lines.next().unwrap();
        let mut parts = stanza_line.trim_start_matches("-> ").split(' ');
        let tag = parts.next().unwrap();
        let args: Vec<&str> = parts.collect();
        let body = base64_decode(body_line);
        let req =
            json!({"op": "unwrap", "stanzas": [{"tag": tag, "args": args, "body": hex(&body)}]});
        let (answer, stop) = respond(&state, req.to_string().as_bytes());
        assert!(!stop);
        assert_eq!(answer[0], b'K');
        assert_eq!(answer.len(), 17);
        // Someone else's stanza: no match.
        let other = crypto::generate();
        let ct2 = crypto::encrypt_vec(&[other.to_public().to_string()], b"x").unwrap();
        let h2 = std::str::from_utf8(&ct2[..ct2.windows(4).position(|w| w == b"\n---").unwrap()])
            .unwrap();
        let mut l2 = h2.lines().skip(1);
        let s2 = l2.next().unwrap();
        let b2 = base64_decode(l2.next().unwrap());
        let mut p2 = s2.trim_start_matches("-> ").split(' ');
        let t2 = p2.next().unwrap();
        let a2: Vec<&str> = p2.collect();
        let req = json!({"op": "unwrap", "stanzas": [{"tag": t2, "args": a2, "body": hex(&b2)}]});
        assert_eq!(&respond(&state, req.to_string().as_bytes()).0[..], b"N");
        // Status lists the public recipient only.
        let (status, _) = respond(&state, br#"{"op":"status"}"#);
        let text = String::from_utf8(status.to_vec()).unwrap();
        assert!(text.contains(&id.to_public().to_string()));
        assert!(!text.contains("AGE-SECRET-KEY"));
    }

    #[test]
    fn malformed_requests_get_errors_not_panics() {
        let (state, _) = state();
        for req in [
            &b""[..],
            b"{",
            b"[]",
            b"null",
            br#"{"op": 1}"#,
            br#"{"op": "unwrap"}"#,
            br#"{"op": "unwrap", "stanzas": [1]}"#,
            br#"{"op": "unwrap", "stanzas": [{"tag": "X25519", "args": [1], "body": ""}]}"#,
            br#"{"op": "unwrap", "stanzas": [{"tag": "X25519", "args": ["a"], "body": "zz"}]}"#,
            br#"{"op": "unwrap", "stanzas": [{"tag": "X25519", "args": ["a"], "body": "abc"}]}"#,
            br#"{"op": "unwrap", "stanzas": [{"tag": "X25519", "args": [], "body": ""}]}"#,
            br#"{"op": "give-me-the-key"}"#,
        ] {
            let (answer, stop) = respond(&state, req);
            assert!(!stop);
            assert!(
                matches!(answer[0], b'E' | b'N'),
                "{:?}",
                String::from_utf8_lossy(req)
            );
        }
    }

    #[test]
    fn frames_are_bounded() {
        let mut big = (MAX_FRAME as u32 + 1).to_be_bytes().to_vec();
        big.extend_from_slice(&[0; 8]);
        assert!(read_frame(&mut &big[..]).is_err());
        let mut ok = vec![];
        write_frame(&mut ok, b"hi").unwrap();
        assert_eq!(&read_frame(&mut &ok[..]).unwrap()[..], b"hi");
    }

    #[test]
    fn socket_paths_fit_and_differ_per_vault() {
        let a = place(Path::new("/home/a/.config/vault"))
            .unwrap()
            .unwrap()
            .socket;
        let b = place(Path::new("/home/b/.config/vault"))
            .unwrap()
            .unwrap()
            .socket;
        assert_ne!(a, b);
        let long = PathBuf::from(format!("/{}", "x".repeat(200)));
        let r = place(&long).unwrap();
        if runtime_dir().is_none() {
            assert!(r.is_none());
            assert!(no_place(&long).unwrap().is_some());
        }
    }

    fn base64_decode(s: &str) -> Vec<u8> {
        const ALPHA: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut out = vec![];
        let mut buf = 0u32;
        let mut bits = 0;
        for c in s.bytes() {
            let v = ALPHA.iter().position(|a| *a == c).unwrap() as u32;
            buf = (buf << 6) | v;
            bits += 6;
            if bits >= 8 {
                bits -= 8;
                out.push((buf >> bits) as u8);
                buf &= (1 << bits) - 1;
            }
        }
        out
    }
}
