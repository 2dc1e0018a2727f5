//! Sharing: recipients, ssh keys, and a team vault kept beside a personal one.

use std::{fs, process::Command, time::Instant};

use vault::testing;

use crate::support::*;

/// Two users, A and B, each with an identity file; A owns a team vault.
struct Team {
    a: Env,
    b_key: std::path::PathBuf,
    b_recipient: String,
    vault: std::path::PathBuf,
}

fn team() -> Team {
    let a = Env::new();
    let vault = a.path("repo/secrets.vault");
    fs::create_dir_all(vault.parent().unwrap()).unwrap();
    let b_key = a.path("b.key");
    let b_recipient = write_identity(&b_key);
    a.vault(["init", "--vault"])
        .arg_path(&vault)
        .run()
        .success();
    a.vault(["secret", "create", "db", "PW=team-pw", "--vault"])
        .arg_path(&vault)
        .run()
        .success();
    Team {
        a,
        b_key,
        b_recipient,
        vault,
    }
}

impl Team {
    fn as_a(&self, args: &[&str]) -> Cmd {
        self.a.vault(args).env("VAULT_FILE", &self.vault)
    }
    fn as_b(&self, args: &[&str]) -> Cmd {
        self.as_a(args).env("VAULT_IDENTITY", &self.b_key)
    }
}

#[test]
fn a_adds_b_b_reads_a_removes_b_b_is_out() {
    let t = team();
    t.as_b(&["secret", "list"])
        .run()
        .fails(1)
        .stderr_has(&format!("is not encrypted to your key {}", t.b_recipient))
        .stderr_has(&format!("vault recipients add {}", t.b_recipient))
        .lacks("No matching keys");
    t.as_a(&["recipients", "add", &t.b_recipient])
        .run()
        .success();
    t.as_b(&["secret", "show", "db", "--reveal"])
        .run()
        .success()
        .stdout_has("team-pw");
    // B's writes keep A: every write encrypts to the table, not "me".
    t.as_b(&["secret", "set", "db", "B_WAS_HERE=1"])
        .run()
        .success();
    t.as_a(&["secret", "show", "db"])
        .run()
        .success()
        .stdout_has("B_WAS_HERE");
    let out = t.as_a(&["recipients", "list", "--json"]).run().success();
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 2);
    assert_eq!(v[0]["you"], true);
    assert_eq!(v[1]["recipient"], t.b_recipient.as_str());
    t.as_a(&["recipients", "remove", &t.b_recipient])
        .run()
        .success()
        .stderr_has("rotate");
    t.as_b(&["secret", "list"])
        .run()
        .fails(1)
        .stderr_has("is not encrypted to your key");
    t.as_a(&["secret", "list"]).run().success();
}

/// age's X25519 stanzas do not say whom they are for, so B, the fourth
/// recipient, would try three stanzas before theirs on every read: the
/// first full read of a version records which stanza is B's (their place
/// in the vault's list), a write records the writer's, and a read told
/// another member's stanza still opens the vault.
#[test]
fn a_read_records_which_stanza_is_the_readers_and_any_member_still_reads() {
    let t = team();
    for _ in 0..2 {
        let other = write_identity(&t.a.path("other.key"));
        t.as_a(&["recipients", "add", &other]).run().success();
    }
    t.as_a(&["recipients", "add", &t.b_recipient])
        .run()
        .success();
    // A, the first recipient, wrote it: age tries A's stanza first anyway.
    assert_eq!(testing::cached_stanza(&t.a.dir, &t.vault), Some(None));
    fs::remove_file(t.a.dir.join("cache/verified")).unwrap();
    t.as_b(&["secret", "show", "db", "--reveal"])
        .run()
        .success()
        .stdout_has("team-pw");
    assert_eq!(testing::cached_stanza(&t.a.dir, &t.vault), Some(Some(3)));
    for _ in 0..2 {
        t.as_b(&["secret", "show", "db", "--reveal"])
            .run()
            .success()
            .stdout_has("team-pw");
        t.as_a(&["secret", "show", "db", "--reveal"])
            .run()
            .success()
            .stdout_has("team-pw");
    }
    // B writes: the new version names B's stanza.
    t.as_b(&["secret", "set", "db", "PW=b-pw"]).run().success();
    assert_eq!(testing::cached_stanza(&t.a.dir, &t.vault), Some(Some(3)));
    t.as_a(&["secret", "show", "db", "--reveal"])
        .run()
        .success()
        .stdout_has("b-pw");
}

