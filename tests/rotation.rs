//! Rotation after a member is removed (DESIGN v2 "Git", "Removing a
//! member"): `recipients remove` marks every secret, `secret list` shows
//! ROTATE, `doctor` lists them, a new value clears a mark, and `secret
//! rotated` clears one by hand.

use std::fs;

use serde_json::Value;

use crate::support::*;

/// A vault with `db` (two keys) in `main` and `api` in `prod`, and a
/// second member's recipient, added.
fn vault_with_member() -> (Env, String) {
    let env = Env::new().init();
    env.create("db", &["PGUSER=app", "PGPASSWORD=old-pw"]);
    env.vault(["secret", "create", "-e", "prod", "api", "TOKEN=t1"])
        .run()
        .success();
    let b = write_identity(&env.path("b.key"));
    env.vault(["recipients", "add", &b]).run().success();
    (env, b)
}

/// `rotate_since` of every secret of every environment, by `ENV/NAME`.
fn marks(env: &Env) -> Vec<(String, Value)> {
    let out = env
        .vault(["secret", "list", "--all-envs", "--json"])
        .run()
        .success();
    let v: Value = serde_json::from_str(&out.stdout).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                format!(
                    "{}/{}",
                    s["env"].as_str().unwrap(),
                    s["name"].as_str().unwrap()
                ),
                s["rotate_since"].clone(),
            )
        })
        .collect()
}

fn marked(env: &Env, id: &str) -> bool {
    marks(env)
        .iter()
        .find(|(n, _)| n == id)
        .unwrap_or_else(|| panic!("no secret {id}"))
        .1
        .is_string()
}

#[test]
fn removing_a_member_marks_every_secret_and_list_and_doctor_show_them() {
    let (env, b) = vault_with_member();
    // Before: no marks, no ROTATE column, doctor all good.
    assert!(marks(&env).iter().all(|(_, m)| m.is_null()));
    env.vault(["secret", "list"])
        .run()
        .success()
        .lacks("ROTATE");
    env.vault(["doctor"])
        .run()
        .success()
        .stdout_has("All good.");

    env.vault(["recipients", "remove", &b])
        .run()
        .success()
        .stderr_has("Marked 2 secrets for rotation");
    let all = marks(&env);
    assert_eq!(all.len(), 2);
    for (name, since) in &all {
        let t = since.as_str().unwrap_or_else(|| panic!("{name} unmarked"));
        assert!(t.parse::<jiff::Timestamp>().is_ok(), "{t}");
    }
    // The table of one environment, and its JSON.
    let out = env.vault(["secret", "list"]).run().success();
    let row = out.stdout.lines().find(|l| l.starts_with("db ")).unwrap();
    assert!(row.contains("ROTATE since "), "{}", out.stdout);
    let out = env.vault(["secret", "list", "--json"]).run().success();
    let v: Value = serde_json::from_str(&out.stdout).unwrap();
    assert!(v[0]["rotate_since"].is_string());
    assert!(v[0].get("env").is_none());
    // doctor warns, naming each, with the way out, and still succeeds.
    env.vault(["doctor"])
        .run()
        .success()
        .stdout_has("WARNING  secret main/db needs rotation")
        .stdout_has("WARNING  secret prod/api needs rotation")
        .stdout_has("vault secret rotated db")
        .stdout_has("vault secret rotated -e prod api")
        .stdout_has("No problems; 2 warning(s).");
}

#[test]
fn a_new_value_for_an_existing_key_clears_the_mark_and_nothing_else_does() {
    let (env, b) = vault_with_member();
    env.vault(["recipients", "remove", &b]).run().success();
    // A new key, the same value again, a removed key, a rename, a
    // description: the old values are all still there.
    env.vault(["secret", "set", "db", "NEW=1"]).run().success();
    env.vault(["secret", "set", "db", "PGUSER=app"])
        .run()
        .success();
    env.vault(["secret", "unset", "db", "NEW"]).run().success();
    env.vault(["secret", "rename", "db", "pg"]).run().success();
    env.vault(["secret", "describe", "pg", "PGUSER", "the role"])
        .run()
        .success();
    assert!(marked(&env, "main/pg"));
    // A new value of one existing key is a rotation.
    env.vault(["secret", "set", "pg", "PGPASSWORD=new-pw"])
        .run()
        .success();
    assert!(!marked(&env, "main/pg"));
    assert!(marked(&env, "prod/api"), "other secrets keep theirs");
    env.vault(["secret", "list"])
        .run()
        .success()
        .lacks("ROTATE");

    // generate, rollback and import --force are value changes too.
    env.vault(["secret", "generate", "-e", "prod", "api", "TOKEN"])
        .run()
        .success();
    assert!(!marked(&env, "prod/api"));
    let c = write_identity(&env.path("c.key"));
    env.vault(["recipients", "add", &c]).run().success();
    env.vault(["recipients", "remove", &c]).run().success();
    assert!(marked(&env, "main/pg") && marked(&env, "prod/api"));
    env.vault(["secret", "rollback", "pg"]).run().success();
    assert!(!marked(&env, "main/pg"));
    let dotenv = env.write("proj/.env", "TOKEN=t3\n");
    env.vault(["import", "-e", "prod", "--name", "api", "--force"])
        .arg_path(&dotenv)
        .run()
        .success();
    assert!(!marked(&env, "prod/api"));
}

