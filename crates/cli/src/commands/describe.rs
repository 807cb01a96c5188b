//! `moor describe is [NAME...]`: fetches image streams and prints them in oc's
//! describe layout (see [`crate::describe`]).

use kube::Api;
use kube::api::ListParams;
use moor_api::image::ImageStream;

use super::{emit, finish, no_resources_message, note};
use crate::cli::DescribeArgs;
use crate::client::Session;
use crate::error::CliError;
use crate::resources::{IMAGE_STREAMS, resolve_args};

/// Runs `moor describe ...`.
pub async fn run(session: &Session, args: DescribeArgs) -> Result<(), CliError> {
    let (ty, names) = resolve_args(&args.resource, &args.names)?;
    if !std::ptr::eq(ty, &IMAGE_STREAMS) {
        return Err(CliError::Usage(format!(
            "describe shows imagestreams (is) for now, not {}",
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
