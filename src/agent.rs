//! The agent behind `vault unlock`: a detached `vault` process that holds the
//! owner's identity in memory for a while, so that each command does not pay
//! for a prompt and a second of scrypt.
//!
//! Like ssh-agent, which signs without revealing the key, the agent never
//! hands the identity out. A client sends the stanzas of an age header; the
//! agent unwraps the one meant for it and returns the 16-byte file key of
//! that one file. Clients see it as an `age::Identity` (`AgentIdentity`).
//!
//! It listens on a Unix socket (mode 0600, in a 0700 directory; never an
//! abstract socket) at `$XDG_RUNTIME_DIR/vault/<hash of VAULT_DIR>.sock`, or
//! `VAULT_DIR/agent.sock` without a runtime directory, and answers only
//! peers with its own uid. It exits when its time is up, on `vault lock`,
//! or when its socket is removed, wiping the identity.
//!
//! Wire format: each message is a 4-byte big-endian length and a body of at
//! most `MAX_FRAME` bytes; one request and one answer per connection.
//! Requests are JSON (`{"op": "status"}`, `{"op": "lock"}`,
//! `{"op": "unwrap", "stanzas": [{"tag", "args", "body": hex}]}`); answers
//! are a kind byte and a payload (`S` + JSON, `K` + file key, `N` for no
//! matching stanza, `L` for locked, `E` + message).

use std::{
    io::{self, Read, Write},
    os::unix::{
        fs::{FileTypeExt, MetadataExt, PermissionsExt},
        net::{UnixListener, UnixStream},
    },
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use age::secrecy::ExposeSecret;
use age_core::format::{FileKey, Stanza};
use serde_json::json;
use zeroize::Zeroizing;

use crate::{
    crypto::{self, Keys},
    error::{Error, Result},
    fsio,
};

/// The longest request or answer, far above any real age header.
pub(crate) const MAX_FRAME: usize = 1 << 20;

/// `sun_path` holds 108 bytes including the terminating NUL.
const MAX_SOCKET_PATH: usize = 107;

/// How long a client waits for the agent before treating it as gone.
const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// Where the agent for `vault_dir` listens: the runtime directory if there
/// is one and the path fits, else inside the vault directory.
pub(crate) fn socket_path(vault_dir: &Path) -> Result<PathBuf> {
    let name = format!(
        "{}.sock",
        short_hash(vault_dir.as_os_str().as_encoded_bytes())
    );
    let candidates = std::env::var_os("XDG_RUNTIME_DIR")
        .filter(|d| !d.is_empty())
        .map(|d| PathBuf::from(d).join("vault").join(&name))
        .into_iter()
        .chain(std::iter::once(vault_dir.join("agent.sock")));
    for p in candidates {
        if p.as_os_str().len() <= MAX_SOCKET_PATH {
            return Ok(p);
        }
    }
    Err(Error::new(
        "no place for the agent's socket: every candidate path is longer than 107 bytes",
    )
    .hint("use a shorter VAULT_DIR or XDG_RUNTIME_DIR"))
}

/// FNV-1a, enough to tell vault directories apart in a file name.
fn short_hash(bytes: &[u8]) -> String {
    let h = bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    });
    format!("{h:016x}")[..12].to_string()
}

/// What a running agent reports about itself.
#[derive(Debug, Clone)]
pub(crate) struct Status {
    pub(crate) pid: u32,
    pub(crate) expires_at: u64,
    pub(crate) recipients: Vec<String>,
    pub(crate) socket: PathBuf,
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

/// The agent's status, or `None` if no agent answers. A socket nobody
/// listens on (a killed agent) is removed on the way, silently.
pub(crate) fn status(vault_dir: &Path) -> Option<Status> {
    let socket = socket_path(vault_dir).ok()?;
    let meta = std::fs::symlink_metadata(&socket).ok()?;
    if !meta.file_type().is_socket() {
        return None;
    }
    match request(&socket, &json!({"op": "status"})) {
        Ok(answer) => parse_status(&answer, socket),
        Err(e) if is_stale(&e) => {
            let _ = std::fs::remove_file(&socket);
            None
        }
        Err(_) => None,
    }
}

fn parse_status(answer: &[u8], socket: PathBuf) -> Option<Status> {
    let body = answer.strip_prefix(b"S")?;
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    Some(Status {
        pid: v["pid"].as_u64()? as u32,
        expires_at: v["expires_at"].as_u64()?,
        recipients: v["recipients"]
            .as_array()?
            .iter()
            .filter_map(|r| r.as_str().map(String::from))
            .collect(),
        socket,
    })
}

fn is_stale(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused | io::ErrorKind::NotFound
    )
}

