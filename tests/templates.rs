//! Daily-use polish: templates, doctor, did-you-mean.

use std::{fs, os::unix::fs::PermissionsExt, process::Command};

use crate::support::*;

#[test]
fn templates_list_and_json() {
    let env = Env::new();
    env.vault(["secret", "templates"])
        .run()
        .success()
        .stdout_has("postgres     PGHOST PGPORT PGUSER PGPASSWORD PGDATABASE")
        .stdout_has("huggingface  HF_TOKEN");
    let out = env.vault(["secret", "templates", "--json"]).run().success();
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let pg = v
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "postgres")
        .unwrap();
    assert_eq!(
        pg["keys"][3],
        serde_json::json!({"name": "PGPASSWORD", "secret": true, "default": null})
    );
    assert_eq!(pg["keys"][1]["default"], "5432");
    assert_eq!(v.as_array().unwrap().len(), 15);
}

#[test]
fn template_without_a_terminal_names_what_is_missing() {
    let env = Env::new().init();
    env.vault(["secret", "create", "aws", "--template", "aws"])
        .run()
        .fails(1)
        .stderr_has("`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`");
    // Given keys fill in; defaults fill the rest; one bare key reads stdin.
    env.vault([
        "secret",
        "create",
        "aws",
        "--template",
        "aws",
        "AWS_ACCESS_KEY_ID=AKIA1",
        "AWS_SECRET_ACCESS_KEY",
    ])
    .stdin("s3cr3t\n")
    .run()
    .success();
    let out = env
        .vault(["secret", "show", "aws", "--json", "--reveal"])
        .run()
        .success();
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(
        v["entries"],
        serde_json::json!({"AWS_ACCESS_KEY_ID": "AKIA1", "AWS_REGION": "us-east-1", "AWS_SECRET_ACCESS_KEY": "s3cr3t"})
    );
    env.vault(["secret", "create", "x", "--template", "postgrs"])
        .run()
        .fails(1)
        .stderr_has("did you mean `postgres`");
}

#[test]
fn template_prompts_on_a_terminal_hiding_secret_keys() {
    if !have("expect") {
        return;
    }
    let env = Env::new().init();
    let script = format!(
        "set timeout 10
spawn {BIN} secret create pg --template postgres PGDATABASE=app
expect -ex {{PGHOST [localhost]: }}
sleep 0.2
send \"db.internal\\r\"
expect -ex {{PGPORT [5432]: }}
sleep 0.2
send \"\\r\"
expect -ex {{PGUSER [postgres]: }}
sleep 0.2
send \"app\\r\"
expect -ex {{Value for PGPASSWORD: }}
sleep 0.2
send \"TYPED-SECRET\\r\"
expect eof
lassign [wait] p s o code
exit $code
"
    );
    let out = Command::new("expect")
        .arg("-c")
        .arg(script)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap())
        .env("VAULT_DIR", &env.dir)
        .env("VAULT_IDENTITY", env.identity.as_ref().unwrap())
        .output()
        .unwrap();
    let screen = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{screen}");
    assert!(
        screen.contains("db.internal"),
        "visible input is echoed: {screen}"
    );
    assert!(
        !screen.contains("TYPED-SECRET"),
        "secret input is hidden: {screen}"
    );
    let out = env
        .vault(["secret", "show", "pg", "--json", "--reveal"])
        .run()
        .success();
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(
        v["entries"],
        serde_json::json!({"PGDATABASE": "app", "PGHOST": "db.internal", "PGPASSWORD": "TYPED-SECRET", "PGPORT": "5432", "PGUSER": "app"})
    );
}

#[test]
fn doctor_finds_and_explains_problems() {
    let env = Env::new().init();
    env.create("a", &["K=v"]);
    env.vault(["doctor"])
        .run()
        .success()
        .stdout_has("All good.")
        .stdout_has("integrity_check");
    fs::set_permissions(env.file(), fs::Permissions::from_mode(0o644)).unwrap();
    let stray = env.dir.join(".vault.age.Zz9.tmp");
    fs::write(&stray, b"x").unwrap();
    let out = env
        .vault(["doctor"])
        .run()
        .fails(1)
        .stdout_has("mode 0644; it should be 0600")
        .stdout_has(&format!("fix: chmod 600 {}", env.file().display()))
        .stdout_has("fix: the next write removes them")
        .stderr_has("2 problem(s) found");
    // The checks come in the documented order.
    let order = [
        "mode",
        "lock",
        "agent",
        "decrypts",
        "integrity_check",
        "schema version",
        "temporary",
        "identity",
    ];
    let mut at = 0;
    for word in order {
        let found = out.stdout[at..]
            .find(word)
            .unwrap_or_else(|| panic!("{word} after {at}: {}", out.stdout));
        at += found;
    }
    // A damaged vault is reported with its fix.
    fs::write(env.file(), b"garbage").unwrap();
    env.vault(["doctor"])
        .run()
        .fails(1)
        .stdout_has("cannot open the vault")
        .stdout_has("fix:");
}

#[test]
fn unknown_subcommand_suggests() {
    let env = Env::new();
    env.vault(["secrte"]).run().fails(2).stderr_has("secret");
    env.vault(["secret", "lst"])
        .run()
        .fails(2)
        .stderr_has("list");
}

/// Colour on a terminal only, and never with NO_COLOR.
#[test]
fn colour_only_on_a_terminal_and_not_with_no_color() {
    if !have("expect") {
        return;
    }
    let env = Env::new().init();
    let screen = |no_color: Option<&str>| {
        let mut c = Command::new("expect");
        c.arg("-c")
            .arg(format!("spawn {BIN} secret show nope\nexpect eof\n"))
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap())
            .env("VAULT_DIR", &env.dir)
            .env("VAULT_IDENTITY", env.identity.as_ref().unwrap());
        if let Some(v) = no_color {
            c.env("NO_COLOR", v);
        }
        String::from_utf8_lossy(&c.output().unwrap().stdout).into_owned()
    };
    assert!(
        screen(None).contains("\x1b[1;31merror\x1b[0m"),
        "{:?}",
        screen(None)
    );
    assert!(!screen(Some("1")).contains('\x1b'));
    // Not a terminal: plain.
    env.vault(["secret", "show", "nope"])
        .run()
        .fails(1)
        .lacks("\x1b[");
}

/// `--require` with a typo suggests the key a source does set.
#[test]
fn require_suggests_the_closest_key() {
    let env = Env::new().init();
    env.create("db", &["PGPASSWORD=x"]);
    env.vault(["run", "-s", "db", "--require", "PGPASWORD", "--", "true"])
        .run()
        .fails(1)
        .stderr_has("did you mean `PGPASSWORD` for `PGPASWORD`?");
}
