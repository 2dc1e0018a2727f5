//! Writes that change nothing: a command whose input holds nothing is
//! refused, and one that would change nothing says so and leaves the vault
//! file as it was, byte for byte (no new generation, no new signature,
//! nothing for git to commit). `secret set` of the values a secret already
//! has still rewrites the file (the benchmark's write row relies on it).

use std::{fs, os::unix::fs::MetadataExt, time::SystemTime};

use serde_json::Value;

use crate::support::*;

/// The vault file as it is: its bytes, its mtime and its inode (a write
/// renames a new file over it, so even equal bytes would show).
#[derive(Debug, PartialEq)]
struct Snapshot {
    bytes: Vec<u8>,
    mtime: SystemTime,
    inode: u64,
}

fn snapshot(env: &Env) -> Snapshot {
    let meta = fs::metadata(env.file()).unwrap();
    Snapshot {
        bytes: fs::read(env.file()).unwrap(),
        mtime: meta.modified().unwrap(),
        inode: meta.ino(),
    }
}

#[track_caller]
fn assert_unchanged(env: &Env, before: &Snapshot, what: &str) {
    assert!(
        snapshot(env) == *before,
        "{what}: the vault file was rewritten"
    );
}

#[track_caller]
fn assert_rewritten(env: &Env, before: &Snapshot, what: &str) {
    let now = snapshot(env);
    assert_ne!(now.bytes, before.bytes, "{what}: the vault was not written");
}

/// The vault's generation, as `recipients list` reports it.
fn generation(env: &Env) -> String {
    let out = env.vault(["recipients", "list"]).run().success();
    let line = out
        .stdout
        .lines()
        .find(|l| l.starts_with("generation "))
        .unwrap_or_else(|| panic!("no generation line: {out:#?}"));
    line.split([' ', ',']).nth(1).unwrap().to_string()
}

#[test]
fn recipients_add_of_members_only_changes_nothing() {
    let env = Env::new().init();
    let me = env.recipient();
    let before = snapshot(&env);
    let generation_before = generation(&env);
    env.vault(["recipients", "add", &me])
        .run()
        .success()
        .stderr_has(&format!("vault: warning: {me} is already a recipient"))
        .stderr_has("No recipient added; the vault is unchanged");
    assert_unchanged(&env, &before, "recipients add of a member");
    assert_eq!(generation(&env), generation_before);

    // One new among members: the new one is added, and that is a write.
    let other = Env::new().recipient();
    let out = env
        .vault(["recipients", "add", &me, &other])
        .run()
        .success()
        .stderr_has(&format!("Added {other}"));
    assert!(!out.stderr.contains("unchanged"), "{out:#?}");
    assert_rewritten(&env, &before, "recipients add of a new member");
}

#[test]
fn recipients_files_that_list_nobody_are_refused() {
    let env = Env::new().init();
    let before = snapshot(&env);
    let empty = env.write("empty.txt", "");
    let comments = env.write("comments.txt", "# the team\n\n   \n# nobody yet\n");
    for command in ["add", "remove"] {
        for file in [empty.display().to_string(), comments.display().to_string()] {
            env.vault(["recipients", command, "-R", &file])
                .run()
                .fails(1)
                .stderr_has(&format!("vault: error: no recipients in {file}\nhint: "));
            assert_unchanged(&env, &before, &format!("recipients {command} -R {file}"));
        }
        // A device is no list of recipients either (`fsio::read`).
        env.vault(["recipients", command, "-R", "/dev/null"])
            .run()
            .fails(1)
            .stderr_has("vault: error: /dev/null is a device, not a file\nhint: ");
        assert_unchanged(&env, &before, &format!("recipients {command} -R /dev/null"));
    }
    // Also beside a recipient given as an argument: the file is still a
    // mistake.
    env.vault([
        "recipients",
        "add",
        &Env::new().recipient(),
        "-R",
        &empty.display().to_string(),
    ])
    .run()
    .fails(1)
    .stderr_has(&format!("no recipients in {}", empty.display()));
    assert_unchanged(&env, &before, "recipients add R -R empty.txt");
}