/// Keys backed by the agent, if one is running for `vault_dir`. Opening a
/// vault then costs one round trip (the unwrap), not two: whether the agent
/// is there is a bare connect, which the kernel answers without waiting for
/// the agent to be scheduled, and its recipients are asked for only if
/// something needs them (BENCHMARKS.md, "agent").
pub(crate) fn keys(vault_dir: &Path) -> Option<Keys> {
    let socket = socket_path(vault_dir).ok()?;
    if !listening(&socket) {
        return None;
    }
    let id = AgentIdentity {
        socket: socket.clone(),
    };
    let dir = vault_dir.to_path_buf();
    Some(Keys::from_agent(vec![Box::new(id)], move || {
        status(&dir).map(|s| s.recipients).unwrap_or_default()
    }))
}

/// Whether our agent listens on the agent's socket: a socket of our own uid
/// (an agent serves only its own uid, so another's would refuse us), and a
/// connect that succeeds. A socket nobody listens on (a killed agent) is
/// removed on the way, silently. The agent reads an empty request from
/// this connection and goes on.
fn listening(socket: &Path) -> bool {
    let me = rustix::process::geteuid().as_raw();
    let ours =
        std::fs::symlink_metadata(socket).is_ok_and(|m| m.file_type().is_socket() && m.uid() == me);
    if !ours {
        return false;
    }
    match UnixStream::connect(socket) {
        Ok(_) => true,
        Err(e) if is_stale(&e) => {
            let _ = std::fs::remove_file(socket);
            false
        }
        Err(_) => false,
    }
}

/// Asks the agent for `vault_dir` to stop. Returns whether one was running.
pub(crate) fn stop(vault_dir: &Path) -> bool {
    let Some(status) = status(vault_dir) else {
        return false;
    };
    let _ = request(&status.socket, &json!({"op": "lock"}));
    // Wait briefly for it to go, so a following `unlock` can take its place.
    let deadline = Instant::now() + Duration::from_secs(3);
    while status.socket.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    true
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
        let answer = match request(&self.socket, &json!({"op": "unwrap", "stanzas": stanzas})) {
            Ok(a) => a,
            Err(e) => return Some(Err(age::DecryptError::Io(e))),
        };
        match answer.split_first() {
            Some((b'K', key)) if key.len() == 16 => Some(Ok(FileKey::init_with_mut(|k| {
                k.copy_from_slice(key);
            }))),
            Some((b'N', _)) => None,
            _ => Some(Err(age::DecryptError::Io(io::Error::other(
                "the agent gave an unexpected answer",
            )))),
        }
    }
}

/// One request, one answer.
fn request(socket: &Path, req: &serde_json::Value) -> io::Result<Zeroizing<Vec<u8>>> {
    let mut stream = UnixStream::connect(socket)?;
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    write_frame(&mut stream, req.to_string().as_bytes())?;
    read_frame(&mut stream)
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
    stop(vault_dir);
    let socket = socket_path(vault_dir)?;
    fsio::ensure_dir(&fsio::parent(&socket))?;
    let exe = std::env::current_exe().map_err(|e| Error::io("find", Path::new("vault"), e))?;
    let mut child = Command::new(exe)
        .arg("__agent")
        .arg("--socket")
        .arg(&socket)
        .arg("--seconds")
        .arg(timeout.as_secs().to_string())
        .env_remove("VAULT_PASSPHRASE")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
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
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if let Some(s) = status(vault_dir).filter(|s| s.pid == child.id()) {
            return Ok(s);
        }
        if let Ok(Some(code)) = child.try_wait() {
            return Err(Error::new(format!("the agent exited at start ({code})"))
                .hint("`vault doctor` checks the runtime directory and the vault directory"));
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            return Err(Error::new("the agent did not start within 5 s"));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

// ---------------------------------------------------------------- serving

/// What the agent holds.
pub struct AgentState {
    keys: Keys,
    expires_at: u64,
}

impl AgentState {
    pub fn new(keys: Keys, expires_at: u64) -> Self {
        AgentState { keys, expires_at }
    }
}

/// What the agent does with one request. `None` means "stop the agent".
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
        _ => error("unknown operation"),
    }
}

