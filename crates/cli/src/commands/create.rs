//! `moor create is|namespace`: makes one object and prints
//! `<resource>.<group>/<name> created`, as oc does.

use k8s_openapi::api::core::v1::Namespace;
use kube::Api;
use kube::api::PostParams;
use moor_api::image::ImageStream;

use super::emit;
use crate::cli::{CreateArgs, CreateCommand};
use crate::client::Session;
use crate::error::CliError;
use crate::resources::{IMAGE_STREAMS, NAMESPACES};

/// The field manager moor's writes are recorded under in `managedFields`.
const FIELD_MANAGER: &str = "moor";

/// Runs `moor create ...`.
pub async fn run(session: &Session, args: CreateArgs) -> Result<(), CliError> {
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
    };
    emit(&format!("{}/{name} created\n", ty.qualified_singular()))
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
    fn the_stream_sent_is_minimal() {
        let v = serde_json::to_value(image_stream("keycloak", "default", true)).unwrap();
        assert_eq!(v["kind"], "ImageStream");
        assert_eq!(v["apiVersion"], "image.openshift.io/v1");
        assert_eq!(v["metadata"]["name"], "keycloak");
        assert_eq!(v["spec"]["lookupPolicy"]["local"], true);
        assert!(v["spec"].get("tags").is_none());
    }
}
