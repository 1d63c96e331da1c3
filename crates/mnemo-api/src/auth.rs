//! Bearer tokens: JWTs whose `sub` is the owner.
//!
//! Two kinds of signer are trusted, each only for its own algorithm:
//! - **mnemo's own** HS256 secret (local use: `mnemo token issue`), tokens
//!   with `iss = mnemo`;
//! - **an identity provider** (Keycloak, Auth0, any OIDC issuer) signing
//!   with RS256/RS384/RS512/ES256/ES384/EdDSA, verified against its JWK Set
//!   (`--jwks-file`, or `--jwks-url` fetched at start and every
//!   `--jwks-refresh`), key chosen by `kid`; a `kid` not in the set re-reads
//!   the file or re-fetches the URL (at most every [`JWKS_RELOAD_EVERY`]),
//!   so a rotated key is picked up without a restart.
//!
//! Every token must carry `sub`, `iss`, `aud` (the API's audience, `mnemo`
//! by default), `iat` and `exp`; `nbf` is honoured when present; `exp - iat`
//! may not exceed the configured maximum lifetime; 60 s of leeway for
//! clocks. Roles come from a claim (`roles`, or a dotted path such as
//! `realm_access.roles`); `admin` among them makes an admin. The checks are
//! jsonwebtoken's `Validation` (algorithm, signature, exp, nbf, iss, aud,
//! required claims) plus the lifetime and the owner id.
//!
//! The interceptor runs before every call: it verifies the token and puts a
//! [`Caller`] into the request's extensions; handlers read the owner only
//! from there. A refused token is `UNAUTHENTICATED` with the reason.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{
    decode, decode_header, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation,
};
use mnemo_domain::OwnerId;
use serde::{Deserialize, Serialize};
use tonic::{Request, Status};

/// Issuer of mnemo's own (HS256) tokens.
pub const ISSUER: &str = "mnemo";
/// The audience tokens must name unless configured otherwise.
pub const DEFAULT_AUDIENCE: &str = "mnemo";
/// The longest a token may live (`exp - iat`) unless configured otherwise.
pub const DEFAULT_MAX_LIFETIME: Duration = Duration::from_secs(31 * 24 * 3600);
/// Clock skew tolerated on `exp`, `nbf` and `iat`.
pub const LEEWAY: Duration = Duration::from_secs(60);
/// How often an unknown `kid` may make the JWK Set be read again.
pub const JWKS_RELOAD_EVERY: Duration = Duration::from_secs(10);
/// How often a JWK Set URL is fetched again without being asked to.
pub const DEFAULT_JWKS_REFRESH: Duration = Duration::from_secs(300);
/// The largest JWK Set accepted from a URL.
const JWKS_MAX_BYTES: usize = 1024 * 1024;
/// The longest a JWK Set fetch may take.
const JWKS_FETCH_TIMEOUT: Duration = Duration::from_secs(10);
/// The role that makes an admin.
pub const ADMIN_ROLE: &str = "admin";

/// The claims of a mnemo token (as issued; a provider's may have more).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub iss: String,
    pub aud: String,
    pub iat: u64,
    pub exp: u64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
}

/// Who is calling, as the token proved.
#[derive(Debug, Clone)]
pub struct Caller {
    pub owner: OwnerId,
    pub admin: bool,
    /// When the token was issued (`iat`, seconds since the epoch): calls
    /// that cannot be undone ask for a recent sign-in.
    pub issued_at: u64,
}

impl Caller {
    /// Whether the token was issued within `window` (a fresh sign-in).
    pub fn signed_in_within(&self, window: std::time::Duration) -> bool {
        now_secs().saturating_sub(self.issued_at) <= window.as_secs()
    }
}

/// Why a token was refused.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("missing 'authorization: Bearer <token>' metadata")]
    Missing,
    #[error("invalid token: {0}")]
    Invalid(String),
    #[error("cannot sign token: {0}")]
    Sign(String),
    #[error("cannot read the JWK Set {path}: {reason}")]
    Jwks { path: String, reason: String },
}

/// Where an identity provider's keys are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JwksSource {
    /// A JSON file the operator keeps current.
    File(PathBuf),
    /// The provider's `jwks_uri` (https, or http on loopback only).
    Url(String),
}

