//! Signed vaults and strict loading (DESIGN v2 "Trust" and "Schema"): the
//! attacks they exist for, performed and refused, and the team flows they
//! must not get in the way of.

use std::{fs, path::PathBuf};

use rusqlite::{Connection, MAIN_DB};
use vault::testing::{self, Keys};

use crate::support::*;

/// One person: their own HOME and VAULT_DIR (so their own trusted.json)
/// and identity file.
struct User {
    env: Env,
    key: PathBuf,
    recipient: String,
}

impl User {
    fn new() -> User {
        let env = Env::new();
        let key = env.identity.clone().unwrap();
        let text = fs::read_to_string(&key).unwrap();
        let recipient = text
            .lines()
            .find_map(|l| l.strip_prefix("# public key: "))
            .unwrap()
            .to_string();
        User {
            env,
            key,
            recipient,
        }
    }

    fn keys(&self) -> Keys {
        testing::parse_identity_file(&fs::read(&self.key).unwrap(), "key").unwrap()
    }

    /// A command on the team vault at `file`.
    fn on(&self, file: &std::path::Path, args: &[&str]) -> Cmd {
        self.env.vault(args).env("VAULT_FILE", file)
    }

    fn trusted(&self) -> String {
        fs::read_to_string(self.env.dir.join("trusted.json")).unwrap_or_default()
    }
}

/// A team vault made by `owner` in its own directory, holding `db`.
fn team_vault(owner: &User) -> PathBuf {
    let file = owner.env.path("repo/team.vault");
    fs::create_dir_all(file.parent().unwrap()).unwrap();
    owner.on(&file, &["init"]).run().success();
    owner
        .on(&file, &["secret", "create", "db", "PGPASSWORD=hunter2"])
        .run()
        .success();
    file
}

/// The database inside a vault file (the test can read it: it has a key).
fn database(file: &std::path::Path, keys: &Keys) -> Vec<u8> {
    testing::decrypt_vec(&fs::read(file).unwrap(), keys)
        .unwrap()
        .to_vec()
}

/// `db` changed by `sql`, as a forger with the plaintext would change it.
fn altered(db: &[u8], sql: &str) -> Vec<u8> {
    let mut conn = Connection::open_in_memory().unwrap();
    conn.deserialize_read_exact(MAIN_DB, db, db.len(), false)
        .unwrap();
    conn.execute_batch(sql).unwrap();
    conn.serialize(MAIN_DB).unwrap().to_vec()
}

/// A version-1 database as vault 1.0 wrote it (schema v1, no `meta`),
/// holding `db` = {`key`: `value`}, listing `recipients`.
fn v1_database(recipients: &[&str], key: &str, value: &str) -> Vec<u8> {
    let conn = Connection::open_in_memory().unwrap();
    conn.execute_batch(&format!(
        "{}\nINSERT INTO secrets VALUES (1, 'db', '2025-01-01T00:00:00Z', '2025-01-01T00:00:00Z');",
        crate::support::V1_SCHEMA
    ))
    .unwrap();
    conn.execute("INSERT INTO entries VALUES (1, ?1, ?2)", [key, value])
        .unwrap();
    for r in recipients {
        conn.execute(
            "INSERT INTO recipients VALUES (?1, '2025-01-01T00:00:00Z')",
            [r],
        )
        .unwrap();
    }
    let mut conn = conn;
    conn.serialize(MAIN_DB).unwrap().to_vec()
}

/// The age header's stanza lines (`-> tag args…`).
fn stanzas(file: &std::path::Path) -> Vec<String> {
    let bytes = fs::read(file).unwrap();
    let end = bytes.windows(4).position(|w| w == b"\n---").unwrap();
    String::from_utf8_lossy(&bytes[..end])
        .lines()
        .filter(|l| l.starts_with("-> "))
        .map(String::from)
        .collect()
}

const TRIGGER: &str = "CREATE TRIGGER t AFTER INSERT ON entries BEGIN
     INSERT INTO recipients VALUES ('FORGER', '2026-01-01T00:00:00Z'); END;";

