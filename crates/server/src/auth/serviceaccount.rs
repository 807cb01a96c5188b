//! ServiceAccount tokens, as kube-apiserver's: moor signs short-lived JWTs for
//! `serviceaccounts/NAME/token` ([`ServiceAccountTokens::mint`]) and accepts them
//! back ([`Authenticator`]) while the ServiceAccount they name still exists with the
//! same uid.
//!
//! The signing key is `--service-account-signing-key-file` (a PEM: RSA in PKCS#1 or
//! PKCS#8, as kubeadm's `sa.key`, or EC P-256/P-384 in PKCS#8), else `<data-dir>/sa-signing-key.pem`, an EC P-256 key made at first
//! start (mode 0600). Tokens carry kube's claims: `iss`, `sub`
//! (`system:serviceaccount:NS:NAME`), `aud`, `iat`, `nbf`, `exp`, `jti` and
//! `kubernetes.io: {namespace, serviceaccount: {name, uid}}`.
//!
//! Calls jsonwebtoken (signing, verification, the public half of a key), rcgen (key
//! generation) and the store (a get of the ServiceAccount per request). A
//! token's signature is checked once; later requests with it hit a [`TokenCache`].

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use jsonwebtoken::jwk::{Jwk, ThumbprintHash};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use moor_store::Store;
use serde::{Deserialize, Serialize};

use super::authn::Authenticator;
use super::token_cache::TokenCache;
use moor_api::authz::attributes::service_account_username;
use moor_apimachinery::resource::UserInfo;

/// The key file moor makes under the data dir when no key file is given.
pub const KEY_FILE: &str = "sa-signing-key.pem";

/// Leeway for `exp` and `nbf` (kube's `jwt.DefaultLeeway`): clock skew between
/// replicas and clients.
const LEEWAY_SECONDS: u64 = 60;

