//! `moor describe is|istag [NAME...]`: fetches image streams or image stream tags and
//! prints them in oc's describe layout (see [`crate::describe`]).

use kube::Api;
use kube::api::ListParams;
use moor_api::image::{ImageStream, ImageStreamTag, split_image_stream_tag};

use super::{emit, finish, no_resources_message, note};
use crate::cli::DescribeArgs;
use crate::client::Session;
use crate::error::CliError;
use crate::resources::{IMAGE_STREAM_TAGS, IMAGE_STREAMS, resolve_args};

/// Runs `moor describe ...`.
pub async fn run(session: &Session, args: DescribeArgs) -> Result<(), CliError> {
    let (ty, names) = resolve_args(&args.resource, &args.names)?;
    if std::ptr::eq(ty, &IMAGE_STREAM_TAGS) {
        return image_stream_tags(session, &names).await;
    }
    if !std::ptr::eq(ty, &IMAGE_STREAMS) {
        return Err(CliError::Usage(format!(
            "describe shows imagestreams (is) and imagestreamtags (istag) for now, not {}",
            ty.plural
        )));
    }
    let api: Api<ImageStream> = Api::namespaced(session.client.clone(), &session.namespace);
    let mut errors = Vec::new();
    let streams = if names.is_empty() {
        let list = api
            .list(&ListParams::default())
            .await
            .map_err(|e| session.error(e))?;
        if list.items.is_empty() {
            note(&no_resources_message(Some(&session.namespace)));
        }
        list.items
    } else {
        let mut streams = Vec::new();
        for name in &names {
            match api.get(name).await {
                Ok(s) => streams.push(s),
                Err(e) => errors.push(session.error(e).into()),
            }
        }
        streams
    };
    let now = jiff::Timestamp::now();
    let text: Vec<String> = streams
        .iter()
        .map(|s| crate::describe::image_stream(s, now))
        .collect();
    emit(&text.join("\n\n"))?;
    finish(errors)
}

/// `moor describe istag [STREAM[:TAG]...]`: the image each tag points at, as
/// `oc describe istag` prints it (a name without `:TAG` means `:latest`).
async fn image_stream_tags(session: &Session, names: &[String]) -> Result<(), CliError> {
    let api: Api<ImageStreamTag> = Api::namespaced(session.client.clone(), &session.namespace);
    let mut errors = Vec::new();
    let tags = if names.is_empty() {
        let list = api
            .list(&ListParams::default())
            .await
            .map_err(|e| session.error(e))?;
        if list.items.is_empty() {
            note(&no_resources_message(Some(&session.namespace)));
        }
        list.items
    } else {
        let mut tags = Vec::new();
        for name in names {
            let (stream, tag, _) = split_image_stream_tag(name);
            match api.get(&format!("{stream}:{tag}")).await {
                Ok(t) => tags.push(t),
                Err(e) => errors.push(session.error(e).into()),
            }
        }
        tags
    };
    let now = jiff::Timestamp::now();
    let text: Vec<String> = tags
        .iter()
        .map(|t| {
            let name = t.image.metadata.name.as_deref().unwrap_or_default();
            crate::describe::image(&t.image, name, now)
        })
        .collect();
    emit(&text.join("\n\n"))?;
    finish(errors)
}
