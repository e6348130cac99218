//! Bearer tokens: `glt_<id>_<secret>`.
//!
//! The id (64 random bits, 16 hex digits) is public: it names the token in
//! lists, revocations and logs. The secret (256 random bits, 64 hex digits)
//! is shown once, at creation; the ledger keeps only
//! `BLAKE3(TOKEN_HASH_DOMAIN || secret)`, and a presented secret is checked
//! by comparing hashes in constant time (`blake3::Hash`'s equality is).

use std::fmt;

/// Every token starts with this, so secret scanners can find leaked ones.
pub const TOKEN_PREFIX: &str = "glt_";
/// Domain-separation prefix of a token secret's hash.
pub const TOKEN_HASH_DOMAIN: &[u8] = b"govledger/v1/token\x00";

const ID_BYTES: usize = 8;
const SECRET_BYTES: usize = 32;

/// A freshly generated token. `Display` writes the whole token (the secret
/// included): print it once, to whoever asked for it, and nowhere else.
pub struct NewToken {
    pub id: String,
    secret: String,
}

impl NewToken {
    /// A new random token from the operating system's CSPRNG.
    pub fn generate() -> Result<NewToken, getrandom::Error> {
        let mut id = [0u8; ID_BYTES];
        let mut secret = [0u8; SECRET_BYTES];
        getrandom::fill(&mut id)?;
        getrandom::fill(&mut secret)?;
        Ok(NewToken {
            id: hex(&id),
            secret: hex(&secret),
        })
    }

    /// The hash the ledger stores.
    pub fn secret_hash(&self) -> [u8; 32] {
        *secret_hash(&self.secret).as_bytes()
    }
}

impl fmt::Display for NewToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{TOKEN_PREFIX}{}_{}", self.id, self.secret)
    }
}

/// Never prints the secret.
impl fmt::Debug for NewToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NewToken {{ id: {:?}, secret: <redacted> }}", self.id)
    }
}

/// A presented token, split into its id and secret.
pub struct PresentedToken<'a> {
    pub id: &'a str,
    secret: &'a str,
}

impl<'a> PresentedToken<'a> {
    /// Splits `glt_<16 hex>_<64 hex>`; `None` if it is not of that shape.
    pub fn parse(token: &'a str) -> Option<PresentedToken<'a>> {
        let rest = token.strip_prefix(TOKEN_PREFIX)?;
        let (id, secret) = rest.split_once('_')?;
        let is_hex = |s: &str, len: usize| {
            s.len() == len && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        };
        (is_hex(id, 2 * ID_BYTES) && is_hex(secret, 2 * SECRET_BYTES))
            .then_some(PresentedToken { id, secret })
    }

    /// Whether the secret hashes to `stored_hash_hex` (compared in constant
    /// time; a malformed stored hash never matches).
    pub fn matches(&self, stored_hash_hex: &str) -> bool {
        match blake3::Hash::from_hex(stored_hash_hex) {
            Ok(stored) => secret_hash(self.secret) == stored,
            Err(_) => false,
        }
    }
}

fn secret_hash(secret: &str) -> blake3::Hash {
    let mut hasher = blake3::Hasher::new();
    hasher.update(TOKEN_HASH_DOMAIN);
    hasher.update(secret.as_bytes());
    hasher.finalize()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_token_parses_and_matches_only_its_own_hash() {
        let token = NewToken::generate().unwrap();
        let other = NewToken::generate().unwrap();
        let text = token.to_string();
        assert!(text.starts_with("glt_"));
        assert_eq!(text.len(), 4 + 16 + 1 + 64);
        let presented = PresentedToken::parse(&text).expect("parses");
        assert_eq!(presented.id, token.id);
        assert!(presented.matches(&hex(&token.secret_hash())));
        assert!(!presented.matches(&hex(&other.secret_hash())));
        assert!(!presented.matches("not hex"));
        assert_ne!(token.id, other.id);
    }

    #[test]
    fn malformed_tokens_do_not_parse() {
        let good = NewToken::generate().unwrap().to_string();
        for bad in [
            "",
            "glt_",
            &good[4..],
            &good[..good.len() - 1],
            &good.to_uppercase(),
            &good.replacen('_', "-", 2),
            &format!("{good}0"),
        ] {
            assert!(PresentedToken::parse(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let token = NewToken::generate().unwrap();
        let debug = format!("{token:?}");
        assert!(!debug.contains(&token.secret), "{debug}");
        assert!(debug.contains(&token.id));
    }

    /// Known answer: the stored hash is BLAKE3 over the domain prefix and the
    /// secret's hex text, so an operator can recompute it with `b3sum`:
    /// `printf 'govledger/v1/token\0%s' SECRET | b3sum`.
    #[test]
    fn the_stored_hash_is_blake3_of_the_domain_and_the_secret() {
        let secret = "00".repeat(32);
        let mut input = TOKEN_HASH_DOMAIN.to_vec();
        input.extend_from_slice(secret.as_bytes());
        assert_eq!(secret_hash(&secret), blake3::hash(&input));
    }
}
