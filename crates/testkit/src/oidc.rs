//! A loopback OIDC issuer: serves `/.well-known/openid-configuration` and its JWKS
//! over HTTPS with a CA of its own, and mints tokens with whatever claims, keys and
//! headers a test chooses, so every bad token can be forged. Counts JWKS fetches.
//!
//! It also logs browsers in with the authorization-code flow and PKCE: `/authorize`
//! approves at once as the user set with [`OidcIssuer::approve_as`] (or answers
//! `access_denied`), and `/token` exchanges a code once, only with the verifier whose
//! S256 challenge the authorization named, the same client and redirect URI, for an ID
//! token carrying the authorization's `nonce`.
//!
//! Refresh tokens, when a test asks for them ([`OidcIssuer::issue_refresh_tokens`]):
//! the code exchange gives one, and `/token` with `grant_type=refresh_token` gives a
//! new ID token (no nonce) for it, rotating it if told to (the old one is then used
//! up), refusing revoked, unknown and used-up ones with `invalid_grant`, and counting
//! the refresh grants (or answering 503 when told the issuer is down). ID tokens live [`OidcIssuer::id_token_lifetime`] seconds.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::{Form, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// An ES256 signing key and its public JWK (with `kid` and `alg`).
#[derive(Clone)]
pub struct SigningKey {
    pub kid: String,
    pub encoding: EncodingKey,
    pub jwk: Jwk,
    /// The public key, SPKI PEM.
    pub public_pem: String,
}

impl SigningKey {
    /// A fresh EC P-256 key named `kid`.
    pub fn generate(kid: &str) -> SigningKey {
        let pair = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("EC key");
        let encoding = EncodingKey::from_ec_pem(pair.serialize_pem().as_bytes()).expect("EC key");
        let mut jwk = Jwk::from_encoding_key(&encoding, Algorithm::ES256).expect("JWK");
        jwk.common.key_id = Some(kid.to_owned());
        SigningKey {
            kid: kid.to_owned(),
            encoding,
            jwk,
            public_pem: pair.public_key_pem(),
        }
    }

    /// `claims` signed by this key (ES256, with its `kid`).
    pub fn sign(&self, claims: &Value) -> String {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.kid.clone());
        self.sign_with(header, claims)
    }

    /// `claims` signed by this key under `header` as given.
    pub fn sign_with(&self, header: Header, claims: &Value) -> String {
        jsonwebtoken::encode(&header, claims, &self.encoding).expect("signing")
    }
}

/// An authorization waiting for its code to be exchanged.
struct Grant {
    client_id: String,
    redirect_uri: String,
    challenge: String,
    nonce: String,
    sub: String,
    groups: Vec<String>,
}

/// Whom a refresh token refreshes: client id, sub, groups.
type Refreshable = (String, String, Vec<String>);

struct Shared {
    url: String,
    keys: std::sync::Mutex<Vec<Jwk>>,
    jwks_fetches: AtomicUsize,
    /// Who `/authorize` logs in (`None`: it answers `access_denied`).
    approve: Mutex<Option<(String, Vec<String>)>>,
    /// Codes not yet exchanged.
    codes: Mutex<HashMap<String, Grant>>,
    /// Exchanges asked for, successful or not.
    exchanges: AtomicUsize,
    /// The ID tokens `/token` gave out, in order.
    issued: Mutex<Vec<String>>,
    key: SigningKey,
    /// Whether the code exchange gives a refresh token.
    refresh_tokens: AtomicBool,
    /// Whether a refresh gives a new refresh token (using up the old one).
    rotate: AtomicBool,
    /// Seconds an ID token lives.
    lifetime: AtomicI64,
    /// Live refresh tokens and whom they refresh.
    refreshable: Mutex<HashMap<String, Refreshable>>,
    /// Refresh grants asked for, successful or not.
    refreshes: AtomicUsize,
    /// The `sub` refreshed ID tokens name instead of the session's.
    refresh_sub: Mutex<Option<String>>,
    /// How long a refresh grant takes.
    refresh_delay: Mutex<std::time::Duration>,
    /// Whether refresh grants get a 503 (the issuer down behind its proxy).
    refresh_down: AtomicBool,
}

