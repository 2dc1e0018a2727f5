//! "Did you mean": an unknown subcommand, and a `--require`d key with a
//! typo. (Unknown secret and template names: tests/cmd/names.toml,
//! tests/templates.rs.)

use crate::support::*;

#[test]
fn unknown_subcommand_suggests() {
    let env = Env::new();
    env.vault(["secrte"]).run().fails(2).stderr_has("secret");
    env.vault(["secret", "lst"])
        .run()
        .fails(2)
        .stderr_has("list");
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
