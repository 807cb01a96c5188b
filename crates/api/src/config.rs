//! `config.openshift.io/v1` signature policies: the namespaced `ImagePolicy` and the
//! cluster-wide `ClusterImagePolicy`, with OpenShift's JSON field names (from
//! openshift/api `config/v1/types_image_policy.go`), their validation, and which
//! policy's scope covers an image ([`most_specific`]). IO-free: data types and rules.

use k8s_openapi::ByteString;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, ObjectMeta};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::meta::{ApiVersionField, KindField, TypeInfo};
use crate::validation::FieldError;

/// The API group, `config.openshift.io`.
pub const GROUP: &str = "config.openshift.io";
/// The API version within the group, `v1`.
pub const VERSION: &str = "v1";
/// `apiVersion` of the types here.
pub const API_VERSION: &str = "config.openshift.io/v1";

/// `policyType` of a public key root of trust.
pub const POLICY_TYPE_PUBLIC_KEY: &str = "PublicKey";
/// `policyType` of a Fulcio CA with Rekor root of trust.
pub const POLICY_TYPE_FULCIO: &str = "FulcioCAWithRekor";
/// `matchPolicy` values.
pub const MATCH_POLICIES: &[&str] = &[
    "MatchRepoDigestOrExact",
    "MatchRepository",
    "ExactRepository",
    "RemapIdentity",
];

macro_rules! policy_resource {
    ($ty:ident, kind: $kind:literal, plural: $plural:literal, scope: $scope:ident, list: $list:literal) => {
        impl k8s_openapi::Resource for $ty {
            const API_VERSION: &'static str = API_VERSION;
            const GROUP: &'static str = GROUP;
            const KIND: &'static str = $kind;
            const VERSION: &'static str = VERSION;
            const URL_PATH_SEGMENT: &'static str = $plural;
            type Scope = k8s_openapi::$scope;
        }
        impl k8s_openapi::Metadata for $ty {
            type Ty = ObjectMeta;
            fn metadata(&self) -> &ObjectMeta {
                &self.metadata
            }
            fn metadata_mut(&mut self) -> &mut ObjectMeta {
                &mut self.metadata
            }
        }
        impl k8s_openapi::ListableResource for $ty {
            const LIST_KIND: &'static str = $list;
        }
        impl TypeInfo for $ty {
            const API_VERSION: &'static str = API_VERSION;
            const KIND: &'static str = $kind;
        }
    };
}

/// ImagePolicy holds namespace-wide configuration for image signature verification.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "com.github.openshift.api.config.v1.ImagePolicy")]
pub struct ImagePolicy {
    /// Always `ImagePolicy`.
    #[serde(default)]
    pub kind: KindField<ImagePolicy>,
    /// Always `config.openshift.io/v1`.
    #[serde(rename = "apiVersion", default)]
    pub api_version: ApiVersionField<ImagePolicy>,
    /// Standard object metadata.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// spec holds user settable values for configuration.
    #[serde(default)]
    pub spec: ImagePolicySpec,
    /// status contains the observed state of the resource.
    #[serde(default, skip_serializing_if = "PolicyStatus::is_empty")]
    pub status: PolicyStatus,
}

policy_resource!(ImagePolicy, kind: "ImagePolicy", plural: "imagepolicies", scope: NamespaceResourceScope, list: "ImagePolicyList");

/// ClusterImagePolicy holds cluster-wide configuration for image signature verification.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "com.github.openshift.api.config.v1.ClusterImagePolicy")]
pub struct ClusterImagePolicy {
    /// Always `ClusterImagePolicy`.
    #[serde(default)]
    pub kind: KindField<ClusterImagePolicy>,
    /// Always `config.openshift.io/v1`.
    #[serde(rename = "apiVersion", default)]
    pub api_version: ApiVersionField<ClusterImagePolicy>,
    /// Standard object metadata.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// spec contains the configuration for the cluster image policy.
    #[serde(default)]
    pub spec: ImagePolicySpec,
    /// status contains the observed state of the resource.
    #[serde(default, skip_serializing_if = "PolicyStatus::is_empty")]
    pub status: PolicyStatus,
}

