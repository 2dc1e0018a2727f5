//! The environment `run` and `shell` give their child: a base (the inherited
//! environment, or the `--clean-env` allowlist), with the sources merged over
//! it in command-line order, remembering where every key came from so that
//! `--explain` and `--conflicts=error` can say so.
//!
//! Pure: no I/O, no vault, no process state. Reading secrets and files is
//! `cmd::run`'s job; exec is `exec`'s.

use std::{
    collections::BTreeMap,
    ffi::{OsStr, OsString},
    fmt,
    path::PathBuf,
};

use crate::names::{EnvKey, SecretName, SecretValue};

/// The passphrase that unlocks a vault: a secret itself, never handed on.
pub(crate) const PASSPHRASE_VAR: &str = "VAULT_PASSPHRASE";

/// The text of an age identity file (CI systems hand secrets over as
/// variables): unlocks by itself, never handed on, never echoed.
pub(crate) const AGE_KEY_VAR: &str = "VAULT_AGE_KEY";

/// Variables that unlock a vault by themselves (the passphrase, the text of
/// an identity): never in a child's environment, inherited or from a source.
pub(crate) const UNLOCKING_VARS: &[&str] = &[PASSPHRASE_VAR, AGE_KEY_VAR];

/// The variables `--clean-env` keeps (plus every `LC_*`): what a program
/// needs to find things and speak the user's language, nothing that
/// configures a particular tool.
pub(crate) const CLEAN_ENV: &[&str] = &[
    "PATH", "HOME", "USER", "LOGNAME", "SHELL", "TERM", "LANG", "TZ", "TMPDIR",
];

/// How `--explain` names the base environment among the sources.
pub(crate) const INHERITED: &str = "inherited";

/// Where a key's value came from, shown as `secret:db`, `secret:prod/db`,
/// `dotenv:/abs/.env`, `set` or `local-env`; a source a project file named
/// is followed by that file: `secret:db (/abs/vault.toml)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Origin {
    Secret(SecretName),
    /// `-s ENV/NAME`: a secret of an environment named explicitly.
    SecretIn(String, SecretName),
    Dotenv(PathBuf),
    Set,
    LocalEnv,
    /// A source of the project file at the path.
    Project(Box<Origin>, PathBuf),
    /// `run --as-file`: the key now holds the path of a memfd.
    AsFile,
    /// `run --render TEMPLATE=KEY`: the path of the rendered memfd.
    Render(PathBuf),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Secret(name) => write!(f, "secret:{name}"),
            Origin::SecretIn(env, name) => write!(f, "secret:{env}/{name}"),
            Origin::Project(inner, path) => write!(f, "{inner} ({})", path.display()),
            Origin::Dotenv(path) => write!(f, "dotenv:{}", path.display()),
            Origin::Set => f.write_str("set"),
            Origin::LocalEnv => f.write_str("local-env"),
            Origin::AsFile => f.write_str("as-file"),
            Origin::Render(path) => write!(f, "render:{}", path.display()),
        }
    }
}

/// Whether `key` survives `--clean-env`.
pub(crate) fn kept_by_clean_env(key: &OsStr) -> bool {
    let Some(key) = key.to_str() else {
        return false;
    };
    CLEAN_ENV.contains(&key) || key.starts_with("LC_")
}

/// One value a source gave a key: which source (an index into `origins`) and what.
struct Setting {
    origin: usize,
    value: SecretValue,
}

/// The child's environment under construction: apply sources in order, then
/// ask it what the child gets, what conflicts, what is missing, and why.
pub(crate) struct ChildEnv {
    /// Inherited variables as they are: any bytes, any names (a shell's
    /// `BASH_FUNC_f%%` included), passed on untouched.
    base: BTreeMap<OsString, OsString>,
    origins: Vec<Origin>,
    /// Every value each key was given by a source, in the order applied.
    set: BTreeMap<EnvKey, Vec<Setting>>,
    /// `--no-override`: inherited variables win over the sources.
    no_override: bool,
}

impl ChildEnv {
    /// The base: `inherited` less `UNLOCKING_VARS`, and with `clean` only
    /// the `CLEAN_ENV` allowlist of it.
    pub(crate) fn new(
        inherited: impl IntoIterator<Item = (OsString, OsString)>,
        clean: bool,
        no_override: bool,
    ) -> ChildEnv {
        let base = inherited
            .into_iter()
            .filter(|(k, _)| !UNLOCKING_VARS.iter().any(|u| k == u))
            .filter(|(k, _)| !clean || kept_by_clean_env(k))
            .collect();
        ChildEnv {
            base,
            origins: vec![],
            set: BTreeMap::new(),
            no_override,
        }
    }

