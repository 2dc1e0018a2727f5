//! Secrets as files with nothing on disk (DESIGN v2 "Files, editing,
//! generating"): a value goes into a sealed memfd that `run`'s command
//! inherits across exec, and the command gets its path.
//!
//! A memfd is a file in anonymous memory (tmpfs-backed, never a directory
//! entry). Sealed against write, grow and shrink (and against further seal
//! changes), its contents are fixed for good: neither the command nor
//! anything it starts can change what another reader of the path sees.
//! The descriptor is made without close-on-exec, so it survives the exec;
//! the path `/proc/<pid>/fd/<n>` names it through the pid exec keeps (ours),
//! so it stays valid for as long as the command runs, also for a grandchild
//! that closed every inherited descriptor (it opens the path, not the fd).
//! When the command exits, the kernel frees it: nothing to clean up.

use crate::error::{Error, Result};

/// Puts `contents` into a sealed, inheritable memfd named `vault:NAME` and
/// returns its descriptor (`path_of` names it once this process has
/// exec'd). The descriptor stays open (leaked on purpose) until exec hands
/// it on.
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) fn sealed(name: &str, contents: &[u8]) -> Result<i32> {
    use std::{
        fs::File,
        io::Write,
        os::fd::{IntoRawFd, OwnedFd},
    };

    use rustix::{
        fs::{MemfdFlags, Mode, SealFlags},
        io::Errno,
    };

    let failed = |what: &str, e: std::io::Error| {
        let hint = match e.raw_os_error().map(Errno::from_raw_os_error) {
            // One descriptor per file, held until the command ends.
            Some(Errno::MFILE | Errno::NFILE) => {
                "each file is an open descriptor of the command: raise the open-file limit (`ulimit -n`), or pass fewer keys as files"
            }
            Some(Errno::NOMEM | Errno::NOSPC) => "free some memory: the files live in memory",
            _ => "--as-file and --render need Linux memfds (a kernel from 3.17 on)",
        };
        Error::new(format!(
            "cannot make the in-memory file for `{name}`: {what}: {}",
            crate::error::describe_io(&e)
        ))
        .hint(hint)
    };
    let label = format!("vault:{name}");
    // No MFD_CLOEXEC: the command must inherit it. NOEXEC_SEAL (Linux 6.3)
    // where the kernel has it, and required by `vm.memfd_noexec = 2`.
    let fd: OwnedFd =
        match rustix::fs::memfd_create(&label, MemfdFlags::ALLOW_SEALING | MemfdFlags::NOEXEC_SEAL)
        {
            Err(Errno::INVAL) => rustix::fs::memfd_create(&label, MemfdFlags::ALLOW_SEALING),
            other => other,
        }
        .map_err(|e| failed("memfd_create", e.into()))?;
    let mut file = File::from(fd);
    file.write_all(contents).map_err(|e| failed("write", e))?;
    // Read-only for its owner, as tools that check a key file's mode want.
    rustix::fs::fchmod(&file, Mode::RUSR).map_err(|e| failed("fchmod", e.into()))?;
    rustix::fs::fcntl_add_seals(
        &file,
        SealFlags::WRITE | SealFlags::GROW | SealFlags::SHRINK | SealFlags::SEAL,
    )
    .map_err(|e| failed("seal", e.into()))?;
    Ok(OwnedFd::from(file).into_raw_fd())
}

/// The path of descriptor `fd` of process `pid`, as a command is given it.
pub(crate) fn path_of(pid: u32, fd: i32) -> String {
    format!("/proc/{pid}/fd/{fd}")
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub(crate) fn sealed(_name: &str, _contents: &[u8]) -> Result<i32> {
    Err(
        Error::new("--as-file and --render need Linux: this system has no memfds")
            .hint("export the value into a file you protect yourself (`vault export`)"),
    )
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use std::{
        fs::OpenOptions,
        io::{Read, Write},
    };

    use super::*;

    #[test]
    #[allow(
        clippy::disallowed_methods,
        reason = "opening the sealed file for writing is the attack tested"
    )]
    fn the_file_reads_back_and_refuses_writes_and_growth() {
        let path = path_of(
            std::process::id(),
            sealed("TEST_KEY", b"{\"type\": \"service_account\"}\n").unwrap(),
        );
        let mut text = String::new();
        std::fs::File::open(&path)
            .unwrap()
            .read_to_string(&mut text)
            .unwrap();
        assert_eq!(text, "{\"type\": \"service_account\"}\n");

        // Root ignores the 0400 mode; the seals hold for everyone.
        let mut w = OpenOptions::new().write(true).open(&path).unwrap();
        let err = w.write_all(b"x").unwrap_err();
        assert_eq!(
            err.raw_os_error(),
            Some(rustix::io::Errno::PERM.raw_os_error())
        );
        let err = w.set_len(1 << 20).unwrap_err();
        assert_eq!(
            err.raw_os_error(),
            Some(rustix::io::Errno::PERM.raw_os_error())
        );
        let err = w.set_len(0).unwrap_err();
        assert_eq!(
            err.raw_os_error(),
            Some(rustix::io::Errno::PERM.raw_os_error())
        );
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(meta.len(), 28);
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(meta.permissions().mode() & 0o777, 0o400);
    }

    #[test]
    fn the_descriptor_is_inherited_across_exec() {
        let path = path_of(std::process::id(), sealed("INHERIT", b"x").unwrap());
        let fd: i32 = path.rsplit('/').next().unwrap().parse().unwrap();
        let flags = std::fs::read_to_string(format!("/proc/self/fdinfo/{fd}")).unwrap();
        let line = flags.lines().find(|l| l.starts_with("flags:")).unwrap();
        let bits = u32::from_str_radix(line["flags:".len()..].trim(), 8).unwrap();
        assert_eq!(bits & 0o2000000, 0, "O_CLOEXEC must be clear: {line}");
    }
}