/// The agent process itself (`vault __agent`). Reads the identity from
/// stdin, serves until its time is up, `lock`, or its socket disappears.
pub(crate) fn serve(socket: &Path, seconds: u64) -> Result<()> {
    // A session of its own: the terminal that started it may close.
    let _ = rustix::process::setsid();
    // Keep the identity out of swap where the limit allows; carry on if not.
    let _ = rustix::mm::mlockall(
        rustix::mm::MlockAllFlags::CURRENT | rustix::mm::MlockAllFlags::FUTURE,
    );
    let mut text = Zeroizing::new(Vec::new());
    std::io::stdin().read_to_end(&mut text).map_err(|e| {
        Error::new(format!(
            "cannot read the identity: {}",
            crate::error::describe_io(&e)
        ))
    })?;
    let keys = crypto::parse_identity_file(&text, "the agent's identity", &crypto::never_ask)?;
    drop(text);
    if std::fs::symlink_metadata(socket).is_ok() {
        if UnixStream::connect(socket).is_ok() {
            return Err(Error::new("another agent is already listening"));
        }
        let _ = std::fs::remove_file(socket);
    }
    let listener = UnixListener::bind(socket).map_err(|e| Error::io("listen on", socket, e))?;
    std::fs::set_permissions(socket, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| Error::io("protect", socket, e))?;
    let ino = std::fs::metadata(socket).map(|m| m.ino()).unwrap_or(0);
    let me = rustix::process::geteuid();
    // The time counts from when clients can reach us, so a slow start on a
    // busy machine does not eat into it.
    let state = AgentState::new(keys, unix_now() + seconds);
    let deadline = Instant::now() + Duration::from_secs(seconds);

    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        // Gone or replaced: someone removed our socket, so nobody can reach us.
        if std::fs::metadata(socket).map(|m| m.ino()).ok() != Some(ino) {
            return Ok(());
        }
        let wait = rustix::event::Timespec {
            tv_sec: left.min(Duration::from_secs(1)).as_secs().max(1) as i64,
            tv_nsec: 0,
        };
        let mut fds = [rustix::event::PollFd::new(
            &listener,
            rustix::event::PollFlags::IN,
        )];
        if rustix::event::poll(&mut fds, Some(&wait)).unwrap_or(0) == 0 {
            continue;
        }
        let Ok((mut stream, _)) = listener.accept() else {
            continue;
        };
        // Only our own uid; root passes the socket's mode, not this check.
        match rustix::net::sockopt::socket_peercred(&stream) {
            Ok(cred) if cred.uid == me => {}
            _ => continue,
        }
        let _ = stream.set_read_timeout(Some(IO_TIMEOUT));
        let _ = stream.set_write_timeout(Some(IO_TIMEOUT));
        let Ok(req) = read_frame(&mut stream) else {
            continue;
        };
        let (answer, stop) = respond(&state, &req);
        let _ = write_frame(&mut stream, &answer);
        if stop {
            break;
        }
    }
    // Remove the socket only if it is still ours.
    if std::fs::metadata(socket).map(|m| m.ino()).ok() == Some(ino) {
        let _ = std::fs::remove_file(socket);
    }
    drop(state);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> (AgentState, age::x25519::Identity) {
        let id = crypto::generate();
        let text = crypto::identity_file_text(&id);
        let keys = crypto::parse_identity_file(text.as_bytes(), "t", &crypto::never_ask).unwrap();
        (AgentState::new(keys, 0), id)
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
        let a = socket_path(Path::new("/home/a/.config/vault")).unwrap();
        let b = socket_path(Path::new("/home/b/.config/vault")).unwrap();
        assert_ne!(a, b);
        let long = PathBuf::from(format!("/{}", "x".repeat(200)));
        // SAFETY of the test: environment changes are confined to this check.
        let r = socket_path(&long);
        if std::env::var_os("XDG_RUNTIME_DIR").is_none() {
            assert!(r.is_err());
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