/// DESIGN v2 "Schema", the first attack: a non-member encrypts, to the
/// victim's public key, a database whose trigger would add the forger as a
/// recipient on the victim's next write. Unsigned, signed by the forger,
/// at a path the victim knows or at a fresh one: refused before anything
/// runs, the file unchanged, the forger never added.
#[test]
fn a_forged_database_with_a_trigger_is_refused() {
    let victim = User::new();
    let forger = User::new();
    let file = team_vault(&victim);
    let db = database(&file, &victim.keys());
    let trigger = TRIGGER.replace("FORGER", &forger.recipient);
    let forged_v2 = altered(&db, &trigger);
    let mut v1 = v1_database(&[&victim.recipient], "PGPASSWORD", "x");
    v1 = altered(&v1, &trigger);
    let both = [victim.recipient.clone(), forger.recipient.clone()];
    let signed_by_forger = testing::forge::seal(
        &forged_v2,
        &both,
        Some(testing::forge::signature(&forged_v2, &forger.keys()).unwrap()),
    )
    .unwrap();
    let cases = [
        (
            "v2, unsigned",
            testing::forge::seal(&forged_v2, &both, None).unwrap(),
        ),
        ("v2, signed by the forger", signed_by_forger.clone()),
        (
            "v1-shaped, unsigned",
            testing::forge::seal(&v1, &both, None).unwrap(),
        ),
    ];
    for (what, bytes) in &cases {
        fs::write(&file, bytes).unwrap();
        let trusted = victim.trusted();
        for args in [
            &["recipients", "list"][..],
            &["doctor"][..],
            &["secret", "create", "new", "K=v"][..],
        ] {
            let out = victim.on(&file, args).run().fails(1);
            let all = format!("{}{}", out.stdout, out.stderr);
            assert!(
                all.contains("is damaged") && all.contains("trigger `t`"),
                "{what}, {args:?}: {all}"
            );
            assert_eq!(&fs::read(&file).unwrap(), bytes, "{what}: file changed");
            assert_eq!(victim.trusted(), trusted, "{what}: trust changed");
            assert!(!victim.trusted().contains(&forger.recipient));
        }
    }
    // Even a victim who never saw this vault (where trust on first use
    // would take the forger's signature) is protected by the strict load.
    let fresh = User::new();
    let both = [fresh.recipient.clone(), forger.recipient.clone()];
    let to_fresh = testing::forge::seal(
        &forged_v2,
        &both,
        Some(testing::forge::signature(&forged_v2, &forger.keys()).unwrap()),
    )
    .unwrap();
    fs::write(&file, &to_fresh).unwrap();
    fresh
        .on(&file, &["secret", "create", "new", "K=v"])
        .run()
        .fails(1)
        .stderr_has("holds a trigger `t`");
    assert_eq!(fs::read(&file).unwrap(), to_fresh);
    assert!(!fresh.trusted().contains(&forger.recipient));
}

/// DESIGN v2 "Schema": the strict load's message says what is wrong with
/// the schema: an extra index is "an index", and a table of the schema
/// with other SQL is said to differ, not to be one it "does not have".
#[test]
fn a_changed_schema_is_named_for_what_changed() {
    let owner = User::new();
    let file = team_vault(&owner);
    let db = database(&file, &owner.keys());
    let me = [owner.recipient.clone()];
    for (sql, says) in [
        (
            "CREATE INDEX ix ON entries(value);",
            "is damaged: its database holds an index `ix` that schema version",
        ),
        (
            "ALTER TABLE secrets ADD COLUMN z TEXT;",
            "is damaged: its table `secrets` differs from the one schema version",
        ),
    ] {
        let forged = altered(&db, sql);
        let bytes = testing::forge::seal(
            &forged,
            &me,
            Some(testing::forge::signature(&forged, &owner.keys()).unwrap()),
        )
        .unwrap();
        fs::write(&file, &bytes).unwrap();
        owner
            .on(&file, &["secret", "list"])
            .run()
            .fails(1)
            .stderr_has(says);
        assert_eq!(fs::read(&file).unwrap(), bytes, "{sql}: file changed");
    }
}