policy_resource!(ClusterImagePolicy, kind: "ClusterImagePolicy", plural: "clusterimagepolicies", scope: ClusterResourceScope, list: "ClusterImagePolicyList");

/// The specification of an ImagePolicy or ClusterImagePolicy (the two are the same).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "com.github.openshift.api.config.v1.ImagePolicySpec")]
pub struct ImagePolicySpec {
    /// scopes defines the list of image identities assigned to a policy: fully
    /// expanded image references (with tag or digest), repositories, repository
    /// namespaces, registry hosts (`host[:port]`) or `*.` subdomain wildcards. If
    /// several scopes match an image, only the most specific one applies.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// policy contains configuration to allow scopes to be verified.
    #[serde(default)]
    pub policy: Policy,
}

/// Policy defines the verification policy for the items in the scopes list.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "com.github.openshift.api.config.v1.Policy")]
pub struct Policy {
    /// rootOfTrust specifies the root of trust for the policy.
    #[serde(rename = "rootOfTrust", default)]
    pub root_of_trust: PolicyRootOfTrust,
    /// signedIdentity specifies what image identity the signature claims about the
    /// image (default matchPolicy `MatchRepoDigestOrExact`).
    #[serde(
        rename = "signedIdentity",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub signed_identity: Option<PolicyIdentity>,
}

/// PolicyRootOfTrust defines the root of trust based on the selected policyType.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "com.github.openshift.api.config.v1.PolicyRootOfTrust")]
pub struct PolicyRootOfTrust {
    /// policyType is the union's discriminator: `PublicKey` or `FulcioCAWithRekor`.
    #[serde(rename = "policyType", default)]
    pub policy_type: String,
    /// publicKey defines the root of trust based on a sigstore public key.
    #[serde(rename = "publicKey", default, skip_serializing_if = "Option::is_none")]
    pub public_key: Option<PublicKey>,
    /// fulcioCAWithRekor defines the root of trust based on the Fulcio certificate and
    /// the Rekor public key.
    #[serde(
        rename = "fulcioCAWithRekor",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub fulcio_ca_with_rekor: Option<FulcioCAWithRekor>,
}

/// PublicKey defines the root of trust based on a sigstore public key.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "com.github.openshift.api.config.v1.PublicKey")]
pub struct PublicKey {
    /// keyData contains inline base64-encoded data for the PEM format public key.
    #[serde(rename = "keyData", default)]
    #[schemars(schema_with = "crate::meta::schema::bytes")]
    pub key_data: ByteString,
    /// rekorKeyData contains inline base64-encoded data for the PEM format from the
    /// Rekor public key.
    #[serde(
        rename = "rekorKeyData",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(schema_with = "crate::meta::schema::bytes")]
    pub rekor_key_data: Option<ByteString>,
}

/// FulcioCAWithRekor defines the root of trust based on the Fulcio certificate and the
/// Rekor public key.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "com.github.openshift.api.config.v1.FulcioCAWithRekor")]
pub struct FulcioCAWithRekor {
    /// fulcioCAData contains inline base64-encoded data for the PEM format fulcio CA.
    #[serde(rename = "fulcioCAData", default)]
    #[schemars(schema_with = "crate::meta::schema::bytes")]
    pub fulcio_ca_data: ByteString,
    /// rekorKeyData contains inline base64-encoded data for the PEM format from the
    /// Rekor public key.
    #[serde(rename = "rekorKeyData", default)]
    #[schemars(schema_with = "crate::meta::schema::bytes")]
    pub rekor_key_data: ByteString,
    /// fulcioSubject specifies OIDC issuer and the email of the Fulcio authentication
    /// configuration.
    #[serde(rename = "fulcioSubject", default)]
    pub fulcio_subject: PolicyFulcioSubject,
}

/// PolicyFulcioSubject defines the OIDC issuer and the email of the Fulcio
/// authentication configuration.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "com.github.openshift.api.config.v1.PolicyFulcioSubject")]
pub struct PolicyFulcioSubject {
    /// oidcIssuer contains the expected OIDC issuer.
    #[serde(rename = "oidcIssuer", default)]
    pub oidc_issuer: String,
    /// signedEmail holds the email address the Fulcio certificate is issued for.
    #[serde(rename = "signedEmail", default)]
    pub signed_email: String,
}

