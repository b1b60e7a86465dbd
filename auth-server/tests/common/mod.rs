//! Test keys and tokens, generated in the test process: real RSA and EC keys, real signatures.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::sync::OnceLock;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::{KeyPair as RsaKeyPair, KeySize};
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

/// A signing key and its public JWK.
pub struct TestKey {
    pub kid: String,
    pub algorithm: Algorithm,
    pub encoding: EncodingKey,
    pub jwk: Value,
}

impl TestKey {
    pub fn rsa(kid: &str) -> TestKey {
        let pair = RsaKeyPair::generate(KeySize::Rsa2048).unwrap();
        TestKey::from_rsa_pair(kid, &pair)
    }

    fn from_rsa_pair(kid: &str, pair: &RsaKeyPair) -> TestKey {
        let der = AsDer::<aws_lc_rs::encoding::Pkcs8V1Der>::as_der(pair).unwrap();
        // jsonwebtoken signs with PKCS#1 DER; its PEM reader unwraps PKCS#8 for us.
        let body = base64::engine::general_purpose::STANDARD.encode(der.as_ref());
        let lines: Vec<&str> = body
            .as_bytes()
            .chunks(64)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect();
        let pem = format!(
            "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
            lines.join("\n")
        );
        let encoding = EncodingKey::from_rsa_pem(pem.as_bytes()).unwrap();
        TestKey::new(kid, Algorithm::RS256, encoding)
    }

    pub fn ec(kid: &str) -> TestKey {
        let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
        let der = pair.to_pkcs8v1().unwrap();
        let encoding = EncodingKey::from_ec_der(der.as_ref());
        TestKey::new(kid, Algorithm::ES256, encoding)
    }

    fn new(kid: &str, algorithm: Algorithm, encoding: EncodingKey) -> TestKey {
        let mut jwk =
            serde_json::to_value(Jwk::from_encoding_key(&encoding, algorithm).unwrap()).unwrap();
        jwk["kid"] = json!(kid);
        jwk["use"] = json!("sig");
        TestKey {
            kid: kid.to_owned(),
            algorithm,
            encoding,
            jwk,
        }
    }

    /// Signs `claims` with this key, `kid` in the header.
    pub fn sign(&self, claims: &Value) -> String {
        let mut header = Header::new(self.algorithm);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding).unwrap()
    }

    /// The public key's JWK `n` (RSA) as raw bytes, for HMAC-confusion attacks.
    pub fn public_jwk_json(&self) -> String {
        self.jwk.to_string()
    }
}

/// One RSA key per test process (2048-bit generation is the slow part).
pub fn rsa_key() -> &'static TestKey {
    static KEY: OnceLock<TestKey> = OnceLock::new();
    KEY.get_or_init(|| TestKey::rsa("rsa-1"))
}

pub fn ec_key() -> &'static TestKey {
    static KEY: OnceLock<TestKey> = OnceLock::new();
    KEY.get_or_init(|| TestKey::ec("ec-1"))
}

/// A second RSA key that is not in the key set.
pub fn stranger_key() -> &'static TestKey {
    static KEY: OnceLock<TestKey> = OnceLock::new();
    KEY.get_or_init(|| TestKey::rsa("stranger"))
}

pub fn jwks(keys: &[&TestKey]) -> Vec<u8> {
    json!({ "keys": keys.iter().map(|key| key.jwk.clone()).collect::<Vec<_>>() })
        .to_string()
        .into_bytes()
}

/// Hand-made JWS with any header and a signature computed by `sign`.
pub fn forge(header: &Value, claims: &Value, sign: impl Fn(&[u8]) -> Vec<u8>) -> String {
    let message = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let signature = sign(message.as_bytes());
    format!("{message}.{}", URL_SAFE_NO_PAD.encode(signature))
}

pub const NOW: u64 = 1_900_000_000;
pub const ISSUER: &str = "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_Test";

/// The token rules of a Cognito pool issuing [`ISSUER`]: default leeway, no client or audience
/// restriction.
pub fn cognito_rules() -> auth_server::token::TokenRules {
    auth_server::token::TokenRules {
        provider: auth_server::token::Provider::Cognito,
        issuer: ISSUER.to_owned(),
        client_ids: None,
        audiences: None,
        groups_claim: "cognito:groups".to_owned(),
        leeway_seconds: 60,
    }
}