#[test]
fn stock_age_decrypts_the_team_vault_with_bs_key() {
    if !have("age") {
        return;
    }
    let t = team();
    t.as_a(&["recipients", "add", &t.b_recipient])
        .run()
        .success();
    let out = Command::new("age")
        .arg("-d")
        .arg("-i")
        .arg(&t.b_key)
        .arg(&t.vault)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(out.stdout.starts_with(b"SQLite format 3\0"));
}

#[test]
fn recipients_from_a_file_like_age_dash_r() {
    let t = team();
    let c_key = t.a.path("c.key");
    let c = write_identity(&c_key);
    let file = t.a.write(
        "recipients.txt",
        format!("# the team\n{}\n\n{c}\n", t.b_recipient),
    );
    t.as_a(&["recipients", "add", "-R"])
        .arg_path(&file)
        .run()
        .success();
    t.as_a(&["secret", "list"])
        .env("VAULT_IDENTITY", &c_key)
        .run()
        .success();
    let bad = t.a.write("bad.txt", "age1notarecipient\n");
    let before = fs::read(&t.vault).unwrap();
    t.as_a(&["recipients", "add", "-R"])
        .arg_path(&bad)
        .run()
        .fails(1)
        .stderr_has("line 1");
    t.as_a(&["recipients", "add", "not-a-key"])
        .run()
        .fails(1)
        .stderr_has("not an age or ssh recipient");
    assert_eq!(fs::read(&t.vault).unwrap(), before);
}

#[test]
fn removing_your_own_last_key_needs_force() {
    let t = team();
    let me = t
        .as_a(&["recipient"])
        .run()
        .success()
        .stdout
        .trim()
        .to_string();
    assert!(me.starts_with("age1"));
    let before = fs::read(&t.vault).unwrap();
    t.as_a(&["recipients", "remove", &me])
        .run()
        .fails(1)
        .stderr_has("at least one recipient");
    t.as_a(&["recipients", "add", &t.b_recipient])
        .run()
        .success();
    let before_guard = fs::read(&t.vault).unwrap();
    assert_ne!(before, before_guard);
    t.as_a(&["recipients", "remove", &me])
        .run()
        .fails(1)
        .stderr_has("--force");
    assert_eq!(fs::read(&t.vault).unwrap(), before_guard);
    t.as_a(&["recipients", "remove", &me, "--force"])
        .run()
        .success();
    t.as_a(&["secret", "list"])
        .run()
        .fails(1)
        .stderr_has("not encrypted to your key");
    t.as_b(&["secret", "list"]).run().success();
}

#[test]
fn ssh_ed25519_recipient_and_identity() {
    if !have("ssh-keygen") {
        return;
    }
    let t = team();
    let key = t.a.path("id_ed25519");
    let st = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "b@laptop", "-f"])
        .arg(&key)
        .status()
        .unwrap();
    assert!(st.success());
    let public = fs::read_to_string(key.with_extension("pub")).unwrap();
    t.as_a(&["recipients", "add", public.trim()])
        .run()
        .success();
    t.as_a(&["secret", "show", "db", "--reveal"])
        .env("VAULT_IDENTITY", &key)
        .run()
        .success()
        .stdout_has("team-pw");
    // The comment is not part of the stored recipient.
    t.as_a(&["recipients", "list"])
        .run()
        .success()
        .stdout_has("ssh-ed25519 AAAA")
        .lacks("b@laptop");
    // An ssh-rsa key works too.
    let rsa = t.a.path("id_rsa");
    let st = Command::new("ssh-keygen")
        .args(["-q", "-t", "rsa", "-b", "2048", "-N", "", "-f"])
        .arg(&rsa)
        .status()
        .unwrap();
    assert!(st.success());
    let rsa_pub = t.a.path("id_rsa.pub");
    t.as_a(&["recipients", "add", "-R"])
        .arg_path(&rsa_pub)
        .run()
        .success();
    t.as_a(&["secret", "list"])
        .env("VAULT_IDENTITY", &rsa)
        .run()
        .success();
    // An encrypted ssh key with no terminal fails at once, clearly.
    let enc = t.a.path("id_enc");
    Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "a passphrase", "-f"])
        .arg(&enc)
        .status()
        .unwrap();
    t.as_a(&["secret", "list"])
        .env("VAULT_IDENTITY", &enc)
        .run()
        .fails(1)
        .stderr_has("no terminal");
}

