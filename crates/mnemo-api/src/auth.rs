//! Bearer tokens: HS256 JWTs whose `sub` is the owner.
//!
//! The interceptor runs before every call: it verifies the token and puts a
//! [`Caller`] into the request's extensions; handlers read the owner only
//! from there. A missing, malformed, expired or wrongly signed token is
//! `Unauthenticated` with the reason.

use jsonwebtoken::{decode, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use mnemo_domain::OwnerId;
use serde::{Deserialize, Serialize};
use tonic::{Request, Status};

/// Issuer written into and required of every token.
pub const ISSUER: &str = "mnemo";

/// The claims of a mnemo token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub iss: String,
    pub iat: u64,
    pub exp: u64,
    /// Admins may replay any learner (learning-history issue).
    #[serde(default)]
    pub admin: bool,
}

/// Who is calling, as the token proved.
#[derive(Debug, Clone)]
pub struct Caller {
    pub owner: OwnerId,
    pub admin: bool,
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
}

/// Signs and verifies tokens with one HS256 secret.
#[derive(Clone)]
pub struct Authenticator {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
}

impl Authenticator {
    pub fn new(secret: &[u8]) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[ISSUER]);
        validation.set_required_spec_claims(&["exp", "sub", "iss"]);
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
        }
    }

    /// Issues a token for `owner`, valid for `ttl_secs`.
    pub fn issue(&self, owner: &OwnerId, ttl_secs: u64, admin: bool) -> Result<String, AuthError> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let claims = Claims {
            sub: owner.as_str().to_owned(),
            iss: ISSUER.to_owned(),
            iat: now,
            exp: now + ttl_secs,
            admin,
        };
        encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|e| AuthError::Sign(e.to_string()))
    }

    /// Verifies a raw token.
    pub fn verify(&self, token: &str) -> Result<Caller, AuthError> {
        let data = decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|e| AuthError::Invalid(e.to_string()))?;
        let owner = OwnerId::new(data.claims.sub).map_err(|e| AuthError::Invalid(e.to_string()))?;
        Ok(Caller {
            owner,
            admin: data.claims.admin,
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

    #[test]
    fn tokens_verify_only_with_the_same_secret() {
        let a = Authenticator::new(b"secret-a");
        let b = Authenticator::new(b"secret-b");
        let owner = OwnerId::new("alice").unwrap();
        let token = a.issue(&owner, 60, false).unwrap();
        assert_eq!(a.verify(&token).unwrap().owner, owner);
        assert!(b.verify(&token).is_err());
        assert!(a.verify("not.a.token").is_err());
    }

    #[test]
    fn the_interceptor_requires_a_bearer_token() {
        let a = Authenticator::new(b"s");
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