/// DESIGN v2 "Trust": a forged secret `db` that sets LD_PRELOAD. A
/// non-member can build a vault that decrypts for the victim; `run`
/// refuses it before anything runs.
#[test]
fn a_forged_ld_preload_secret_never_runs() {
    let victim = User::new();
    let forger = User::new();
    let file = team_vault(&victim);
    let marker = victim.env.path("ran");
    let run = |u: &User| {
        u.on(
            &file,
            &[
                "run",
                "-s",
                "db",
                "--",
                "sh",
                "-c",
                &format!("touch {}", marker.display()),
            ],
        )
    };
    run(&victim).run().success();
    fs::remove_file(&marker).unwrap();

    let db = database(&file, &victim.keys());
    let evil = altered(
        &db,
        "UPDATE entries SET key = 'LD_PRELOAD', value = '/tmp/evil.so'",
    );
    let v1_evil = v1_database(&[&victim.recipient], "LD_PRELOAD", "/tmp/evil.so");
    let both = [victim.recipient.clone(), forger.recipient.clone()];
    // The forger's own, valid vault, made with vault itself.
    let own = forger.env.path("own.vault");
    forger.on(&own, &["init"]).run().success();
    forger
        .on(&own, &["recipients", "add", &victim.recipient])
        .run()
        .success();
    forger
        .on(&own, &["secret", "create", "db", "LD_PRELOAD=/tmp/evil.so"])
        .run()
        .success();
    let cases = [
        (
            "unsigned",
            testing::forge::seal(&evil, &both, None).unwrap(),
            "is not signed",
        ),
        (
            "signed by the forger",
            testing::forge::seal(
                &evil,
                &both,
                Some(testing::forge::signature(&evil, &forger.keys()).unwrap()),
            )
            .unwrap(),
            "written by a key you do not trust",
        ),
        (
            "version-1-shaped",
            testing::forge::seal(&v1_evil, &both, None).unwrap(),
            "is not signed, but the vault last seen at this path was",
        ),
        (
            "the forger's own vault",
            fs::read(&own).unwrap(),
            "holds another vault",
        ),
    ];
    for (what, bytes, why) in cases {
        fs::write(&file, &bytes).unwrap();
        let out = run(&victim).run().fails(1).stderr_has(why);
        assert!(out.stderr.contains("hint: "), "{what}: {}", out.stderr);
        assert!(!marker.exists(), "{what}: the command ran");
        assert_eq!(fs::read(&file).unwrap(), bytes, "{what}");
    }
}

/// A member's vault, decrypted and re-encrypted by a non-member who knows
/// only the public keys (the signature cannot come along), or re-signed
/// with the non-member's own key: refused. The refusal names the signer's
/// fingerprint, never a value.
#[test]
fn a_vault_re_encrypted_by_a_non_member_is_refused() {
    let victim = User::new();
    let forger = User::new();
    let file = team_vault(&victim);
    let db = database(&file, &victim.keys());
    let plain = testing::forge::seal(&db, std::slice::from_ref(&victim.recipient), None).unwrap();
    fs::write(&file, &plain).unwrap();
    victim
        .on(&file, &["secret", "show", "db", "--reveal"])
        .run()
        .fails(1)
        .stderr_has("is not signed")
        .lacks("hunter2");
    let (fp, body) = testing::forge::signature(&db, &forger.keys()).unwrap();
    let resigned = testing::forge::seal(
        &db,
        std::slice::from_ref(&victim.recipient),
        Some((fp.clone(), body)),
    )
    .unwrap();
    fs::write(&file, &resigned).unwrap();
    victim
        .on(&file, &["secret", "show", "db", "--reveal"])
        .run()
        .fails(1)
        .stderr_has(&format!("was written by a key you do not trust: {fp}"))
        // Not `vault trust`: it refuses a file none of its members signed.
        .stderr_has("no member vouches for this file")
        .lacks("hunter2");
    victim
        .on(&file, &["trust", "--yes"])
        .run()
        .fails(1)
        .stderr_has("none of its members");
}

/// The signature covers the vault id, the generation and the whole
/// database: a valid stanza moved onto another file fails.
#[test]
fn a_signature_stanza_moved_onto_another_file_is_refused() {
    let owner = User::new();
    let file = team_vault(&owner);
    let keys = owner.keys();
    let old = fs::read(&file).unwrap();
    let stanza = testing::forge::stanza_of(&old, &keys).unwrap().unwrap();
    owner
        .on(&file, &["secret", "set", "db", "PGPASSWORD=changed"])
        .run()
        .success();
    let newer = database(&file, &keys);
    let moved = testing::forge::seal(
        &newer,
        std::slice::from_ref(&owner.recipient),
        Some(stanza.clone()),
    )
    .unwrap();
    fs::write(&file, &moved).unwrap();
    owner
        .on(&file, &["secret", "list"])
        .run()
        .fails(1)
        .stderr_has("has a bad signature");
    // And onto another vault altogether.
    let other = owner.env.path("other.vault");
    owner.on(&other, &["init"]).run().success();
    let other_db = database(&other, &keys);
    let moved = testing::forge::seal(
        &other_db,
        std::slice::from_ref(&owner.recipient),
        Some(stanza),
    )
    .unwrap();
    fs::write(&other, &moved).unwrap();
    owner
        .on(&other, &["secret", "list"])
        .run()
        .fails(1)
        .stderr_has("has a bad signature");
}