#[test]
fn encrypted_ssh_key_asks_its_passphrase_on_the_terminal() {
    if !have("ssh-keygen") || !have("expect") {
        return;
    }
    let t = team();
    let enc = t.a.path("id_enc");
    Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "ssh pass", "-f"])
        .arg(&enc)
        .status()
        .unwrap();
    let public = fs::read_to_string(t.a.path("id_enc.pub")).unwrap();
    t.as_a(&["recipients", "add", public.trim()])
        .run()
        .success();
    let script = format!(
        "set timeout 30\nspawn {BIN} secret show db --reveal\nexpect \"Passphrase for the ssh key\"\nsleep 0.3\nsend \"ssh pass\\r\"\nexpect eof\n"
    );
    let out = Command::new("expect")
        .arg("-c")
        .arg(script)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap())
        .env("VAULT_FILE", &t.vault)
        .env("VAULT_DIR", &t.a.dir)
        .env("VAULT_IDENTITY", &enc)
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("team-pw"),
        "{out:?}"
    );
}

#[test]
fn team_vault_and_personal_vault_have_independent_locks() {
    let t = team();
    t.a.create("mine", &["K=v"]);
    let personal_lock = fs::OpenOptions::new()
        .write(true)
        .open(t.a.dir.join("vault.lock"))
        .unwrap();
    personal_lock.lock().unwrap();
    let start = Instant::now();
    t.as_a(&["secret", "set", "db", "X=1"]).run().success();
    assert!(
        start.elapsed().as_secs() < 5,
        "the team vault does not wait for the personal lock"
    );
    drop(personal_lock);
    let team_lock = fs::OpenOptions::new()
        .write(true)
        .open(t.a.path("repo/secrets.vault.lock"))
        .unwrap();
    team_lock.lock().unwrap();
    let start = Instant::now();
    t.a.vault(["secret", "set", "mine", "X=1"]).run().success();
    assert!(
        start.elapsed().as_secs() < 5,
        "the personal vault does not wait for the team lock"
    );
    // Concurrent writers of the team vault are serialised by FILE.lock.
    drop(team_lock);
    let children: Vec<_> = (0..20)
        .map(|i| {
            t.as_a(&["secret", "create", &format!("t{i}"), "K=v"])
                .spawn()
        })
        .collect();
    for c in children {
        assert!(c.wait_with_output().unwrap().status.success());
    }
    let out = t.as_a(&["secret", "list", "--json"]).run().success();
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 21);
}

#[test]
fn team_vault_init_uses_the_existing_identity_and_leaves_it_alone() {
    let a = Env::with_passphrase("pw").init();
    let identity = fs::read(a.dir.join("identity.age")).unwrap();
    let team = a.path("repo/secrets.vault");
    fs::create_dir_all(team.parent().unwrap()).unwrap();
    a.vault(["init", "--vault"]).arg_path(&team).run().success();
    assert_eq!(fs::read(a.dir.join("identity.age")).unwrap(), identity);
    let mine = a.vault(["recipient"]).run().success().stdout;
    let listed = a
        .vault(["recipients", "list", "--json", "--vault"])
        .arg_path(&team)
        .run()
        .success()
        .stdout;
    assert!(listed.contains(mine.trim()));
}

