//! `vault git merge` (issue 18, DESIGN v2 "Git"): real `git` in a
//! temporary repository, two members each with an identity of their own,
//! branches that change the team vault, and the merge driver in between.

use std::{fs, path::PathBuf, process::Command};

use crate::support::*;

const VAULT: &str = "team.age";

/// A repository holding a team vault, and two members, A (who made it)
/// and B, each with their own HOME, VAULT_DIR and identity file.
struct Repo {
    a: Env,
    b: Env,
    dir: PathBuf,
}

impl Repo {
    /// A repository whose `team.age` holds `db` (PGPASSWORD, PGUSER) and
    /// `api` (TOKEN), shared by A with B, committed on `main`.
    fn new() -> Repo {
        let a = Env::new();
        let b = Env::new();
        let dir = a.path("repo");
        fs::create_dir_all(&dir).unwrap();
        let r = Repo { a, b, dir };
        r.git(&r.a, &["init", "-q", "-b", "main"]);
        r.vault(&r.a, &["init"]).run().success();
        r.vault(
            &r.a,
            &["secret", "create", "db", "PGPASSWORD=base-pw", "PGUSER=app"],
        )
        .run()
        .success();
        r.vault(&r.a, &["secret", "create", "api", "TOKEN=base-token"])
            .run()
            .success();
        let rb = r.recipient(&r.b);
        r.vault(&r.a, &["recipients", "add", &rb]).run().success();
        configure_driver(&r);
        r.commit(&r.a, "base");
        // B sees the vault once, as a teammate would after cloning.
        r.vault(&r.b, &["secret", "list"]).run().success();
        r
    }

    fn file(&self) -> PathBuf {
        self.dir.join(VAULT)
    }

    fn recipient(&self, who: &Env) -> String {
        who.vault(["recipient"])
            .run()
            .success()
            .stdout
            .trim()
            .to_string()
    }

    /// A `vault` command by `who` on the team vault.
    fn vault(&self, who: &Env, args: &[&str]) -> Cmd {
        who.vault(args).env("VAULT_FILE", self.file())
    }

    /// `git` as `who`: their HOME and identity, no system or global
    /// config of the host, fixed author and committer.
    fn git_cmd(&self, who: &Env, args: &[&str]) -> Command {
        git_command(who, &self.dir, args)
    }

