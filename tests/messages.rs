//! Messages that were wrong or unclear (an audit of the binary,
//! 2026-12-08): each test pins what a user now reads, and the exit code.

use std::fs;

use crate::support::*;

/// `project init -s "a b"` cited "vault.toml, line 6" of a file it never
/// wrote; a bad name given to it is now named by its option, as `run -s`
/// names one, and nothing is written.
#[test]
fn project_init_names_a_bad_argument_by_its_option() {
    let env = Env::new().init();
    let dir = env.path("proj");
    fs::create_dir_all(&dir).unwrap();
    for (args, said) in [
        (&["-s", "a b"][..], "--secret: invalid secret name `a b`"),
        (
            &["-s", "prod/a b"][..],
            "--secret: invalid secret name `a b`",
        ),
        (&["--require", "a b"][..], "--require: invalid key `a b`"),
        (&["--dotenv", ""][..], "--dotenv: an empty path"),
    ] {
        let out = env
            .vault(["project", "init"])
            .args(args)
            .current_dir(&dir)
            .run()
            .fails(1)
            .stderr_has(said);
        assert!(!out.stderr.contains("line"), "{out:?}");
        assert!(!dir.join("vault.toml").exists());
    }
}
