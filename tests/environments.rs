//! Environments (DESIGN v2 "Environments"): every secret belongs to one,
//! `main` by default; `-e`/`VAULT_ENV` pick it, `-s ENV/NAME` reaches into
//! another, `env list`, `secret copy --to-env`, `secret list --all-envs`.

use std::fs;

use crate::support::Env;

fn with_envs() -> Env {
    let env = Env::new().init();
    env.create("db", &["PGPASSWORD=main-pw", "PGUSER=app"]);
    env.vault(["-e", "prod", "secret", "create", "db", "PGPASSWORD=prod-pw"])
        .run()
        .success()
        .stderr_has("Created secret `db` in environment `prod` with 1 key");
    env.vault(["--env", "prod", "secret", "create", "sentry", "DSN=s"])
        .run()
        .success();
    env
}

fn printed(env: &Env, args: &[&str], var: &str) -> String {
    let mut all: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    all.extend(["--", "sh", "-c"].map(String::from));
    all.push(format!("printf %s \"${var}\""));
    env.vault(all).run().success().stdout
}

#[test]
fn one_name_in_two_environments_holds_two_secrets() {
    let env = with_envs();
    assert_eq!(printed(&env, &["run", "-s", "db"], "PGPASSWORD"), "main-pw");
    assert_eq!(
        printed(&env, &["-e", "prod", "run", "-s", "db"], "PGPASSWORD"),
        "prod-pw"
    );
    // VAULT_ENV as the variable, and -e after the subcommand (global)
    let out = env
        .vault([
            "run",
            "-s",
            "db",
            "--",
            "sh",
            "-c",
            "printf %s \"$PGPASSWORD\"",
        ])
        .env("VAULT_ENV", "prod")
        .run()
        .success();
    assert_eq!(out.stdout, "prod-pw");
    assert_eq!(
        printed(&env, &["run", "-e", "prod", "-s", "db"], "PGPASSWORD"),
        "prod-pw"
    );
    // -e wins over VAULT_ENV
    let out = env
        .vault(["-e", "main", "secret", "show", "db", "--reveal"])
        .env("VAULT_ENV", "prod")
        .run()
        .success();
    assert!(out.stdout.contains("main-pw"), "{out:#?}");
    // Secret commands stay inside their environment.
    let out = env.vault(["secret", "list"]).run().success();
    assert!(out.stdout.contains("db") && !out.stdout.contains("sentry"));
    env.vault(["secret", "show", "sentry"])
        .run()
        .fails(1)
        .stderr_has("no secret named `sentry`")
        .stderr_has("-s prod/sentry");
}

/// A name missing here but present in another environment (a forgotten
/// `-e`) is pointed at, even when a similar name here would be a "did you
/// mean": `stg/app` is what `secret show app` was after, not `pp`.
#[test]
fn a_name_of_another_environment_is_named_before_a_similar_one() {
    let env = Env::new().init();
    env.create("pp", &["A=1"]);
    env.vault(["-e", "stg", "secret", "create", "app", "A=2"])
        .run()
        .success();
    env.vault(["secret", "show", "app"])
        .run()
        .fails(1)
        .stderr_has("vault: error: no secret named `app`\n")
        .stderr_has("hint: environment `stg` has one: `-s stg/app`, or `-e stg`")
        .lacks("did you mean");
    // Without one elsewhere, the similar name is still offered.
    env.vault(["secret", "show", "ppp"])
        .run()
        .fails(1)
        .stderr_has("did you mean `pp`?");
}

#[test]
fn s_env_slash_name_reaches_into_another_environment() {
    let env = with_envs();
    // `-s prod/db` wins over `-s db` of main by order
    assert_eq!(
        printed(&env, &["run", "-s", "db", "-s", "prod/db"], "PGPASSWORD"),
        "prod-pw"
    );
    assert_eq!(
        printed(&env, &["run", "-s", "db", "-s", "prod/db"], "PGUSER"),
        "app"
    );
    let out = env
        .vault(["run", "-s", "db", "-s", "prod/db", "--explain"])
        .run()
        .success();
    assert!(
        out.stdout.contains("secret:prod/db") && out.stdout.contains("secret:db"),
        "{out:#?}"
    );
    env.vault(["run", "-s", "prod/nope", "--", "true"])
        .run()
        .fails(1)
        .stderr_has("no secret named `nope` in environment `prod`");
    env.vault(["run", "-s", "a/b/c", "--", "true"])
        .run()
        .fails(1);
    // export takes ENV/NAME too
    let out = env.vault(["export", "prod/sentry"]).run().success();
    assert!(out.stdout.contains("DSN="), "{out:#?}");
}

