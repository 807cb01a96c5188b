//! `moor create is|istag|namespace`: makes one object and prints
//! `<resource>.<group>/<name> created`, as oc does. `create istag` resolves a digest
//! prefix in `--from STREAM@DIGEST` before it writes.

use std::collections::BTreeMap;

use clap::{Args, Subcommand};
use k8s_openapi::api::core::v1::Namespace;
use kube::Api;
use kube::api::PostParams;
use moor_api::DockerImageReference;
use moor_api::image::{
    ImageStream, ImageStreamTag, ImportMode, KIND_DOCKER_IMAGE, KIND_IMAGE_STREAM_IMAGE,
    KIND_IMAGE_STREAM_TAG, TagImportPolicy, TagReference, TagReferencePolicy,
    parse_image_stream_tag_name,
};

use super::emit;
use crate::cli::{ReferencePolicy, parse_import_mode, parse_reference_policy};
use crate::client::Session;
use crate::error::CliError;
use crate::resources::{DEPLOYMENTS, IMAGE_STREAM_TAGS, IMAGE_STREAMS, NAMESPACES};
use crate::tagging::{FIELD_MANAGER, object_reference, resolve_image_id, retry_on_conflict};

pub(crate) const CREATE_EXAMPLES: &str = "\
Examples:
  moor create is keycloak
  moor create is keycloak --lookup-local
  moor create istag keycloak:20.0 --from-image quay.io/keycloak/keycloak:20.0.2
  moor create deployment mykeycloak --image keycloak:20.0
  moor create namespace team-a
  moor create token builder";

