//! DESIGN v2 "History": every change keeps the previous version, ten are
//! kept, `history`, `show --rev`, `rollback`, and `delete` still wipes all.

use std::fs;

use serde_json::Value;

use crate::support::*;

fn history(env: &Env, name: &str) -> Vec<Value> {
    let out = env
        .vault(["secret", "history", name, "--json"])
        .run()
        .success();
    serde_json::from_str::<Value>(&out.stdout)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

fn revealed(env: &Env, name: &str, rev: Option<&str>) -> Value {
    let mut args = vec!["secret", "show", name, "--reveal", "--json"];
    if let Some(r) = rev {
        args.extend(["--rev", r]);
    }
    let out = env.vault(args).run().success();
    serde_json::from_str::<Value>(&out.stdout).unwrap()["entries"].clone()
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

#[test]
fn every_kind_of_change_makes_a_version_with_time_author_and_keys() {
    let env = Env::new().init();
    env.create("db", &["PGHOST=localhost", "PGPASSWORD=first-pw"]);
    env.vault(["secret", "set", "db", "PGPASSWORD=second-pw", "PGPORT=5433"])
        .run()
        .success();
    env.vault(["secret", "unset", "db", "PGPORT"])
        .run()
        .success();
    env.vault(["secret", "rename", "db", "pg"]).run().success();
    env.vault(["secret", "create", "pg", "ONLY=one", "--force"])
        .run()
        .success();
    let dotenv = env.write("proj/.env", "ONLY=two\n");
    env.vault(["import", "--name", "pg", "--force"])
        .arg_path(&dotenv)
        .run()
        .success();
    env.vault(["secret", "generate", "pg", "TOKEN"])
        .run()
        .success();

    let h = history(&env, "pg");
    let numbers: Vec<i64> = h.iter().map(|v| v["version"].as_i64().unwrap()).collect();
    assert_eq!(numbers, [7, 6, 5, 4, 3, 2, 1]);
    assert_eq!(h[0]["current"], true);
    assert!(
        h.iter()
            .all(|v| v["you"] == true && v["changed_by"].as_str().unwrap().starts_with("age1"))
    );
    assert!(
        h.iter()
            .all(|v| v["changed_at"].as_str().unwrap().ends_with('Z'))
    );
    let keys = |i: usize, field: &str| -> Vec<String> {
        h[i][field]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k.as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(keys(0, "added"), ["TOKEN"]); // generate
    assert_eq!(keys(1, "changed"), ["ONLY"]); // import over it
    assert_eq!(keys(2, "added"), ["ONLY"]); // --force
    assert_eq!(keys(2, "removed"), ["PGHOST", "PGPASSWORD"]);
    assert_eq!(h[3]["renamed_from"], "db");
    assert_eq!(keys(4, "removed"), ["PGPORT"]);
    assert_eq!(keys(5, "added"), ["PGPORT"]);
    assert_eq!(keys(5, "changed"), ["PGPASSWORD"]);
    assert_eq!(h[6]["name"], "db");

    // The table says the same, and no command shows a value.
    let table = env.vault(["secret", "history", "pg"]).run().success();
    let lines: Vec<&str> = table.stdout.lines().collect();
    assert!(lines[0].starts_with("VERSION"), "{table:?}");
    assert!(lines[1].starts_with("7 (current)") && lines[1].contains(" you "));
    assert!(lines[4].contains("renamed from db"));
    assert!(lines[7].contains("created"));
    for value in ["first-pw", "second-pw", "localhost", "one", "two"] {
        assert!(!table.stdout.contains(value), "{value} in {table:?}");
    }
}

#[test]
fn show_rev_reveals_an_earlier_version() {
    let env = Env::new().init();
    env.create("db", &["PW=first"]);
    env.vault(["secret", "set", "db", "PW=second", "NEW=x"])
        .run()
        .success();
    assert_eq!(
        revealed(&env, "db", Some("1")),
        serde_json::json!({"PW": "first"})
    );
    assert_eq!(
        revealed(&env, "db", Some("2")),
        serde_json::json!({"NEW": "x", "PW": "second"})
    );
    let masked = env
        .vault(["secret", "show", "db", "--rev", "1"])
        .run()
        .success()
        .lacks("first");
    assert!(masked.stdout.contains("PW") && masked.stdout.contains("********"));
    env.vault(["secret", "show", "db", "--rev", "3"])
        .run()
        .fails(1)
        .stderr_has("secret `db` has no version 3")
        .stderr_has("versions 1 to 2");
    env.vault(["secret", "show", "db", "--rev", "abc"])
        .run()
        .fails(2);
}

#[test]
fn setting_the_same_value_makes_no_version() {
    let env = Env::new().init();
    env.create("db", &["PW=same"]);
    env.vault(["secret", "set", "db", "PW=same"])
        .run()
        .success();
    assert_eq!(history(&env, "db").len(), 1);
}

#[test]
fn rollback_writes_a_new_version_equal_to_an_old_one() {
    let env = Env::new().init();
    env.create("db", &["PW=good", "HOST=h"]);
    env.vault(["secret", "set", "db", "PW=oops"])
        .run()
        .success();
    env.vault(["secret", "create", "db", "OTHER=x", "--force"])
        .run()
        .success();

    // Default: the previous version.
    env.vault(["secret", "rollback", "db"])
        .run()
        .success()
        .stderr_has("Rolled `db` back to version 2 (saved as version 4)");
    assert_eq!(
        revealed(&env, "db", None),
        serde_json::json!({"HOST": "h", "PW": "oops"})
    );
    env.vault(["secret", "rollback", "db", "--to", "1"])
        .run()
        .success();
    assert_eq!(
        revealed(&env, "db", None),
        serde_json::json!({"HOST": "h", "PW": "good"})
    );
    let out = env
        .vault(["run", "-s", "db", "--", "sh", "-c", "echo $PW"])
        .run()
        .success();
    assert_eq!(out.stdout, "good\n");
    assert_eq!(history(&env, "db").len(), 5, "rollbacks are versions too");

    env.vault(["secret", "rollback", "db", "--to", "5"])
        .run()
        .fails(1)
        .stderr_has("is the current version");
    env.vault(["secret", "rollback", "db", "--to", "42"])
        .run()
        .fails(1)
        .stderr_has("no version 42");
    env.create("fresh", &["K=v"]);
    let before = fs::read(env.file()).unwrap();
    env.vault(["secret", "rollback", "fresh"])
        .run()
        .fails(1)
        .stderr_has("no earlier version");
    env.vault(["secret", "rollback", "nope"])
        .run()
        .fails(1)
        .stderr_has("no secret named `nope`");
    assert_eq!(fs::read(env.file()).unwrap(), before);
}

#[test]
fn ten_earlier_versions_are_kept_and_the_oldest_is_wiped() {
    let env = Env::new().init();
    env.create("s", &["K=CANARY-VERSION-01"]);
    for i in 2..=12 {
        env.vault(["secret", "set", "s", &format!("K=CANARY-VERSION-{i:02}")])
            .run()
            .success();
    }
    let h = history(&env, "s");
    assert_eq!(h.len(), 11, "the current version and ten earlier ones");
    assert_eq!(h[10]["version"], 2);
    let plain = env.plaintext();
    assert!(
        !contains(&plain, "CANARY-VERSION-01"),
        "version 1 left bytes"
    );
    assert!(contains(&plain, "CANARY-VERSION-02"));
    env.vault(["secret", "show", "s", "--rev", "1"])
        .run()
        .fails(1)
        .stderr_has("versions 2 to 12");
}

#[test]
fn delete_wipes_every_version_from_every_page() {
    let env = Env::new().init();
    env.create("gone", &["K=DELETED-CANARY-A", "L=DELETED-CANARY-B"]);
    env.vault(["secret", "set", "gone", "K=DELETED-CANARY-C"])
        .run()
        .success();
    env.vault(["secret", "rename", "gone", "gone2"])
        .run()
        .success();
    env.create("kept", &["K=kept-value"]);
    assert!(contains(&env.plaintext(), "DELETED-CANARY-A"));
    env.vault(["secret", "delete", "gone2", "--yes"])
        .run()
        .success();
    let plain = env.plaintext();
    for c in ["DELETED-CANARY-", "gone2"] {
        assert!(
            !contains(&plain, c),
            "{c} survives in the decrypted database"
        );
    }
    assert!(contains(&plain, "kept-value"));
    env.vault(["secret", "history", "gone2"])
        .run()
        .fails(1)
        .stderr_has("no secret named `gone2`");
}

#[test]
fn a_teammates_change_is_recorded_as_theirs() {
    let a = Env::new().init();
    a.create("db", &["PW=a-wrote"]);
    let b_key = a.path("b.key");
    let b = write_identity(&b_key);
    a.vault(["recipients", "add", &b]).run().success();
    a.vault(["secret", "set", "db", "PW=b-wrote"])
        .env("VAULT_IDENTITY", &b_key)
        .run()
        .success();
    let h = history(&a, "db");
    assert_eq!(h[0]["changed_by"], b.as_str());
    assert_eq!(h[0]["you"], false);
    assert_eq!(h[1]["you"], true);
    let table = a.vault(["secret", "history", "db"]).run().success();
    let short = format!("{}…{}", &b[..10], &b[b.len() - 6..]);
    assert!(
        table.stdout.lines().nth(1).unwrap().contains(&short),
        "{table:?}"
    );
    // And from B's side, A's version is not "you".
    let out = a
        .vault(["secret", "history", "db", "--json"])
        .env("VAULT_IDENTITY", &b_key)
        .run()
        .success();
    let hb: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(
        (hb[0]["you"].clone(), hb[1]["you"].clone()),
        (true.into(), false.into())
    );
}

/// A vault file written by version 1 (schema 1): read as it is (migrated in
/// memory only), and migrated for good by the first write.
#[test]
fn a_version_1_vault_gets_history_on_its_first_write() {
    let env = Env::new().init();
    let recipient = env.vault(["recipient"]).run().success().stdout;
    let mut v1 = rusqlite::Connection::open_in_memory().unwrap();
    v1.execute_batch(&format!(
        "{}\n{}",
        crate::support::V1_SCHEMA,
        "INSERT INTO secrets VALUES (1, 'db', '2026-01-01T00:00:00Z', '2026-01-02T00:00:00Z');
             INSERT INTO entries VALUES (1, 'PW', 'from-v1');"
    ))
    .unwrap();
    v1.execute(
        "INSERT INTO recipients VALUES (?1, '2026-01-01T00:00:00Z')",
        [recipient.trim()],
    )
    .unwrap();
    let plain = v1.serialize(rusqlite::MAIN_DB).unwrap().to_vec();
    let sealed = vault::testing::encrypt_vec(&[recipient.trim().to_string()], &plain).unwrap();
    fs::write(env.file(), &sealed).unwrap();
    // `init` wrote a signed vault at this path, and an unsigned file where a
    // signed one was seen is refused (tests/trust.rs): this machine must
    // never have seen it, as for a vault kept since version 1.
    fs::remove_file(env.file().with_file_name("trusted.json")).unwrap();

    let out = env
        .vault(["run", "-s", "db", "--", "sh", "-c", "echo $PW"])
        .run()
        .success();
    assert_eq!(out.stdout, "from-v1\n");
    let h = history(&env, "db");
    assert_eq!((h.len(), h[0]["changed_by"].as_str()), (1, Some("")));
    let table = env.vault(["secret", "history", "db"]).run().success();
    assert!(table.stdout.contains("unknown"), "{table:?}");
    assert_eq!(fs::read(env.file()).unwrap(), sealed, "reads never write");

    env.vault(["secret", "set", "db", "PW=from-v2"])
        .run()
        .success();
    let h = history(&env, "db");
    assert_eq!(h.len(), 2);
    assert_eq!(h[0]["you"], true);
    assert_eq!(
        revealed(&env, "db", Some("1")),
        serde_json::json!({"PW": "from-v1"})
    );
}

/// bash completes secret names for the new secret subcommands.
#[test]
fn bash_completes_names_for_history_rollback_edit_generate_describe() {
    let env = Env::new().init();
    env.create("db-prod", &["K=v"]);
    let bash = env.vault(["completions", "bash"]).run().success().stdout;
    let script = env.write("vault.bash", &bash);
    let bin_dir = std::path::Path::new(BIN).parent().unwrap();
    for sub in ["history", "rollback", "edit", "generate", "describe"] {
        let probe = format!(
            "source {}; COMP_WORDS=(vault secret {sub} db-p); COMP_CWORD=3; _vault_with_secrets; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
            script.display()
        );
        let out = std::process::Command::new("bash")
            .arg("-c")
            .arg(probe)
            .env(
                "PATH",
                format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap()),
            )
            .env("VAULT_DIR", &env.dir)
            .env("VAULT_IDENTITY", env.identity.as_ref().unwrap())
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "db-prod\n",
            "{sub}: {out:?}"
        );
    }
}