/// The issuer, serving until dropped.
pub struct OidcIssuer {
    /// `https://127.0.0.1:PORT`: the `iss` of its tokens.
    pub url: String,
    /// The CA that signed its serving certificate (PEM).
    pub ca_pem: String,
    /// The key its JWKS publishes and its tokens are signed with.
    pub key: SigningKey,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for OidcIssuer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn discovery(State(s): State<Arc<Shared>>) -> Json<Value> {
    Json(json!({
        "issuer": s.url,
        "jwks_uri": format!("{}/keys", s.url),
        "authorization_endpoint": format!("{}/authorize", s.url),
        "token_endpoint": format!("{}/token", s.url),
        "id_token_signing_alg_values_supported": ["ES256"],
        "response_types_supported": ["code", "id_token"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "code_challenge_methods_supported": ["S256"],
        "subject_types_supported": ["public"],
    }))
}

/// A code nobody can guess twice within a test run.
fn new_code() -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::SeqCst);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    hex::encode(&Sha256::digest(format!("{n}-{t}").as_bytes())[..16])
}

/// `redirect_uri` with `pairs` added to its query.
fn back_to(redirect_uri: &str, pairs: &[(&str, &str)]) -> Response {
    let Ok(mut url) = reqwest::Url::parse(redirect_uri) else {
        return (StatusCode::BAD_REQUEST, "redirect_uri is not a URL").into_response();
    };
    for (k, v) in pairs {
        url.query_pairs_mut().append_pair(k, v);
    }
    Redirect::to(url.as_str()).into_response()
}

/// `GET /authorize`: approves at once as the configured user (or denies).
async fn authorize(
    State(s): State<Arc<Shared>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let field = |k: &str| q.get(k).cloned().unwrap_or_default();
    let redirect_uri = field("redirect_uri");
    let state = field("state");
    if field("response_type") != "code" {
        return back_to(
            &redirect_uri,
            &[("error", "unsupported_response_type"), ("state", &state)],
        );
    }
    if field("code_challenge_method") != "S256" || field("code_challenge").is_empty() {
        return back_to(
            &redirect_uri,
            &[
                ("error", "invalid_request"),
                ("error_description", "PKCE with S256 is required"),
                ("state", &state),
            ],
        );
    }
    let Some((sub, groups)) = s.approve.lock().expect("approve").clone() else {
        return back_to(
            &redirect_uri,
            &[
                ("error", "access_denied"),
                ("error_description", "the user declined"),
                ("state", &state),
            ],
        );
    };
    let code = new_code();
    s.codes.lock().expect("codes").insert(
        code.clone(),
        Grant {
            client_id: field("client_id"),
            redirect_uri: redirect_uri.clone(),
            challenge: field("code_challenge"),
            nonce: field("nonce"),
            sub,
            groups,
        },
    );
    back_to(&redirect_uri, &[("code", &code), ("state", &state)])
}

fn invalid_grant(why: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({"error": "invalid_grant", "error_description": why})),
    )
        .into_response()
}

/// `POST /token` with `grant_type=refresh_token`: a new ID token for a live refresh
/// token of the same client.
async fn refresh(s: Arc<Shared>, f: HashMap<String, String>) -> Response {
    s.refreshes.fetch_add(1, Ordering::SeqCst);
    let delay = *s.refresh_delay.lock().expect("delay");
    tokio::time::sleep(delay).await;
    if s.refresh_down.load(Ordering::SeqCst) {
        return (StatusCode::SERVICE_UNAVAILABLE, "upstream unavailable").into_response();
    }
    let field = |k: &str| f.get(k).cloned().unwrap_or_default();
    let old = field("refresh_token");
    let rotate = s.rotate.load(Ordering::SeqCst);
    let (client_id, sub, groups) = {
        let mut live = s.refreshable.lock().expect("refreshable");
        let found = if rotate {
            live.remove(&old)
        } else {
            live.get(&old).cloned()
        };
        let Some(found) = found else {
            return invalid_grant("unknown, revoked or already used refresh token");
        };
        found
    };
    if client_id != field("client_id") {
        return invalid_grant("the refresh token was issued to another client");
    }
    let sub = s.refresh_sub.lock().expect("sub").clone().unwrap_or(sub);
    let now = now();
    let claims = json!({
        "iss": s.url, "sub": sub, "aud": client_id,
        "iat": now, "nbf": now, "exp": now + s.lifetime.load(Ordering::SeqCst),
        "groups": groups,
    });
    let id_token = s.key.sign(&claims);
    s.issued.lock().expect("issued").push(id_token.clone());
    let mut answer = json!({
        "access_token": new_code(),
        "token_type": "Bearer",
        "expires_in": s.lifetime.load(Ordering::SeqCst),
        "id_token": id_token,
    });
    if rotate {
        let new = new_code();
        s.refreshable
            .lock()
            .expect("refreshable")
            .insert(new.clone(), (client_id, sub, groups));
        answer["refresh_token"] = json!(new);
    }
    Json(answer).into_response()
}