    #[track_caller]
    fn git(&self, who: &Env, args: &[&str]) -> String {
        let o = self.git_cmd(who, args).output().unwrap();
        assert!(
            o.status.success(),
            "git {args:?}: {}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// `git merge BRANCH` as `who`: (success, stdout + stderr).
    fn merge(&self, who: &Env, branch: &str) -> (bool, String) {
        let o = self
            .git_cmd(who, &["merge", "--no-edit", branch])
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        (o.status.success(), text)
    }

    /// `git merge BRANCH` as `who`, which must succeed with no conflict
    /// in git's output or in the vault; git's output.
    #[track_caller]
    fn merge_cleanly(&self, who: &Env, branch: &str) -> String {
        let (ok, text) = self.merge(who, branch);
        assert!(ok, "{text}");
        assert!(!text.contains("CONFLICT"), "{text}");
        self.vault(who, &["conflicts", "list"])
            .run()
            .success()
            .stderr_has("No conflicts");
        text
    }

    fn commit(&self, who: &Env, msg: &str) {
        self.git(who, &["add", "-A"]);
        self.git(who, &["commit", "-q", "-m", msg]);
    }

    fn reveal(&self, who: &Env, secret: &str, key: &str) -> String {
        let out = self
            .vault(who, &["export", secret, "--format", "json"])
            .run()
            .success();
        let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
        v[key]
            .as_str()
            .unwrap_or_else(|| panic!("{secret} has no {key}"))
            .to_string()
    }
}

/// How the driver is configured until `vault git setup` lands (the lead
/// switches this to `vault git setup`): the attribute and the driver
/// command, which gets the member's identity from the environment git
/// passes on (VAULT_DIR, VAULT_IDENTITY).
fn configure_driver(r: &Repo) {
    r.vault(&r.a, &["git", "setup"])
        .env("PATH", path_with_vault())
        .run()
        .success();
}

#[test]
fn different_secrets_on_two_branches_merge_cleanly_for_everyone() {
    if !have("git") {
        return;
    }
    let r = Repo::new();
    r.git(&r.b, &["checkout", "-q", "-b", "feature"]);
    r.vault(&r.b, &["secret", "set", "api", "TOKEN=from-b"])
        .run()
        .success();
    r.vault(&r.b, &["secret", "create", "cache", "REDIS_URL=redis://b"])
        .run()
        .success();
    r.commit(&r.b, "b: api token, cache");
    r.git(&r.a, &["checkout", "-q", "main"]);
    r.vault(&r.a, &["secret", "set", "db", "PGPASSWORD=from-a"])
        .run()
        .success();
    r.commit(&r.a, "a: db password");
    let text = r.merge_cleanly(&r.a, "feature");
    assert!(
        !text.contains("from-a") && !text.contains("from-b"),
        "{text}"
    );
    assert!(r.git(&r.a, &["status", "--porcelain"]).trim().is_empty());
    for who in [&r.a, &r.b] {
        assert_eq!(r.reveal(who, "db", "PGPASSWORD"), "from-a");
        assert_eq!(r.reveal(who, "api", "TOKEN"), "from-b");
        assert_eq!(r.reveal(who, "cache", "REDIS_URL"), "redis://b");
        assert_eq!(r.reveal(who, "db", "PGUSER"), "app");
    }
    // Stock age and sqlite3 read the merge result too.
    if have("age") && have("sqlite3") {
        let db = r.b.path("merged.db");
        let st = Command::new("age")
            .arg("-d")
            .arg("-i")
            .arg(r.b.identity.as_ref().unwrap())
            .arg("-o")
            .arg(&db)
            .arg(r.file())
            .status()
            .unwrap();
        assert!(st.success());
        let o = Command::new("sqlite3")
            .arg(&db)
            .arg("SELECT s.name, e.key, e.value FROM secrets s JOIN entries e ON e.secret_id = s.id ORDER BY 1, 2")
            .output()
            .unwrap();
        let text = String::from_utf8(o.stdout).unwrap();
        assert!(text.contains("api|TOKEN|from-b"), "{text}");
        assert!(text.contains("db|PGPASSWORD|from-a"), "{text}");
        assert!(text.contains("cache|REDIS_URL|redis://b"), "{text}");
    }
}

/// What BASE is consulted for: a secret both branches changed the same
/// way, or both deleted, merges to that without a conflict (BASE's values
/// are not needed); a secret only OURS changed keeps OURS's value, one only
/// THEIRS changed takes theirs (BASE decides which side changed).
#[test]
fn the_same_change_on_both_branches_and_a_change_on_one_merge_cleanly() {
    if !have("git") {
        return;
    }
    let r = Repo::new();
    r.vault(&r.a, &["secret", "create", "old", "GONE=soon"])
        .run()
        .success();
    r.vault(&r.a, &["secret", "create", "mail", "SMTP=base-smtp"])
        .run()
        .success();
    r.commit(&r.a, "old, mail");
    r.git(&r.b, &["checkout", "-q", "-b", "feature"]);
    // The same two changes by each member on their branch, and one more.
    let changes = |who: &Env, secret: &str, pair: &str| {
        for args in [
            &["secret", "set", "db", "PGPASSWORD=agreed"][..],
            &["secret", "delete", "old", "--yes"],
            &["secret", "set", secret, pair],
        ] {
            r.vault(who, args).run().success();
        }
    };
    changes(&r.b, "mail", "SMTP=from-b");
    r.commit(&r.b, "b: db, old, mail");
    r.git(&r.a, &["checkout", "-q", "main"]);
    changes(&r.a, "api", "TOKEN=from-a");
    r.commit(&r.a, "a: db, old, api");
    r.merge_cleanly(&r.a, "feature");
    for who in [&r.a, &r.b] {
        assert_eq!(r.reveal(who, "db", "PGPASSWORD"), "agreed");
        assert_eq!(r.reveal(who, "db", "PGUSER"), "app");
        assert_eq!(r.reveal(who, "api", "TOKEN"), "from-a");
        assert_eq!(r.reveal(who, "mail", "SMTP"), "from-b");
        let list = r.vault(who, &["secret", "list"]).run().success().stdout;
        assert!(!list.contains("old"), "{list}");
    }
}

#[test]
fn the_same_key_changed_differently_stops_git_until_resolved() {
    if !have("git") {
        return;
    }
    let r = Repo::new();
    r.git(&r.b, &["checkout", "-q", "-b", "feature"]);
    r.vault(&r.b, &["secret", "set", "db", "PGPASSWORD=theirs-pw"])
        .run()
        .success();
    r.commit(&r.b, "b: db");
    r.git(&r.a, &["checkout", "-q", "main"]);
    r.vault(&r.a, &["secret", "set", "db", "PGPASSWORD=ours-pw"])
        .run()
        .success();
    r.vault(&r.a, &["secret", "set", "api", "TOKEN=ours-token"])
        .run()
        .success();
    r.commit(&r.a, "a: db, api");
    let (ok, text) = r.merge(&r.a, "feature");
    assert!(!ok, "{text}");
    assert!(text.contains("main/db PGPASSWORD"), "{text}");
    for v in ["ours-pw", "theirs-pw", "base-pw"] {
        assert!(!text.contains(v), "a value on stderr: {text}");
    }
    let status = r.git(&r.a, &["status", "--porcelain"]);
    assert!(status.contains(&format!("UU {VAULT}")), "{status}");
    let listed = r
        .vault(&r.a, &["conflicts", "list"])
        .run()
        .success()
        .stdout_has("main/db")
        .stdout_has("PGPASSWORD")
        .lacks("ours-pw")
        .lacks("theirs-pw");
    assert_eq!(listed.stdout.lines().count(), 2, "{}", listed.stdout);
    let json = r
        .vault(&r.a, &["conflicts", "list", "--json"])
        .run()
        .success();
    let v: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(
        v,
        serde_json::json!([{"env": "main", "secret": "db", "key": "PGPASSWORD",
            "base": "set", "ours": "set", "theirs": "set"}])
    );
    // OURS's value stays in place, but nothing hands it to a process.
    r.vault(&r.a, &["run", "-s", "db", "--", "true"])
        .run()
        .fails(1)
        .stderr_has("unresolved merge conflict (PGPASSWORD)")
        .lacks("ours-pw");
    r.vault(&r.a, &["export", "db"])
        .run()
        .fails(1)
        .stderr_has("unresolved merge conflict");
    // Nor does a rename or a copy carry the values away from it.
    r.vault(&r.a, &["secret", "rename", "db", "db2"])
        .run()
        .fails(1)
        .stderr_has("resolve it before renaming it");
    r.vault(&r.a, &["secret", "copy", "db", "--to-env", "prod"])
        .run()
        .fails(1)
        .stderr_has("resolve it before copying it");
    r.vault(&r.a, &["secret", "show", "db"])
        .run()
        .success()
        .stderr_has("unresolved merge conflict (PGPASSWORD)");
    r.vault(&r.a, &["doctor"])
        .run()
        .stdout_has("1 unresolved merge conflict: main/db PGPASSWORD");
    // The other secret merged: OURS's change, no conflict.
    assert_eq!(r.reveal(&r.a, "api", "TOKEN"), "ours-token");
    r.vault(
        &r.a,
        &[
            "conflicts",
            "resolve",
            "db",
            "PGPASSWORD",
            "--take",
            "theirs",
        ],
    )
    .run()
    .success()
    .stderr_has("Resolved main/db PGPASSWORD: took theirs");
    r.git(&r.a, &["add", VAULT]);
    r.git(&r.a, &["commit", "-q", "--no-edit"]);
    for who in [&r.a, &r.b] {
        assert_eq!(r.reveal(who, "db", "PGPASSWORD"), "theirs-pw");
        assert_eq!(r.reveal(who, "api", "TOKEN"), "ours-token");
    }
    r.vault(&r.a, &["conflicts", "list", "--json"])
        .run()
        .success()
        .stdout_has("[]");
}

#[test]
fn a_secret_deleted_on_one_branch_and_changed_on_the_other_is_one_conflict() {
    if !have("git") {
        return;
    }
    let r = Repo::new();
    r.git(&r.b, &["checkout", "-q", "-b", "feature"]);
    r.vault(&r.b, &["secret", "delete", "api", "--yes"])
        .run()
        .success();
    r.commit(&r.b, "b: no api");
    r.git(&r.a, &["checkout", "-q", "main"]);
    r.vault(&r.a, &["secret", "set", "api", "TOKEN=rotated"])
        .run()
        .success();
    r.commit(&r.a, "a: api");
    let (ok, text) = r.merge(&r.a, "feature");
    assert!(!ok, "{text}");
    assert!(
        text.contains("main/api: changed on this branch, deleted on the other"),
        "{text}"
    );
    r.vault(&r.a, &["conflicts", "list"])
        .run()
        .success()
        .stdout_has("(whole secret)");
    // Taking theirs makes it exactly as they have it: gone.
    r.vault(
        &r.a,
        &["conflicts", "resolve", "main/api", "--take", "theirs"],
    )
    .run()
    .success();
    r.vault(&r.a, &["secret", "show", "api"]).run().fails(1);
    // A usage error for --all with base.
    r.vault(&r.a, &["conflicts", "resolve", "--all", "--take", "base"])
        .run()
        .fails(2);
}

/// A removes member C on main while B adds a secret on a branch: the
/// merge result is not encrypted to C, C cannot read it, and the secret B
/// added (which C could read on B's branch) is marked for rotation.
#[test]
fn a_member_removed_on_one_branch_cannot_read_the_merge_of_the_other() {
    if !have("git") {
        return;
    }
    let r = Repo::new();
    let (c, rc, _) = c_removed_on_main_while_b_adds_on_feature(&r);
    let (ok, text) = r.merge(&r.a, "feature");
    assert!(ok, "{text}");
    let list = r
        .vault(&r.a, &["recipients", "list", "--json"])
        .run()
        .success();
    assert!(!list.stdout.contains(&rc), "{}", list.stdout);
    assert!(list.stdout.contains(&r.recipient(&r.b)), "{}", list.stdout);
    for who in [&r.a, &r.b] {
        assert_eq!(r.reveal(who, "new", "K"), "added-while-c-was-in");
    }
    r.vault(&c, &["secret", "list"])
        .run()
        .fails(1)
        .stderr_has("is not encrypted to your key");
    // C could read `new` on B's branch: the merge marks it for rotation,
    // as `recipients remove` marked what A's branch held.
    let db = plaintext_of(&r.a, &r.file());
    let conn = rusqlite::Connection::open_in_memory().unwrap();
    let mut conn = conn;
    conn.deserialize_read_exact(rusqlite::MAIN_DB, &db[..], db.len(), true)
        .unwrap();
    let marked: Vec<(String, Option<String>)> = conn
        .prepare("SELECT name, rotate_since FROM secrets ORDER BY name")
        .unwrap()
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let new = marked.iter().find(|(n, _)| n == "new").unwrap();
    assert!(new.1.is_some(), "{marked:?}");
}

/// A adds member C and commits; B branches `feature` and adds secret
/// `new` (K=added-while-c-was-in), which C could read there; A removes C
/// on `main`. Returns C, C's recipient and the diff key C held (the one
/// of the commit that added C). `main` is checked out.
fn c_removed_on_main_while_b_adds_on_feature(r: &Repo) -> (Env, String, String) {
    let c = Env::new();
    let rc = r.recipient(&c);
    r.vault(&r.a, &["recipients", "add", &rc]).run().success();
    r.commit(&r.a, "a: add c");
    let known_to_c = diff_key_hex(&plaintext_of(&r.a, &r.file()));
    r.vault(&r.b, &["secret", "list"]).run().success();
    r.git(&r.b, &["checkout", "-q", "-b", "feature"]);
    r.vault(&r.b, &["secret", "create", "new", "K=added-while-c-was-in"])
        .run()
        .success();
    r.commit(&r.b, "b: new secret");
    r.git(&r.a, &["checkout", "-q", "main"]);
    r.vault(&r.a, &["recipients", "remove", &rc])
        .run()
        .success();
    r.commit(&r.a, "a: remove c");
    (c, rc, known_to_c)
}

/// B merges A's removal of C into a branch that still lists C: the merge
/// drops C, and the result's diff key is one C never held (a removed
/// member must not test guesses against later fingerprints, DESIGN v2
/// "Git"), just as A's `recipients remove` renewed it on main.
#[test]
fn a_merge_that_drops_a_member_renews_the_diff_key() {
    if !have("git") {
        return;
    }
    let r = Repo::new();
    let (_c, rc, known_to_c) = c_removed_on_main_while_b_adds_on_feature(&r);
    let on_main = diff_key_hex(&plaintext_of(&r.a, &r.file()));
    assert_ne!(on_main, known_to_c);
    r.git(&r.b, &["checkout", "-q", "feature"]);
    assert_eq!(diff_key_hex(&plaintext_of(&r.b, &r.file())), known_to_c);
    let (ok, text) = r.merge(&r.b, "main");
    assert!(ok, "{text}");
    let merged = plaintext_of(&r.b, &r.file());
    assert_ne!(
        diff_key_hex(&merged),
        known_to_c,
        "C's diff key survived the merge"
    );
    let list = r
        .vault(&r.b, &["recipients", "list", "--json"])
        .run()
        .success();
    assert!(!list.stdout.contains(&rc), "{}", list.stdout);
}

/// A member removed on one branch can no longer sign: their own branch,
/// written before the removal, is refused like any file they sign now
/// (DESIGN v2 "Trust"); a member re-does the change.
#[test]
fn a_removed_members_branch_is_refused() {
    if !have("git") {
        return;
    }
    let r = Repo::new();
    let rb = r.recipient(&r.b);
    r.git(&r.b, &["checkout", "-q", "-b", "feature"]);
    r.vault(&r.b, &["secret", "create", "new", "K=v"])
        .run()
        .success();
    r.commit(&r.b, "b: new");
    r.git(&r.a, &["checkout", "-q", "main"]);
    r.vault(&r.a, &["recipients", "remove", &rb])
        .run()
        .success();
    r.commit(&r.a, "a: remove b");
    let ours = fs::read(r.file()).unwrap();
    let (ok, text) = r.merge(&r.a, "feature");
    assert!(!ok, "{text}");
    assert!(
        text.contains("(theirs) was written by a key you do not trust"),
        "{text}"
    );
    assert_eq!(fs::read(r.file()).unwrap(), ours);
}

/// The database inside the vault file `file`, opened with `who`'s key.
fn plaintext_of(who: &Env, file: &std::path::Path) -> Vec<u8> {
    let keys = vault::testing::parse_identity_file(
        &fs::read(who.identity.as_ref().unwrap()).unwrap(),
        "key",
    )
    .unwrap();
    vault::testing::decrypt_vec(&fs::read(file).unwrap(), &keys)
        .unwrap()
        .to_vec()
}

/// A branch whose vault a non-member wrote (re-encrypted to the members
/// with their public keys, unsigned or signed by the outsider) cannot be
/// merged in: the driver refuses and OURS is left as it was.
#[test]
fn a_branch_forged_by_a_non_member_is_refused() {
    if !have("git") {
        return;
    }
    let r = Repo::new();
    let members = [r.recipient(&r.a), r.recipient(&r.b)];
    let outsider = Env::new();
    let outsider_keys = vault::testing::parse_identity_file(
        &fs::read(outsider.identity.as_ref().unwrap()).unwrap(),
        "key",
    )
    .unwrap();
    let db = plaintext_of(&r.a, &r.file());
    let forgeries = [
        vault::testing::forge::seal(&db, &members, None).unwrap(),
        vault::testing::forge::seal(
            &db,
            &members,
            Some(vault::testing::forge::signature(&db, &outsider_keys).unwrap()),
        )
        .unwrap(),
    ];
    for (i, forged) in forgeries.iter().enumerate() {
        let branch = format!("forged{i}");
        r.git(&r.a, &["checkout", "-q", "-b", &branch, "main"]);
        fs::write(r.file(), forged).unwrap();
        r.commit(&r.a, "forged");
        r.git(&r.a, &["checkout", "-q", "main"]);
        r.vault(
            &r.a,
            &["secret", "set", "db", &format!("PGPASSWORD=ours-{i}")],
        )
        .run()
        .success();
        r.commit(&r.a, "a: db");
        let ours = fs::read(r.file()).unwrap();
        let (ok, text) = r.merge(&r.a, &branch);
        assert!(!ok, "{text}");
        assert!(
            text.contains("not signed") || text.contains("a key you do not trust"),
            "{text}"
        );
        assert_eq!(fs::read(r.file()).unwrap(), ours, "OURS changed");
        r.git(&r.a, &["merge", "--abort"]);
    }
}

/// The driver run by hand, as git runs it: OURS is replaced only by a
/// successful merge.
fn three_copies(r: &Repo) -> (PathBuf, PathBuf, PathBuf) {
    let base = r.a.path("base.age");
    let ours = r.a.path("ours.age");
    let theirs = r.a.path("theirs.age");
    fs::copy(r.file(), &base).unwrap();
    r.vault(&r.b, &["secret", "set", "api", "TOKEN=theirs"])
        .run()
        .success();
    fs::copy(r.file(), &theirs).unwrap();
    fs::copy(&base, r.file()).unwrap();
    r.vault(&r.a, &["secret", "set", "db", "PGPASSWORD=ours"])
        .run()
        .success();
    fs::copy(r.file(), &ours).unwrap();
    (base, ours, theirs)
}

#[test]
fn the_driver_never_prompts_and_without_keys_leaves_ours_alone() {
    let r = Repo::new();
    let (base, ours, theirs) = three_copies(&r);
    let before = fs::read(&ours).unwrap();
    // Not even with identity.age there to unlock: no prompt, no terminal.
    r.a.vault(["git", "merge"])
        .env_remove("VAULT_IDENTITY")
        .arg_path(&base)
        .arg_path(&ours)
        .arg_path(&theirs)
        .arg(VAULT)
        .run()
        .fails(1)
        .stderr_has("never asks for a passphrase");
    assert_eq!(fs::read(&ours).unwrap(), before);
    // With the identity: merged, in place.
    r.a.vault(["git", "merge"])
        .arg_path(&base)
        .arg_path(&ours)
        .arg_path(&theirs)
        .run()
        .success();
    assert_ne!(fs::read(&ours).unwrap(), before);
    fs::copy(&ours, r.file()).unwrap();
    assert_eq!(r.reveal(&r.a, "api", "TOKEN"), "theirs");
    assert_eq!(r.reveal(&r.a, "db", "PGPASSWORD"), "ours");
}

#[test]
fn different_vaults_do_not_merge() {
    let r = Repo::new();
    let (base, ours, _) = three_copies(&r);
    let other = r.a.path("other.age");
    r.a.vault(["init", "--vault"])
        .arg_path(&other)
        .run()
        .success();
    r.a.vault(["secret", "create", "x", "K=v", "--vault"])
        .arg_path(&other)
        .run()
        .success();
    let before = fs::read(&ours).unwrap();
    r.a.vault(["git", "merge"])
        .arg_path(&base)
        .arg_path(&ours)
        .arg_path(&other)
        .run()
        .fails(1)
        .stderr_has("are different vaults");
    assert_eq!(fs::read(&ours).unwrap(), before);
    // With git's PATH (`%P`, always passed by the driver) too: the same
    // message, not the trust check's "another vault at this path".
    r.a.vault(["git", "merge"])
        .arg_path(&base)
        .arg_path(&ours)
        .arg_path(&other)
        .arg("team.age")
        .run()
        .fails(1)
        .stderr_has("are different vaults");
    assert_eq!(fs::read(&ours).unwrap(), before);
}

#[test]
fn history_of_both_branches_survives_the_merge() {
    if !have("git") {
        return;
    }
    let r = Repo::new();
    r.git(&r.b, &["checkout", "-q", "-b", "feature"]);
    for v in ["b1", "b2"] {
        r.vault(&r.b, &["secret", "set", "db", &format!("PGUSER={v}")])
            .run()
            .success();
    }
    r.commit(&r.b, "b: two users");
    r.git(&r.a, &["checkout", "-q", "main"]);
    for v in ["a1", "a2"] {
        r.vault(&r.a, &["secret", "set", "db", &format!("PGPASSWORD={v}")])
            .run()
            .success();
    }
    r.commit(&r.a, "a: two passwords");
    let (ok, text) = r.merge(&r.a, "feature");
    assert!(ok, "{text}");
    assert_eq!(r.reveal(&r.a, "db", "PGPASSWORD"), "a2");
    assert_eq!(r.reveal(&r.a, "db", "PGUSER"), "b2");
    let out = r
        .vault(&r.a, &["secret", "history", "db", "--json"])
        .run()
        .success();
    let versions: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let versions = versions.as_array().unwrap();
    // created, a1, a2, b1, b2 and the merge: six versions, none twice.
    assert_eq!(versions.len(), 6, "{}", out.stdout);
    // Each earlier version reads back with its values.
    let mut seen = vec![];
    for n in 1..=6 {
        let o = r
            .vault(
                &r.a,
                &[
                    "secret",
                    "show",
                    "db",
                    "--rev",
                    &n.to_string(),
                    "--reveal",
                    "--json",
                ],
            )
            .run()
            .success();
        let v: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
        seen.push(format!(
            "{}/{}",
            v["entries"]["PGPASSWORD"].as_str().unwrap(),
            v["entries"]["PGUSER"].as_str().unwrap()
        ));
    }
    for want in [
        "base-pw/app",
        "a1/app",
        "a2/app",
        "base-pw/b1",
        "base-pw/b2",
        "a2/b2",
    ] {
        assert!(seen.contains(&want.to_string()), "{want} missing: {seen:?}");
    }
    assert_eq!(seen.last().unwrap(), "a2/b2");
}

/// The merge checks what it takes as any write checks its rows: a value a
/// member's branch holds that no user could have typed (a NUL here, signed
/// by that member) fails the merge, OURS unchanged.
#[test]
fn an_invalid_row_taken_from_their_branch_fails_the_merge() {
    let r = Repo::new();
    let base = r.a.path("base.age");
    let ours = r.a.path("ours.age");
    let theirs = r.a.path("theirs.age");
    fs::copy(r.file(), &base).unwrap();
    fs::copy(r.file(), &ours).unwrap();
    let db = plaintext_of(&r.b, &r.file());
    let mut conn = rusqlite::Connection::open_in_memory().unwrap();
    conn.deserialize_read_exact(rusqlite::MAIN_DB, &db[..], db.len(), false)
        .unwrap();
    conn.execute_batch(
        "UPDATE entries SET value = 'x' || char(0) || 'y' WHERE key = 'TOKEN';
         UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'generation';",
    )
    .unwrap();
    let bad = conn.serialize(rusqlite::MAIN_DB).unwrap().to_vec();
    let b_keys = vault::testing::parse_identity_file(
        &fs::read(r.b.identity.as_ref().unwrap()).unwrap(),
        "key",
    )
    .unwrap();
    let members = [r.recipient(&r.a), r.recipient(&r.b)];
    let sealed = vault::testing::forge::seal(
        &bad,
        &members,
        Some(vault::testing::forge::signature(&bad, &b_keys).unwrap()),
    )
    .unwrap();
    fs::write(&theirs, sealed).unwrap();
    let before = fs::read(&ours).unwrap();
    r.a.vault(["git", "merge"])
        .arg_path(&base)
        .arg_path(&ours)
        .arg_path(&theirs)
        .run()
        .fails(1)
        .stderr_has("is damaged")
        .stderr_has("the value of `TOKEN` is invalid");
    assert_eq!(fs::read(&ours).unwrap(), before);
}

/// An unsigned (version-1-shaped) file is merged only into an unsigned
/// OURS: where the vault is signed, it can only be a forgery.
#[test]
fn an_unsigned_branch_does_not_merge_into_a_signed_vault() {
    let r = Repo::new();
    let (base, ours, _) = three_copies(&r);
    let mut conn = rusqlite::Connection::open_in_memory().unwrap();
    conn.execute_batch(V1_SCHEMA).unwrap();
    conn.execute(
        "INSERT INTO recipients VALUES (?1, '2026-01-01T00:00:00Z')",
        [r.recipient(&r.a)],
    )
    .unwrap();
    conn.execute_batch(
        "INSERT INTO secrets VALUES (1, 'db', '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z');
         INSERT INTO entries VALUES (1, 'LD_PRELOAD', '/tmp/evil.so');",
    )
    .unwrap();
    let v1 = conn.serialize(rusqlite::MAIN_DB).unwrap().to_vec();
    let theirs = r.a.path("unsigned.age");
    fs::write(
        &theirs,
        vault::testing::forge::seal(&v1, &[r.recipient(&r.a)], None).unwrap(),
    )
    .unwrap();
    let before = fs::read(&ours).unwrap();
    r.a.vault(["git", "merge"])
        .arg_path(&base)
        .arg_path(&ours)
        .arg_path(&theirs)
        .run()
        .fails(1)
        .stderr_has("(theirs) is not signed, but")
        .lacks("evil");
    assert_eq!(fs::read(&ours).unwrap(), before);
}

/// A adds C on a branch, goes back to `main` (an older checkout, which
/// does not list C) and changes a value there: that write removed no one,
/// so C stays a member, and merging the branch in, either way round, brings
/// C in without `--allow-older` (a write marks as removed only whom its own
/// starting file listed and it dropped, DESIGN v2 "Trust").
#[test]
fn a_write_on_an_older_checkout_does_not_remove_a_member_added_elsewhere() {
    if !have("git") {
        return;
    }
    for merge_into_main in [true, false] {
        let r = Repo::new();
        let c = Env::new();
        let rc = r.recipient(&c);
        r.git(&r.a, &["checkout", "-q", "-b", "add-c"]);
        r.vault(&r.a, &["recipients", "add", &rc]).run().success();
        r.commit(&r.a, "a: add c");
        r.git(&r.a, &["checkout", "-q", "main"]);
        r.vault(&r.a, &["secret", "set", "db", "PGPASSWORD=on-main"])
            .run()
            .success();
        r.commit(&r.a, "a: db password on main");
        let (ok, text) = if merge_into_main {
            r.merge(&r.a, "add-c")
        } else {
            r.git(&r.a, &["checkout", "-q", "add-c"]);
            r.merge(&r.a, "main")
        };
        assert!(ok, "into main: {merge_into_main}: {text}");
        let list = r
            .vault(&r.a, &["recipients", "list", "--json"])
            .run()
            .success();
        assert!(list.stdout.contains(&rc), "{}", list.stdout);
        assert_eq!(r.reveal(&c, "db", "PGPASSWORD"), "on-main");
        assert_eq!(r.reveal(&r.b, "db", "PGPASSWORD"), "on-main");
    }
}

/// A replay through a merge (DESIGN v2 "Trust", "Older files"): anyone
/// can commit an old, validly signed vault file on a branch made before a
/// member was added, so that the three-way merge sees that branch "add"
/// a member who has since been removed. No key is needed to do it; the
/// driver refuses, naming the member and the generation that removed
/// them, OURS is unchanged, and the hint's `--allow-older` driver
/// command merges it on purpose.
#[test]
fn a_replayed_file_cannot_bring_a_removed_member_back_through_a_merge() {
    if !have("git") {
        return;
    }
    let r = Repo::new();
    let c = Env::new();
    let rc = r.recipient(&c);
    let base = r.git(&r.a, &["rev-parse", "HEAD"]).trim().to_string();
    r.vault(&r.a, &["recipients", "add", &rc]).run().success();
    r.commit(&r.a, "a: add c");
    let with_c = fs::read(r.file()).unwrap();
    r.vault(&r.a, &["recipients", "remove", &rc])
        .run()
        .success();
    r.commit(&r.a, "a: remove c");
    // The replay: no vault command, only git and a copied file.
    r.git(&r.a, &["checkout", "-q", "-b", "replay", &base]);
    fs::write(r.file(), &with_c).unwrap();
    r.commit(&r.a, "replay the file that lists c");
    r.git(&r.a, &["checkout", "-q", "main"]);
    let ours = fs::read(r.file()).unwrap();
    let (ok, text) = r.merge(&r.a, "replay");
    assert!(!ok, "{text}");
    assert!(
        text.contains(&format!(
            "merging {VAULT} would encrypt it to {rc}, whom generation"
        )),
        "{text}"
    );
    assert!(
        text.contains("--allow-older git merge %O %A %B %P"),
        "{text}"
    );
    r.git(&r.a, &["merge", "--abort"]);
    assert_eq!(fs::read(r.file()).unwrap(), ours);
    r.vault(&c, &["secret", "list"])
        .run()
        .fails(1)
        .stderr_has("is not encrypted to your key");
    // The hint, followed: the member is back on purpose.
    r.git(
        &r.a,
        &[
            "-c",
            "merge.vault.driver=vault --allow-older git merge %O %A %B %P",
            "merge",
            "--no-edit",
            "replay",
        ],
    );
    assert_eq!(r.reveal(&c, "db", "PGPASSWORD"), "base-pw");
}

/// A description changed on one branch survives a merge with a value
/// change on the other (a description makes no version and no digest, so
/// the merge took the secret for unchanged and dropped it); changed
/// differently on both, this branch's stays and the merge says so.
#[test]
fn descriptions_changed_on_a_branch_are_merged() {
    if !have("git") {
        return;
    }
    let r = Repo::new();
    r.git(&r.b, &["checkout", "-q", "-b", "feature"]);
    r.vault(&r.b, &["secret", "describe", "db", "PGUSER", "login user"])
        .run()
        .success();
    r.vault(&r.b, &["secret", "describe", "api", "TOKEN", "from b"])
        .run()
        .success();
    r.commit(&r.b, "b: describe");
    r.git(&r.a, &["checkout", "-q", "main"]);
    r.vault(&r.a, &["secret", "set", "db", "PGPASSWORD=from-a"])
        .run()
        .success();
    r.vault(&r.a, &["secret", "describe", "api", "TOKEN", "from a"])
        .run()
        .success();
    r.commit(&r.a, "a: db password, describe api");
    let text = r.merge_cleanly(&r.a, "feature");
    assert!(text.contains("1 description of keys taken"), "{text}");
    assert!(
        text.contains("both branches changed the description of main/api TOKEN"),
        "{text}"
    );
    let show = |secret: &str| {
        let out = r
            .vault(&r.a, &["secret", "show", secret, "--json"])
            .run()
            .success();
        serde_json::from_str::<serde_json::Value>(&out.stdout).unwrap()
    };
    assert_eq!(show("db")["descriptions"]["PGUSER"], "login user");
    assert_eq!(show("api")["descriptions"]["TOKEN"], "from a");
    assert_eq!(r.reveal(&r.a, "db", "PGPASSWORD"), "from-a");
}

/// Both branches create the same secret with different values: BASE has
/// none, so `--take base` makes it absent, as there (it was refused, as
/// leaving a secret with no keys).
#[test]
fn taking_base_where_base_had_no_such_secret_removes_it() {
    if !have("git") {
        return;
    }
    let r = Repo::new();
    r.git(&r.b, &["checkout", "-q", "-b", "feature"]);
    r.vault(&r.b, &["secret", "create", "fresh", "F=from-b"])
        .run()
        .success();
    r.commit(&r.b, "b: fresh");
    r.git(&r.a, &["checkout", "-q", "main"]);
    r.vault(&r.a, &["secret", "create", "fresh", "F=from-a"])
        .run()
        .success();
    r.commit(&r.a, "a: fresh");
    let (ok, text) = r.merge(&r.a, "feature");
    assert!(!ok, "{text}");
    r.vault(
        &r.a,
        &["conflicts", "resolve", "fresh", "F", "--take", "base"],
    )
    .run()
    .success();
    r.vault(&r.a, &["secret", "show", "fresh"])
        .run()
        .fails(1)
        .stderr_has("no secret named `fresh`");
    r.vault(&r.a, &["conflicts", "list"])
        .run()
        .success()
        .stderr_has("No conflicts");
}

/// A member added on THEIRS comes into the merge with THEIRS's row: who
/// added them (`added_by`, schema v6) and when, not the merger and the
/// time of the merge. OURS's members keep theirs.
#[test]
fn a_member_added_on_their_branch_keeps_who_added_them() {
    if !have("git") {
        return;
    }
    let r = Repo::new();
    let (ra, rb) = (r.recipient(&r.a), r.recipient(&r.b));
    let c = Env::new();
    let rc = r.recipient(&c);
    r.git(&r.b, &["checkout", "-q", "-b", "feature"]);
    r.vault(&r.b, &["recipients", "add", &rc]).run().success();
    r.commit(&r.b, "b: add c");
    let list = |who: &Env| -> Vec<serde_json::Value> {
        let out = r
            .vault(who, &["recipients", "list", "--json"])
            .run()
            .success();
        serde_json::from_str::<serde_json::Value>(&out.stdout)
            .unwrap()
            .as_array()
            .unwrap()
            .clone()
    };
    let on_feature = list(&r.b);
    r.git(&r.a, &["checkout", "-q", "main"]);
    r.vault(&r.a, &["secret", "set", "db", "PGPASSWORD=on-main"])
        .run()
        .success();
    r.commit(&r.a, "a: db password on main");
    std::thread::sleep(std::time::Duration::from_millis(1100));
    r.merge_cleanly(&r.a, "feature");
    let merged = list(&r.a);
    let by: Vec<(&str, &str)> = merged
        .iter()
        .map(|m| {
            (
                m["recipient"].as_str().unwrap(),
                m["added_by"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        by,
        [
            (ra.as_str(), ra.as_str()),
            (rb.as_str(), ra.as_str()),
            (rc.as_str(), rb.as_str()),
        ]
    );
    assert_eq!(merged[2]["added_at"], on_feature[2]["added_at"]);
    assert_eq!(r.reveal(&c, "db", "PGPASSWORD"), "on-main");
}

/// Without git's PATH, each input is named by its own file and its role:
/// an empty BASE was reported as "OURS (base) is empty", and "different
/// vaults" named OURS three times.
#[test]
fn without_a_path_each_input_is_named_by_its_own_file_and_role() {
    let r = Repo::new();
    let (base, ours, theirs) = three_copies(&r);
    let before = fs::read(&ours).unwrap();
    let empty = r.a.path("empty.age");
    fs::write(&empty, b"").unwrap();
    for (role, files) in [
        ("base", [&empty, &ours, &theirs]),
        ("ours", [&base, &empty, &theirs]),
        ("theirs", [&base, &ours, &empty]),
    ] {
        r.a.vault(["git", "merge"])
            .args(files)
            .run()
            .fails(1)
            .stderr_has(&format!("{} ({role}) is empty", empty.display()));
    }
    assert_eq!(fs::read(&ours).unwrap(), before);
    let other = r.a.path("other.age");
    r.a.vault(["init", "--vault"])
        .arg_path(&other)
        .run()
        .success();
    r.a.vault(["git", "merge"])
        .arg_path(&base)
        .arg_path(&ours)
        .arg_path(&other)
        .run()
        .fails(1)
        .stderr_has(&format!(
            "{} (base), {} (ours) and {} (theirs) are different vaults",
            base.display(),
            ours.display(),
            other.display()
        ));
    assert_eq!(fs::read(&ours).unwrap(), before);
}