/// `recipients remove` of someone who is not a member was already an
/// error with nothing written; `add` of a member is the no-op above.
#[test]
fn recipients_remove_of_a_non_member_is_refused_and_writes_nothing() {
    let env = Env::new().init();
    let before = snapshot(&env);
    let other = Env::new().recipient();
    env.vault(["recipients", "remove", &other])
        .run()
        .fails(1)
        .stderr_has(&format!("{other} is not a recipient of this vault"));
    assert_unchanged(&env, &before, "recipients remove of a non-member");
}

#[test]
fn import_of_json_without_secrets_is_refused() {
    let env = Env::new().init();
    env.create("db", &["A=1"]);
    let before = snapshot(&env);
    let file = env.write("none.json", "{}\n");
    env.vault(["import", "--from-json", &file.display().to_string()])
        .run()
        .fails(1)
        .stderr_has(&format!(
            "vault: error: {} holds no secrets\nhint: ",
            file.display()
        ));
    assert_unchanged(&env, &before, "import --from-json {}");
    env.vault(["import", "--from-json", "-"])
        .stdin(" { } ")
        .run()
        .fails(1)
        .stderr_has("vault: error: stdin holds no secrets");
    assert_unchanged(&env, &before, "import --from-json - of {}");
}

#[test]
fn delete_allow_missing_of_names_not_there_changes_nothing() {
    let env = Env::new().init();
    env.create("a", &["A=1"]);
    env.create("b", &["B=1"]);
    let before = snapshot(&env);
    env.vault(["secret", "delete", "x", "y", "--yes", "--allow-missing"])
        .run()
        .success()
        .stderr_has("No secret deleted: `x`, `y` do not exist");
    assert_unchanged(&env, &before, "delete --allow-missing x y");
    env.vault(["secret", "delete", "x", "--yes", "--allow-missing"])
        .run()
        .success()
        .stderr_has("No secret deleted: `x` does not exist");
    assert_unchanged(&env, &before, "delete --allow-missing x");

    // Some there: those are deleted, the others named.
    let out = env
        .vault([
            "secret",
            "delete",
            "x",
            "a",
            "y",
            "--yes",
            "--allow-missing",
        ])
        .run()
        .success()
        .stderr_has("Deleted `a`\nNot deleted: `x`, `y` (not found)");
    assert!(!out.stderr.contains("No secret deleted"), "{out:#?}");
    assert_rewritten(&env, &before, "delete --allow-missing x a y");
    env.vault(["secret", "show", "a"]).run().fails(1);
    env.vault(["secret", "show", "b"]).run().success();

    // Another environment is named in the message.
    let before = snapshot(&env);
    env.vault([
        "secret",
        "delete",
        "b",
        "--yes",
        "--allow-missing",
        "-e",
        "prod",
    ])
    .run()
    .success()
    .stderr_has("No secret deleted: `b` does not exist in environment `prod`");
    assert_unchanged(&env, &before, "delete --allow-missing -e prod");
}

/// With no vault at all, a delete that finds nothing creates none.
#[test]
fn delete_allow_missing_without_a_vault_creates_none() {
    let env = Env::new();
    env.vault(["secret", "delete", "x", "--yes", "--allow-missing"])
        .run()
        .success()
        .stderr_has("No secret deleted: `x` does not exist");
    assert!(!env.file().exists(), "a vault was created for nothing");
}

#[test]
fn rename_to_the_same_name_is_refused() {
    let env = Env::new().init();
    env.create("db", &["A=1"]);
    let before = snapshot(&env);
    env.vault(["secret", "rename", "db", "db"])
        .run()
        .fails(1)
        .stderr_has("vault: error: `db` cannot be renamed to itself")
        .stderr_has("hint: give the new name: `vault secret rename db NEW`");
    assert_unchanged(&env, &before, "rename db db");
}

