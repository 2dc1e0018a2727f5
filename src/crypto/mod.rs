//! age, and only age: the keys that open a vault (`Keys`), the owner's
//! identity (`identity`), recipients (`recipient`) and the vault payload
//! (`payload`). No file paths are chosen here, and no terminal is used: an
//! ssh key's passphrase is asked through the caller's callback.

pub(crate) mod identity;
pub(crate) mod payload;
pub(crate) mod recipient;

use std::{cell::OnceCell, fmt};

use age::secrecy::{ExposeSecret, SecretString};

pub(crate) use identity::*;
pub(crate) use payload::*;
pub(crate) use recipient::*;

/// What can open a vault: one or more age identities, plus the public
/// recipients they correspond to (used to create a vault for them and to say
/// "this vault is not encrypted to your key …").
pub struct Keys {
    identities: Vec<Box<dyn age::Identity>>,
    recipients: OnceCell<Vec<String>>,
    /// Where the recipients come from when they are not known up front:
    /// the agent is asked only if they are needed (`run` never needs them,
    /// and one round trip to the agent is a third of a millisecond).
    lookup: Option<Box<dyn Fn() -> Vec<String>>>,
}

impl fmt::Debug for Keys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keys")
            .field("identities", &crate::names::MASK)
            .field("recipients", &self.recipients.get())
            .finish()
    }
}

impl Keys {
    pub(crate) fn from_x25519(id: age::x25519::Identity) -> Self {
        let recipient = id.to_public().to_string();
        Keys::known(vec![Box::new(id)], vec![recipient])
    }

    fn known(identities: Vec<Box<dyn age::Identity>>, recipients: Vec<String>) -> Self {
        Keys {
            identities,
            recipients: OnceCell::from(recipients),
            lookup: None,
        }
    }

    /// Keys whose secret half lives elsewhere (the agent); `recipients`
    /// asks for the public half the first time it is needed.
    pub(crate) fn from_agent(
        identities: Vec<Box<dyn age::Identity>>,
        recipients: impl Fn() -> Vec<String> + 'static,
    ) -> Self {
        Keys {
            identities,
            recipients: OnceCell::new(),
            lookup: Some(Box::new(recipients)),
        }
    }

    pub(crate) fn recipients(&self) -> &[String] {
        self.recipients
            .get_or_init(|| self.lookup.as_ref().map_or_else(Vec::new, |ask| ask()))
    }

    /// The file key of an age header, if one of these identities can
    /// unwrap one of its stanzas (what the agent does for its clients).
    pub(crate) fn unwrap_stanzas(
        &self,
        stanzas: &[age_core::format::Stanza],
    ) -> Option<std::result::Result<age_core::format::FileKey, age::DecryptError>> {
        self.identities
            .iter()
            .find_map(|i| i.unwrap_stanzas(stanzas))
    }

    fn identities(&self) -> impl Iterator<Item = &dyn age::Identity> {
        self.identities
            .iter()
            .map(|i| i.as_ref() as &dyn age::Identity)
    }
}

/// age's messages wrap numbers in invisible isolation marks, and some run
/// on over several lines ("unknown age format.\nhave you tried upgrading
/// …"): keep the first line, without the marks, so that an error stays one
/// line.
pub(crate) fn age_reason(e: &dyn std::fmt::Display) -> String {
    let text = e.to_string().replace(['\u{2068}', '\u{2069}'], "");
    text.lines()
        .next()
        .unwrap_or_default()
        .trim()
        .trim_end_matches('.')
        .to_lowercase()
}

/// A passphrase typed twice must match; compared in constant time.
pub(crate) fn same_passphrase(a: &SecretString, b: &SecretString) -> bool {
    use subtle::ConstantTimeEq;
    let (a, b) = (a.expose_secret().as_bytes(), b.expose_secret().as_bytes());
    // ct_eq on slices of different lengths is already false; lengths are not secret here.
    bool::from(a.ct_eq(b))
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn age_reasons_are_one_line() {
        let e = age::DecryptError::UnknownFormat;
        let reason = age_reason(&e);
        assert!(!reason.contains('\n'), "{reason:?}");
        assert_eq!(reason, "unknown age format");
    }
    #[test]
    fn agent_keys_ask_for_recipients_once_and_only_when_needed() {
        use std::{cell::Cell, rc::Rc};
        let asked = Rc::new(Cell::new(0));
        let counter = asked.clone();
        let keys = Keys::from_agent(vec![], move || {
            counter.set(counter.get() + 1);
            vec!["age1x".to_string()]
        });
        assert_eq!(asked.get(), 0, "creating them asks nothing");
        assert!(format!("{keys:?}").contains("None"));
        assert_eq!(keys.recipients(), ["age1x"]);
        assert_eq!(keys.recipients(), ["age1x"]);
        assert_eq!(asked.get(), 1);
    }
    #[test]
    fn passphrase_compare() {
        let a = SecretString::from("abc".to_string());
        assert!(same_passphrase(&a, &SecretString::from("abc".to_string())));
        assert!(!same_passphrase(&a, &SecretString::from("abd".to_string())));
        assert!(!same_passphrase(&a, &SecretString::from("ab".to_string())));
    }
}