#[test]
fn a_second_removal_keeps_the_earlier_mark_and_a_copy_carries_it() {
    let (env, b) = vault_with_member();
    env.vault(["recipients", "remove", &b]).run().success();
    let first = marks(&env);
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let c = write_identity(&env.path("c.key"));
    env.vault(["recipients", "add", &c]).run().success();
    env.vault(["recipients", "remove", &c]).run().success();
    assert_eq!(marks(&env), first, "the earliest mark stays");
    env.vault(["secret", "copy", "db", "--to-env", "staging"])
        .run()
        .success();
    assert!(
        marked(&env, "staging/db"),
        "the same values, the same exposure"
    );
}

#[test]
fn secret_rotated_clears_by_hand_and_warns_about_an_unmarked_secret() {
    let (env, b) = vault_with_member();
    env.vault(["recipients", "remove", &b]).run().success();
    env.vault(["secret", "rotated", "db"])
        .run()
        .success()
        .stderr_has("Cleared the rotation mark of `db`");
    assert!(!marked(&env, "main/db"));
    assert!(marked(&env, "prod/api"));
    // Not marked (any more): a warning, and nothing written.
    let before = fs::read(env.file()).unwrap();
    env.vault(["secret", "rotated", "db"])
        .run()
        .success()
        .stderr_has("vault: warning: `db` is not marked for rotation");
    assert_eq!(fs::read(env.file()).unwrap(), before);
    // Another environment with -e; an unknown secret is an error.
    env.vault(["secret", "rotated", "-e", "prod", "api"])
        .run()
        .success()
        .stderr_has("in environment `prod`");
    env.vault(["secret", "rotated", "nope"])
        .run()
        .fails(1)
        .stderr_has("no secret named `nope`");
    env.vault(["doctor"])
        .run()
        .success()
        .stdout_has("no secret needs rotation")
        .stdout_has("All good.");
}

/// The diff key of the vault's current file, as the database holds it.
fn diff_key_of(env: &Env) -> Vec<u8> {
    let hex = diff_key_hex(&env.plaintext());
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect()
}

/// What `vault git show` would print for `value`, under `diff_key`.
fn fingerprint(diff_key: &[u8], parts: [&str; 4]) -> String {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(diff_key).unwrap();
    mac.update(parts.join("\0").as_bytes());
    mac.finalize().into_bytes()[..6]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The attack DESIGN v2 "Git" rules out: a removed member kept a file from
/// their time, and with its diff key tests guesses of a value against the
/// fingerprint a later diff shows (pasted in a review, printed by CI).
/// `recipients remove` renews the key, so the guess no longer matches.
#[test]
fn a_removed_member_cannot_test_guesses_against_later_fingerprints() {
    let (env, b) = vault_with_member();
    let shown = |env: &Env| {
        let out = env
            .vault(["git", "show"])
            .arg_path(&env.file())
            .run()
            .success();
        out.stdout
            .lines()
            .find_map(|l| l.strip_prefix("main/db PGUSER  ").map(str::to_string))
            .unwrap_or_else(|| panic!("no main/db PGUSER line in {}", out.stdout))
    };
    let theirs = diff_key_of(&env);
    let guess = ["main", "db", "PGUSER", "app"];
    // While a member, the guess can be tested: it matches.
    assert_eq!(fingerprint(&theirs, guess), shown(&env));
    // A refused removal changes nothing.
    let stranger = write_identity(&env.path("c.key"));
    env.vault(["recipients", "remove", &stranger])
        .run()
        .fails(1)
        .stderr_has("is not a recipient");
    assert_eq!(diff_key_of(&env), theirs);
    env.vault(["recipients", "remove", &b]).run().success();
    let now = diff_key_of(&env);
    assert_ne!(now, theirs, "the diff key must be renewed");
    let after = shown(&env);
    assert_eq!(fingerprint(&now, guess), after);
    assert_ne!(
        fingerprint(&theirs, guess),
        after,
        "the old key still matches"
    );
    // The next changes keep the new key: diffs after the removal compare.
    env.vault(["secret", "set", "db", "PGPASSWORD=rotated"])
        .run()
        .success();
    assert_eq!(diff_key_of(&env), now);
    assert_eq!(shown(&env), after);
}
