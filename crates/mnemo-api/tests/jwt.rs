//! Every way a token can be wrong, and the identity-provider tokens that
//! must pass: the API's verifier against tokens made here, with keys made
//! here (openssl), an HS256 secret, and a JWK Set file that rotates.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use mnemo_api::auth::{AuthConfig, Authenticator};

const SECRET: &[u8] = b"a-32-byte-or-longer-hs256-secret-for-tests";
const IDP: &str = "https://idp.example/realms/school";

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A private key in DER made by openssl: RSA as PKCS#1, Ed25519 as PKCS#8.
fn openssl_key(dir: &Path, kind: &str) -> Vec<u8> {
    let pem = dir.join(format!("{kind}.pem"));
    let der = dir.join(format!("{kind}.der"));
    let run = |args: &[&str]| {
        let ok = std::process::Command::new("openssl")
            .args(args)
            .status()
            .expect("openssl runs")
            .success();
        assert!(ok, "openssl {args:?}");
    };
    let (pem_s, der_s) = (pem.to_str().unwrap(), der.to_str().unwrap());
    match kind {
        "rsa" => {
            run(&["genrsa", "-traditional", "-out", pem_s, "2048"]);
            run(&[
                "rsa",
                "-traditional",
                "-in",
                pem_s,
                "-outform",
                "DER",
                "-out",
                der_s,
            ]);
        }
        _ => run(&[
            "genpkey",
            "-algorithm",
            "ed25519",
            "-outform",
            "DER",
            "-out",
            der_s,
        ]),
    }
    std::fs::read(der).unwrap()
}

/// An identity provider: its signing keys and the JWK Set it publishes.
struct Idp {
    keys: Vec<(String, Algorithm, EncodingKey)>,
}

impl Idp {
    fn jwks(&self) -> JwkSet {
        JwkSet {
            keys: self
                .keys
                .iter()
                .map(|(kid, alg, key)| {
                    let mut jwk = Jwk::from_encoding_key(key, *alg).unwrap();
                    jwk.common.key_id = Some(kid.clone());
                    jwk
                })
                .collect(),
        }
    }

    fn sign(&self, kid: &str, claims: &serde_json::Value) -> String {
        let (_, alg, key) = self.keys.iter().find(|(k, _, _)| k == kid).unwrap();
        let mut header = Header::new(*alg);
        header.kid = Some(kid.to_owned());
        encode(&header, claims, key).unwrap()
    }
}

fn claims(iss: &str, aud: &str, iat: u64, exp: u64) -> serde_json::Value {
    serde_json::json!({"sub": "alice", "iss": iss, "aud": aud, "iat": iat, "exp": exp})
}

fn hs(alg: Algorithm, secret: &[u8], claims: &serde_json::Value) -> String {
    encode(&Header::new(alg), claims, &EncodingKey::from_secret(secret)).unwrap()
}