/// `POST /token`: a code, once, for its verifier, client and redirect URI; or a
/// refresh token.
async fn token(State(s): State<Arc<Shared>>, Form(f): Form<HashMap<String, String>>) -> Response {
    let field = |k: &str| f.get(k).cloned().unwrap_or_default();
    if field("grant_type") == "refresh_token" {
        return refresh(s, f).await;
    }
    s.exchanges.fetch_add(1, Ordering::SeqCst);
    if field("grant_type") != "authorization_code" {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "unsupported_grant_type"})),
        )
            .into_response();
    }
    // A code is used up by its first exchange, whatever that exchange's outcome.
    let Some(grant) = s.codes.lock().expect("codes").remove(&field("code")) else {
        return invalid_grant("unknown, expired or already used code");
    };
    if grant.client_id != field("client_id") {
        return invalid_grant("the code was issued to another client");
    }
    if grant.redirect_uri != field("redirect_uri") {
        return invalid_grant("redirect_uri differs from the authorization's");
    }
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(field("code_verifier").as_bytes()));
    if challenge != grant.challenge {
        return invalid_grant("PKCE verification failed");
    }
    let now = now();
    let lifetime = s.lifetime.load(Ordering::SeqCst);
    let claims = json!({
        "iss": s.url, "sub": grant.sub, "aud": grant.client_id,
        "iat": now, "nbf": now, "exp": now + lifetime,
        "nonce": grant.nonce, "groups": grant.groups,
    });
    let id_token = s.key.sign(&claims);
    s.issued.lock().expect("issued").push(id_token.clone());
    let mut answer = json!({
        "access_token": new_code(),
        "token_type": "Bearer",
        "expires_in": lifetime,
        "id_token": id_token,
    });
    if s.refresh_tokens.load(Ordering::SeqCst) {
        let refresh = new_code();
        s.refreshable
            .lock()
            .expect("refreshable")
            .insert(refresh.clone(), (grant.client_id, grant.sub, grant.groups));
        answer["refresh_token"] = json!(refresh);
    }
    Json(answer).into_response()
}

async fn jwks(State(s): State<Arc<Shared>>) -> Json<JwkSet> {
    s.jwks_fetches.fetch_add(1, Ordering::SeqCst);
    let keys = s.keys.lock().expect("keys lock").clone();
    Json(JwkSet { keys })
}