    /// Applies one source over everything before it.
    pub(crate) fn apply(
        &mut self,
        origin: Origin,
        pairs: impl IntoIterator<Item = (EnvKey, SecretValue)>,
    ) {
        let idx = self.origins.len();
        self.origins.push(origin);
        for (key, value) in pairs {
            let settings = self.set.entry(key).or_default();
            // A source that repeats a key has already decided which value it
            // means (a dotenv file warns about it): keep only its last one.
            if settings.last().is_some_and(|s| s.origin == idx) {
                settings.pop();
            }
            settings.push(Setting { origin: idx, value });
        }
    }

    /// What the child would see for `name` if no more sources followed: how
    /// `--dotenv` resolves `$NAME` against the environment built so far.
    pub(crate) fn lookup(&self, name: &str) -> Option<&OsStr> {
        let inherited = self.base.get(OsStr::new(name)).map(OsString::as_os_str);
        if self.no_override && inherited.is_some() {
            return inherited;
        }
        let from_source = EnvKey::parse(name)
            .ok()
            .and_then(|k| self.set.get(&k))
            .and_then(|s| s.last())
            .map(|s| OsStr::new(s.value.expose()));
        from_source.or(inherited)
    }

    /// The value a source gave `key`, if that is what the child gets (not
    /// when `--no-override` lets an inherited variable win).
    pub(crate) fn source_value(&self, key: &EnvKey) -> Option<&SecretValue> {
        if self.no_override && self.base.contains_key(OsStr::new(key.as_str())) {
            return None;
        }
        self.set.get(key).and_then(|s| s.last()).map(|s| &s.value)
    }

    /// Whether any source set `key` (whatever wins in the end).
    pub(crate) fn sources_set(&self, key: &str) -> bool {
        EnvKey::parse(key).is_ok_and(|k| self.set.contains_key(&k))
    }

    /// Every value a source set, overridden ones included, never an
    /// inherited one: what `--redact` masks.
    pub(crate) fn source_values(&self) -> impl Iterator<Item = &str> {
        self.set.values().flatten().map(|s| s.value.expose())
    }

    /// The variables the child gets, sorted by name.
    pub(crate) fn vars(&self) -> Vec<(&OsStr, &OsStr)> {
        let mut out: BTreeMap<&OsStr, &OsStr> = self
            .base
            .iter()
            .map(|(k, v)| (k.as_os_str(), v.as_os_str()))
            .collect();
        for (key, settings) in &self.set {
            let key = OsStr::new(key.as_str());
            if self.no_override && out.contains_key(key) {
                continue;
            }
            if let Some(last) = settings.last() {
                out.insert(key, OsStr::new(last.value.expose()));
            }
        }
        out.into_iter().collect()
    }

    /// What the sources set, each key with the value that won among them
    /// (the inherited environment left out): what `export` prints.
    pub(crate) fn sourced(&self) -> Vec<(&EnvKey, &SecretValue)> {
        self.set
            .iter()
            .filter_map(|(k, s)| s.last().map(|x| (k, &x.value)))
            .collect()
    }

    /// The keys in `required` the child would not get, in the order given.
    pub(crate) fn missing<'a>(&self, required: &'a [EnvKey]) -> Vec<&'a EnvKey> {
        required
            .iter()
            .filter(|k| self.lookup(k.as_str()).is_none())
            .collect()
    }

    /// Keys that two sources give different values, each with the sources
    /// that set it (for `--conflicts=error`; values are never compared in
    /// messages, only named by source).
    pub(crate) fn conflicts(&self) -> Vec<Conflict> {
        self.set
            .iter()
            .filter(|(_, s)| s.iter().any(|x| x.value != s[0].value))
            .map(|(k, s)| Conflict {
                key: k.clone(),
                sources: s
                    .iter()
                    .map(|x| self.origins[x.origin].to_string())
                    .collect(),
            })
            .collect()
    }

    /// For every key a source set: the source that won and those it
    /// overrode, in the order they were applied (`inherited` first).
    pub(crate) fn explain(&self) -> Vec<Explanation> {
        self.set
            .iter()
            .map(|(key, settings)| {
                let label = |s: &Setting| self.origins[s.origin].to_string();
                let inherited = self.base.contains_key(OsStr::new(key.as_str()));
                let (source, overridden) = if self.no_override && inherited {
                    (INHERITED.to_string(), settings.iter().map(label).collect())
                } else {
                    let (last, earlier) = settings.split_last().expect("a key is set by a source");
                    let mut overridden: Vec<String> = vec![];
                    if inherited {
                        overridden.push(INHERITED.to_string());
                    }
                    overridden.extend(earlier.iter().map(label));
                    (label(last), overridden)
                };
                Explanation {
                    key: key.clone(),
                    source,
                    overridden,
                }
            })
            .collect()
    }
}