#[test]
fn an_unknown_environment_says_did_you_mean() {
    let env = with_envs();
    for args in [
        &["-e", "prd", "secret", "list"][..],
        &["-e", "prd", "run", "-s", "db", "--", "true"],
        &["-e", "prd", "run", "--set", "A=1", "--", "true"],
        &["run", "-s", "prd/db", "--", "true"],
        &["-e", "prd", "secret", "show", "db"],
    ] {
        env.vault(args)
            .run()
            .fails(1)
            .stderr_has("vault: error: no environment named `prd`")
            .stderr_has("hint: did you mean `prod`?");
    }
    // an invalid name is refused before anything is opened
    env.vault(["-e", "no good", "secret", "list"])
        .run()
        .fails(1)
        .stderr_has("`no good` is not a valid environment name");
    env.vault(["secret", "list"])
        .env("VAULT_ENV", "a/b")
        .run()
        .fails(1)
        .stderr_has("not a valid environment name");
    // a first write makes an environment
    env.vault(["-e", "staging", "secret", "create", "db", "A=1"])
        .run()
        .success();
    env.vault(["-e", "staging", "secret", "list"])
        .run()
        .success();
}

#[test]
fn env_list_counts_secrets() {
    let env = with_envs();
    let out = env.vault(["env", "list"]).run().success();
    assert_eq!(out.stdout, "ENV    SECRETS\nmain*  1\nprod   2\n");
    let out = env
        .vault(["-e", "prod", "env", "list", "--json"])
        .run()
        .success();
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(
        v,
        serde_json::json!([
            {"env": "main", "secrets": 1, "current": false},
            {"env": "prod", "secrets": 2, "current": true},
        ])
    );
}

#[test]
fn secret_list_all_envs_adds_an_env_column() {
    let env = with_envs();
    let out = env.vault(["secret", "list", "--all-envs"]).run().success();
    let rows: Vec<Vec<&str>> = out
        .stdout
        .lines()
        .map(|l| l.split_whitespace().take(3).collect())
        .collect();
    assert_eq!(
        rows,
        [
            vec!["ENV", "NAME", "KEYS"],
            vec!["main", "db", "2"],
            vec!["prod", "db", "1"],
            vec!["prod", "sentry", "1"],
        ]
    );
    let out = env
        .vault(["secret", "list", "--all-envs", "--json"])
        .run()
        .success();
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let got: Vec<(String, String)> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["env"].as_str().unwrap().to_string(),
                s["name"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [("main", "db"), ("prod", "db"), ("prod", "sentry")]
            .map(|(a, b)| (a.to_string(), b.to_string()))
    );
    // without --all-envs the JSON keeps version 1's shape
    let out = env.vault(["secret", "list", "--json"]).run().success();
    assert!(!out.stdout.contains("\"env\""), "{out:#?}");
}

#[test]
fn secret_copy_to_another_environment() {
    let env = with_envs();
    env.vault(["secret", "copy", "db", "--to-env", "prod"])
        .run()
        .fails(1)
        .stderr_has("already exists in environment `prod`");
    env.vault(["-e", "prod", "secret", "copy", "db", "--to-env", "main"])
        .run()
        .fails(1)
        .stderr_has("already exists in environment `main`");
    env.vault(["secret", "copy", "db", "--to-env", "staging"])
        .run()
        .success()
        .stderr_has("Copied `db` (2 keys) from environment `main` to `staging`");
    assert_eq!(
        printed(&env, &["-e", "staging", "run", "-s", "db"], "PGPASSWORD"),
        "main-pw"
    );
    env.vault([
        "-e", "prod", "secret", "copy", "db", "--to-env", "main", "--force",
    ])
    .run()
    .success();
    assert_eq!(printed(&env, &["run", "-s", "db"], "PGPASSWORD"), "prod-pw");
    // the copy is a copy: changing one leaves the other
    env.vault(["secret", "set", "db", "PGPASSWORD=changed"])
        .run()
        .success();
    assert_eq!(
        printed(&env, &["-e", "prod", "run", "-s", "db"], "PGPASSWORD"),
        "prod-pw"
    );
    env.vault(["secret", "copy", "db", "--to-env", "main"])
        .run()
        .fails(1)
        .stderr_has("already in environment `main`");
    env.vault(["secret", "copy", "nope", "--to-env", "prod"])
        .run()
        .fails(1)
        .stderr_has("no secret named `nope`");
}