/// PolicyIdentity defines image identity the signature claims about the image.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "com.github.openshift.api.config.v1.PolicyIdentity")]
pub struct PolicyIdentity {
    /// matchPolicy: `MatchRepoDigestOrExact`, `MatchRepository`, `ExactRepository` or
    /// `RemapIdentity`.
    #[serde(rename = "matchPolicy", default)]
    pub match_policy: String,
    /// exactRepository is required if matchPolicy is set to "ExactRepository".
    #[serde(
        rename = "exactRepository",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub exact_repository: Option<PolicyMatchExactRepository>,
    /// remapIdentity is required if matchPolicy is set to "RemapIdentity".
    #[serde(
        rename = "remapIdentity",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub remap_identity: Option<PolicyMatchRemapIdentity>,
}

/// The repository signatures must name (`ExactRepository`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "com.github.openshift.api.config.v1.PolicyMatchExactRepository")]
pub struct PolicyMatchExactRepository {
    /// repository is the reference of the image identity to be matched.
    #[serde(default)]
    pub repository: String,
}

/// A prefix rewrite of the image identity before matching (`RemapIdentity`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "com.github.openshift.api.config.v1.PolicyMatchRemapIdentity")]
pub struct PolicyMatchRemapIdentity {
    /// prefix is the prefix of the image identity to be matched.
    #[serde(default)]
    pub prefix: String,
    /// signedPrefix is the prefix of the image identity to be matched in the signature.
    #[serde(rename = "signedPrefix", default)]
    pub signed_prefix: String,
}

/// The observed state of a policy.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "com.github.openshift.api.config.v1.ImagePolicyStatus")]
pub struct PolicyStatus {
    /// conditions provide details on the status of this API Resource.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

impl PolicyStatus {
    fn is_empty(&self) -> bool {
        self.conditions.is_empty()
    }
}

fn is_dns_label_part(p: &str) -> bool {
    !p.is_empty()
        && p.len() <= 63
        && p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !p.starts_with('-')
        && !p.ends_with('-')
}

/// Why `scope` is not a valid image scope, if it is not (OpenShift's CEL rules: a
/// fully qualified host or `localhost`, a `*.` wildcard only as a whole subdomain
/// match, lower-case repository path components, an optional tag or digest).
pub fn scope_error(scope: &str) -> Option<&'static str> {
    if scope.is_empty() || scope.len() > 512 {
        return Some("must be between 1 and 512 characters");
    }
    if let Some(rest) = scope.strip_prefix("*.") {
        return (!rest.split('.').all(is_dns_label_part)).then_some(
            "invalid image scope with wildcard, a wildcard can only be at the start of the domain and is only supported for subdomain matching, not path matching",
        );
    }
    if scope.contains('*') {
        return Some(
            "invalid image scope with wildcard, a wildcard can only be at the start of the domain and is only supported for subdomain matching, not path matching",
        );
    }
    let (host, path) = scope.split_once('/').unwrap_or((scope, ""));
    let (hostname, port) = host.split_once(':').unwrap_or((host, ""));
    let host_ok = (hostname == "localhost"
        || (hostname.contains('.') && hostname.split('.').all(is_dns_label_part)))
        && (port.is_empty() || port.bytes().all(|b| b.is_ascii_digit()));
    if !host_ok {
        return Some(
            "invalid image scope format, scope must contain a fully qualified domain name or 'localhost'",
        );
    }
    if path.is_empty() {
        return None;
    }
    let (path, _digest) = match path.split_once('@') {
        Some((p, d)) => {
            if crate::Digest::parse(d).is_err() {
                return Some(
                    "invalid repository namespace or image specification in the image scope",
                );
            }
            (p, Some(d))
        }
        None => (path, None),
    };
    let (repo, tag) = match path.rsplit_once(':') {
        Some((r, t)) if !t.contains('/') => (r, Some(t)),
        _ => (path, None),
    };
    let repo_ok = repo.split('/').all(|c| {
        !c.is_empty()
            && c.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
            && c.as_bytes()[0].is_ascii_alphanumeric()
    });
    let tag_ok = tag.is_none_or(|t| {
        !t.is_empty()
            && t.len() <= 128
            && t.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
    });
    (!(repo_ok && tag_ok))
        .then_some("invalid repository namespace or image specification in the image scope")
}

