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

/// The internal subcommands (`__agent`, `__exec-files`,
/// `__complete-secrets`) are vault's own, hidden from help: clap's "similar
/// subcommand" tip suggested them too (`vault __agen` → `'__agent'`).
#[test]
fn unknown_subcommand_never_suggests_an_internal_one() {
    let env = Env::new();
    for (typo, kept) in [
        ("__agen", None),
        ("_agent", None),
        ("__exec", Some("'exec'")),
        ("__complete-secret", Some("'completions'")),
        ("__exec-file", None),
    ] {
        let out = env.vault([typo]).run().fails(2);
        let hint = out.stderr.lines().nth(1).unwrap_or_default();
        assert!(hint.starts_with("hint: "), "{typo}: {}", out.stderr);
        assert!(!hint.contains("'__"), "{typo}: {}", out.stderr);
        if let Some(kept) = kept {
            assert!(hint.contains(kept), "{typo}: {}", out.stderr);
        }
    }
}