impl JwksSource {
    /// Refuses a URL whose keys could be swapped on the way: plain HTTP
    /// is accepted for this machine only.
    pub fn check(&self) -> Result<(), AuthError> {
        if let Self::Url(url) = self {
            let target = mnemo_qa::http::Target::parse(url).map_err(|reason| AuthError::Jwks {
                path: url.clone(),
                reason,
            })?;
            if !target.https && !target.is_loopback() {
                return Err(AuthError::Jwks {
                    path: url.clone(),
                    reason: "a JWK Set is fetched over https (http only from this machine)".into(),
                });
            }
        }
        Ok(())
    }
}

/// Whom the API trusts to sign tokens, and what it asks of them.
#[derive(Clone)]
pub struct AuthConfig {
    /// mnemo's own HS256 secret (None: only an identity provider's tokens).
    pub hs256_secret: Option<Vec<u8>>,
    /// An identity provider's JWK Set.
    pub jwks: Option<JwksSource>,
    /// The identity provider's `iss` (its tokens must name it).
    pub jwks_issuer: Option<String>,
    /// The `aud` every token must name.
    pub audience: String,
    /// The longest `exp - iat` accepted.
    pub max_lifetime: Duration,
    /// Where the roles are: a claim name, or a dotted path into the claims.
    pub roles_claim: String,
    /// How often a token naming an unknown key may make the JWK Set be
    /// read again ([`JWKS_RELOAD_EVERY`]): a rotated key is picked up, and
    /// a flood of made-up key ids does not become a flood of reads.
    pub jwks_reload_every: Duration,
    /// How often a JWK Set URL is fetched again unasked.
    pub jwks_refresh: Duration,
}

/// The secret never shows in a log or an error.
impl std::fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthConfig")
            .field(
                "hs256_secret",
                &self.hs256_secret.as_ref().map(|_| "<redacted>"),
            )
            .field("jwks", &self.jwks)
            .field("jwks_issuer", &self.jwks_issuer)
            .field("audience", &self.audience)
            .field("max_lifetime", &self.max_lifetime)
            .field("roles_claim", &self.roles_claim)
            .field("jwks_reload_every", &self.jwks_reload_every)
            .field("jwks_refresh", &self.jwks_refresh)
            .finish()
    }
}

impl AuthConfig {
    /// mnemo's own tokens only, signed with `secret`.
    pub fn local(secret: &[u8]) -> Self {
        Self {
            hs256_secret: Some(secret.to_vec()),
            jwks: None,
            jwks_issuer: None,
            audience: DEFAULT_AUDIENCE.into(),
            max_lifetime: DEFAULT_MAX_LIFETIME,
            roles_claim: "roles".into(),
            jwks_reload_every: JWKS_RELOAD_EVERY,
            jwks_refresh: DEFAULT_JWKS_REFRESH,
        }
    }
}

/// The identity provider's keys, read again when a token names a key they
/// lack (a file at once; a URL by waking the refresher).
#[derive(Debug)]
struct Jwks {
    source: JwksSource,
    set: JwkSet,
    /// When the keys were last read, or a read was last asked for.
    read_at: Instant,
    /// Wakes the URL refresher before its next round.
    wake: Arc<Notify>,
    /// Fetches that succeeded (tests and the refresher's log).
    fetched: u64,
}

