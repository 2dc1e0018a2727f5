//! `vault completions SHELL`: clap_complete's script, plus for bash the
//! completion of secret names, which clap's static scripts cannot know.

use clap_complete::Shell;

use crate::{
    agent, cli::completion_command, context::Context, error::Result, names, store, unlock,
    vault::Vault,
};

/// Completes secret names after `-s`/`--secret` and for the `secret`
/// subcommands and `export`, by asking `vault __complete-secrets`, which
/// answers only when it needs no prompt (identity file or agent).
///
/// The names come from a database someone else may have written, so the
/// shell never expands them: `vault` matches the prefix itself and prints
/// only valid names, and each line goes into COMPREPLY as it is. (With
/// `compgen -W "$(…)"`, bash expanded `$(…)` inside a stored name on TAB.)
/// `read` in a loop rather than `mapfile`: bash 3.2 (macOS) has none.
const BASH_SECRETS: &str = r#"
_vault_with_secrets() {
    local cur="${COMP_WORDS[COMP_CWORD]}" prev="${COMP_WORDS[COMP_CWORD-1]}"
    local names=0
    case "$prev" in
        -s|--secret) names=1 ;;
    esac
    if [[ $COMP_CWORD -ge 3 && "${COMP_WORDS[1]}" == secret ]]; then
        case "${COMP_WORDS[2]}" in
            show|set|unset|rename|delete|rm|history|rollback|edit|generate|describe) [[ $COMP_CWORD -eq 3 || "${COMP_WORDS[2]}" == delete || "${COMP_WORDS[2]}" == rm ]] && names=1 ;;
        esac
    fi
    if [[ $COMP_CWORD -ge 2 && "${COMP_WORDS[1]}" == export && "$cur" != -* ]]; then
        names=1
    fi
    if [[ $names -eq 1 ]]; then
        COMPREPLY=()
        local _vault_name
        while IFS= read -r _vault_name; do
            COMPREPLY+=("$_vault_name")
        done < <(vault __complete-secrets -- "$cur" 2>/dev/null)
        return 0
    fi
    _vault "$@"
}
complete -F _vault_with_secrets -o bashdefault -o default vault
"#;

pub(crate) fn run(shell: Shell) -> Result<()> {
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut completion_command(), "vault", &mut script);
    if shell == Shell::Bash {
        script.extend_from_slice(BASH_SECRETS.as_bytes());
    }
    crate::output::print(&String::from_utf8_lossy(&script))
}

/// Secret names that start with `prefix`, one per line, only when they
/// can be read without asking. A stored name that is not a valid name
/// (a forged or damaged database) is never printed: a shell reads this.
pub(crate) fn secret_names(ctx: &Context, prefix: &str) -> Result<()> {
    if !unlock::identity_given(ctx) && agent::status(&ctx.paths.dir).ok().flatten().is_none() {
        return Ok(());
    }
    let Ok(keys) = unlock::unlock(ctx) else {
        return Ok(());
    };
    let Ok(v) = Vault::open(&ctx.paths, &keys) else {
        return Ok(());
    };
    let mut list = String::new();
    for name in store::names(v.conn(), &ctx.scope.env)? {
        if names::is_secret_name(&name) && name.starts_with(prefix) {
            list.push_str(&name);
            list.push('\n');
        }
    }
    crate::output::print(&list)
}