const CREATE_TOKEN_EXAMPLES: &str = "\
Asks the server for a token of the ServiceAccount (a TokenRequest, as `kubectl create
token` does) and prints it.

Examples:
  # A token of the ServiceAccount builder in the current namespace
  moor create token builder

  # Valid for 10 minutes, for the audience moor
  moor create token builder -n team-a --duration 10m --audience moor";

const CREATE_DEPLOYMENT_EXAMPLES: &str = "\
The object is the one `kubectl create deployment` builds: labels and selector app=NAME,
one container per --image named after the image. moor does not run it: it stores it,
pins short image names of streams with lookup on (keycloak:20.0 -> ...@sha256:...), and
records a revision for every change of its pod template.

Examples:
  # A deployment of the image stream tag keycloak:20.0 (after `moor set image-lookup keycloak`)
  moor create deployment mykeycloak --image keycloak:20.0

  # Two replicas, a container port, and a command
  moor create deployment web --image nginx:1.27 --replicas 2 --port 80 -- nginx -g 'daemon off;'";

const CREATE_ISTAG_EXAMPLES: &str = "\
Examples:
  # A tag that imports an image from a registry (the stream is created if missing)
  moor create istag keycloak:20.0 --from-image quay.io/keycloak/keycloak:20.0.2

  # Re-import it every 15 minutes, and let pulls go through moor's registry
  moor create istag keycloak:nightly --from-image quay.io/keycloak/keycloak:nightly \\
      --scheduled --reference-policy local

  # A tag that follows another tag of the same stream, and one pinned to an image of it
  moor create istag keycloak:stable --from keycloak:20.0
  moor create istag keycloak:pinned --from keycloak@sha256:4f2a

  # Import every platform of a multi-arch image, with an annotation on the tag
  moor create istag keycloak:multi --from-image quay.io/keycloak/keycloak:20.0.2 \\
      --import-mode PreserveOriginal -A description='Keycloak 20'";

const CREATE_IS_EXAMPLES: &str = "\
Examples:
  # An empty image stream named keycloak in the current namespace
  moor create is keycloak

  # One whose tags workloads of this namespace may use by short name (keycloak:20.0)
  moor create is keycloak --lookup-local";

const CREATE_NS_EXAMPLES: &str = "\
Examples:
  moor create namespace team-a
  moor create ns team-b";

/// Flags of `moor create`.
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// What to create.
    #[command(subcommand)]
    pub what: CreateCommand,
}

/// The kinds `moor create` makes.
#[derive(Debug, Subcommand)]
pub enum CreateCommand {
    /// Create an empty image stream
    #[command(name = "imagestream", visible_alias = "is", after_help = CREATE_IS_EXAMPLES)]
    ImageStream(CreateImageStreamArgs),

    /// Create a namespace
    #[command(name = "namespace", visible_alias = "ns", after_help = CREATE_NS_EXAMPLES)]
    Namespace(CreateNamespaceArgs),

    /// Create an image stream tag (and its stream, if missing)
    #[command(name = "imagestreamtag", visible_alias = "istag", after_help = CREATE_ISTAG_EXAMPLES)]
    ImageStreamTag(CreateImageStreamTagArgs),

    /// Create a deployment with the specified name
    #[command(name = "deployment", visible_alias = "deploy", after_help = CREATE_DEPLOYMENT_EXAMPLES)]
    Deployment(CreateDeploymentArgs),

    /// Request a service account token
    #[command(name = "token", after_help = CREATE_TOKEN_EXAMPLES)]
    Token(CreateTokenArgs),
}

/// Flags of `moor create token`.
#[derive(Debug, Args)]
pub struct CreateTokenArgs {
    /// Name of the ServiceAccount
    #[arg(value_name = "SERVICE_ACCOUNT_NAME")]
    pub name: String,

    /// Requested lifetime of the token (e.g. 10m, 1h); the server may return another [default: the server's]
    #[arg(long, value_name = "DURATION", value_parser = crate::cli::parse_duration)]
    pub duration: Option<std::time::Duration>,

    /// Audience of the requested token (repeatable) [default: the server's]
    #[arg(long = "audience", value_name = "AUDIENCE")]
    pub audiences: Vec<String>,
}

/// Flags of `moor create deployment`.
#[derive(Debug, Args)]
pub struct CreateDeploymentArgs {
    /// Name of the deployment
    pub name: String,

    /// Image name to run: a pull spec or a short name of an image stream tag (repeatable)
    #[arg(long = "image", value_name = "IMAGE", required = true)]
    pub images: Vec<String>,

    /// Number of replicas to create
    #[arg(short = 'r', long, value_name = "N", default_value_t = 1)]
    pub replicas: i32,

    /// The containerPort the first container exposes
    #[arg(long, value_name = "PORT")]
    pub port: Option<i32>,

    /// The command the containers run instead of the image's entrypoint
    #[arg(last = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

/// Flags of `moor create imagestream`.
#[derive(Debug, Args)]
pub struct CreateImageStreamArgs {
    /// Name of the image stream
    pub name: String,

    /// Let workloads in this namespace use the stream's tags by short name (keycloak:20.0)
    #[arg(long)]
    pub lookup_local: bool,
}

/// Flags of `moor create imagestreamtag`.
#[derive(Debug, Args)]
pub struct CreateImageStreamTagArgs {
    /// The tag to create, STREAM:TAG
    #[arg(value_name = "STREAM:TAG")]
    pub name: String,

    /// Use the provided remote image with this tag
    #[arg(long, value_name = "PULLSPEC", conflicts_with = "from")]
    pub from_image: Option<String>,

    /// Use the provided image stream tag or image stream image as the source: [NAMESPACE/]STREAM[:TAG|@DIGEST]
    #[arg(long, value_name = "SOURCE")]
    pub from: Option<String>,

    /// Check the remote source of this image periodically for new images (registry sources only)
    #[arg(long)]
    pub scheduled: bool,

    /// Allow importing from registries that are not fully secured by HTTPS
    #[arg(long)]
    pub insecure: bool,

    /// How pull specs of this tag's images are written: source (the original registry) or local (moor's registry)
    #[arg(long, value_name = "POLICY", value_parser = parse_reference_policy)]
    pub reference_policy: Option<ReferencePolicy>,

    /// How a manifest list is imported: Legacy (one platform) or PreserveOriginal (the whole list)
    #[arg(long, value_name = "MODE", value_parser = parse_import_mode)]
    pub import_mode: Option<ImportMode>,

    /// Use the tag's value as it is whenever the tag is referenced; nothing is imported
    #[arg(long)]
    pub reference: bool,

    /// Set an annotation on this image stream tag (repeatable, or comma-separated)
    #[arg(
        short = 'A',
        long = "annotation",
        value_name = "KEY=VALUE",
        value_delimiter = ','
    )]
    pub annotations: Vec<String>,
}

/// Flags of `moor create namespace`.
#[derive(Debug, Args)]
pub struct CreateNamespaceArgs {
    /// Name of the namespace
    pub name: String,
}

/// Runs `moor create ...`.
pub async fn run(session: &Session, args: CreateArgs) -> Result<(), CliError> {
    if let CreateCommand::Token(a) = &args.what {
        return create_token(session, a).await;
    }
    let params = PostParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..Default::default()
    };
    let (ty, name) = match args.what {
        CreateCommand::ImageStream(a) => {
            let api: Api<ImageStream> = Api::namespaced(session.client.clone(), &session.namespace);
            let stream = image_stream(&a.name, &session.namespace, a.lookup_local);
            let created = api
                .create(&params, &stream)
                .await
                .map_err(|e| session.error(e))?;
            (&IMAGE_STREAMS, created.metadata.name.unwrap_or(a.name))
        }
        CreateCommand::Namespace(a) => {
            let api: Api<Namespace> = Api::all(session.client.clone());
            let mut ns = Namespace::default();
            ns.metadata.name = Some(a.name.clone());
            let created = api
                .create(&params, &ns)
                .await
                .map_err(|e| session.error(e))?;
            (&NAMESPACES, created.metadata.name.unwrap_or(a.name))
        }
        CreateCommand::ImageStreamTag(a) => {
            let ist = image_stream_tag(session, &a).await?;
            let api: Api<ImageStreamTag> =
                Api::namespaced(session.client.clone(), &session.namespace);
            let created = retry_on_conflict(|| async {
                api.create(&params, &ist)
                    .await
                    .map_err(|e| session.error(e))
            })
            .await?;
            (&IMAGE_STREAM_TAGS, created.metadata.name.unwrap_or(a.name))
        }
        CreateCommand::Deployment(a) => {
            let created = session
                .create_json(&DEPLOYMENTS, Some(&session.namespace), &deployment(&a))
                .await?;
            let name = created["metadata"]["name"]
                .as_str()
                .unwrap_or(&a.name)
                .to_string();
            (&DEPLOYMENTS, name)
        }
        CreateCommand::Token(a) => return create_token(session, &a).await,
    };
    emit(&format!("{}/{name} created\n", ty.qualified_singular()))
}

/// `POST .../serviceaccounts/NAME/token` (a TokenRequest); prints the token.
async fn create_token(session: &Session, a: &CreateTokenArgs) -> Result<(), CliError> {
    let mut spec = serde_json::json!({ "audiences": a.audiences });
    if let Some(d) = a.duration {
        spec["expirationSeconds"] = d.as_secs().into();
    }
    let body = serde_json::json!({
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenRequest",
        "spec": spec,
    });
    let path = format!(
        "/api/v1/namespaces/{}/serviceaccounts/{}/token",
        session.namespace, a.name
    );
    let answer = session.post_json(&path, &body).await?;
    let token = answer["status"]["token"].as_str().ok_or_else(|| {
        crate::client::ClientError::Decode("the TokenRequest has no status.token".into())
    })?;
    emit(&format!("{token}\n"))
}

/// Parses `-A key=value` annotations as oc does.
fn annotations(args: &[String]) -> Result<BTreeMap<String, String>, CliError> {
    let mut out = BTreeMap::new();
    for a in args {
        match a.split_once('=') {
            Some((k, v)) if !k.is_empty() => {
                out.insert(k.to_string(), v.to_string());
            }
            _ if a.ends_with('-') => {
                return Err(CliError::Usage(
                    "annotations must be of the form name=value".into(),
                ));
            }
            _ => {
                return Err(CliError::Usage(format!("invalid annotation format: {a}")));
            }
        }
    }
    Ok(out)
}

/// The `from` of `--from [NAMESPACE/]STREAM[:TAG|@DIGEST]` (or `:TAG`, a tag of the
/// same stream), with a digest prefix resolved to the full digest.
async fn from_stream(
    session: &Session,
    from: &str,
) -> Result<k8s_openapi::api::core::v1::ObjectReference, CliError> {
    if let Some(tag) = from.strip_prefix(':') {
        return Ok(object_reference(KIND_IMAGE_STREAM_TAG, tag, None));
    }
    let (name_part, id) = match from.split_once('@') {
        Some((n, id)) => (n, Some(id)),
        None => (from, None),
    };
    let r = DockerImageReference::parse(name_part).map_err(|e| {
        CliError::Usage(format!(
            "Invalid --from, must be a valid image stream tag or image stream image: {e}"
        ))
    })?;
    if !r.registry().is_empty() {
        return Err(CliError::Usage(
            "Invalid --from, registry may not be specified".into(),
        ));
    }
    let namespace = Some(r.namespace()).filter(|n| !n.is_empty());
    match id {
        Some(id) => {
            let ns = namespace.unwrap_or(&session.namespace);
            let digest = resolve_image_id(session, ns, r.name(), id).await?;
            Ok(object_reference(
                KIND_IMAGE_STREAM_IMAGE,
                &format!("{}@{digest}", r.name()),
                namespace,
            ))
        }
        None => Ok(object_reference(
            KIND_IMAGE_STREAM_TAG,
            &r.name_string(),
            namespace,
        )),
    }
}

/// The image stream tag `moor create istag` sends.
async fn image_stream_tag(
    session: &Session,
    a: &CreateImageStreamTagArgs,
) -> Result<ImageStreamTag, CliError> {
    let (_, tag) =
        parse_image_stream_tag_name(&a.name).map_err(|e| CliError::Usage(e.to_string()))?;
    let annotations = annotations(&a.annotations)?;
    let from = match (&a.from_image, &a.from) {
        (Some(image), _) => Some(object_reference(KIND_DOCKER_IMAGE, image, None)),
        (None, Some(from)) => Some(from_stream(session, from).await?),
        (None, None) => None,
    };
    let annotations = (!annotations.is_empty()).then_some(annotations);
    let mut ist = ImageStreamTag::default();
    ist.metadata.name = Some(a.name.clone());
    ist.metadata.namespace = Some(session.namespace.clone());
    ist.metadata.annotations = annotations.clone();
    ist.tag = Some(TagReference {
        name: tag.to_string(),
        annotations,
        from,
        reference: a.reference,
        generation: None,
        import_policy: TagImportPolicy {
            insecure: a.insecure,
            scheduled: a.scheduled,
            import_mode: a.import_mode.clone(),
        },
        reference_policy: TagReferencePolicy {
            type_: a.reference_policy.map(|p| p.to_api()),
        },
    });
    Ok(ist)
}

/// A container name from an image, as `kubectl create deployment` derives it: the last
/// path component without tag or digest; `_` and `.` become `-` and a random suffix is
/// added (kubectl's `sanitizeAndUniquify`).
fn container_name(image: &str) -> String {
    let last = image.rsplit('/').next().unwrap_or(image);
    let name = last.split([':', '@']).next().unwrap_or(last);
    if !name.contains(['_', '.']) {
        return name.to_string();
    }
    const ALPHANUMS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let suffix: String = (0..5)
        .map(|_| {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ALPHANUMS[(seed >> 33) as usize % ALPHANUMS.len()] as char
        })
        .collect();
    format!("{}-{suffix}", name.replace(['_', '.'], "-"))
}

/// The Deployment `kubectl create deployment` builds from the same flags.
fn deployment(a: &CreateDeploymentArgs) -> serde_json::Value {
    let labels = serde_json::json!({"app": a.name});
    let mut containers: Vec<serde_json::Value> = a
        .images
        .iter()
        .map(|image| {
            let mut c =
                serde_json::json!({"name": container_name(image), "image": image, "resources": {}});
            if !a.command.is_empty() {
                c["command"] = serde_json::json!(a.command);
            }
            c
        })
        .collect();
    if let (Some(port), Some(first)) = (a.port, containers.first_mut()) {
        first["ports"] = serde_json::json!([{"containerPort": port}]);
    }
    serde_json::json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": a.name, "labels": labels},
        "spec": {
            "replicas": a.replicas,
            "selector": {"matchLabels": labels},
            "strategy": {},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": containers},
            },
        },
        "status": {},
    })
}

/// The image stream `moor create is` sends.
fn image_stream(name: &str, namespace: &str, lookup_local: bool) -> ImageStream {
    let mut stream = ImageStream::default();
    stream.metadata.name = Some(name.to_string());
    stream.metadata.namespace = Some(namespace.to_string());
    stream.spec.lookup_policy.local = lookup_local;
    stream
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn annotations_parse_like_oc() {
        let got = annotations(&["a=1".into(), "b=x=y".into()]).unwrap();
        assert_eq!(got.get("b").map(String::as_str), Some("x=y"));
        assert_eq!(
            annotations(&["a-".into()]).unwrap_err().to_string(),
            "annotations must be of the form name=value"
        );
        assert_eq!(
            annotations(&["oops".into()]).unwrap_err().to_string(),
            "invalid annotation format: oops"
        );
    }

    #[test]
    fn deployments_are_built_like_kubectl_builds_them() {
        let a = CreateDeploymentArgs {
            name: "mykeycloak".into(),
            images: vec!["keycloak:20.0".into()],
            replicas: 1,
            port: Some(8080),
            command: vec![],
        };
        let d = deployment(&a);
        assert_eq!(d["metadata"]["labels"]["app"], "mykeycloak");
        assert_eq!(d["spec"]["selector"]["matchLabels"]["app"], "mykeycloak");
        let c = &d["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(c["name"], "keycloak");
        assert_eq!(c["image"], "keycloak:20.0");
        assert_eq!(c["ports"][0]["containerPort"], 8080);
        assert_eq!(container_name("quay.io/a/b@sha256:00"), "b");
        let odd = container_name("my_app.v2:1");
        assert!(
            odd.starts_with("my-app-v2-") && odd.len() == "my-app-v2-".len() + 5,
            "{odd}"
        );
    }

    #[test]
    fn the_stream_sent_is_minimal() {
        let v = serde_json::to_value(image_stream("keycloak", "default", true)).unwrap();
        assert_eq!(v["kind"], "ImageStream");
        assert_eq!(v["apiVersion"], "image.openshift.io/v1");
        assert_eq!(v["metadata"]["name"], "keycloak");
        assert_eq!(v["spec"]["lookupPolicy"]["local"], true);
        assert!(v["spec"].get("tags").is_none());
    }
}