fn repository_prefix_error(v: &str) -> Option<&'static str> {
    if v.contains('@') || scope_error(v).is_some() || v.starts_with("*.") {
        return Some("invalid repository or prefix in the signedIdentity");
    }
    let last = v.rsplit('/').next().unwrap_or(v);
    if v.contains('/') && last.contains(':') {
        return Some(
            "invalid repository or prefix in the signedIdentity, should not include the tag or digest",
        );
    }
    None
}

fn pem_error(path: &str, data: &ByteString, label: &str) -> Option<FieldError> {
    if data.0.is_empty() {
        return Some(FieldError::required(path, format!("{label} is required")));
    }
    (!String::from_utf8_lossy(&data.0).contains("-----BEGIN "))
        .then(|| FieldError::invalid(path, "<binary>", format!("{label} must be PEM data")))
}

/// The field errors of a policy spec (an ImagePolicy's or a ClusterImagePolicy's).
pub fn validate_spec(spec: &ImagePolicySpec) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if spec.scopes.is_empty() {
        errs.push(FieldError::required("spec.scopes", "scopes is required"));
    }
    if spec.scopes.len() > 256 {
        errs.push(FieldError::invalid(
            "spec.scopes",
            spec.scopes.len().to_string(),
            "must have at most 256 items",
        ));
    }
    for (i, s) in spec.scopes.iter().enumerate() {
        if let Some(why) = scope_error(s) {
            errs.push(FieldError::invalid(format!("spec.scopes[{i}]"), s, why));
        }
    }
    let root = &spec.policy.root_of_trust;
    let p = "spec.policy.rootOfTrust";
    match root.policy_type.as_str() {
        POLICY_TYPE_PUBLIC_KEY => match &root.public_key {
            None => errs.push(FieldError::required(
                format!("{p}.publicKey"),
                "publicKey is required when policyType is PublicKey, and forbidden otherwise",
            )),
            Some(k) => {
                errs.extend(pem_error(&format!("{p}.publicKey.keyData"), &k.key_data, "keyData"));
                if let Some(r) = &k.rekor_key_data {
                    errs.extend(pem_error(
                        &format!("{p}.publicKey.rekorKeyData"),
                        r,
                        "rekorKeyData",
                    ));
                }
            }
        },
        POLICY_TYPE_FULCIO => match &root.fulcio_ca_with_rekor {
            None => errs.push(FieldError::required(
                format!("{p}.fulcioCAWithRekor"),
                "fulcioCAWithRekor is required when policyType is FulcioCAWithRekor, and forbidden otherwise",
            )),
            Some(f) => {
                let q = format!("{p}.fulcioCAWithRekor");
                errs.extend(pem_error(&format!("{q}.fulcioCAData"), &f.fulcio_ca_data, "fulcioCAData"));
                errs.extend(pem_error(&format!("{q}.rekorKeyData"), &f.rekor_key_data, "rekorKeyData"));
                let s = &f.fulcio_subject;
                if !(s.oidc_issuer.starts_with("https://") || s.oidc_issuer.starts_with("http://")) {
                    errs.push(FieldError::invalid(
                        format!("{q}.fulcioSubject.oidcIssuer"),
                        &s.oidc_issuer,
                        "oidcIssuer must be a valid URL",
                    ));
                }
                let email_ok = s
                    .signed_email
                    .split_once('@')
                    .is_some_and(|(a, b)| !a.is_empty() && !b.is_empty())
                    && !s.signed_email.contains(char::is_whitespace);
                if !email_ok {
                    errs.push(FieldError::invalid(
                        format!("{q}.fulcioSubject.signedEmail"),
                        &s.signed_email,
                        "invalid email address",
                    ));
                }
            }
        },
        other => errs.push(FieldError::not_supported(
            format!("{p}.policyType"),
            other,
            &[POLICY_TYPE_PUBLIC_KEY, POLICY_TYPE_FULCIO],
        )),
    }
    if root.policy_type != POLICY_TYPE_PUBLIC_KEY && root.public_key.is_some() {
        errs.push(FieldError::forbidden(
            format!("{p}.publicKey"),
            "publicKey is required when policyType is PublicKey, and forbidden otherwise",
        ));
    }
    if root.policy_type != POLICY_TYPE_FULCIO && root.fulcio_ca_with_rekor.is_some() {
        errs.push(FieldError::forbidden(
            format!("{p}.fulcioCAWithRekor"),
            "fulcioCAWithRekor is required when policyType is FulcioCAWithRekor, and forbidden otherwise",
        ));
    }
    if let Some(id) = &spec.policy.signed_identity {
        let p = "spec.policy.signedIdentity";
        if !MATCH_POLICIES.contains(&id.match_policy.as_str()) {
            errs.push(FieldError::not_supported(
                format!("{p}.matchPolicy"),
                &id.match_policy,
                MATCH_POLICIES,
            ));
        }
        let exact = id.match_policy == "ExactRepository";
        match &id.exact_repository {
            None if exact => errs.push(FieldError::required(
                format!("{p}.exactRepository"),
                "exactRepository is required when matchPolicy is ExactRepository, and forbidden otherwise",
            )),
            Some(_) if !exact => errs.push(FieldError::forbidden(
                format!("{p}.exactRepository"),
                "exactRepository is required when matchPolicy is ExactRepository, and forbidden otherwise",
            )),
            Some(e) => {
                if let Some(why) = repository_prefix_error(&e.repository) {
                    errs.push(FieldError::invalid(
                        format!("{p}.exactRepository.repository"),
                        &e.repository,
                        why,
                    ));
                }
            }
            None => {}
        }
        match (&id.match_policy[..], &id.remap_identity) {
            ("RemapIdentity", None) => errs.push(FieldError::required(
                format!("{p}.remapIdentity"),
                "remapIdentity is required when matchPolicy is RemapIdentity, and forbidden otherwise",
            )),
            ("RemapIdentity", Some(r)) => {
                for (f, v) in [("prefix", &r.prefix), ("signedPrefix", &r.signed_prefix)] {
                    if let Some(why) = repository_prefix_error(v) {
                        errs.push(FieldError::invalid(format!("{p}.remapIdentity.{f}"), v, why));
                    }
                }
            }
            (_, Some(_)) => errs.push(FieldError::forbidden(
                format!("{p}.remapIdentity"),
                "remapIdentity is required when matchPolicy is RemapIdentity, and forbidden otherwise",
            )),
            _ => {}
        }
    }
    errs
}