/// A removed member still has the old file (git keeps it) and their key:
/// whatever they write from it, the others refuse. A teammate's
/// legitimate change (adding a member) is accepted without any prompt.
#[test]
fn removed_members_are_out_and_teammates_changes_need_no_prompt() {
    let a = User::new();
    let b = User::new();
    let c = User::new();
    let file = team_vault(&a);
    a.on(&file, &["recipients", "add", &b.recipient])
        .run()
        .success();
    // B sees it first (trust on first use, with a note), then adds C: A
    // and C accept that with no prompt and no --yes.
    b.on(&file, &["secret", "list"])
        .run()
        .success()
        .stderr_has("trusting")
        .stderr_has("on first use");
    b.on(&file, &["recipients", "add", &c.recipient])
        .run()
        .success();
    a.on(&file, &["secret", "show", "db", "--reveal"])
        .run()
        .success()
        .stdout_has("hunter2")
        .lacks("first use");
    c.on(&file, &["secret", "list"]).run().success();
    // C's own write is accepted by A and B.
    c.on(&file, &["secret", "set", "db", "FROM_C=1"])
        .run()
        .success();
    for u in [&a, &b] {
        u.on(&file, &["secret", "show", "db"])
            .run()
            .success()
            .stdout_has("FROM_C");
    }

    // B keeps a copy, then A removes B; A and C see the removal.
    let kept = fs::read(&file).unwrap();
    a.on(&file, &["recipients", "remove", &b.recipient])
        .run()
        .success();
    c.on(&file, &["secret", "list"]).run().success();
    let current = fs::read(&file).unwrap();
    // B writes from the old copy (signed with B's real key)...
    let b_copy = b.env.path("b.vault");
    fs::write(&b_copy, &kept).unwrap();
    b.on(&b_copy, &["secret", "set", "db", "PGPASSWORD=owned"])
        .run()
        .success();
    // ...and pushes it: A and C refuse it.
    let pushed = fs::read(&b_copy).unwrap();
    fs::write(&file, &pushed).unwrap();
    for u in [&a, &c] {
        u.on(&file, &["secret", "show", "db", "--reveal"])
            .run()
            .fails(1)
            .stderr_has("was written by a key you do not trust")
            .lacks("owned");
        assert_eq!(fs::read(&file).unwrap(), pushed);
    }
    fs::write(&file, &current).unwrap();
    a.on(&file, &["secret", "list"]).run().success();
}

/// A member who removes themselves signs that last write: the others read
/// it, and read it again, though its signer is no longer a member; what
/// the departed member signs next is refused.
#[test]
fn a_member_who_left_signed_their_last_write() {
    let a = User::new();
    let b = User::new();
    let file = team_vault(&a);
    a.on(&file, &["recipients", "add", &b.recipient])
        .run()
        .success();
    b.on(&file, &["secret", "list"]).run().success();
    a.on(&file, &["recipients", "remove", &a.recipient, "--force"])
        .run()
        .success();
    for _ in 0..2 {
        b.on(&file, &["recipients", "list"])
            .run()
            .success()
            .stdout_has(&format!("signed by {}", a.recipient));
    }
    // A still has the database of that generation (and the key): a new
    // file A signs is refused.
    let db = database(&file, &b.keys());
    let more = altered(&db, "UPDATE entries SET value = 'from-a'");
    let forged = testing::forge::seal(
        &more,
        std::slice::from_ref(&b.recipient),
        Some(testing::forge::signature(&more, &a.keys()).unwrap()),
    )
    .unwrap();
    fs::write(&file, &forged).unwrap();
    b.on(&file, &["secret", "show", "db", "--reveal"])
        .run()
        .fails(1)
        .stderr_has("was written by a key you do not trust")
        .lacks("from-a");
}