/// Claims of a Cognito client-credentials access token valid at [`NOW`].
pub fn cognito_claims(client_id: &str, groups: &[&str]) -> Value {
    let mut claims = json!({
        "iss": ISSUER,
        "sub": format!("sub-{client_id}"),
        "client_id": client_id,
        "token_use": "access",
        "scope": "mcp-gateway/default",
        "iat": NOW - 60,
        "exp": NOW + 3600,
    });
    if !groups.is_empty() {
        claims["cognito:groups"] = json!(groups);
    }
    claims
}

/// PEM text of DER bytes, 64 columns.
fn pem(label: &str, der: &[u8]) -> String {
    let body = base64::engine::general_purpose::STANDARD.encode(der);
    let lines: Vec<&str> = body
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    format!(
        "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
        lines.join("\n")
    )
}

/// An RSA signing key whose public half is also kept in the forms anyone can download from a
/// provider and paste into an HMAC: SPKI PEM, PKCS#1 PEM and SPKI DER (key-confusion attacks).
pub struct PublishedRsaKey {
    pub key: TestKey,
    pub spki_pem: String,
    pub pkcs1_pem: String,
    pub spki_der: Vec<u8>,
}

/// One [`PublishedRsaKey`] per test process, `kid` `published-rsa`.
pub fn published_rsa_key() -> &'static PublishedRsaKey {
    use aws_lc_rs::signature::KeyPair as _;
    static KEY: OnceLock<PublishedRsaKey> = OnceLock::new();
    KEY.get_or_init(|| {
        let pair = RsaKeyPair::generate(KeySize::Rsa2048).unwrap();
        let public = pair.public_key();
        let spki_der = AsDer::<aws_lc_rs::encoding::PublicKeyX509Der>::as_der(public)
            .unwrap()
            .as_ref()
            .to_vec();
        PublishedRsaKey {
            key: TestKey::from_rsa_pair("published-rsa", &pair),
            spki_pem: pem("PUBLIC KEY", &spki_der),
            pkcs1_pem: pem("RSA PUBLIC KEY", public.as_ref()),
            spki_der,
        }
    })
}

/// An RSA key published for encryption (`"use": "enc"`, `kid` `enc-1`): never a verifying key.
pub fn enc_key() -> &'static TestKey {
    static KEY: OnceLock<TestKey> = OnceLock::new();
    KEY.get_or_init(|| {
        let mut key = TestKey::rsa("enc-1");
        key.jwk["use"] = json!("enc");
        key
    })
}

/// An RSA key published with an encryption algorithm (`"alg": "RSA-OAEP"`, no `use`,
/// `kid` `oaep-1`): never a verifying key either.
pub fn oaep_key() -> &'static TestKey {
    static KEY: OnceLock<TestKey> = OnceLock::new();
    KEY.get_or_init(|| {
        let mut key = TestKey::rsa("oaep-1");
        key.jwk.as_object_mut().unwrap().remove("use");
        key.jwk["alg"] = json!("RSA-OAEP");
        key
    })
}

/// HMAC-SHA-256/384/512 of `message` keyed with `secret`, for forged HS* signatures.
pub fn hmac(algorithm: &str, secret: &[u8], message: &[u8]) -> Vec<u8> {
    let algorithm = match algorithm {
        "HS256" => aws_lc_rs::hmac::HMAC_SHA256,
        "HS384" => aws_lc_rs::hmac::HMAC_SHA384,
        "HS512" => aws_lc_rs::hmac::HMAC_SHA512,
        other => panic!("not an HMAC algorithm: {other}"),
    };
    let key = aws_lc_rs::hmac::Key::new(algorithm, secret);
    aws_lc_rs::hmac::sign(&key, message).as_ref().to_vec()
}

/// The example policy at the repository root. Found at run time (cargo sets
/// `CARGO_MANIFEST_DIR` when it runs tests and benches): a test binary reused from a build
/// cache shared by several clones must read this clone's file, not the one it was built in.
#[allow(dead_code)]
pub fn example_scopes() -> std::path::PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into())
        .join("../scopes.yml")
}
pub mod worst_case;