/// How specific `scope` is for `image` (a fully expanded reference, `host/repo[:tag]`
/// or `host/repo@digest`): `None` when it does not cover the image, else a rank where
/// greater is more specific (containers-policy.json's rules: an exact image, then
/// the longest repository prefix at a `/` boundary, then the host, then wildcards).
pub fn scope_rank(scope: &str, image: &str) -> Option<usize> {
    let (host, _) = image.split_once('/').unwrap_or((image, ""));
    if let Some(suffix) = scope.strip_prefix("*.") {
        let hostname = host.split_once(':').map_or(host, |(h, _)| h);
        return hostname
            .strip_suffix(suffix)
            .filter(|rest| rest.ends_with('.') && rest.len() > 1)
            .map(|_| suffix.len());
    }
    if scope == image {
        return Some(usize::MAX);
    }
    // The image's repository (no tag or digest) must equal the scope or extend it at
    // a `/` boundary.
    let repo = image.split_once('@').map_or(image, |(r, _)| r);
    let repo = match repo.rsplit_once(':') {
        Some((r, t)) if !t.contains('/') => r,
        _ => repo,
    };
    if repo == scope {
        return Some(1000 + scope.len());
    }
    repo.strip_prefix(scope)
        .filter(|rest| rest.starts_with('/'))
        .map(|_| 1000 + scope.len())
}