/// An older file (a branch made earlier) is read as usual and reported
/// once; it never changes the trusted set. A write from a replayed older
/// file that lists a removed member is refused, naming the member, the
/// generation and `--allow-older`; with it the write goes through as the
/// newest generation.
#[test]
fn older_generations_are_reported_once_and_replays_need_allow_older() {
    let a = User::new();
    let b = User::new();
    let file = team_vault(&a);
    a.on(&file, &["recipients", "add", &b.recipient])
        .run()
        .success();
    let with_b = fs::read(&file).unwrap();
    a.on(&file, &["recipients", "remove", &b.recipient])
        .run()
        .success();
    a.on(&file, &["recipients", "list"])
        .run()
        .success()
        .stdout_has("generation 4, signed by")
        .stdout_has("(you)");
    // The replay (generation 3, listing B).
    fs::write(&file, &with_b).unwrap();
    a.on(&file, &["secret", "list"])
        .run()
        .success()
        .stderr_has("is generation 3, older than generation 4");
    a.on(&file, &["secret", "list"])
        .run()
        .success()
        .lacks("older than");
    a.on(&file, &["doctor"]).run().stdout_has("older");
    let out = a
        .on(&file, &["secret", "set", "db", "X=1"])
        .run()
        .fails(1)
        .stderr_has(&b.recipient)
        .stderr_has("generation 4")
        .stderr_has("--allow-older");
    drop(out);
    assert_eq!(fs::read(&file).unwrap(), with_b);
    a.on(&file, &["secret", "set", "db", "X=1", "--allow-older"])
        .run()
        .success();
    a.on(&file, &["recipients", "list"])
        .run()
        .success()
        .stdout_has("generation 5")
        .stdout_has(&b.recipient);
}

/// Stock tools still get the data back (README, "Recovery"): `age -d`
/// skips the signature stanza it does not know.
#[test]
fn stock_age_decrypts_signed_files() {
    if !have("age") || !have("sqlite3") {
        eprintln!("skipped: needs age and sqlite3");
        return;
    }
    let owner = User::new();
    let file = team_vault(&owner);
    assert!(
        stanzas(&file)
            .iter()
            .any(|l| l.starts_with("-> vault-sig v1 ")),
        "{:?}",
        stanzas(&file)
    );
    let shm = tempfile::Builder::new().tempdir_in("/dev/shm").unwrap();
    let db = shm.path().join("vault.db");
    let st = std::process::Command::new("age")
        .args(["-d", "-i"])
        .arg(&owner.key)
        .arg("-o")
        .arg(&db)
        .arg(&file)
        .status()
        .unwrap();
    assert!(st.success());
    let dump = std::process::Command::new("sqlite3")
        .arg(&db)
        .arg(".dump")
        .output()
        .unwrap();
    let dump = String::from_utf8_lossy(&dump.stdout);
    assert!(
        dump.contains("hunter2") && dump.contains("vault_id"),
        "{dump}"
    );
    // The default vault too.
    let p = Env::new().init();
    p.create("s", &["K=recovered"]);
    let st = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "age -d -i {key} {v} > {db} && sqlite3 {db} .dump | grep -q recovered",
            key = p.identity.as_ref().unwrap().display(),
            v = p.file().display(),
            db = db.display()
        ))
        .status()
        .unwrap();
    assert!(st.success());
    assert!(
        stanzas(&p.file())
            .iter()
            .any(|l| l.starts_with("-> vault-sig v1 "))
    );
}

/// A version-1 file (no signature, no meta) is read as before; the first
/// write migrates and signs it; from then on an unsigned file there is
/// refused.
#[test]
fn a_v1_file_is_read_then_signed_by_its_next_write_and_never_unsigned_again() {
    let u = User::new();
    let file = u.env.path("old.vault");
    let v1 = testing::forge::seal(
        &v1_database(&[&u.recipient], "PGPASSWORD", "from-v1"),
        std::slice::from_ref(&u.recipient),
        None,
    )
    .unwrap();
    fs::write(&file, &v1).unwrap();
    u.on(&file, &["secret", "show", "db", "--reveal"])
        .run()
        .success()
        .stdout_has("from-v1");
    u.on(&file, &["recipients", "list"])
        .run()
        .success()
        .stdout_has("not signed");
    assert_eq!(
        fs::read(&file).unwrap(),
        v1,
        "a read never writes the vault"
    );
    assert!(!stanzas(&file).iter().any(|l| l.contains("vault-sig")));
    u.on(&file, &["secret", "set", "db", "NEW=1"])
        .run()
        .success();
    assert!(stanzas(&file).iter().any(|l| l.contains("vault-sig")));
    u.on(&file, &["secret", "show", "db", "--reveal"])
        .run()
        .success()
        .stdout_has("from-v1")
        .stdout_has("NEW");
    u.on(&file, &["recipients", "list"])
        .run()
        .success()
        .stdout_has("generation 1, signed by");
    // The unsigned version-1 file again (a forger's, or a revert): refused.
    fs::write(&file, &v1).unwrap();
    u.on(&file, &["secret", "list"])
        .run()
        .fails(1)
        .stderr_has("is not signed, but the vault last seen at this path was")
        .stderr_has("hint: ");
    assert_eq!(fs::read(&file).unwrap(), v1);
}

