//! `vault secret templates` and `secret create --template`: the list, the
//! keys and defaults a template fills in, and its prompts on a terminal.

use std::process::Command;

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