/// The policy that applies to `image` among `policies` (name, spec): the one whose
/// scope covers it most specifically, `None` when no scope does.
pub fn most_specific<'a, T>(
    policies: impl IntoIterator<Item = (&'a T, &'a ImagePolicySpec)>,
    image: &str,
) -> Option<(&'a T, usize)>
where
    T: ?Sized + 'a,
{
    policies
        .into_iter()
        .filter_map(|(t, spec)| {
            spec.scopes
                .iter()
                .filter_map(|s| scope_rank(s, image))
                .max()
                .map(|r| (t, r))
        })
        .max_by_key(|(_, r)| *r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_are_validated_as_openshift_does() {
        for ok in [
            "quay.io",
            "localhost:5000",
            "127.0.0.1:5000/keycloak",
            "quay.io/keycloak/keycloak",
            "quay.io/keycloak/keycloak:20.0",
            "*.example.com",
            "docker.io/library/busybox@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        ] {
            assert_eq!(scope_error(ok), None, "{ok}");
        }
        for bad in [
            "busybox",
            "",
            "example*.com",
            "quay.io/*",
            "quay.io/Upper",
            "*.a.com/x",
        ] {
            assert!(scope_error(bad).is_some(), "{bad}");
        }
    }

    #[test]
    fn the_most_specific_scope_wins() {
        let a = ImagePolicySpec {
            scopes: vec!["quay.io".into()],
            ..Default::default()
        };
        let b = ImagePolicySpec {
            scopes: vec!["quay.io/keycloak".into()],
            ..Default::default()
        };
        let c = ImagePolicySpec {
            scopes: vec!["*.io".into()],
            ..Default::default()
        };
        let all = [("a", &a), ("b", &b), ("c", &c)];
        let pick = |img: &str| most_specific(all.iter().map(|(n, s)| (*n, *s)), img).map(|x| x.0);
        assert_eq!(pick("quay.io/keycloak/keycloak:20.0"), Some("b"));
        assert_eq!(pick("quay.io/keycloakx/k:1"), Some("a"));
        assert_eq!(pick("gcr.io/x/y:1"), Some("c"));
        assert_eq!(pick("docker.io/x/y:1"), Some("c"));
        assert_eq!(pick("localhost:5000/x:1"), None);
        assert_eq!(scope_rank("quay.io", "quay.io:443/x"), None);
    }

    #[test]
    fn public_key_policies_need_a_key_and_identity_unions_are_checked() {
        let mut spec = ImagePolicySpec {
            scopes: vec!["quay.io/x".into()],
            policy: Policy {
                root_of_trust: PolicyRootOfTrust {
                    policy_type: POLICY_TYPE_PUBLIC_KEY.into(),
                    ..Default::default()
                },
                signed_identity: None,
            },
        };
        let errs = validate_spec(&spec);
        assert!(
            errs.iter().any(|e| e.path.ends_with("publicKey")),
            "{errs:?}"
        );
        spec.policy.root_of_trust.public_key = Some(PublicKey {
            key_data: ByteString(
                b"-----BEGIN PUBLIC KEY-----\nx\n-----END PUBLIC KEY-----\n".to_vec(),
            ),
            rekor_key_data: None,
        });
        assert!(validate_spec(&spec).is_empty());
        spec.policy.signed_identity = Some(PolicyIdentity {
            match_policy: "ExactRepository".into(),
            ..Default::default()
        });
        let errs = validate_spec(&spec);
        assert!(
            errs.iter().any(|e| e.path.ends_with("exactRepository")),
            "{errs:?}"
        );
        spec.policy.signed_identity = Some(PolicyIdentity {
            match_policy: "ExactRepository".into(),
            exact_repository: Some(PolicyMatchExactRepository {
                repository: "quay.io/x/y".into(),
            }),
            ..Default::default()
        });
        assert!(
            validate_spec(&spec).is_empty(),
            "{:?}",
            validate_spec(&spec)
        );
    }
}
