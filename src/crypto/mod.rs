//! age, and only age: the keys that open a vault (`Keys`), the owner's
//! identity (`identity`), recipients (`recipient`) and the vault payload
//! (`payload`). No file paths are chosen here, and no terminal is used: an
//! ssh key's passphrase is asked through the caller's callback.

pub(crate) mod identity;
pub(crate) mod payload;
pub(crate) mod recipient;

use std::{
    cell::{Cell, OnceCell, RefCell},
    fmt,
};

use age::secrecy::{ExposeSecret, SecretString};

use crate::error::{Error, Result};

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
    /// What signs this user's writes (DESIGN v2 "Trust").
    signers: Signers,
    /// The `vault-sig` stanzas of the header these keys unwrapped last:
    /// the reader sees the signature through its identity.
    seen: RefCell<Vec<age_core::format::Stanza>>,
    /// The stanza of the next header to try first (`prefer_stanza`).
    prefer: Cell<Option<usize>>,
}

/// Who can sign for these keys.
enum Signers {
    /// Secret keys in this process, each with its recipient.
    Local(Vec<(String, crate::sign::SigningKey)>),
    /// The agent, which signs only vault messages (`sign::is_message`).
    Agent(Box<AgentSign>),
}

/// How the agent is asked to sign a message.
type AgentSign = dyn Fn(&[u8]) -> Result<crate::sign::Signature>;

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
        let signer = crate::sign::SigningKey::x25519(&id);
        Keys::known(vec![Box::new(id)], vec![(recipient, signer)])
    }

    /// Identities held here, with the recipient and signing key of each.
    fn known(
        identities: Vec<Box<dyn age::Identity>>,
        signers: Vec<(String, crate::sign::SigningKey)>,
    ) -> Self {
        Keys {
            identities,
            recipients: OnceCell::from(signers.iter().map(|(r, _)| r.clone()).collect::<Vec<_>>()),
            lookup: None,
            signers: Signers::Local(signers),
            seen: RefCell::default(),
            prefer: Cell::new(None),
        }
    }

    /// Keys whose secret half lives elsewhere (the agent); `recipients`
    /// asks for the public half the first time it is needed.
    pub(crate) fn from_agent(
        identities: Vec<Box<dyn age::Identity>>,
        recipients: impl Fn() -> Vec<String> + 'static,
        sign: impl Fn(&[u8]) -> Result<crate::sign::Signature> + 'static,
    ) -> Self {
        Keys {
            identities,
            recipients: OnceCell::new(),
            lookup: Some(Box::new(recipients)),
            signers: Signers::Agent(Box::new(sign)),
            seen: RefCell::default(),
            prefer: Cell::new(None),
        }
    }

    /// Signs a vault message with the key whose recipient is first among
    /// `prefer` (the vault's recipients), else with the first key.
    pub(crate) fn sign(&self, msg: &[u8], prefer: &[String]) -> Result<crate::sign::Signature> {
        match &self.signers {
            Signers::Agent(ask) => ask(msg),
            Signers::Local(keys) => {
                let (recipient, key) = keys
                    .iter()
                    .find(|(r, _)| prefer.contains(r))
                    .or_else(|| keys.first())
                    .ok_or_else(|| Error::new("there is no key to sign the vault with"))?;
                Ok(crate::sign::Signature {
                    recipient: recipient.clone(),
                    bytes: key.sign(msg)?,
                })
            }
        }
    }

    /// Whether `recipient` is one of these keys' own.
    pub(crate) fn is_mine(&self, recipient: &str) -> bool {
        self.recipients().iter().any(|r| r == recipient)
    }

    /// Forgets the signature stanzas seen so far (before a new file).
    pub(crate) fn forget_signatures(&self) {
        self.seen.borrow_mut().clear();
    }

    /// The `vault-sig` stanzas of the last header unwrapped.
    pub(crate) fn take_signatures(&self) -> Vec<age_core::format::Stanza> {
        std::mem::take(&mut *self.seen.borrow_mut())
    }

    pub(crate) fn recipients(&self) -> &[String] {
        self.recipients
            .get_or_init(|| self.lookup.as_ref().map_or_else(Vec::new, |ask| ask()))
    }

    /// Has the next header these keys unwrap try stanza `index` first
    /// (the verification cache's note of which one opened that file
    /// version before): an X25519 stanza does not say whom it is for, so
    /// without it an identity tries every stanza in turn, one X25519
    /// ladder each, and the 12th member of a team pays 12 (BENCHMARKS.md,
    /// issue 20 follow-up 8). Only the order of the attempts changes: a
    /// hinted stanza that does not unwrap to a key is tried again in its
    /// turn, so the result is age's own. For the next header only.
    pub(crate) fn prefer_stanza(&self, index: Option<usize>) {
        self.prefer.set(index);
    }

    /// The file key of an age header, if one of these identities can
    /// unwrap one of its stanzas (what the agent does for its clients).
    /// A stanza named by `prefer_stanza` is tried first, by each identity
    /// (the agent's too: one stanza in its request instead of all).
    pub(crate) fn unwrap_stanzas(
        &self,
        stanzas: &[age_core::format::Stanza],
    ) -> Option<std::result::Result<age_core::format::FileKey, age::DecryptError>> {
        let first = self.prefer.take().and_then(|i| stanzas.get(i));
        let sigs = stanzas
            .iter()
            .filter(|s| s.tag == crate::sign::STANZA_TAG)
            .map(|s| age_core::format::Stanza {
                tag: s.tag.clone(),
                args: s.args.clone(),
                body: s.body.clone(),
            });
        *self.seen.borrow_mut() = sigs.collect();
        if let Some(s) = first {
            for i in &self.identities {
                if let Some(Ok(key)) = i.unwrap_stanza(s) {
                    return Some(Ok(key));
                }
            }
        }
        self.identities
            .iter()
            .find_map(|i| i.unwrap_stanzas(stanzas))
    }
}