impl OidcIssuer {
    /// Starts an issuer on a loopback port with a new CA and key.
    pub async fn start() -> OidcIssuer {
        let ca_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("CA key");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "test OIDC CA");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca_cert = ca_params.self_signed(&ca_key).expect("CA");
        let ca = Issuer::new(ca_params, ca_key);
        let leaf_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key");
        let leaf = CertificateParams::new(vec!["127.0.0.1".to_string()])
            .expect("params")
            .signed_by(&leaf_key, &ca)
            .expect("certificate");

        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let url = format!("https://{}", listener.local_addr().expect("addr"));
        let key = SigningKey::generate("issuer-key-1");
        let shared = Arc::new(Shared {
            url: url.clone(),
            keys: std::sync::Mutex::new(vec![key.jwk.clone()]),
            jwks_fetches: AtomicUsize::new(0),
            approve: Mutex::new(None),
            codes: Mutex::default(),
            exchanges: AtomicUsize::new(0),
            issued: Mutex::default(),
            key: key.clone(),
            refresh_tokens: AtomicBool::new(false),
            rotate: AtomicBool::new(false),
            lifetime: AtomicI64::new(3600),
            refreshable: Mutex::default(),
            refreshes: AtomicUsize::new(0),
            refresh_sub: Mutex::new(None),
            refresh_delay: Mutex::new(std::time::Duration::ZERO),
            refresh_down: AtomicBool::new(false),
        });
        let app = Router::new()
            .route("/.well-known/openid-configuration", get(discovery))
            .route("/keys", get(jwks))
            .route("/authorize", get(authorize))
            .route("/token", post(token))
            .with_state(shared.clone());
        let config = axum_server::tls_rustls::RustlsConfig::from_pem(
            leaf.pem().into_bytes(),
            leaf_key.serialize_pem().into_bytes(),
        )
        .await
        .expect("TLS config");
        let server = axum_server::from_tcp_rustls(listener, config).expect("server");
        let task = tokio::spawn(async move {
            let _ = server.serve(app.into_make_service()).await;
        });
        OidcIssuer {
            url,
            ca_pem: ca_cert.pem(),
            key,
            shared,
            task,
        }
    }

    /// Publishes `key` in the JWKS too (a key rotation).
    pub fn add_key(&self, key: &SigningKey) {
        self.shared
            .keys
            .lock()
            .expect("keys lock")
            .push(key.jwk.clone());
    }

    /// `/authorize` logs browsers in as `sub` in `groups` from now on.
    pub fn approve_as(&self, sub: &str, groups: &[&str]) {
        *self.shared.approve.lock().expect("approve") = Some((
            sub.to_owned(),
            groups.iter().map(|g| g.to_string()).collect(),
        ));
    }

    /// `/authorize` answers `access_denied` from now on (the default).
    pub fn deny(&self) {
        *self.shared.approve.lock().expect("approve") = None;
    }

    /// Whether code exchanges give a refresh token from now on (default: no).
    pub fn issue_refresh_tokens(&self, on: bool) {
        self.shared.refresh_tokens.store(on, Ordering::SeqCst);
    }

    /// Whether refreshes rotate the refresh token from now on (default: no).
    pub fn rotate_refresh_tokens(&self, on: bool) {
        self.shared.rotate.store(on, Ordering::SeqCst);
    }

    /// ID tokens issued from now on live `seconds` (default 3600).
    pub fn id_token_lifetime(&self, seconds: i64) {
        self.shared.lifetime.store(seconds, Ordering::SeqCst);
    }

    /// Revokes every refresh token given out so far.
    pub fn revoke_refresh_tokens(&self) {
        self.shared.refreshable.lock().expect("refreshable").clear();
    }

    /// Refreshed ID tokens name `sub` from now on, whoever the refresh token is for.
    pub fn refresh_as(&self, sub: &str) {
        *self.shared.refresh_sub.lock().expect("sub") = Some(sub.to_owned());
    }

    /// Refresh grants take `delay` from now on.
    pub fn delay_refreshes(&self, delay: std::time::Duration) {
        *self.shared.refresh_delay.lock().expect("delay") = delay;
    }

    /// Refresh grants get a 503 from now on (the issuer down behind its proxy).
    pub fn refreshes_down(&self) {
        self.shared.refresh_down.store(true, Ordering::SeqCst);
    }

    /// How many refresh grants `/token` was asked for.
    pub fn refreshes(&self) -> usize {
        self.shared.refreshes.load(Ordering::SeqCst)
    }

    /// How many code exchanges `/token` was asked for.
    pub fn exchanges(&self) -> usize {
        self.shared.exchanges.load(Ordering::SeqCst)
    }

    /// The ID tokens the code exchanges gave out, in order.
    pub fn id_tokens(&self) -> Vec<String> {
        self.shared.issued.lock().expect("issued").clone()
    }

    /// How many times the JWKS was fetched.
    pub fn jwks_fetches(&self) -> usize {
        self.shared.jwks_fetches.load(Ordering::SeqCst)
    }

    /// Valid claims for `sub` and audience `aud`: this issuer, an hour to live.
    pub fn claims(&self, sub: &str, aud: &str) -> Value {
        let now = now();
        json!({
            "iss": self.url, "sub": sub, "aud": aud,
            "iat": now, "nbf": now, "exp": now + 3600,
        })
    }

    /// `claims` signed with the issuer's key.
    pub fn mint(&self, claims: &Value) -> String {
        self.key.sign(claims)
    }

    /// An `AuthenticationConfiguration` (v1beta1) trusting this issuer for audience
    /// `aud`, user names and groups from `sub` and `groups` prefixed `oidc:`.
    pub fn authentication_config(&self, aud: &str) -> String {
        let ca = self
            .ca_pem
            .lines()
            .map(|l| format!("      {l}\n"))
            .collect::<String>();
        format!(
            "apiVersion: apiserver.config.k8s.io/v1beta1\nkind: AuthenticationConfiguration\njwt:\n- issuer:\n    url: {}\n    audiences: [{aud}]\n    certificateAuthority: |\n{ca}  claimMappings:\n    username: {{claim: sub, prefix: \"oidc:\"}}\n    groups: {{claim: groups, prefix: \"oidc:\"}}\n",
            self.url
        )
    }
}

/// Seconds since the epoch.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// An unsigned token (`alg: none`) with `claims`.
pub fn unsigned(claims: &Value) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
    format!("{header}.{payload}.")
}

/// `claims` signed HS256 with `secret` (e.g. a public key's PEM, the classic
/// algorithm-confusion forgery).
pub fn hs256(secret: &[u8], kid: Option<&str>, claims: &Value) -> String {
    let mut header = Header::new(Algorithm::HS256);
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(
        &header,
        claims,
        &EncodingKey::from_secret(secret).expect("HMAC key"),
    )
    .expect("signing")
}