/// A vault rebuilt at the same path (a new vault id) is refused until
/// `vault trust` accepts it: without a terminal only with `--yes`.
#[test]
fn vault_trust_yes_accepts_a_rebuilt_vault() {
    let owner = User::new();
    let member = User::new();
    let file = team_vault(&owner);
    owner
        .on(&file, &["recipients", "add", &member.recipient])
        .run()
        .success();
    member.on(&file, &["secret", "list"]).run().success();
    // The owner starts over at the same path.
    fs::remove_file(&file).unwrap();
    owner.on(&file, &["init"]).run().success();
    owner
        .on(&file, &["recipients", "add", &member.recipient])
        .run()
        .success();
    owner
        .on(&file, &["secret", "create", "fresh", "K=v"])
        .run()
        .success();
    let hint = format!("vault trust --vault {}", file.display());
    member
        .on(&file, &["secret", "list"])
        .run()
        .fails(1)
        .stderr_has("holds another vault")
        .stderr_has(&hint);
    member
        .on(&file, &["trust"])
        .run()
        .fails(1)
        .stdout_has(&owner.recipient)
        .stdout_has("members (2)")
        .stderr_has("--yes");
    member
        .on(&file, &["trust", "--yes"])
        .run()
        .success()
        .stdout_has(&format!("signed by:  {}", owner.recipient))
        .stdout_has(&format!("{} (you)", member.recipient));
    member
        .on(&file, &["secret", "list"])
        .run()
        .success()
        .stdout_has("fresh");
}

/// The agent signs for the identity it holds: a write through it is a
/// signed file others verify.
#[test]
fn writes_through_the_agent_are_signed() {
    let p = Env::with_passphrase("pw").init();
    p.vault(["unlock", "--timeout", "1m"]).run().success();
    let cmd = |args: &[&str]| p.vault(args).env_remove("VAULT_PASSPHRASE_FILE");
    cmd(&["secret", "create", "a", "K=1"]).run().success();
    cmd(&["recipients", "list"])
        .run()
        .success()
        .stdout_has("signed by age1")
        .stdout_has("(you)");
    p.vault(["lock"]).run().success();
    assert!(stanzas(&p.file()).iter().any(|l| l.contains("vault-sig")));
    p.vault(["secret", "list"]).run().success().stdout_has("a");
}

/// Members with ssh keys sign with them (Ed25519, RSA-PSS), and others
/// verify with the recipient alone.
#[test]
fn ssh_members_sign_with_their_ssh_keys() {
    if !have("ssh-keygen") {
        eprintln!("skipped: needs ssh-keygen");
        return;
    }
    let owner = User::new();
    let file = team_vault(&owner);
    for kind in [&["-t", "ed25519"][..], &["-t", "rsa", "-b", "2048"][..]] {
        let key = owner.env.path(&format!("id_{}", kind[1]));
        let st = std::process::Command::new("ssh-keygen")
            .args(kind)
            .args(["-q", "-N", "", "-C", "", "-f"])
            .arg(&key)
            .status()
            .unwrap();
        assert!(st.success());
        let public = fs::read_to_string(key.with_extension("pub")).unwrap();
        owner
            .on(&file, &["recipients", "add", public.trim()])
            .run()
            .success();
        owner
            .on(
                &file,
                &[
                    "secret",
                    "set",
                    "db",
                    &format!("BY_{}=1", kind[1].to_uppercase()),
                ],
            )
            .env("VAULT_IDENTITY", &key)
            .run()
            .success();
        owner
            .on(&file, &["recipients", "list"])
            .run()
            .success()
            .stdout_has(&format!(
                "signed by {}",
                public.split(' ').take(2).collect::<Vec<_>>().join(" ")
            ));
    }
}