#[test]
fn every_bad_token_is_refused_and_provider_tokens_pass() {
    let dir = tempfile::tempdir().unwrap();
    let idp = Idp {
        keys: vec![
            (
                "rsa-1".into(),
                Algorithm::RS256,
                EncodingKey::from_rsa_der(&openssl_key(dir.path(), "rsa")),
            ),
            (
                "ed-1".into(),
                Algorithm::EdDSA,
                EncodingKey::from_ed_der(&openssl_key(dir.path(), "ed25519")),
            ),
        ],
    };
    let jwks_file = dir.path().join("jwks.json");
    std::fs::write(&jwks_file, serde_json::to_vec(&idp.jwks()).unwrap()).unwrap();
    let auth = Authenticator::with_config(AuthConfig {
        jwks_file: Some(jwks_file.clone()),
        jwks_issuer: Some(IDP.into()),
        max_lifetime: Duration::from_secs(24 * 3600),
        // Re-read at the first unknown key: this test rotates at once.
        jwks_reload_every: Duration::ZERO,
        ..AuthConfig::local(SECRET)
    })
    .unwrap();
    let t = now();
    let good = claims("mnemo", "mnemo", t, t + 600);

    // What must pass.
    assert!(auth.verify(&hs(Algorithm::HS256, SECRET, &good)).is_ok());
    for kid in ["rsa-1", "ed-1"] {
        let token = idp.sign(kid, &claims(IDP, "mnemo", t, t + 600));
        let caller = auth.verify(&token);
        assert!(caller.is_ok(), "{kid}: {caller:?}");
    }
    let admin = idp.sign(
        "rsa-1",
        &serde_json::json!({"sub": "ops", "iss": IDP, "aud": "mnemo", "iat": t, "exp": t + 60, "roles": ["admin"]}),
    );
    assert!(auth.verify(&admin).unwrap().admin);

    // What must not.
    let none = {
        format!(
            "{}.{}.",
            b64(br#"{"alg":"none","typ":"JWT"}"#),
            b64(good.to_string().as_bytes())
        )
    };
    let refused: Vec<(&str, String)> = vec![
        ("alg none", none),
        ("HS512", hs(Algorithm::HS512, SECRET, &good)),
        (
            "wrong key",
            hs(
                Algorithm::HS256,
                b"another-secret-of-at-least-32-bytes!",
                &good,
            ),
        ),
        (
            "expired",
            hs(
                Algorithm::HS256,
                SECRET,
                &claims("mnemo", "mnemo", t - 7200, t - 3600),
            ),
        ),
        ("nbf in the future", {
            let mut c = good.clone();
            c["nbf"] = serde_json::json!(t + 3600);
            hs(Algorithm::HS256, SECRET, &c)
        }),
        (
            "wrong audience",
            hs(
                Algorithm::HS256,
                SECRET,
                &claims("mnemo", "someone-else", t, t + 600),
            ),
        ),
        ("no audience", {
            let mut c = good.clone();
            c.as_object_mut().unwrap().remove("aud");
            hs(Algorithm::HS256, SECRET, &c)
        }),
        ("no iat", {
            let mut c = good.clone();
            c.as_object_mut().unwrap().remove("iat");
            hs(Algorithm::HS256, SECRET, &c)
        }),
        (
            "lifetime too long",
            hs(
                Algorithm::HS256,
                SECRET,
                &claims("mnemo", "mnemo", t, t + 100 * 365 * 86400),
            ),
        ),
        (
            "wrong issuer for HS256",
            hs(Algorithm::HS256, SECRET, &claims(IDP, "mnemo", t, t + 600)),
        ),
        (
            "provider token with mnemo's issuer",
            idp.sign("rsa-1", &claims("mnemo", "mnemo", t, t + 600)),
        ),
        ("unknown key id", {
            let mut header = Header::new(Algorithm::EdDSA);
            header.kid = Some("nobody-knows".into());
            let (_, _, key) = &idp.keys[1];
            encode(&header, &claims(IDP, "mnemo", t, t + 600), key).unwrap()
        }),
        ("HS256 signed with the provider's public key", {
            // The classic confusion: the RSA public key used as an HMAC secret.
            let jwk = serde_json::to_string(&idp.jwks().keys[0]).unwrap();
            let mut header = Header::new(Algorithm::HS256);
            header.kid = Some("rsa-1".into());
            encode(
                &header,
                &claims(IDP, "mnemo", t, t + 600),
                &EncodingKey::from_secret(jwk.as_bytes()),
            )
            .unwrap()
        }),
    ];
    for (what, token) in refused {
        let got = auth.verify(&token);
        assert!(got.is_err(), "{what} was accepted");
    }

    // Rotation: the provider replaces ed-1 by ed-2 and publishes the new
    // set; a token from the new key passes (its unknown kid re-reads the
    // file), one from the retired key no longer does.
    let rotated = Idp {
        keys: vec![(
            "ed-2".into(),
            Algorithm::EdDSA,
            EncodingKey::from_ed_der(&openssl_key(dir.path(), "ed25519-2")),
        )],
    };
    std::fs::write(&jwks_file, serde_json::to_vec(&rotated.jwks()).unwrap()).unwrap();
    let new_token = rotated.sign("ed-2", &claims(IDP, "mnemo", t, t + 600));
    let rotated_in = auth.verify(&new_token);
    assert!(rotated_in.is_ok(), "{rotated_in:?}");
    let retired = idp.sign("ed-1", &claims(IDP, "mnemo", t, t + 600));
    assert!(auth.verify(&retired).is_err(), "a retired key still passes");
}

fn b64(bytes: &[u8]) -> String {
    data_encoding::BASE64URL_NOPAD.encode(bytes)
}
