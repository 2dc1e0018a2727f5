//! Templates for `vault render` and `run --render` (DESIGN v2 "Files,
//! editing, generating"): any text with `{{ NAME }}` and
//! `{{ vault://SECRET/KEY }}` placeholders, filled in from values.
//!
//! Pure: the caller says what a name and a reference resolve to. No
//! escapes and no logic, on purpose: a placeholder that is neither a key
//! name nor a reference is an error, as is a name without a value, so a
//! typo never becomes an empty string in a config file. Errors name the
//! template and line, never a value.

use zeroize::Zeroizing;

use crate::{
    error::{Error, Result},
    names::{EnvKey, SecretName, SecretValue},
};

/// `vault://SECRET/KEY`, or `vault://ENV/SECRET/KEY` with an environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Reference {
    pub(crate) env: Option<String>,
    pub(crate) secret: SecretName,
    pub(crate) key: EnvKey,
}

impl Reference {
    /// The reference `text` spells, if it is one.
    pub(crate) fn parse(text: &str) -> Option<Reference> {
        let rest = text.strip_prefix("vault://")?;
        let parts: Vec<&str> = rest.split('/').collect();
        let (env, secret, key) = match parts[..] {
            [secret, key] => (None, secret, key),
            [env, secret, key] if crate::names::is_secret_name(env) => {
                (Some(env.to_string()), secret, key)
            }
            _ => return None,
        };
        Some(Reference {
            env,
            secret: SecretName::parse(secret).ok()?,
            key: EnvKey::parse(key).ok()?,
        })
    }
}

/// Fills in `template` (named `shown` in errors). `lookup` gives a name's
/// value as the command would see it; `reference` a stored value.
pub(crate) fn render(
    template: &str,
    shown: &str,
    lookup: &dyn Fn(&str) -> Option<Zeroizing<String>>,
    reference: &mut dyn FnMut(&Reference) -> Result<SecretValue>,
) -> Result<Zeroizing<String>> {
    let mut out = Zeroizing::new(String::with_capacity(template.len()));
    let mut rest = template;
    let mut line = 1;
    while let Some(open) = rest.find("{{") {
        let (before, after) = rest.split_at(open);
        out.push_str(before);
        line += before.matches('\n').count();
        let at = |what: &str| Error::new(format!("{shown}, line {line}: {what}"));
        let Some(close) = after.find("}}") else {
            return Err(at("`{{` without a closing `}}`")
                .hint("write placeholders as {{ NAME }} or {{ vault://SECRET/KEY }}"));
        };
        let inner = after[2..close].trim_matches([' ', '\t']);
        if inner.contains('\n') {
            return Err(at("a placeholder spans lines")
                .hint("write placeholders as {{ NAME }} or {{ vault://SECRET/KEY }}"));
        }
        if crate::names::is_env_key(inner) {
            let value = lookup(inner).ok_or_else(|| {
                at(&format!(
                    "no value for `{}`",
                    crate::names::printable(inner)
                ))
                .hint(
                    "add a source that sets it (-s NAME, --dotenv, --set KEY=VALUE), or fix the name",
                )
            })?;
            out.push_str(&value);
        } else if let Some(r) = Reference::parse(inner) {
            // The resolver's own hint fits its error ("no vault": `vault
            // init`; a missing key: `vault secret show`); a generic one
            // only where it has none.
            let value = reference(&r).map_err(|e| {
                let e = match e.hint_text() {
                    Some(_) => e,
                    None => e.hint("`vault secret list` shows what exists"),
                };
                e.context(format_args!("{shown}, line {line}"))
            })?;
            out.push_str(value.expose());
        } else {
            // Not shown: the text between the braces is the user's, and
            // could be anything pasted into the wrong file.
            return Err(
                at("a placeholder holds neither a key name nor a vault:// reference")
                    .hint("write placeholders as {{ NAME }} or {{ vault://SECRET/KEY }}"),
            );
        }
        rest = &after[close + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup(name: &str) -> Option<Zeroizing<String>> {
        match name {
            "HOST" => Some(Zeroizing::new("db.local".into())),
            "PASS" => Some(Zeroizing::new("p{{a}}ss\n$x".into())),
            _ => None,
        }
    }

    fn stored(r: &Reference) -> Result<SecretValue> {
        if r.secret.as_str() == "api" && r.key.as_str() == "TOKEN" {
            SecretValue::new(&r.key, Zeroizing::new("tok".into()))
        } else {
            Err(Error::new(format!("no secret named `{}`", r.secret)))
        }
    }

    fn go(t: &str) -> Result<String> {
        render(t, "t.tmpl", &lookup, &mut stored).map(|s| s.to_string())
    }

    #[test]
    fn names_and_references_are_replaced_and_values_are_not_rescanned() {
        assert_eq!(
            go("host: {{HOST}}\npass: {{ PASS }}\ntoken: {{\tvault://api/TOKEN }}\n").unwrap(),
            "host: db.local\npass: p{{a}}ss\n$x\ntoken: tok\n"
        );
        assert_eq!(
            go("no placeholders { } }}").unwrap(),
            "no placeholders { } }}"
        );
    }

    #[test]
    fn unknown_and_malformed_placeholders_are_errors_with_a_line() {
        let e = go("a\nb {{ NOPE }}").unwrap_err();
        assert_eq!(e.message(), "t.tmpl, line 2: no value for `NOPE`");
        let e = go("{{ vault://other/KEY }}").unwrap_err();
        assert!(
            e.message()
                .starts_with("t.tmpl, line 1: no secret named `other`"),
            "{e:?}"
        );
        let e = go("x\n\n{{ .Values.secret }}").unwrap_err();
        assert!(
            e.message()
                .starts_with("t.tmpl, line 3: a placeholder holds neither")
        );
        assert!(!e.message().contains("Values"));
        assert!(
            go("{{ HOST")
                .unwrap_err()
                .message()
                .contains("without a closing")
        );
        assert!(
            go("{{ HOST\n}}")
                .unwrap_err()
                .message()
                .contains("spans lines")
        );
    }

    #[test]
    fn references_parse() {
        let r = Reference::parse("vault://prod/db/PGPASSWORD").unwrap();
        assert_eq!(r.env.as_deref(), Some("prod"));
        assert_eq!((r.secret.as_str(), r.key.as_str()), ("db", "PGPASSWORD"));
        assert!(
            Reference::parse("vault://db/PGPASSWORD")
                .unwrap()
                .env
                .is_none()
        );
        for bad in [
            "vault://db",
            "vault://a/b/c/D",
            "vault://d b/K",
            "vault://db/K-1",
            "db/K",
        ] {
            assert!(Reference::parse(bad).is_none(), "{bad}");
        }
    }
}