/// The `you` and `signer` tags sit under a NOTE header (they had a column
/// with no header), both in one cell for the member who is both; `--json`
/// keeps its "you" and "signer" fields.
#[test]
fn recipients_list_heads_the_you_and_signer_column() {
    let t = team();
    let a = t.a.recipient();
    t.as_a(&["recipients", "add", &t.b_recipient])
        .run()
        .success();
    let out = t.as_a(&["recipients", "list"]).run().success().stdout;
    let mut lines = out.lines();
    let header: Vec<&str> = lines
        .next()
        .unwrap()
        .split("  ")
        .filter(|c| !c.is_empty())
        .map(str::trim)
        .collect();
    assert_eq!(header, ["RECIPIENT", "ADDED", "ADDED BY", "NOTE"], "{out}");
    let row = |r: &str| {
        out.lines()
            .find(|l| l.starts_with(r))
            .unwrap_or_else(|| panic!("no {r}: {out}"))
            .to_string()
    };
    // The NOTE cell starts where its header does; B (added by A, not
    // signing) has none: its row ends with ADDED BY.
    let at = out.lines().next().unwrap().find("NOTE").unwrap();
    assert_eq!(&row(&a)[at..], "you, signer", "{out}");
    assert!(row(&t.b_recipient).len() < at, "{out}");
    assert!(row(&t.b_recipient).ends_with("  you"), "{out}");
    let v: serde_json::Value = serde_json::from_str(
        &t.as_a(&["recipients", "list", "--json"])
            .run()
            .success()
            .stdout,
    )
    .unwrap();
    assert_eq!(
        (&v[0]["you"], &v[0]["signer"]),
        (&true.into(), &true.into())
    );
    assert_eq!(
        (&v[1]["you"], &v[1]["signer"]),
        (&false.into(), &false.into())
    );
}

/// `recipients.added_by` (schema v6): `init` records its creator as who
/// added the vault's first member; each `recipients add` records the
/// member who ran it. `--json` has it, the table's ADDED BY shows `you`
/// for your own, a shortened recipient for another member's.
#[test]
fn recipients_list_shows_who_added_each_member() {
    let t = team();
    let a = t.a.recipient();
    let list = |cmd: Cmd| -> serde_json::Value {
        serde_json::from_str(&cmd.arg("--json").run().success().stdout).unwrap()
    };
    let v = list(t.as_a(&["recipients", "list"]));
    assert_eq!(v[0]["recipient"], a.as_str());
    assert_eq!(v[0]["added_by"], a.as_str(), "the creator added themself");

    t.as_a(&["recipients", "add", &t.b_recipient])
        .run()
        .success();
    // B, the second member, adds C.
    let c = write_identity(&t.a.path("c.key"));
    t.as_b(&["recipients", "add", &c]).run().success();
    let v = list(t.as_a(&["recipients", "list"]));
    let by: Vec<(&str, &str)> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["recipient"].as_str().unwrap(),
                r["added_by"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        by,
        [
            (a.as_str(), a.as_str()),
            (t.b_recipient.as_str(), a.as_str()),
            (c.as_str(), t.b_recipient.as_str()),
        ]
    );

    let short = |r: &str| format!("{}…{}", &r[..10], &r[r.len() - 6..]);
    let row = |out: &str, r: &str| -> String {
        out.lines()
            .find(|l| l.starts_with(r))
            .unwrap_or_else(|| panic!("no row for {r} in {out}"))
            .to_string()
    };
    let as_b = t.as_b(&["recipients", "list"]).run().success().stdout;
    assert!(as_b.starts_with("RECIPIENT"), "{as_b}");
    assert!(as_b.lines().next().unwrap().contains("ADDED BY"), "{as_b}");
    let a_row: Vec<String> = row(&as_b, &a)
        .split_whitespace()
        .map(String::from)
        .collect();
    // RECIPIENT, ADDED (date, time), ADDED BY: A added themself.
    assert_eq!(a_row[3], short(&a), "{as_b}");
    let c_row: Vec<String> = row(&as_b, &c)
        .split_whitespace()
        .map(String::from)
        .collect();
    assert_eq!(c_row[3], "you", "B added C: {as_b}");
    let as_a = t.as_a(&["recipients", "list"]).run().success().stdout;
    let c_row: Vec<String> = row(&as_a, &c)
        .split_whitespace()
        .map(String::from)
        .collect();
    assert_eq!(c_row[3], short(&t.b_recipient), "{as_a}");
    let a_row: Vec<String> = row(&as_a, &a)
        .split_whitespace()
        .map(String::from)
        .collect();
    assert_eq!(&a_row[3..5], ["you", "you"], "{as_a}");
}