/// trusted.json is private and its lock is its own, not vault.lock.
#[test]
fn trusted_json_is_private_and_has_its_own_lock() {
    use std::os::unix::fs::PermissionsExt;
    let u = User::new();
    let file = team_vault(&u);
    let meta = fs::metadata(u.env.dir.join("trusted.json")).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    assert!(u.env.dir.join("trusted.lock").exists());
    assert!(u.trusted().contains(&u.recipient));
    assert!(!u.trusted().contains("hunter2"));
    // A reader updates it while a writer holds the vault's lock.
    let other = User::new();
    u.on(&file, &["recipients", "add", &other.recipient])
        .run()
        .success();
    let lock = fsio_lock(&PathBuf::from(format!("{}.lock", file.display())));
    other
        .on(&file, &["secret", "list"])
        .run()
        .success()
        .stderr_has("on first use");
    drop(lock);
}

/// Holds an exclusive lock on `path` until dropped.
fn fsio_lock(path: &std::path::Path) -> fs::File {
    let f = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .unwrap();
    f.lock().unwrap();
    f
}

/// The replay for a reader who never saw the member go: D first reads the
/// vault after A removed B (trust on first use of the newer file), then
/// finds the older file that lists B in its place. D's write from it is
/// refused all the same: B is in the older file and not in the newest.
/// And a sibling (another file at the newest generation, a branch made
/// before the removal) does not bring B back for A either.
#[test]
fn replays_are_refused_by_readers_who_never_saw_the_removal_and_siblings_undo_nothing() {
    let a = User::new();
    let b = User::new();
    let c = User::new();
    let d = User::new();
    let file = team_vault(&a);
    for who in [&b, &c, &d] {
        a.on(&file, &["recipients", "add", &who.recipient])
            .run()
            .success();
    }
    let with_b = fs::read(&file).unwrap();
    // A sibling: C writes on a copy (a branch), at the generation A's
    // removal will also reach.
    let branch = a.env.path("repo/branch.vault");
    fs::write(&branch, &with_b).unwrap();
    c.on(&branch, &["secret", "set", "db", "ON_BRANCH=1"])
        .run()
        .success();
    let sibling = fs::read(&branch).unwrap();
    a.on(&file, &["recipients", "remove", &b.recipient])
        .run()
        .success();
    let newest = fs::read(&file).unwrap();

    // D's first sight is the newest file; then the replay.
    d.on(&file, &["secret", "list"]).run().success();
    fs::write(&file, &with_b).unwrap();
    d.on(&file, &["secret", "list"])
        .run()
        .success()
        .stderr_has("older than generation");
    d.on(&file, &["secret", "set", "db", "X=1"])
        .run()
        .fails(1)
        .stderr_has(&b.recipient)
        .stderr_has("--allow-older");
    assert_eq!(fs::read(&file).unwrap(), with_b);

    // A reads the sibling in the vault's place: B stays removed.
    fs::write(&file, &newest).unwrap();
    a.on(&file, &["secret", "list"]).run().success();
    fs::write(&file, &sibling).unwrap();
    a.on(&file, &["secret", "list"]).run().success();
    a.on(&file, &["secret", "set", "db", "X=1"])
        .run()
        .fails(1)
        .stderr_has(&b.recipient)
        .stderr_has("--allow-older");
    assert_eq!(fs::read(&file).unwrap(), sibling);
}

/// `vault trust` of an older file (a replay, an old checkout) says it is
/// older, and takes its members but not its generation: the record of
/// the newest generation seen is not rolled back.
#[test]
fn trusting_an_older_file_says_so_and_keeps_the_newest_generation() {
    let a = User::new();
    let b = User::new();
    let file = team_vault(&a);
    a.on(&file, &["recipients", "add", &b.recipient])
        .run()
        .success();
    let with_b = fs::read(&file).unwrap();
    a.on(&file, &["recipients", "remove", &b.recipient])
        .run()
        .success();
    fs::write(&file, &with_b).unwrap();
    a.on(&file, &["trust", "--yes"])
        .run()
        .success()
        .stdout_has("generation: 3 (older than generation 4 seen before)");
    a.on(&file, &["secret", "set", "db", "X=1"]).run().success();
    a.on(&file, &["recipients", "list"])
        .run()
        .success()
        .stdout_has("generation 5")
        .stdout_has(&b.recipient);
}

