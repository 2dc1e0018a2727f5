//! `vault git setup` and `vault git show` with real git (DESIGN v2 "Git"):
//! temporary repositories, members each with their own HOME, VAULT_DIR and
//! identity, git with no system or user config of the host. (The merge
//! driver's tests are in git_merge.rs.)

use std::{
    fs,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use base64::Engine;
use sha2::{Digest, Sha256};

use crate::support::*;

/// Values that must never appear in any output.
const CANARY: &str = "canary-5e1f0a";
const CANARY2: &str = "canary-77d2b9";

/// One person: their own world, and maybe an identity file.
struct Member {
    env: Env,
    recipient: Option<String>,
}

impl Member {
    fn new() -> Member {
        let env = Env::new();
        let text = fs::read_to_string(env.identity.as_ref().unwrap()).unwrap();
        let recipient = text
            .lines()
            .find_map(|l| l.strip_prefix("# public key: "))
            .map(str::to_string);
        Member { env, recipient }
    }

    /// Someone with no identity at all (no file, no identity.age).
    fn without_identity() -> Member {
        Member {
            env: Env::bare_for_tests(),
            recipient: None,
        }
    }

    fn recipient(&self) -> &str {
        self.recipient.as_deref().unwrap()
    }

    /// `vault ARGS` in `dir`, with the binary's folder first on PATH (as
    /// git needs it to run the textconv).
    fn vault(&self, dir: &Path, args: &[&str]) -> Cmd {
        self.env
            .vault(args)
            .current_dir(dir)
            .env("PATH", path_with_vault())
    }

    /// `git ARGS` in `dir` as this member: nothing of the host's git
    /// config, no terminal (a new session, stdin from /dev/null), no pager.
    fn git(&self, dir: &Path, args: &[&str]) -> Out {
        let o = git_command(&self.env, dir, args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        Out::from(o)
    }
}

/// A repository made by `owner` under their temp dir, holding the team
/// vault `secrets.vault` with `db` (three keys, one of them CANARY) and a
/// second member `other` added, committed with its `vault git setup`.
fn team_repo(owner: &Member, other: &Member) -> PathBuf {
    let repo = owner.env.path("repo");
    fs::create_dir_all(&repo).unwrap();
    owner.git(&repo, &["init", "-q", "-b", "main"]).success();
    let v = |args: &[&str]| {
        let mut all = vec!["--vault", "secrets.vault"];
        all.extend(args);
        owner.vault(&repo, &all).run().success()
    };
    v(&["init"]);
    v(&[
        "secret",
        "create",
        "db",
        "PGUSER=app",
        &format!("PGPASSWORD={CANARY}"),
        "OLD=gone-soon",
    ]);
    v(&["recipients", "add", other.recipient()]);
    v(&["git", "setup"]);
    owner.git(&repo, &["add", "-A"]).success();
    owner.git(&repo, &["commit", "-q", "-m", "vault"]).success();
    repo
}

/// The key lines of a `vault git show` text or a diff of them:
/// `[+-]ENV/NAME KEY  FINGERPRINT`.
fn key_lines(text: &str) -> Vec<String> {
    text.lines()
        .filter(|l| {
            let l = l.trim_start_matches(['+', '-']);
            l.contains('/')
                && l.rsplit_once("  ").is_some_and(|(_, fp)| {
                    fp.len() == 12 && fp.bytes().all(|b| b.is_ascii_hexdigit())
                })
        })
        .map(str::to_string)
        .collect()
}

fn fingerprint_of(text: &str, id: &str) -> String {
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{id}  ")))
        .unwrap_or_else(|| panic!("no line {id} in {text}"))
        .to_string()
}

#[test]
fn git_setup_writes_attributes_ignore_and_config_and_a_second_run_changes_nothing() {
    if !have("git") {
        return;
    }
    let a = Member::new();
    let repo = a.env.path("repo");
    let sub = repo.join("ops dir");
    fs::create_dir_all(&sub).unwrap();
    a.git(&repo, &["init", "-q"]).success();
    // An existing .gitattributes without a final newline is kept as it is.
    fs::write(repo.join(".gitattributes"), "*.png binary").unwrap();
    let vault = sub.join("team*.vault");
    a.vault(&repo, &["init", "--vault"])
        .arg_path(&vault)
        .run()
        .success();
    let out = a
        .vault(&sub, &["git", "setup", "--vault", "team*.vault"])
        .run()
        .success();
    for line in [
        "Added `\"/ops dir/team\\\\*.vault\" merge=vault diff=vault` to",
        "Added `/ops dir/team\\*.vault.lock` to",
        "Set merge.vault.name = ",
        "Set merge.vault.driver = vault git merge %O %A %B %P (git config --local)",
        "Set diff.vault.textconv = vault git show (git config --local)",
        "commit .gitattributes and .gitignore",
    ] {
        assert!(out.stderr.contains(line), "{line:?} missing: {out:#?}");
    }
    assert!(!out.stderr.contains("not on PATH"), "{out:#?}");
    assert_eq!(
        fs::read_to_string(repo.join(".gitattributes")).unwrap(),
        "*.png binary\n\"/ops dir/team\\\\*.vault\" merge=vault diff=vault\n"
    );
    assert_eq!(
        fs::read_to_string(repo.join(".gitignore")).unwrap(),
        "/ops dir/team\\*.vault.lock\n"
    );
    // git itself reads them as meant: this file, and only this one.
    fs::write(sub.join("teamX.vault"), "").unwrap();
    let attrs = a
        .git(
            &repo,
            &[
                "check-attr",
                "merge",
                "diff",
                "--",
                "ops dir/team*.vault",
                "ops dir/teamX.vault",
            ],
        )
        .success();
    assert_eq!(
        attrs.stdout,
        "ops dir/team*.vault: merge: vault\nops dir/team*.vault: diff: vault\n\
         ops dir/teamX.vault: merge: unspecified\nops dir/teamX.vault: diff: unspecified\n"
    );
    a.git(&repo, &["check-ignore", "-q", "ops dir/team*.vault.lock"])
        .success();
    assert_eq!(
        a.git(&repo, &["check-ignore", "-q", "ops dir/teamX.vault.lock"])
            .code,
        Some(1)
    );
    for (key, want) in [
        ("merge.vault.driver", "vault git merge %O %A %B %P"),
        ("diff.vault.textconv", "vault git show"),
    ] {
        let got = a.git(&repo, &["config", "--local", "--get", key]).success();
        assert_eq!(got.stdout.trim_end(), want);
    }
    a.git(&repo, &["config", "--local", "--get", "merge.vault.name"])
        .success();

    // Again: nothing changes, and it says so.
    let files = |r: &Path| {
        [".gitattributes", ".gitignore", ".git/config"].map(|f| fs::read(r.join(f)).unwrap())
    };
    let before = files(&repo);
    a.vault(&repo, &["git", "setup", "--vault", "ops dir/team*.vault"])
        .run()
        .success()
        .stderr_has("Nothing to change")
        .lacks("Added")
        .lacks("Set ");
    assert_eq!(files(&repo), before);

    // A changed config value is put back, and the change is named.
    a.git(&repo, &["config", "--local", "diff.vault.textconv", "cat"])
        .success();
    a.vault(&repo, &["git", "setup", "--vault", "ops dir/team*.vault"])
        .run()
        .success()
        .stderr_has("Changed diff.vault.textconv from `cat` to `vault git show`")
        .lacks("Added");
}

/// A `.gitignore` that cannot be read (here a directory) failed the setup
/// after `.gitattributes` had been changed, and the error did not say so:
/// now both are read before either is written.
#[test]
fn git_setup_that_fails_changes_nothing() {
    if !have("git") {
        return;
    }
    let a = Member::new();
    let repo = a.env.path("repo");
    fs::create_dir_all(repo.join(".gitignore")).unwrap();
    a.git(&repo, &["init", "-q"]).success();
    a.vault(&repo, &["init", "--vault", "team.vault"])
        .run()
        .success();
    a.vault(&repo, &["git", "setup", "--vault", "team.vault"])
        .run()
        .fails(1)
        .stderr_has(".gitignore is a directory");
    assert!(!repo.join(".gitattributes").exists());
    let driver = a.git(&repo, &["config", "--local", "--get", "merge.vault.driver"]);
    assert!(driver.stdout.is_empty(), "{driver:#?}");
}

#[test]
fn git_setup_needs_git_a_repository_and_a_team_vault() {
    if !have("git") {
        return;
    }
    let a = Member::new();
    let outside = a.env.path("plain");
    fs::create_dir_all(&outside).unwrap();
    a.vault(&outside, &["init", "--vault", "x.vault"])
        .run()
        .success();
    a.vault(&outside, &["git", "setup", "--vault", "x.vault"])
        .run()
        .fails(1)
        .stderr_has("x.vault is not in a git repository")
        .stderr_has("git init");
    a.vault(&outside, &["git", "setup"])
        .run()
        .fails(1)
        .stderr_has("no vault file was named");
    // No git on PATH at all.
    let empty = a.env.path("empty-bin");
    fs::create_dir_all(&empty).unwrap();
    a.vault(&outside, &["git", "setup", "--vault", "x.vault"])
        .env("PATH", &empty)
        .run()
        .fails(1)
        .stderr_has("git is not installed");
    // A project's vault.toml names the vault: no --vault needed.
    let repo = a.env.path("proj");
    fs::create_dir_all(&repo).unwrap();
    a.git(&repo, &["init", "-q"]).success();
    a.vault(&repo, &["init", "--vault", "team.vault"])
        .run()
        .success();
    fs::write(repo.join("vault.toml"), "vault = \"team.vault\"\n").unwrap();
    a.vault(&repo, &["allow"]).run().success();
    a.vault(&repo, &["git", "setup"])
        .run()
        .success()
        .stderr_has("Added `/team.vault merge=vault diff=vault`");
    // git will run `vault` by name: a `vault` missing from PATH is said.
    // (Another program called `vault` there, HashiCorp's say, is named.)
    if Path::new("/usr/bin/git").exists() {
        a.vault(&repo, &["git", "setup"])
            .env("PATH", "/usr/bin:/bin")
            .run()
            .success()
            .stderr_has("Nothing to change")
            .stderr_has("vault: warning: `vault` ");
        let other = a.env.path("other-bin");
        fs::create_dir_all(&other).unwrap();
        fs::write(other.join("vault"), "#!/bin/sh\n").unwrap();
        fs::set_permissions(
            other.join("vault"),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
        a.vault(&repo, &["git", "setup"])
            .env("PATH", format!("{}:/usr/bin:/bin", other.display()))
            .run()
            .success()
            .stderr_has(&format!(
                "`vault` on PATH is {}, not this program",
                other.join("vault").display()
            ));
    }
    // The default vault named by --vault, in a VAULT_DIR kept in a
    // repository (a dotfiles checkout): named, so set up, though it takes
    // the default vault's lock.
    a.git(&a.env.home, &["init", "-q"]).success();
    a.vault(&a.env.home, &["init"]).run().success();
    a.vault(&a.env.home, &["git", "setup", "--vault"])
        .arg_path(&a.env.file())
        .run()
        .success()
        .stderr_has("Added `/.config/vault/vault.age merge=vault diff=vault`");
}

#[test]
fn diff_and_log_show_keys_by_name_with_fingerprints_never_values_the_same_for_both_members() {
    if !have("git") {
        return;
    }
    let a = Member::new();
    let b = Member::new();
    let repo = team_repo(&a, &b);
    let v = |args: &[&str]| {
        let mut all = vec!["--vault", "secrets.vault"];
        all.extend(args);
        a.vault(&repo, &all).run().success()
    };
    // One commit that changes, adds and removes a key.
    v(&[
        "secret",
        "set",
        "db",
        &format!("PGPASSWORD={CANARY2}"),
        "NEW=fresh",
    ]);
    v(&["secret", "unset", "db", "OLD"]);
    let diff = a.git(&repo, &["diff"]).success();
    let changed = key_lines(&diff.stdout);
    let has = |prefix: &str| changed.iter().any(|l| l.starts_with(prefix));
    assert!(has("+main/db NEW  "), "{}", diff.stdout);
    assert!(has("-main/db OLD  "), "{}", diff.stdout);
    assert!(has("-main/db PGPASSWORD  ") && has("+main/db PGPASSWORD  "));
    assert!(
        !has("-main/db PGUSER") && !has("+main/db PGUSER"),
        "unchanged"
    );
    assert!(diff.stdout.contains("-generation "), "{}", diff.stdout);
    a.git(&repo, &["commit", "-q", "-a", "-m", "rotate"])
        .success();

    let log = a.git(&repo, &["log", "-p"]).success();
    for o in [&diff, &log] {
        assert!(
            !o.stdout.contains(CANARY) && !o.stderr.contains(CANARY),
            "{o:#?}"
        );
        assert!(
            !o.stdout.contains(CANARY2) && !o.stderr.contains(CANARY2),
            "{o:#?}"
        );
        assert!(!o.stdout.contains("gone-soon") && !o.stdout.contains("fresh"));
        assert!(!o.stdout.contains("Binary files"), "{o:#?}");
    }
    assert!(log.stdout.contains("+main/db PGUSER  "), "{}", log.stdout);
    assert_eq!(
        key_lines(&log.stdout)
            .iter()
            .filter(|l| l.starts_with(['+', '-']))
            .count(),
        3 + 4,
        "first commit adds 3; the second changes 1 (2 lines), adds 1, removes 1: {}",
        log.stdout
    );

    // B, in their own clone with their own identity and VAULT_DIR, sees
    // the same history with the same fingerprints.
    let clone = b.env.path("clone");
    b.git(
        b.env.tmp.path(),
        &[
            "clone",
            "-q",
            repo.to_str().unwrap(),
            clone.to_str().unwrap(),
        ],
    )
    .success();
    b.vault(&clone, &["git", "setup", "--vault", "secrets.vault"])
        .run()
        .success()
        .stderr_has("Set diff.vault.textconv")
        .lacks("Added");
    let b_log = b.git(&clone, &["log", "-p"]).success();
    assert_eq!(key_lines(&b_log.stdout), key_lines(&log.stdout));
    assert!(!b_log.stdout.contains(CANARY2));
    // Who signed: A is "you" to A, and a recipient of a vault B has not
    // read yet to B; b's textconv did not record anything.
    assert!(
        log.stdout
            .contains(&format!("signed-by {} (you)", a.recipient()))
    );
    assert!(b_log.stdout.contains("this vault is not trusted here yet"));
    assert!(
        !b.env.dir.join("trusted.json").exists(),
        "textconv wrote trusted.json"
    );
    // Once B has read it, A is a trusted member.
    b.vault(&clone, &["--vault", "secrets.vault", "secret", "list"])
        .run()
        .success();
    let shown = b
        .vault(&clone, &["git", "show", "secrets.vault"])
        .run()
        .success();
    assert!(
        shown
            .stdout
            .contains(&format!("signed-by {} (a trusted member)", a.recipient())),
        "{}",
        shown.stdout
    );
    // git show of one commit, through the textconv too.
    let one = b.git(&clone, &["show", "HEAD"]).success();
    assert!(one.stdout.contains("+main/db NEW  "), "{}", one.stdout);
    assert!(!one.stdout.contains(CANARY2));
    // The header is stable and sorted.
    let mut recipients = [a.recipient().to_string(), b.recipient().to_string()];
    recipients.sort();
    let want: String = recipients
        .iter()
        .map(|r| format!("recipient {r}\n"))
        .collect();
    assert!(shown.stdout.contains(&want), "{}", shown.stdout);
    assert!(shown.stdout.starts_with("vault-id "), "{}", shown.stdout);

    // --reveal, on purpose, shows them.
    b.vault(&clone, &["git", "show", "secrets.vault", "--reveal"])
        .run()
        .success()
        .stdout_has(&format!("\"{CANARY2}\""));
}

#[test]
fn a_fingerprint_is_hmac_sha256_under_the_diff_key_as_python_computes_it() {
    if !have("python3") {
        return;
    }
    let a = Member::new();
    let dir = a.env.path("w");
    fs::create_dir_all(&dir).unwrap();
    let file = dir.join("t.vault");
    a.vault(&dir, &["init", "--vault", "t.vault"])
        .run()
        .success();
    a.vault(
        &dir,
        &[
            "--vault",
            "t.vault",
            "-e",
            "prod",
            "secret",
            "create",
            "api",
            "TOKEN=välue 1",
        ],
    )
    .run()
    .success();
    let shown = a.vault(&dir, &["git", "show", "t.vault"]).run().success();
    let fp = fingerprint_of(&shown.stdout, "prod/api TOKEN");
    // The diff key, read from the decrypted database.
    let keys = vault::testing::parse_identity_file(
        &fs::read(a.env.identity.as_ref().unwrap()).unwrap(),
        "key",
    )
    .unwrap();
    let db = vault::testing::decrypt_vec(&fs::read(&file).unwrap(), &keys).unwrap();
    let diff_key = diff_key_hex(&db);
    let py = Command::new("python3")
        .args([
            "-c",
            "import hmac, sys; k = bytes.fromhex(sys.argv[1]); \
             m = b'\\0'.join(a.encode() for a in sys.argv[2:]); \
             print(hmac.new(k, m, 'sha256').hexdigest()[:12])",
            &diff_key,
            "prod",
            "api",
            "TOKEN",
            "välue 1",
        ])
        .output()
        .unwrap();
    assert!(py.status.success(), "{py:?}");
    assert_eq!(String::from_utf8(py.stdout).unwrap().trim(), fp);
}

#[test]
fn without_an_identity_git_show_prints_the_header_and_exits_0_without_a_prompt() {
    if !have("git") {
        return;
    }
    let a = Member::new();
    let b = Member::new();
    let repo = team_repo(&a, &b);
    let nobody = Member::without_identity();
    let file = repo.join("secrets.vault");
    let signer_fp = base64::engine::general_purpose::STANDARD_NO_PAD
        .encode(Sha256::digest(a.recipient().as_bytes()));
    let start = Instant::now();
    let out = nobody
        .vault(&repo, &["git", "show"])
        .arg_path(&file)
        .run()
        .success();
    assert!(start.elapsed() < Duration::from_secs(5));
    assert_eq!(
        out.stdout,
        format!(
            "age-encrypted vault: 2 recipient stanzas (2 X25519)\n\
             signed-by-fingerprint {signer_fp}\n\
             cannot decrypt: no identity without a prompt (--identity / VAULT_IDENTITY, VAULT_AGE_KEY, the agent of `vault unlock`, or a passphrase file)\n"
        )
    );
    assert_eq!(out.stderr, "");
    // Through git: a whole log, each commit header-only, exit 0.
    let log = nobody.git(&repo, &["log", "-p"]).success();
    assert!(
        log.stdout.contains("+cannot decrypt: no identity"),
        "{log:#?}"
    );
    assert!(!log.stdout.contains(CANARY));

    // An identity.age but no passphrase source: still no prompt.
    let locked = Member {
        env: Env::with_passphrase("pw").init(),
        recipient: None,
    };
    let out = locked
        .vault(&repo, &["git", "show"])
        .arg_path(&file)
        .env_remove("VAULT_PASSPHRASE_FILE")
        .run()
        .success();
    assert!(
        out.stdout
            .contains("cannot decrypt: no identity without a prompt")
    );
    assert!(!out.stderr.contains("assphrase"), "{out:#?}");
    // With the passphrase file, it unlocks, but the file is not for them.
    let out = locked
        .vault(&repo, &["git", "show"])
        .arg_path(&file)
        .run()
        .success();
    assert!(
        out.stdout
            .contains("cannot decrypt: the file is not encrypted to your key"),
        "{out:#?}"
    );
}

#[test]
fn git_show_says_when_a_read_would_refuse_the_file_and_shows_marks_and_old_schemas() {
    let a = Member::new();
    let forger = Member::new();
    let dir = a.env.path("w");
    fs::create_dir_all(&dir).unwrap();
    let file = dir.join("t.vault");
    let on = |args: &[&str]| {
        let mut all = vec!["--vault", "t.vault"];
        all.extend(args);
        a.vault(&dir, &all).run().success()
    };
    on(&["init"]);
    on(&["secret", "create", "db", "K=v"]);
    on(&["recipients", "add", forger.recipient()]);
    on(&["recipients", "remove", forger.recipient()]);
    let shown = a.vault(&dir, &["git", "show", "t.vault"]).run().success();
    assert!(
        shown.stdout.contains("\nrotate main/db since "),
        "{}",
        shown.stdout
    );

    // The same database, signed by someone who is no member.
    let keys = |m: &Member| {
        vault::testing::parse_identity_file(
            &fs::read(m.env.identity.as_ref().unwrap()).unwrap(),
            "key",
        )
        .unwrap()
    };
    let original = vault::testing::decrypt_vec(&fs::read(&file).unwrap(), &keys(&a))
        .unwrap()
        .to_vec();
    // (The very database a trusted file holds is accepted from anyone, as
    // a read accepts it: the forger changes something.)
    let db = {
        let mut c = rusqlite::Connection::open_in_memory().unwrap();
        c.deserialize_read_exact(rusqlite::MAIN_DB, &original[..], original.len(), false)
            .unwrap();
        c.execute("UPDATE entries SET value = 'forged'", [])
            .unwrap();
        c.serialize(rusqlite::MAIN_DB).unwrap().to_vec()
    };
    // A removed member signs it.
    let signature = vault::testing::forge::signature(&db, &keys(&forger)).unwrap();
    let forged =
        vault::testing::forge::seal(&db, &[a.recipient().to_string()], Some(signature)).unwrap();
    let copy = dir.join("forged.vault");
    fs::write(&copy, &forged).unwrap();
    a.vault(&dir, &["git", "show"])
        .arg_path(&copy)
        .run()
        .success()
        .stdout_has(&format!(
            "signed-by {} (a member that generation ",
            forger.recipient()
        ))
        .stdout_has("removed: a read refuses it)");
    // Someone who never was a member signs it.
    let stranger = Member::new();
    let signature = vault::testing::forge::signature(&db, &keys(&stranger)).unwrap();
    let forged =
        vault::testing::forge::seal(&db, &[a.recipient().to_string()], Some(signature.clone()))
            .unwrap();
    fs::write(&copy, &forged).unwrap();
    let out = a
        .vault(&dir, &["git", "show"])
        .arg_path(&copy)
        .run()
        .success();
    assert!(
        out.stdout.contains(&format!(
            "signed-by-fingerprint {} (a key that is no member: a read refuses it)",
            signature.0
        )),
        "{}",
        out.stdout
    );
    // A flipped signature.
    let stanza = vault::testing::forge::signature(&db, &keys(&a)).unwrap();
    let mut flipped = stanza.clone();
    flipped.1[0] ^= 1;
    fs::write(
        &copy,
        vault::testing::forge::seal(&db, &[a.recipient().to_string()], Some(flipped)).unwrap(),
    )
    .unwrap();
    a.vault(&dir, &["git", "show"])
        .arg_path(&copy)
        .run()
        .success()
        .stdout_has("signature BAD");
    // Unsigned.
    fs::write(
        &copy,
        vault::testing::forge::seal(&db, &[a.recipient().to_string()], None).unwrap(),
    )
    .unwrap();
    a.vault(&dir, &["git", "show"])
        .arg_path(&copy)
        .run()
        .success()
        .stdout_has("unsigned: a read refuses it")
        .stdout_has("main/db K  ");
    assert!(
        !a.env.dir.join("trusted.json").exists() || {
            let t = fs::read_to_string(a.env.dir.join("trusted.json")).unwrap();
            !t.contains("forged.vault")
        }
    );

    // A member's file with unresolved conflicts: named, never their values.
    let conflicted = {
        let mut c = rusqlite::Connection::open_in_memory().unwrap();
        c.deserialize_read_exact(rusqlite::MAIN_DB, &original[..], original.len(), false)
            .unwrap();
        c.execute_batch(&format!(
            "INSERT INTO conflicts VALUES ('main', 'db', 'K', 'base-{CANARY}', 'ours-{CANARY}', NULL);
             INSERT INTO conflicts VALUES ('prod', 'api', NULL, NULL, '{{\"T\": \"{CANARY2}\"}}', NULL);"
        ))
        .unwrap();
        c.serialize(rusqlite::MAIN_DB).unwrap().to_vec()
    };
    let signature = vault::testing::forge::signature(&conflicted, &keys(&a)).unwrap();
    fs::write(
        &copy,
        vault::testing::forge::seal(&conflicted, &[a.recipient().to_string()], Some(signature))
            .unwrap(),
    )
    .unwrap();
    let out = a
        .vault(&dir, &["git", "show"])
        .arg_path(&copy)
        .run()
        .success()
        .stdout_has("\nconflict main/db K\nconflict prod/api (the whole secret)\n")
        .stdout_has("(you)");
    assert!(!out.stdout.contains(CANARY) && !out.stdout.contains(CANARY2));

    // A version-1 file: names, no fingerprints, said once.
    let mut v1 = rusqlite::Connection::open_in_memory().unwrap();
    v1.execute_batch(V1_SCHEMA).unwrap();
    v1.execute_batch(&format!(
        "INSERT INTO secrets VALUES (1, 'db', '2025-01-01T00:00:00Z', '2025-01-01T00:00:00Z');
         INSERT INTO entries VALUES (1, 'PW', 'old-v1');
         INSERT INTO recipients VALUES ('{}', '2025-01-01T00:00:00Z');",
        a.recipient()
    ))
    .unwrap();
    let plain = v1.serialize(rusqlite::MAIN_DB).unwrap().to_vec();
    let old = dir.join("v1.vault");
    fs::write(
        &old,
        vault::testing::encrypt_vec(&[a.recipient().to_string()], &plain).unwrap(),
    )
    .unwrap();
    let out = a
        .vault(&dir, &["git", "show"])
        .arg_path(&old)
        .run()
        .success();
    assert!(out.stdout.contains("schema 1\n"), "{}", out.stdout);
    assert!(
        out.stdout
            .contains("no fingerprints: schema v1 has no diff key")
    );
    assert!(out.stdout.ends_with("\nmain/db PW\n"), "{}", out.stdout);
    assert!(!out.stdout.contains("old-v1"));
}

/// Stops the agent when the test ends, pass or fail.
struct Locks<'a>(&'a Env);

impl Drop for Locks<'_> {
    fn drop(&mut self) {
        let _ = self.0.vault(["lock"]).run();
    }
}

#[test]
fn with_the_agent_git_show_decrypts_without_a_passphrase_source() {
    let env = Env::with_passphrase("agent pw").init();
    env.create("db", &[&format!("PW={CANARY}")]);
    env.vault(["unlock", "--timeout", "2m"]).run().success();
    let _lock = Locks(&env);
    let out = env
        .vault(["git", "show"])
        .arg_path(&env.file())
        .env_remove("VAULT_PASSPHRASE_FILE")
        .run()
        .success();
    assert!(out.stdout.contains("\nmain/db PW  "), "{out:#?}");
    assert!(out.stdout.contains("(you)"), "{}", out.stdout);
    assert!(
        !out.stdout.contains(CANARY) && out.stderr.is_empty(),
        "{out:#?}"
    );
    // No FILE: the context's vault.
    let default = env
        .vault(["git", "show"])
        .env_remove("VAULT_PASSPHRASE_FILE")
        .run()
        .success();
    assert_eq!(default.stdout, out.stdout);
}