/// Errors loading or making the signing key, and signing.
#[derive(Debug, thiserror::Error)]
pub enum ServiceAccountError {
    #[error("service account signing key {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("service account signing key {path}: {message}")]
    Key { path: PathBuf, message: String },
    #[error("generating the service account signing key: {0}")]
    Generate(#[source] rcgen::Error),
    #[error("signing a token: {0}")]
    Sign(#[source] jsonwebtoken::errors::Error),
}

/// The key moor signs ServiceAccount tokens with, and its public half.
pub struct SigningKey {
    alg: Algorithm,
    kid: String,
    encoding: EncodingKey,
    decoding: DecodingKey,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("alg", &self.alg)
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// The key in `pem`: RSA (PKCS#1 or PKCS#8) → RS256, EC P-256 or P-384 (PKCS#8)
    /// → ES256 or ES384. `path` names it in errors.
    pub fn from_pem(pem: &str, path: &Path) -> Result<Self, ServiceAccountError> {
        let bad = |message: String| ServiceAccountError::Key {
            path: path.to_path_buf(),
            message,
        };
        let (alg, encoding, jwk) = if let Ok(key) = EncodingKey::from_rsa_pem(pem.as_bytes()) {
            let jwk = Jwk::from_encoding_key(&key, Algorithm::RS256)
                .map_err(|e| bad(format!("RSA key: {e}")))?;
            (Algorithm::RS256, key, jwk)
        } else if let Ok(key) = EncodingKey::from_ec_pem(pem.as_bytes()) {
            // The curve decides the algorithm: the public half derives only for its own.
            let (alg, jwk) = [Algorithm::ES256, Algorithm::ES384]
                .into_iter()
                .find_map(|alg| Jwk::from_encoding_key(&key, alg).ok().map(|j| (alg, j)))
                .ok_or_else(|| bad("EC key: only P-256 and P-384 are supported".into()))?;
            (alg, key, jwk)
        } else {
            return Err(bad(
                "not an RSA (PKCS#1 or PKCS#8) or EC (PKCS#8) private key in PEM".into(),
            ));
        };
        let decoding = DecodingKey::from_jwk(&jwk).map_err(|e| bad(e.to_string()))?;
        // The key id: the key's RFC 7638 thumbprint.
        let kid = jwk
            .thumbprint(ThumbprintHash::SHA256)
            .map_err(|e| bad(e.to_string()))?;
        Ok(SigningKey {
            alg,
            kid,
            encoding,
            decoding,
        })
    }

    /// `--service-account-signing-key-file` when given, else the data dir's key,
    /// made (EC P-256, mode 0600) when missing.
    pub fn load_or_generate(
        key_file: Option<&Path>,
        data_dir: &Path,
    ) -> Result<Self, ServiceAccountError> {
        let path = match key_file {
            Some(p) => p.to_path_buf(),
            None => data_dir.join(KEY_FILE),
        };
        let io = |source| ServiceAccountError::Io {
            path: path.clone(),
            source,
        };
        match std::fs::read_to_string(&path) {
            Ok(pem) => Self::from_pem(&pem, &path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && key_file.is_none() => {
                let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
                    .map_err(ServiceAccountError::Generate)?;
                let pem = pair.serialize_pem();
                write_private(&path, &pem).map_err(io)?;
                Self::from_pem(&pem, &path)
            }
            Err(e) => Err(io(e)),
        }
    }

    /// The JWS algorithm of this key.
    pub fn algorithm(&self) -> Algorithm {
        self.alg
    }
}

/// Writes `path` with mode 0600, whatever the umask.
fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    f.write_all(contents.as_bytes())?;
    f.sync_all()
}

/// `kubernetes.io` claim of a ServiceAccount token.
#[derive(Debug, Serialize, Deserialize)]
struct KubernetesClaim {
    namespace: String,
    serviceaccount: ObjectRef,
}

#[derive(Debug, Serialize, Deserialize)]
struct ObjectRef {
    name: String,
    uid: String,
}

/// The claims of a ServiceAccount token (kube's `privateClaims` plus the registered).
#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    iss: String,
    sub: String,
    aud: Vec<String>,
    iat: i64,
    nbf: i64,
    exp: i64,
    jti: String,
    #[serde(rename = "kubernetes.io")]
    kubernetes: KubernetesClaim,
}

/// A token minted by [`ServiceAccountTokens::mint`].
#[derive(Debug, Clone)]
pub struct MintedToken {
    pub token: String,
    /// When it expires.
    pub expiration: jiff::Timestamp,
}

/// Mints and verifies ServiceAccount tokens.
pub struct ServiceAccountTokens {
    key: SigningKey,
    /// `--service-account-issuer`: the `iss` of minted tokens, and the one accepted.
    issuer: String,
    /// `--api-audiences`: the default `aud`, and the audiences accepted.
    api_audiences: Vec<String>,
    /// `--service-account-max-token-expiration`: requested lifetimes are capped here.
    max_expiration: Duration,
    store: Arc<dyn Store>,
    /// Tokens already verified: their namespace, ServiceAccount name and uid.
    verified: TokenCache<(String, String, String)>,
}

impl std::fmt::Debug for ServiceAccountTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceAccountTokens")
            .field("key", &self.key)
            .field("issuer", &self.issuer)
            .field("api_audiences", &self.api_audiences)
            .field("max_expiration", &self.max_expiration)
            .finish_non_exhaustive()
    }
}

/// The store key of ServiceAccount `name` in `namespace`.
pub fn service_account_key(namespace: &str, name: &str) -> String {
    format!("/registry/core/serviceaccounts/{namespace}/{name}")
}

impl ServiceAccountTokens {
    /// Tokens signed by `key` for `issuer`; `api_audiences` empty means the issuer.
    pub fn new(
        key: SigningKey,
        issuer: String,
        api_audiences: Vec<String>,
        max_expiration: Duration,
        store: Arc<dyn Store>,
    ) -> Self {
        let api_audiences = if api_audiences.is_empty() {
            vec![issuer.clone()]
        } else {
            api_audiences
        };
        ServiceAccountTokens {
            key,
            issuer,
            api_audiences,
            max_expiration,
            store,
            verified: TokenCache::default(),
        }
    }

    /// The audiences a token gets when the request names none.
    pub fn api_audiences(&self) -> &[String] {
        &self.api_audiences
    }