use auth_server::answer::AnswerSettings;
use auth_server::decision::{CognitoPool, Context, Issuer, Settings, Snapshot};
use auth_server::jwks::KeySet;
use auth_server::jwks::fetch::VersionedKeys;
use auth_server::policy::CompiledPolicy;
use auth_server::request::{Body, CheckRequest, HeaderLookup};
use auth_server::token::{TokenCache, TokenRules};

/// The owned parts of a decision context: a snapshot over a policy and a key set
/// (generation 1), the settings of some token rules, and a token cache.
pub struct Core {
    pub snapshot: Snapshot,
    pub settings: Settings,
    pub cache: TokenCache,
}

impl Core {
    /// One issuer (`default`) with `rules` and `keys` (or no key set yet).
    pub fn new(
        policy: CompiledPolicy,
        keys: Option<KeySet>,
        rules: TokenRules,
        cognito_pool: Option<CognitoPool>,
    ) -> Core {
        let issuer = Issuer {
            name: "default".to_owned(),
            auth_method: rules.provider.name().to_owned(),
            rules,
            cognito_pool,
        };
        Core::with_issuers(policy, vec![(issuer, keys)])
    }

    /// Several trusted issuers, each with its key set (generation 1) or none yet.
    pub fn with_issuers(policy: CompiledPolicy, issuers: Vec<(Issuer, Option<KeySet>)>) -> Core {
        let (issuers, keys): (Vec<Issuer>, Vec<Option<KeySet>>) = issuers.into_iter().unzip();
        Core {
            snapshot: Snapshot {
                policy: std::sync::Arc::new(policy),
                keys: keys
                    .into_iter()
                    .map(|keys| {
                        keys.map(|keys| {
                            std::sync::Arc::new(VersionedKeys {
                                keys,
                                generation: 1,
                            })
                        })
                    })
                    .collect(),
            },
            settings: Settings {
                issuers,
                max_batch: 100,
                session: None,
            },
            cache: TokenCache::new(100),
        }
    }

    /// The context of a decision at `now`.
    pub fn context(&self, now: u64) -> Context<'_> {
        Context {
            snapshot: &self.snapshot,
            settings: &self.settings,
            cache: &self.cache,
            now,
        }
    }
}

/// Answer settings as a gateway with `AUTH_RESOURCE_URL=https://gw.example` has them.
pub fn answer_settings() -> AnswerSettings {
    AnswerSettings {
        resource_metadata: Some("https://gw.example/.well-known/oauth-protected-resource".into()),
        max_body_bytes: 1_048_576,
    }
}

/// Header pairs, looked up like the HTTP shell does (case-insensitive names, repeats kept).
#[derive(Debug, Clone, Default)]
pub struct Headers(pub Vec<(String, String)>);

impl HeaderLookup for Headers {
    fn values<'s>(&'s self, name: &'static str) -> impl Iterator<Item = Option<&'s str>> {
        self.0
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| Some(v.as_str()))
    }
}

/// One check request as a shell receives it: method, header pairs, body (`None`: larger than
/// the limit).
#[derive(Debug, Clone)]
pub struct TestCheck {
    pub method: &'static str,
    pub headers: Headers,
    pub body: Option<Vec<u8>>,
}

impl TestCheck {
    /// A POST for `path` (`X-Original-URI`), with `token` in `X-Authorization` when given.
    pub fn post(path: &str, token: Option<&str>, body: impl Into<Vec<u8>>) -> TestCheck {
        let mut headers = vec![("x-original-uri".to_owned(), path.to_owned())];
        if let Some(token) = token {
            headers.push(("x-authorization".to_owned(), format!("Bearer {token}")));
        }
        TestCheck {
            method: "POST",
            headers: Headers(headers),
            body: Some(body.into()),
        }
    }

    /// The same request with one more header.
    pub fn header(mut self, name: &str, value: &str) -> TestCheck {
        self.headers.0.push((name.to_owned(), value.to_owned()));
        self
    }

    /// The same request with another check method.
    pub fn method(mut self, method: &'static str) -> TestCheck {
        self.method = method;
        self
    }