#[test]
fn a_version_1_vault_lands_in_main_and_is_migrated_by_the_first_write() {
    let env = Env::new();
    // A fresh identity in the user's key file, whose recipient we know.
    let recipient = crate::support::write_identity(env.identity.as_ref().unwrap());
    let mut db = rusqlite::Connection::open_in_memory().unwrap();
    db.execute_batch(crate::support::V1_SCHEMA).unwrap();
    db.execute(
        "INSERT INTO recipients VALUES (?1, '2025-01-01T00:00:00Z')",
        [&recipient],
    )
    .unwrap();
    db.execute_batch(
        "INSERT INTO secrets VALUES (1, 'db', '2025-01-01T00:00:00Z', '2025-01-01T00:00:00Z');
         INSERT INTO entries VALUES (1, 'PGPASSWORD', 'old-pw');",
    )
    .unwrap();
    let plain = db.serialize(rusqlite::MAIN_DB).unwrap().to_vec();
    fs::create_dir_all(&env.dir).unwrap();
    let file = vault::testing::encrypt_vec(std::slice::from_ref(&recipient), &plain).unwrap();
    fs::write(env.file(), &file).unwrap();

    // Reads see v1's secrets in `main` and leave the file as it was.
    let out = env.vault(["secret", "list", "--all-envs"]).run().success();
    assert!(out.stdout.contains("main  db"), "{out:#?}");
    assert_eq!(printed(&env, &["run", "-s", "db"], "PGPASSWORD"), "old-pw");
    assert_eq!(fs::read(env.file()).unwrap(), file, "a read never writes");

    // The first write saves it migrated.
    env.vault(["-e", "prod", "secret", "create", "db", "PGPASSWORD=new"])
        .run()
        .success();
    let plain = env.plaintext();
    let mut c = rusqlite::Connection::open_in_memory().unwrap();
    c.deserialize_read_exact(rusqlite::MAIN_DB, &plain[..], plain.len(), true)
        .unwrap();
    let rows: Vec<(String, String)> = c
        .prepare("SELECT env, name FROM secrets ORDER BY env")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(
        rows,
        [("main", "db"), ("prod", "db")].map(|(a, b)| (a.to_string(), b.to_string()))
    );
    assert_eq!(printed(&env, &["run", "-s", "db"], "PGPASSWORD"), "old-pw");
}

/// `secret set`, `secret unset` and `import` name a non-main environment
/// in their success line, as `secret create` does ("in environment
/// `prod`"); in `main` they say nothing more.
#[test]
fn set_unset_and_import_name_a_non_main_environment() {
    let env = with_envs();
    env.vault(["-e", "prod", "secret", "set", "db", "PGUSER=ops"])
        .run()
        .success()
        .stderr_has("Set 1 key in `db` in environment `prod`\n");
    env.vault(["-e", "prod", "secret", "unset", "db", "PGUSER"])
        .run()
        .success()
        .stderr_has("Removed 1 key from `db` in environment `prod`\n");
    let out = env
        .vault(["secret", "set", "db", "PGUSER=app2"])
        .run()
        .success();
    assert!(out.stderr.contains("Set 1 key in `db`\n"), "{}", out.stderr);
    assert!(!out.stderr.contains("environment"), "{}", out.stderr);

    let dotenv = env.write("api/.env", "TOKEN=t\nURL=u\n");
    env.vault(["-e", "prod", "import"])
        .arg_path(&dotenv)
        .run()
        .success()
        .stderr_has("as `api` in environment `prod` (2 keys)\n");
    let out = env.vault(["import"]).arg_path(&dotenv).run().success();
    assert!(out.stderr.contains("as `api` (2 keys)\n"), "{}", out.stderr);
    // More than 20: one line, which names the environment too.
    let mut json = String::from("{");
    for i in 0..21 {
        json.push_str(&format!(
            "{}\"s{i}\": {{\"K\": \"v\"}}",
            if i > 0 { ", " } else { "" }
        ));
    }
    json.push('}');
    let many = env.write("many.json", &json);
    env.vault(["-e", "prod", "import", "--from-json"])
        .arg_path(&many)
        .run()
        .success()
        .stderr_has("Imported 21 secrets in environment `prod`\n");
}