    /// The longest lifetime a token gets.
    pub fn max_expiration(&self) -> Duration {
        self.max_expiration
    }

    /// A token for ServiceAccount `name` (uid `uid`) in `namespace`, valid for
    /// `audiences` (the API audiences when empty) during `lifetime` (capped at the
    /// maximum).
    pub fn mint(
        &self,
        namespace: &str,
        name: &str,
        uid: &str,
        audiences: &[String],
        lifetime: Duration,
    ) -> Result<MintedToken, ServiceAccountError> {
        let lifetime = lifetime.min(self.max_expiration);
        let now = jiff::Timestamp::now().as_second();
        let exp = now.saturating_add(i64::try_from(lifetime.as_secs()).unwrap_or(i64::MAX));
        let claims = Claims {
            iss: self.issuer.clone(),
            sub: service_account_username(namespace, name),
            aud: if audiences.is_empty() {
                self.api_audiences.clone()
            } else {
                audiences.to_vec()
            },
            iat: now,
            nbf: now,
            exp,
            jti: uuid::Uuid::new_v4().to_string(),
            kubernetes: KubernetesClaim {
                namespace: namespace.to_owned(),
                serviceaccount: ObjectRef {
                    name: name.to_owned(),
                    uid: uid.to_owned(),
                },
            },
        };
        let mut header = Header::new(self.key.alg);
        header.kid = Some(self.key.kid.clone());
        let token = jsonwebtoken::encode(&header, &claims, &self.key.encoding)
            .map_err(ServiceAccountError::Sign)?;
        let expiration = jiff::Timestamp::from_second(exp).unwrap_or(jiff::Timestamp::MAX);
        Ok(MintedToken { token, expiration })
    }

    /// The claims of `token` when it is one of ours: signed by our key with our
    /// algorithm, for our issuer and an API audience, within its lifetime.
    fn verify(&self, token: &str) -> Option<Claims> {
        let mut v = Validation::new(self.key.alg);
        v.set_required_spec_claims(&["exp", "iss", "aud", "sub", "nbf"]);
        v.set_issuer(&[&self.issuer]);
        v.set_audience(&self.api_audiences);
        v.validate_nbf = true;
        v.leeway = LEEWAY_SECONDS;
        jsonwebtoken::decode::<Claims>(token, &self.key.decoding, &v)
            .ok()
            .map(|d| d.claims)
    }

    /// The uid the ServiceAccount has in the store now, if it exists.
    async fn current_uid(&self, namespace: &str, name: &str) -> Option<String> {
        #[derive(Deserialize)]
        struct Meta {
            uid: String,
        }
        #[derive(Deserialize)]
        struct Obj {
            metadata: Meta,
        }
        let kv = self
            .store
            .get(&service_account_key(namespace, name))
            .await
            .ok()??;
        serde_json::from_slice::<Obj>(&kv.value)
            .ok()
            .map(|o| o.metadata.uid)
    }
}