/// Signs (mnemo's own tokens) and verifies tokens.
#[derive(Clone)]
pub struct Authenticator {
    config: Arc<AuthConfig>,
    encoding: Option<EncodingKey>,
    hs256: Option<DecodingKey>,
    jwks: Option<Arc<Mutex<Jwks>>>,
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn read_jwks(path: &PathBuf) -> Result<JwkSet, AuthError> {
    let err = |reason: String| AuthError::Jwks {
        path: path.display().to_string(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
    serde_json::from_str(&text).map_err(|e| err(e.to_string()))
}

async fn fetch_jwks(url: &str) -> Result<JwkSet, AuthError> {
    let err = |reason: String| AuthError::Jwks {
        path: url.to_owned(),
        reason,
    };
    let body = mnemo_qa::http::get(url, JWKS_MAX_BYTES, JWKS_FETCH_TIMEOUT)
        .await
        .map_err(err)?;
    serde_json::from_slice(&body).map_err(|e| err(e.to_string()))
}

impl Authenticator {
    /// mnemo's own tokens only (HS256 with `secret`), with the defaults.
    pub fn new(secret: &[u8]) -> Self {
        Self {
            config: Arc::new(AuthConfig::local(secret)),
            encoding: Some(EncodingKey::from_secret(secret)),
            hs256: Some(DecodingKey::from_secret(secret)),
            jwks: None,
        }
    }

    /// As `config` says; reads a JWK Set file now (a bad file fails the
    /// start). A URL's keys come with [`Self::fetch_jwks`] and
    /// [`Self::refresh_jwks`], which `serve` runs.
    pub fn with_config(config: AuthConfig) -> Result<Self, AuthError> {
        let jwks = match &config.jwks {
            Some(source) => {
                source.check()?;
                let set = match source {
                    JwksSource::File(path) => read_jwks(path)?,
                    JwksSource::Url(_) => JwkSet { keys: Vec::new() },
                };
                Some(Arc::new(Mutex::new(Jwks {
                    set,
                    source: source.clone(),
                    read_at: Instant::now(),
                    wake: Arc::new(Notify::new()),
                    fetched: 0,
                })))
            }
            None => None,
        };
        Ok(Self {
            encoding: config.hs256_secret.as_deref().map(EncodingKey::from_secret),
            hs256: config.hs256_secret.as_deref().map(DecodingKey::from_secret),
            jwks,
            config: Arc::new(config),
        })
    }

    /// Issues a mnemo token for `owner`, valid for `ttl_secs` (at most the
    /// maximum lifetime); `admin` gives it the admin role.
    pub fn issue(&self, owner: &OwnerId, ttl_secs: u64, admin: bool) -> Result<String, AuthError> {
        let key = self
            .encoding
            .as_ref()
            .ok_or_else(|| AuthError::Sign("this server has no HS256 secret".into()))?;
        if Duration::from_secs(ttl_secs) > self.config.max_lifetime {
            return Err(AuthError::Sign(format!(
                "a lifetime of {ttl_secs} s is over the maximum of {} s",
                self.config.max_lifetime.as_secs()
            )));
        }
        let now = now_secs();
        let claims = Claims {
            sub: owner.as_str().to_owned(),
            iss: ISSUER.to_owned(),
            aud: self.config.audience.clone(),
            iat: now,
            exp: now + ttl_secs,
            roles: if admin {
                vec![ADMIN_ROLE.to_owned()]
            } else {
                Vec::new()
            },
        };
        encode(&Header::new(Algorithm::HS256), &claims, key)
            .map_err(|e| AuthError::Sign(e.to_string()))
    }

    /// The key and validation for a token signed with `header`'s algorithm
    /// and key id.
    fn key_for(&self, header: &Header) -> Result<(DecodingKey, Validation), AuthError> {
        let invalid = |why: &str| AuthError::Invalid(why.to_owned());
        let mut validation = Validation::new(header.alg);
        validation.leeway = LEEWAY.as_secs();
        validation.validate_nbf = true;
        validation.set_audience(&[&self.config.audience]);
        validation.set_required_spec_claims(&["exp", "iat", "sub", "iss", "aud"]);
        match header.alg {
            Algorithm::HS256 => {
                let key = self
                    .hs256
                    .clone()
                    .ok_or_else(|| invalid("HS256 tokens are not accepted here"))?;
                validation.set_issuer(&[ISSUER]);
                Ok((key, validation))
            }
            Algorithm::RS256
            | Algorithm::RS384
            | Algorithm::RS512
            | Algorithm::ES256
            | Algorithm::ES384
            | Algorithm::EdDSA => {
                let jwks = self.jwks.as_ref().ok_or_else(|| {
                    invalid("no identity provider is configured (--jwks-file or --jwks-url)")
                })?;
                let kid = header
                    .kid
                    .as_deref()
                    .ok_or_else(|| invalid("the token names no key (kid)"))?;
                let jwk = {
                    let mut held = jwks.lock().map_err(|_| invalid("key set unavailable"))?;
                    if held.set.find(kid).is_none()
                        && held.read_at.elapsed() >= self.config.jwks_reload_every
                    {
                        // A key we do not know: perhaps rotated in. Read
                        // again (a URL: the refresher fetches, and this
                        // token is refused until the key is there).
                        held.read_at = Instant::now();
                        match held.source.clone() {
                            JwksSource::File(path) => match read_jwks(&path) {
                                Ok(set) => held.set = set,
                                Err(e) => tracing::warn!(error = %e, "cannot re-read the JWK Set"),
                            },
                            JwksSource::Url(_) => held.wake.notify_one(),
                        }
                    }
                    held.set
                        .find(kid)
                        .cloned()
                        .ok_or_else(|| invalid("unknown key id"))?
                };
                let key = DecodingKey::from_jwk(&jwk)
                    .map_err(|e| AuthError::Invalid(format!("the key {kid}: {e}")))?;
                if let Some(issuer) = &self.config.jwks_issuer {
                    validation.set_issuer(&[issuer]);
                }
                Ok((key, validation))
            }
            other => Err(AuthError::Invalid(format!(
                "{other:?} tokens are not accepted"
            ))),
        }
    }

    /// Fetches the JWK Set from its URL now and keeps it (no-op for a file
    /// or without a provider). Returns how many keys it holds.
    pub async fn fetch_jwks(&self) -> Result<usize, AuthError> {
        let Some(jwks) = &self.jwks else {
            return Ok(0);
        };
        let source = jwks
            .lock()
            .map_err(|_| AuthError::Invalid("key set unavailable".into()))?
            .source
            .clone();
        let JwksSource::Url(url) = source else {
            return Ok(0);
        };
        let set = fetch_jwks(&url).await?;
        let keys = set.keys.len();
        let mut held = jwks
            .lock()
            .map_err(|_| AuthError::Invalid("key set unavailable".into()))?;
        held.set = set;
        held.fetched += 1;
        Ok(keys)
    }

    /// How many times the JWK Set URL was fetched successfully.
    pub fn jwks_fetches(&self) -> u64 {
        self.jwks
            .as_ref()
            .and_then(|j| j.lock().ok().map(|h| h.fetched))
            .unwrap_or(0)
    }

    /// Keeps a JWK Set URL's keys current until dropped: fetches every
    /// `jwks_refresh`, and at once when a token names an unknown key (at
    /// most every `jwks_reload_every`); a failed fetch keeps the keys held
    /// and is tried again after `jwks_reload_every`. Returns at once
    /// without a URL.
    pub async fn refresh_jwks(&self) {
        let Some(jwks) = &self.jwks else {
            return;
        };
        let (wake, url) = match jwks.lock() {
            Ok(held) => match &held.source {
                JwksSource::Url(url) => (held.wake.clone(), url.clone()),
                JwksSource::File(_) => return,
            },
            Err(_) => return,
        };
        // Keys fetched already (`serve` fetches before the first call):
        // the first round waits instead of fetching them again.
        let mut next = (self.jwks_fetches() > 0).then_some(self.config.jwks_refresh);
        loop {
            if let Some(wait) = next {
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = wake.notified() => {}
                }
            }
            next = Some(match self.fetch_jwks().await {
                Ok(keys) => {
                    tracing::debug!(%url, keys, "JWK Set fetched");
                    self.config.jwks_refresh
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot fetch the identity provider's keys; tokens it signs with a key not held are refused");
                    self.config.jwks_reload_every
                }
            });
        }
    }

    /// Verifies a raw token.
    pub fn verify(&self, token: &str) -> Result<Caller, AuthError> {
        let header = decode_header(token).map_err(|e| AuthError::Invalid(explain(&e, token)))?;
        let (key, validation) = self.key_for(&header)?;
        let data = decode::<serde_json::Value>(token, &key, &validation)
            .map_err(|e| AuthError::Invalid(explain(&e, token)))?;
        let claims = data.claims;
        let number = |name: &str| claims.get(name).and_then(serde_json::Value::as_u64);
        let (Some(iat), Some(exp)) = (number("iat"), number("exp")) else {
            return Err(AuthError::Invalid("iat and exp must be numbers".into()));
        };
        if iat > now_secs() + LEEWAY.as_secs() {
            return Err(AuthError::Invalid("issued in the future (iat)".into()));
        }
        let lifetime = exp.saturating_sub(iat);
        if lifetime > self.config.max_lifetime.as_secs() {
            return Err(AuthError::Invalid(format!(
                "lives {lifetime} s, over the maximum of {} s",
                self.config.max_lifetime.as_secs()
            )));
        }
        let sub = claims
            .get("sub")
            .and_then(serde_json::Value::as_str)
            .ok_or_else(|| AuthError::Invalid("sub must be a string".into()))?;
        let owner = OwnerId::new(sub).map_err(|e| AuthError::Invalid(e.to_string()))?;
        let admin = roles(&claims, &self.config.roles_claim)
            .iter()
            .any(|r| r == ADMIN_ROLE);
        Ok(Caller {
            owner,
            admin,
            issued_at: iat,
        })
    }

    /// The tonic interceptor: verifies `authorization` and stores the [`Caller`].
    pub fn intercept(&self, mut req: Request<()>) -> Result<Request<()>, Status> {
        let header = req
            .metadata()
            .get("authorization")
            .ok_or(AuthError::Missing)
            .and_then(|v| v.to_str().map_err(|_| AuthError::Missing))
            .map_err(|e| crate::status::from_auth_error(&e))?;
        let token = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .ok_or_else(|| crate::status::from_auth_error(&AuthError::Missing))?;
        let caller = self
            .verify(token.trim())
            .map_err(|e| crate::status::from_auth_error(&e))?;
        req.extensions_mut().insert(caller);
        Ok(req)
    }
}

/// The roles at `path` (a claim, or a dotted path into nested claims).
fn roles(claims: &serde_json::Value, path: &str) -> Vec<String> {
    let mut at = claims;
    for part in path.split('.') {
        match at.get(part) {
            Some(next) => at = next,
            None => return Vec::new(),
        }
    }
    at.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|r| r.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// Why a token was refused, as its holder can act on it (the library's
/// error kinds, such as `InvalidSignature`, say what failed, not what to
/// do). Only the token's own claims are quoted back.
fn explain(e: &jsonwebtoken::errors::Error, token: &str) -> String {
    use jsonwebtoken::errors::ErrorKind as K;
    let when = |claim: &str| {
        unverified_claim(token, claim)
            .and_then(|secs| time::OffsetDateTime::from_unix_timestamp(secs).ok())
            .and_then(|t| {
                t.format(&time::format_description::well_known::Rfc3339)
                    .ok()
            })
    };
    match e.kind() {
        K::InvalidSignature => "this token was signed with a different secret or key than this \
            server's (one from another deployment, or the secret or key has changed)"
            .into(),
        K::ExpiredSignature => match when("exp") {
            Some(t) => format!("the token expired at {t}; get a new one"),
            None => "the token has expired; get a new one".into(),
        },
        K::ImmatureSignature => match when("nbf") {
            Some(t) => format!("the token is not valid before {t}"),
            None => "the token is not valid yet (nbf)".into(),
        },
        K::InvalidAudience => "the token is for another service: its audience (aud) is not \
            this server's (--jwt-audience)"
            .into(),
        K::InvalidIssuer => "the token was issued by someone this server does not trust: \
            its issuer (iss) is not this server's"
            .into(),
        K::MissingRequiredClaim(c) => {
            format!("the token has no `{c}` claim (exp, iat, sub, iss and aud are required)")
        }
        K::InvalidClaimFormat(c) => format!("the token's `{c}` claim has the wrong type"),
        K::InvalidAlgorithm
        | K::MissingAlgorithm
        | K::InvalidAlgorithmName
        | K::UnsupportedAlgorithm => {
            "the token is signed with an algorithm this server does not accept".into()
        }
        K::InvalidToken | K::Base64(_) | K::Json(_) | K::Utf8(_) => {
            "not a JWT (three base64url parts separated by dots)".into()
        }
        _ => e.to_string(),
    }
}

/// A numeric claim of a token, read without verifying it: only to word a
/// refusal, never to decide anything.
fn unverified_claim(token: &str, claim: &str) -> Option<i64> {
    let payload = token.split('.').nth(1)?;
    let bytes = data_encoding::BASE64URL_NOPAD
        .decode(payload.trim_end_matches('=').as_bytes())
        .ok()?;
    serde_json::from_slice::<serde_json::Value>(&bytes)
        .ok()?
        .get(claim)?
        .as_i64()
}

/// The caller of a request that went through the interceptor.
pub fn caller<T>(req: &Request<T>) -> Result<Caller, Status> {
    req.extensions()
        .get::<Caller>()
        .cloned()
        .ok_or_else(|| crate::status::from_auth_error(&AuthError::Missing))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET_A: &[u8] = b"0123456789abcdef0123456789abcdef-a";
    const SECRET_B: &[u8] = b"0123456789abcdef0123456789abcdef-b";

    #[test]
    fn tokens_verify_only_with_the_same_secret() {
        let a = Authenticator::new(SECRET_A);
        let b = Authenticator::new(SECRET_B);
        let owner = OwnerId::new("alice").unwrap();
        let token = a.issue(&owner, 60, false).unwrap();
        assert_eq!(a.verify(&token).unwrap().owner, owner);
        let refused = b.verify(&token).unwrap_err().to_string();
        assert!(
            refused.contains("signed with a different secret"),
            "{refused}"
        );
        let refused = a.verify("not.a.token").unwrap_err().to_string();
        assert!(refused.contains("not a JWT"), "{refused}");
    }

    #[test]
    fn an_expired_token_says_when_it_expired() {
        let a = Authenticator::new(SECRET_A);
        let iat = now_secs() - 7200;
        let claims = Claims {
            sub: "alice".into(),
            iss: ISSUER.into(),
            aud: a.config.audience.clone(),
            iat,
            exp: iat + 3600,
            roles: Vec::new(),
        };
        let token = encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(SECRET_A),
        )
        .unwrap();
        let refused = a.verify(&token).unwrap_err().to_string();
        let at = time::OffsetDateTime::from_unix_timestamp((iat + 3600) as i64)
            .unwrap()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap();
        assert!(refused.contains(&format!("expired at {at}")), "{refused}");
        // Another audience is named as such.
        let other = Claims {
            aud: "someone-else".into(),
            iat: now_secs(),
            exp: now_secs() + 60,
            ..claims
        };
        let token = encode(
            &Header::new(Algorithm::HS256),
            &other,
            &jsonwebtoken::EncodingKey::from_secret(SECRET_A),
        )
        .unwrap();
        let refused = a.verify(&token).unwrap_err().to_string();
        assert!(refused.contains("audience (aud)"), "{refused}");
    }

    #[test]
    fn admin_is_a_role_and_roles_may_be_nested() {
        let a = Authenticator::new(SECRET_A);
        let owner = OwnerId::new("ops").unwrap();
        assert!(a.verify(&a.issue(&owner, 60, true).unwrap()).unwrap().admin);
        assert!(
            !a.verify(&a.issue(&owner, 60, false).unwrap())
                .unwrap()
                .admin
        );
        let keycloak = serde_json::json!({"realm_access": {"roles": ["user", "admin"]}});
        assert_eq!(roles(&keycloak, "realm_access.roles"), ["user", "admin"]);
        assert!(roles(&keycloak, "roles").is_empty());
    }

    #[test]
    fn the_secret_never_prints() {
        let shown = format!("{:?}", AuthConfig::local(SECRET_A));
        assert!(!shown.contains("0123456789abcdef"), "{shown}");
        assert!(shown.contains("<redacted>"));
    }

    #[test]
    fn a_lifetime_over_the_maximum_is_not_issued() {
        let a = Authenticator::new(SECRET_A);
        let owner = OwnerId::new("alice").unwrap();
        assert!(a.issue(&owner, 100 * 365 * 24 * 3600, false).is_err());
    }

    #[test]
    fn the_interceptor_requires_a_bearer_token() {
        let a = Authenticator::new(SECRET_A);
        let err = a.intercept(Request::new(())).unwrap_err();
        assert_eq!(err.code(), tonic::Code::Unauthenticated);
        let mut req = Request::new(());
        let token = a.issue(&OwnerId::new("bob").unwrap(), 60, false).unwrap();
        req.metadata_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
        let req = a.intercept(req).unwrap();
        assert_eq!(caller(&req).unwrap().owner.as_str(), "bob");
    }
}