/// `db` made a schema-v5 database, as vault wrote them before
/// `recipients.added_by` (the table as v1 made it, `user_version` 5), one
/// generation newer, so that a member can sign it as their own write.
fn as_v5(db: &[u8]) -> Vec<u8> {
    altered(
        db,
        "ALTER TABLE recipients RENAME TO recipients_v6;
         CREATE TABLE recipients (
         recipient TEXT NOT NULL UNIQUE,
         added_at  TEXT NOT NULL
     );
         INSERT INTO recipients SELECT recipient, added_at FROM recipients_v6 ORDER BY rowid;
         DROP TABLE recipients_v6;
         UPDATE meta SET value = value + 1 WHERE key = 'generation';
         PRAGMA user_version = 5;",
    )
}

/// Schema v6 from a signed v5 file: a read migrates in memory only and
/// shows who added each member as unknown; the first write keeps that
/// (NULL) and records the writer for the member it adds.
#[test]
fn a_v5_file_reads_with_added_by_unknown_and_its_next_write_records_the_writer() {
    let owner = User::new();
    let member = User::new();
    let file = team_vault(&owner);
    owner
        .on(&file, &["recipients", "add", &member.recipient])
        .run()
        .success();
    let v5 = as_v5(&database(&file, &owner.keys()));
    let both = [owner.recipient.clone(), member.recipient.clone()];
    let sealed = testing::forge::seal(
        &v5,
        &both,
        Some(testing::forge::signature(&v5, &owner.keys()).unwrap()),
    )
    .unwrap();
    fs::write(&file, &sealed).unwrap();
    owner
        .on(&file, &["doctor"])
        .run()
        .stdout_has("schema version 5 (this vault knows up to 6)");
    let list = |u: &User| -> serde_json::Value {
        let out = u
            .on(&file, &["recipients", "list", "--json"])
            .run()
            .success();
        serde_json::from_str(&out.stdout).unwrap()
    };
    let v = list(&owner);
    assert_eq!(v.as_array().unwrap().len(), 2);
    assert!(
        v[0]["added_by"].is_null() && v[1]["added_by"].is_null(),
        "{v}"
    );
    let table = owner.on(&file, &["recipients", "list"]).run().success();
    assert_eq!(table.stdout.matches("  unknown").count(), 2, "{table:?}");
    assert_eq!(fs::read(&file).unwrap(), sealed, "a read never writes");

    let third = User::new();
    member
        .on(&file, &["recipients", "add", &third.recipient])
        .run()
        .success();
    let db = database(&file, &owner.keys());
    let conn = {
        let mut c = Connection::open_in_memory().unwrap();
        c.deserialize_read_exact(MAIN_DB, &db[..], db.len(), false)
            .unwrap();
        c
    };
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, 6, "the write migrated the file");
    let v = list(&owner);
    let by: Vec<_> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["added_by"].as_str())
        .collect();
    assert_eq!(by, [None, None, Some(member.recipient.as_str())]);
}

/// A member's signed file whose `recipients.added_by` holds control
/// characters (or is no recipient) is a damaged vault: every command
/// refuses it, exit 1, nothing printed raw, the file unchanged.
#[test]
fn an_invalid_added_by_is_a_damaged_vault() {
    let owner = User::new();
    let file = team_vault(&owner);
    let db = database(&file, &owner.keys());
    for forged in [
        "UPDATE recipients SET added_by = 'age1' || char(27) || ']0;pwned' || char(7)",
        "UPDATE recipients SET added_by = 'age1nope'",
        "UPDATE recipients SET added_by = x'00'",
    ] {
        let bad = altered(
            &db,
            &format!("{forged}; UPDATE meta SET value = value + 1 WHERE key = 'generation';"),
        );
        let sealed = testing::forge::seal(
            &bad,
            std::slice::from_ref(&owner.recipient),
            Some(testing::forge::signature(&bad, &owner.keys()).unwrap()),
        )
        .unwrap();
        fs::write(&file, &sealed).unwrap();
        for args in [
            &["recipients", "list"][..],
            &["secret", "list"],
            &["run", "-s", "db", "--", "true"],
            &["secret", "set", "db", "K=v"],
        ] {
            let out = owner
                .on(&file, args)
                .run()
                .fails(1)
                .stderr_has("is damaged")
                .stderr_has("invalid `added_by`")
                .stderr_has("hint: ");
            assert!(
                !out.stderr.contains('\u{1b}') && !out.stdout.contains('\u{1b}'),
                "{forged} {args:?}: {out:?}"
            );
        }
        assert_eq!(fs::read(&file).unwrap(), sealed, "{forged}");
    }
}
