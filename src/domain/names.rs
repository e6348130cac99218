//! Names and keys: newtypes whose only constructor is a parser.

use std::fmt;

/// Rule text for subject names, quoted in error messages and docs.
pub const SUBJECT_RULE: &str = "must be 1-128 characters: segments of [A-Za-z0-9._-] separated by '/', each starting with a letter or digit";
/// Rule text for labels (versions, environments, suites, metrics, incident ids).
pub const LABEL_RULE: &str =
    "must be 1-64 characters of [A-Za-z0-9._:+-], starting with a letter or digit";
/// Rule text for identities (actors, authors, models).
pub const IDENTITY_RULE: &str =
    "must be 1-128 characters of [A-Za-z0-9._:@/+-], starting with a letter or digit";
/// The subject every access entry (roles, tokens) is filed under. No
/// governed subject can have it: `@` is not allowed in subject names.
pub const ACCESS_SUBJECT: &str = "@access";
pub const IDEMPOTENCY_KEY_RULE: &str = "must be 1-128 printable ASCII characters without spaces";

fn starts_alnum(s: &str) -> bool {
    s.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
}

pub(crate) fn is_label(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && starts_alnum(s)
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '+' | '-'))
}

pub(crate) fn is_identity(s: &str) -> bool {
    (1..=128).contains(&s.len())
        && starts_alnum(s)
        && s.chars().all(|c| {
            c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '@' | '/' | '+' | '-')
        })
}

pub(crate) fn is_subject(s: &str) -> bool {
    (1..=128).contains(&s.len())
        && s.split('/').all(|segment| {
            starts_alnum(segment)
                && segment
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        })
}

macro_rules! name_type {
    ($(#[$doc:meta])* $name:ident, $check:expr, $rule:expr) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            /// Parses `value`, or returns the rule it breaks.
            pub fn parse(value: &str) -> Result<Self, &'static str> {
                if $check(value) {
                    Ok($name(value.to_owned()))
                } else {
                    Err($rule)
                }
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

name_type!(
    /// A governed asset's stable name, e.g. `support-bot/triage-prompt`.
    /// `*` (the default policy's subject) and [`ACCESS_SUBJECT`] (every access
    /// entry's) are also subject names for the log.
    SubjectName,
    |s: &str| s == "*" || s == ACCESS_SUBJECT || is_subject(s),
    SUBJECT_RULE
);

name_type!(
    /// Who caused an entry.
    ActorName,
    is_identity,
    IDENTITY_RULE
);

name_type!(
    /// A client-chosen key that makes an append safe to retry.
    IdempotencyKey,
    |s: &str| (1..=128).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_graphic()),
    IDEMPOTENCY_KEY_RULE
);

impl SubjectName {
    pub fn access() -> SubjectName {
        SubjectName(ACCESS_SUBJECT.to_owned())
    }
}

impl ActorName {
    /// The actor of entries the ledger derives itself (override and drift
    /// incidents).
    pub fn system() -> ActorName {
        ActorName(crate::governance::SYSTEM_ACTOR.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects() {
        for ok in ["a", "support-bot/triage-prompt", "A.b_c-d/e1", "*"] {
            assert!(SubjectName::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "a//b",
            "/a",
            "a/",
            "-x",
            "has space",
            "é",
            &"a".repeat(129),
        ] {
            assert_eq!(SubjectName::parse(bad), Err(SUBJECT_RULE), "{bad}");
        }
    }

    #[test]
    fn labels_and_identities() {
        assert!(is_label("v1.2.3+build:7"));
        assert!(!is_label("v 1"));
        assert!(!is_label(".v1"));
        assert!(!is_label(&"v".repeat(65)));
        assert!(is_identity("alice@example.com"));
        assert!(is_identity("openai/gpt-4o"));
        assert!(!is_identity("alice smith"));
    }

    #[test]
    fn idempotency_keys() {
        assert!(IdempotencyKey::parse("ci:run-42/step-3").is_ok());
        assert!(IdempotencyKey::parse("").is_err());
        assert!(IdempotencyKey::parse("a b").is_err());
        assert!(IdempotencyKey::parse(&"k".repeat(129)).is_err());
    }
}