#[async_trait]
impl Authenticator for ServiceAccountTokens {
    async fn authenticate(&self, token: &str) -> Option<UserInfo> {
        let now = jiff::Timestamp::now().as_second();
        let (namespace, name, token_uid) = match self.verified.get(token, now) {
            Some(hit) => hit,
            None => {
                // Another issuer's JWT (or no JWT) costs no signature check here.
                if super::oidc::claimed_issuer(token).as_deref() != Some(self.issuer.as_str()) {
                    return None;
                }
                let claims = self.verify(token)?;
                let k = claims.kubernetes;
                if claims.sub != service_account_username(&k.namespace, &k.serviceaccount.name) {
                    return None;
                }
                let v = (k.namespace, k.serviceaccount.name, k.serviceaccount.uid);
                self.verified.insert(token, v.clone(), claims.exp, now);
                v
            }
        };
        // Deleting the ServiceAccount invalidates its tokens, and one recreated under
        // the same name (a new uid) does not revive them: checked on every request,
        // cached or not.
        let uid = self.current_uid(&namespace, &name).await?;
        if uid != token_uid {
            return None;
        }
        Some(UserInfo::service_account(&namespace, &name, uid))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use moor_store::MemoryStore;

    fn tokens(store: Arc<dyn Store>) -> (tempfile::TempDir, ServiceAccountTokens) {
        let dir = tempfile::tempdir().unwrap();
        let key = SigningKey::load_or_generate(None, dir.path()).unwrap();
        let t = ServiceAccountTokens::new(
            key,
            "https://moor.test".into(),
            Vec::new(),
            Duration::from_secs(3600),
            store,
        );
        (dir, t)
    }

    async fn put_sa(store: &Arc<dyn Store>, uid: &str) {
        let obj =
            serde_json::json!({"metadata": {"name": "builder", "namespace": "ns1", "uid": uid}});
        let key = service_account_key("ns1", "builder");
        match store.get(&key).await.unwrap() {
            Some(kv) => {
                store
                    .update(&key, obj.to_string().into(), kv.mod_revision)
                    .await
                    .unwrap();
            }
            None => {
                store.create(&key, obj.to_string().into()).await.unwrap();
            }
        }
    }

    #[tokio::test]
    async fn minted_token_authenticates_while_the_uid_matches() {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let (dir, t) = tokens(store.clone());
        put_sa(&store, "uid-1").await;
        let minted = t
            .mint("ns1", "builder", "uid-1", &[], Duration::from_secs(600))
            .unwrap();
        let user = t.authenticate(&minted.token).await.unwrap();
        assert_eq!(user.name, "system:serviceaccount:ns1:builder");
        assert_eq!(user.uid, "uid-1");
        assert!(user.in_group("system:serviceaccounts:ns1"));
        put_sa(&store, "uid-2").await;
        assert!(t.authenticate(&minted.token).await.is_none());
        // The key file is private and reused at the next start.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(KEY_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let again = SigningKey::load_or_generate(None, dir.path()).unwrap();
        assert_eq!(again.kid, t.key.kid);
    }

    #[tokio::test]
    async fn key_files_may_be_rsa_pkcs1_or_ec_p384() {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        put_sa(&store, "uid-1").await;
        let dir = tempfile::tempdir().unwrap();
        for (file, alg) in [
            ("sa-rsa-pkcs1.pem", Algorithm::RS256),
            ("sa-ec384-pkcs8.pem", Algorithm::ES384),
        ] {
            let path = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("src/auth/testdata")
                .join(file);
            let key = SigningKey::load_or_generate(Some(&path), dir.path()).unwrap();
            assert_eq!(key.algorithm(), alg);
            let t = ServiceAccountTokens::new(
                key,
                "https://moor.test".into(),
                Vec::new(),
                Duration::from_secs(3600),
                store.clone(),
            );
            let minted = t
                .mint("ns1", "builder", "uid-1", &[], Duration::from_secs(600))
                .unwrap();
            assert!(t.authenticate(&minted.token).await.is_some(), "{file}");
        }
        // A given key file is never made up when missing, and garbage is refused.
        let missing = dir.path().join("nope.pem");
        assert!(SigningKey::load_or_generate(Some(&missing), dir.path()).is_err());
        assert!(!missing.exists());
        let err = SigningKey::from_pem(
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
            &missing,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("nope.pem"), "{err}");
    }

    #[tokio::test]
    async fn lifetime_is_capped_and_audience_defaults_to_the_issuer() {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let (_dir, t) = tokens(store);
        let minted = t
            .mint("ns1", "builder", "u", &[], Duration::from_secs(86_400))
            .unwrap();
        let left = minted.expiration.as_second() - jiff::Timestamp::now().as_second();
        assert!((3590..=3600).contains(&left), "{left}");
        let claims = t.verify(&minted.token).unwrap();
        assert_eq!(claims.aud, vec!["https://moor.test".to_string()]);
        let other = t
            .mint(
                "ns1",
                "builder",
                "u",
                &["vault".into()],
                Duration::from_secs(600),
            )
            .unwrap();
        assert!(t.verify(&other.token).is_none(), "not an API audience");
    }
}