#[test]
fn unset_counts_the_keys_it_removed() {
    let env = Env::new().init();
    env.create("db", &["A=1", "B=2", "C=3"]);
    env.vault(["secret", "unset", "db", "A", "A", "A"])
        .run()
        .success()
        .stderr_has("Removed 1 key from `db`");
    env.vault(["secret", "unset", "db", "B", "B"])
        .run()
        .success()
        .stderr_has("Removed 1 key from `db`");
    let out = env
        .vault(["secret", "show", "db", "--json"])
        .run()
        .success();
    let v: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["entries"], serde_json::json!({"C": "********"}));

    // A key that is not there is an error (there is no --allow-missing
    // for keys), and nothing is written.
    env.create("pg", &["A=1", "B=2"]);
    let before = snapshot(&env);
    env.vault(["secret", "unset", "pg", "Z"])
        .run()
        .fails(1)
        .stderr_has("secret `pg` has no key `Z`");
    env.vault(["secret", "unset", "pg", "A", "Z"])
        .run()
        .fails(1)
        .stderr_has("secret `pg` has no key `Z`");
    assert_unchanged(&env, &before, "unset of a missing key");
}

#[test]
fn describe_with_the_current_text_changes_nothing() {
    let env = Env::new().init();
    env.create("db", &["A=1", "B=2"]);
    env.vault(["secret", "describe", "db", "A", "rotated monthly"])
        .run()
        .success()
        .stderr_has("Described `A` in `db`");
    let before = snapshot(&env);
    env.vault(["secret", "describe", "db", "A", "rotated monthly"])
        .run()
        .success()
        .stderr_has("`A` in `db` already has that description; the vault is unchanged");
    assert_unchanged(&env, &before, "describe with the same text");
    env.vault(["secret", "describe", "db", "B", ""])
        .run()
        .success()
        .stderr_has("`B` in `db` has no description; the vault is unchanged");
    assert_unchanged(&env, &before, "describe '' of a key without one");
    env.vault(["secret", "describe", "db", "Z", "x"])
        .run()
        .fails(1)
        .stderr_has("secret `db` has no key `Z`");
    assert_unchanged(&env, &before, "describe of a missing key");

    // A different text, or removing it, is a change.
    env.vault(["secret", "describe", "db", "A", ""])
        .run()
        .success()
        .stderr_has("Removed the description of `A` in `db`");
    assert_rewritten(&env, &before, "describe '' of a described key");
}

#[test]
fn rollback_to_a_version_equal_to_the_current_one_changes_nothing() {
    let env = Env::new().init();
    env.create("db", &["A=1"]);
    env.vault(["secret", "set", "db", "A=2"]).run().success();
    env.vault(["secret", "set", "db", "A=1"]).run().success();
    let before = snapshot(&env);
    env.vault(["secret", "rollback", "db", "--to", "1"])
        .run()
        .success()
        .stderr_has("`db` already has the keys of version 1: nothing changed");
    assert_unchanged(&env, &before, "rollback to an equal version");
    let out = env
        .vault(["secret", "history", "db", "--json"])
        .run()
        .success();
    let versions: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(versions.as_array().unwrap().len(), 3, "{versions}");

    env.vault(["secret", "rollback", "db"])
        .run()
        .success()
        .stderr_has("Rolled `db` back to version 2 (saved as version 4)");
    assert_rewritten(&env, &before, "rollback to a different version");
}

/// Not a no-op by design: the benchmark's write row measures `secret set`
/// of the values a secret already has, a full write.
#[test]
fn set_of_the_current_values_still_writes() {
    let env = Env::new().init();
    env.create("db", &["A=1"]);
    let before = snapshot(&env);
    let generation_before = generation(&env);
    env.vault(["secret", "set", "db", "A=1"]).run().success();
    assert_rewritten(&env, &before, "set of the same value");
    assert_ne!(generation(&env), generation_before);
}