/// For tests: keys of `id` that count the stanzas they try to unwrap.
#[cfg(test)]
pub(crate) fn counting(id: age::x25519::Identity) -> (Keys, std::rc::Rc<Cell<u32>>) {
    struct Counting(age::x25519::Identity, std::rc::Rc<Cell<u32>>);
    impl age::Identity for Counting {
        fn unwrap_stanza(
            &self,
            s: &age_core::format::Stanza,
        ) -> Option<std::result::Result<age_core::format::FileKey, age::DecryptError>> {
            self.1.set(self.1.get() + 1);
            self.0.unwrap_stanza(s)
        }
    }
    let recipient = id.to_public().to_string();
    let count = std::rc::Rc::new(Cell::new(0));
    let signer = crate::sign::SigningKey::x25519(&id);
    let keys = Keys::known(
        vec![Box::new(Counting(id, count.clone()))],
        vec![(recipient, signer)],
    );
    (keys, count)
}

/// `Keys` as one age identity: every header goes through
/// `Keys::unwrap_stanzas`, which notes its signature stanza.
impl age::Identity for Keys {
    fn unwrap_stanza(
        &self,
        stanza: &age_core::format::Stanza,
    ) -> Option<std::result::Result<age_core::format::FileKey, age::DecryptError>> {
        self.unwrap_stanzas(std::slice::from_ref(stanza))
    }

    fn unwrap_stanzas(
        &self,
        stanzas: &[age_core::format::Stanza],
    ) -> Option<std::result::Result<age_core::format::FileKey, age::DecryptError>> {
        Keys::unwrap_stanzas(self, stanzas)
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
        let keys = Keys::from_agent(
            vec![],
            move || {
                counter.set(counter.get() + 1);
                vec!["age1x".to_string()]
            },
            |_| Err(Error::new("no")),
        );
        assert_eq!(asked.get(), 0, "creating them asks nothing");
        assert!(format!("{keys:?}").contains("None"));
        assert_eq!(keys.recipients(), ["age1x"]);
        assert_eq!(keys.recipients(), ["age1x"]);
        assert_eq!(asked.get(), 1);
    }
    /// A team vault whose 12th recipient is us: a preferred stanza is the
    /// only one tried when it is ours; a wrong or impossible preference
    /// costs at most one more attempt and still opens the file; the
    /// preference holds for one header only.
    #[test]
    fn a_preferred_stanza_is_tried_first_and_only_reorders_the_attempts() {
        let (keys, count) = counting(generate());
        let mut team: Vec<String> = (0..11)
            .map(|_| generate().to_public().to_string())
            .collect();
        team.push(keys.recipients()[0].clone());
        let sealed = encrypt_vec(&team, b"database").unwrap();
        let tries = |prefer: Option<usize>| {
            count.set(0);
            keys.prefer_stanza(prefer);
            assert_eq!(&decrypt_vec(&sealed, &keys).unwrap()[..], b"database");
            count.get()
        };
        assert_eq!(tries(None), 12, "every stanza up to ours");
        assert_eq!(tries(Some(11)), 1, "ours first");
        assert_eq!(tries(Some(3)), 13, "someone else's first, then all");
        assert_eq!(tries(Some(12)), 13, "the grease stanza, then all");
        assert_eq!(tries(Some(99)), 12, "no such stanza");
        keys.prefer_stanza(Some(11));
        decrypt_vec(&sealed, &keys).unwrap();
        count.set(0);
        decrypt_vec(&sealed, &keys).unwrap();
        assert_eq!(count.get(), 12, "for the next header only");
        // A stranger's keys with a preference: still refused.
        let (stranger, _) = counting(generate());
        stranger.prefer_stanza(Some(11));
        assert!(decrypt_vec(&sealed, &stranger).is_err());
    }

    #[test]
    fn passphrase_compare() {
        let a = SecretString::from("abc".to_string());
        assert!(same_passphrase(&a, &SecretString::from("abc".to_string())));
        assert!(!same_passphrase(&a, &SecretString::from("abd".to_string())));
        assert!(!same_passphrase(&a, &SecretString::from("ab".to_string())));
    }
}