    /// The request's facts, read by the real reader.
    pub fn facts(&self) -> CheckRequest<'_> {
        let body = match &self.body {
            Some(bytes) => Body::Complete(bytes),
            None => Body::TooLarge,
        };
        auth_server::request::read(&self.headers, self.method, None, body)
    }
}

/// A JWKS endpoint on loopback (actix, on the test's runtime) whose document the test swaps,
/// counting fetches.
#[derive(Clone)]
pub struct KeyServer {
    document: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
    fetches: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    pub url: String,
}

impl KeyServer {
    pub fn start(keys: &[&TestKey]) -> KeyServer {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/jwks.json", listener.local_addr().unwrap());
        let server = KeyServer {
            document: std::sync::Arc::new(std::sync::Mutex::new(jwks(keys))),
            fetches: std::sync::Arc::default(),
            url,
        };
        let state = server.clone();
        let http = actix_web::HttpServer::new(move || {
            let state = state.clone();
            actix_web::App::new().route(
                "/jwks.json",
                actix_web::web::get().to(move || {
                    let state = state.clone();
                    async move {
                        state
                            .fetches
                            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        let document = state.document.lock().unwrap().clone();
                        actix_web::HttpResponse::Ok()
                            .content_type("application/json")
                            .body(document)
                    }
                }),
            )
        })
        .workers(1)
        .listen(listener)
        .unwrap()
        .run();
        actix_web::rt::spawn(http);
        server
    }

    pub fn publish(&self, keys: &[&TestKey]) {
        *self.document.lock().unwrap() = jwks(keys);
    }

    pub fn fetches(&self) -> usize {
        self.fetches.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// Envoy's gRPC `CheckRequest` for a client's `POST path` with these headers and JSON body, as
/// Envoy's ext_authz sends it (`with_request_body`, raw bytes).
pub fn envoy_post(
    path: &str,
    headers: std::collections::HashMap<String, String>,
    body: &str,
) -> envoy_types::ext_authz::v3::pb::CheckRequest {
    use envoy_types::pb::envoy::service::auth::v3::AttributeContext;
    use envoy_types::pb::envoy::service::auth::v3::attribute_context::{HttpRequest, Request};
    envoy_types::ext_authz::v3::pb::CheckRequest {
        attributes: Some(AttributeContext {
            request: Some(Request {
                http: Some(HttpRequest {
                    method: "POST".into(),
                    path: path.into(),
                    headers,
                    raw_body: body.as_bytes().to_vec(),
                    size: body.len() as i64,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }),
    }
}

/// An authorizer that trusts [`ISSUER`] (OIDC, groups in `cognito:groups`) over the example
/// policy, verifying with `keys` from the start (the key set URL is a closed port: nothing is
/// fetched), with `extra` `AUTH_*` variables.
pub fn offline_authorizer(
    keys: &[&TestKey],
    extra: &[(&str, &str)],
) -> std::sync::Arc<auth_server::authorizer::Authorizer> {
    let mut vars = vec![
        ("AUTH_PROVIDER".to_owned(), "oidc".to_owned()),
        ("AUTH_ISSUER".to_owned(), ISSUER.to_owned()),
        ("AUTH_GROUPS_CLAIM".to_owned(), "cognito:groups".to_owned()),
        (
            "AUTH_JWKS_URL".to_owned(),
            "http://127.0.0.1:9/jwks".to_owned(),
        ),
        (
            "AUTH_SCOPES_FILE".to_owned(),
            example_scopes().display().to_string(),
        ),
    ];
    vars.extend(
        extra
            .iter()
            .map(|(name, value)| ((*name).to_owned(), (*value).to_owned())),
    );
    let config = auth_server::config::Config::from_vars(vars).unwrap();
    let policy = CompiledPolicy::load(&config.scopes_file).unwrap();
    let keys =
        auth_server::jwks::fetch::KeyStore::with_keys(KeySet::from_json(&jwks(keys)).unwrap());
    std::sync::Arc::new(auth_server::authorizer::Authorizer::new(
        &config,
        policy,
        vec![std::sync::Arc::new(keys)],
    ))
}