// Values stay out of `Debug`: only names and where they came from.
impl fmt::Debug for ChildEnv {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChildEnv")
            .field("inherited", &self.base.keys().collect::<Vec<_>>())
            .field("explain", &self.explain())
            .finish()
    }
}

/// Two or more sources giving `key` different values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Conflict {
    pub(crate) key: EnvKey,
    pub(crate) sources: Vec<String>,
}

/// `--explain`'s answer for one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Explanation {
    pub(crate) key: EnvKey,
    pub(crate) source: String,
    pub(crate) overridden: Vec<String>,
}

#[cfg(test)]
mod tests {
    use zeroize::Zeroizing;

    use super::*;

    fn kv(k: &str, v: &str) -> (EnvKey, SecretValue) {
        let k = EnvKey::parse(k).unwrap();
        let v = SecretValue::new(&k, Zeroizing::new(v.to_string())).unwrap();
        (k, v)
    }

    fn os(pairs: &[(&str, &str)]) -> Vec<(OsString, OsString)> {
        pairs.iter().map(|(k, v)| (k.into(), v.into())).collect()
    }

    fn secret(n: &str) -> Origin {
        Origin::Secret(SecretName::parse(n).unwrap())
    }

    fn get<'a>(env: &'a ChildEnv, k: &str) -> Option<&'a str> {
        env.vars()
            .into_iter()
            .find(|(key, _)| *key == k)
            .map(|(_, v)| v.to_str().unwrap())
    }

    #[test]
    fn later_sources_win_and_all_override_the_base() {
        let mut env = ChildEnv::new(os(&[("X", "inherited"), ("KEEP", "k")]), false, false);
        env.apply(Origin::Set, [kv("X", "1")]);
        env.apply(secret("a"), [kv("X", "a"), kv("A", "only-a")]);
        env.apply(Origin::Set, [kv("X", "2")]);
        assert_eq!(get(&env, "X"), Some("2"));
        assert_eq!(get(&env, "A"), Some("only-a"));
        assert_eq!(get(&env, "KEEP"), Some("k"));
        assert_eq!(env.vars().len(), 3, "each key once");
    }

    #[test]
    fn every_pair_of_kinds_in_both_orders() {
        let kinds = [
            secret("s"),
            Origin::Dotenv("/p/.env".into()),
            Origin::Set,
            Origin::LocalEnv,
        ];
        for a in &kinds {
            for b in &kinds {
                let mut env = ChildEnv::new(os(&[]), false, false);
                env.apply(a.clone(), [kv("X", "first")]);
                env.apply(b.clone(), [kv("X", "second")]);
                assert_eq!(get(&env, "X"), Some("second"), "{a} then {b}");
                let e = &env.explain()[0];
                assert_eq!(e.source, b.to_string());
                assert_eq!(e.overridden, [a.to_string()]);
            }
        }
    }

    #[test]
    fn no_override_lets_inherited_win() {
        let mut env = ChildEnv::new(os(&[("X", "inherited")]), false, true);
        env.apply(Origin::Set, [kv("X", "set"), kv("Y", "y")]);
        assert_eq!(get(&env, "X"), Some("inherited"));
        assert_eq!(get(&env, "Y"), Some("y"));
        assert_eq!(env.lookup("X").unwrap(), "inherited");
        let e = env.explain();
        assert_eq!(e[0].source, INHERITED);
        assert_eq!(e[0].overridden, ["set"]);
        assert_eq!(e[1].source, "set");
        assert!(e[1].overridden.is_empty());
    }

    #[test]
    fn explain_lists_the_inherited_value_first() {
        let mut env = ChildEnv::new(os(&[("X", "inherited")]), false, false);
        env.apply(secret("a"), [kv("X", "a")]);
        env.apply(Origin::Dotenv("/w/.env".into()), [kv("X", "d")]);
        let e = env.explain();
        assert_eq!(e[0].source, "dotenv:/w/.env");
        assert_eq!(e[0].overridden, ["inherited", "secret:a"]);
    }

    #[test]
    fn passphrase_never_in_base_and_clean_env_allowlist() {
        let inherited = os(&[
            ("VAULT_PASSPHRASE", "pw"),
            ("VAULT_AGE_KEY", "AGE-SECRET-KEY-1"),
            ("VAULT_DIR", "/d"),
            ("PATH", "/bin"),
            ("LC_ALL", "C"),
            ("TERM", "xterm"),
            ("AWS_PROFILE", "prod"),
        ]);
        let env = ChildEnv::new(inherited.clone(), false, false);
        assert_eq!(get(&env, "VAULT_PASSPHRASE"), None);
        assert_eq!(get(&env, "VAULT_AGE_KEY"), None);
        assert_eq!(get(&env, "VAULT_DIR"), Some("/d"));
        assert_eq!(get(&env, "AWS_PROFILE"), Some("prod"));
        let clean = ChildEnv::new(inherited, true, false);
        let names: Vec<_> = clean
            .vars()
            .into_iter()
            .map(|(k, _)| k.to_str().unwrap())
            .collect();
        assert_eq!(names, ["LC_ALL", "PATH", "TERM"]);
    }

    #[test]
    fn odd_inherited_names_pass_through() {
        let env = ChildEnv::new(
            os(&[("BASH_FUNC_f%%", "() { :; }"), ("1X", "y")]),
            false,
            false,
        );
        assert_eq!(get(&env, "BASH_FUNC_f%%"), Some("() { :; }"));
        assert_eq!(get(&env, "1X"), Some("y"));
    }

    #[test]
    fn lookup_sees_the_environment_built_so_far() {
        let mut env = ChildEnv::new(os(&[("HOST", "base")]), false, false);
        assert_eq!(env.lookup("HOST").unwrap(), "base");
        env.apply(secret("a"), [kv("HOST", "db")]);
        assert_eq!(env.lookup("HOST").unwrap(), "db");
        assert_eq!(env.lookup("NOPE"), None);
        assert_eq!(env.lookup("not a key"), None);
    }

    #[test]
    fn conflicts_only_for_different_values() {
        let mut env = ChildEnv::new(os(&[("X", "inherited")]), false, false);
        env.apply(secret("a"), [kv("X", "1"), kv("SAME", "s")]);
        env.apply(Origin::Set, [kv("X", "2"), kv("SAME", "s")]);
        let c = env.conflicts();
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].key.as_str(), "X");
        assert_eq!(c[0].sources, ["secret:a", "set"]);
    }

    #[test]
    fn repeated_key_within_one_source_is_one_setting() {
        let mut env = ChildEnv::new(os(&[]), false, false);
        env.apply(Origin::Set, [kv("X", "1"), kv("X", "2")]);
        assert_eq!(get(&env, "X"), Some("2"));
        assert!(env.conflicts().is_empty());
        assert!(env.explain()[0].overridden.is_empty());
    }

    #[test]
    fn missing_names_every_absent_key() {
        let mut env = ChildEnv::new(os(&[("HOME", "/h")]), false, false);
        env.apply(Origin::Set, [kv("A", "")]);
        let req: Vec<EnvKey> = ["A", "B", "HOME", "C"]
            .iter()
            .map(|k| EnvKey::parse(k).unwrap())
            .collect();
        let missing: Vec<&str> = env.missing(&req).iter().map(|k| k.as_str()).collect();
        assert_eq!(missing, ["B", "C"], "an empty value is set");
    }

    #[test]
    fn source_values_are_every_value_a_source_set() {
        let mut env = ChildEnv::new(os(&[("INHERITED", "not-masked")]), false, false);
        env.apply(secret("a"), [kv("X", "overridden"), kv("Y", "y-value")]);
        env.apply(Origin::Set, [kv("X", "winner")]);
        let mut values: Vec<&str> = env.source_values().collect();
        values.sort_unstable();
        assert_eq!(values, ["overridden", "winner", "y-value"]);
    }

    #[test]
    fn debug_shows_no_values() {
        let mut env = ChildEnv::new(os(&[("INHERITED_SECRET", "hunter1")]), false, false);
        env.apply(Origin::Set, [kv("TOKEN", "hunter2")]);
        let d = format!("{env:?}");
        assert!(!d.contains("hunter"), "{d}");
        assert!(d.contains("TOKEN"));
    }
}
