//! Every way a token can be wrong, and the identity-provider tokens that
//! must pass: the API's verifier against tokens made here, with keys made
//! here (openssl), an HS256 secret, and a JWK Set — a file, and a URL
//! served here — that rotates.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use mnemo_api::auth::{AuthConfig, Authenticator, JwksSource};

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
        jwks: Some(JwksSource::File(jwks_file.clone())),
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

/// An identity provider's `jwks_uri` on loopback: serves whatever set it
/// holds, and counts the fetches.
struct JwksServer {
    url: String,
    body: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
}

impl JwksServer {
    async fn start(set: &JwkSet) -> Self {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!(
            "http://{}/realms/school/certs",
            listener.local_addr().unwrap()
        );
        let body = std::sync::Arc::new(std::sync::Mutex::new(serde_json::to_vec(set).unwrap()));
        let serving = body.clone();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let mut request = Vec::new();
                let mut buf = [0u8; 1024];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                let body = serving.lock().unwrap().clone();
                let head = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    body.len()
                );
                let _ = socket.write_all(head.as_bytes()).await;
                let _ = socket.write_all(&body).await;
            }
        });
        Self { url, body }
    }

    fn publish(&self, set: &JwkSet) {
        *self.body.lock().unwrap() = serde_json::to_vec(set).unwrap();
    }
}

#[tokio::test]
async fn a_jwk_set_url_is_fetched_kept_current_and_must_be_safe_to_fetch() {
    let dir = tempfile::tempdir().unwrap();
    let idp = Idp {
        keys: vec![(
            "rsa-1".into(),
            Algorithm::RS256,
            EncodingKey::from_rsa_der(&openssl_key(dir.path(), "rsa")),
        )],
    };
    let server = JwksServer::start(&idp.jwks()).await;
    let config = |source: JwksSource| AuthConfig {
        jwks: Some(source),
        jwks_issuer: Some(IDP.into()),
        jwks_reload_every: Duration::ZERO,
        jwks_refresh: Duration::from_secs(3600),
        ..AuthConfig::local(SECRET)
    };
    // Keys whose fetch could be tampered with are refused at start.
    for unsafe_url in ["http://idp.example/certs", "ftp://127.0.0.1/certs"] {
        assert!(
            Authenticator::with_config(config(JwksSource::Url(unsafe_url.into()))).is_err(),
            "{unsafe_url}"
        );
    }
    let auth = Authenticator::with_config(config(JwksSource::Url(server.url.clone()))).unwrap();
    let t = now();
    let token = idp.sign("rsa-1", &claims(IDP, "mnemo", t, t + 600));
    assert!(
        auth.verify(&token).is_err(),
        "no key is held before the fetch"
    );
    assert_eq!(auth.fetch_jwks().await.unwrap(), 1);
    let first = auth.verify(&token);
    assert!(first.is_ok(), "{first:?}");

    // Rotation: the provider publishes a new key and signs with it. The
    // first token naming it is refused and wakes the refresher; once it
    // has fetched, the new key passes and the retired one does not.
    let refresher = {
        let auth = auth.clone();
        tokio::spawn(async move { auth.refresh_jwks().await })
    };
    let rotated = Idp {
        keys: vec![(
            "ed-2".into(),
            Algorithm::EdDSA,
            EncodingKey::from_ed_der(&openssl_key(dir.path(), "ed25519")),
        )],
    };
    server.publish(&rotated.jwks());
    let new_token = rotated.sign("ed-2", &claims(IDP, "mnemo", t, t + 600));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let passed = loop {
        if auth.verify(&new_token).is_ok() {
            break true;
        }
        if tokio::time::Instant::now() >= deadline {
            break false;
        }
        // Each refusal wakes the refresher; give it the turn to fetch.
        let fetched = auth.jwks_fetches();
        while auth.jwks_fetches() == fetched && tokio::time::Instant::now() < deadline {
            tokio::task::yield_now().await;
        }
    };
    assert!(passed, "a key rotated in at the URL is picked up");
    assert!(
        auth.verify(&token).is_err(),
        "the retired key no longer passes"
    );
    refresher.abort();
}
