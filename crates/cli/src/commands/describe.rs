//! `moor describe is|istag [NAME...]`: fetches image streams or image stream tags and
//! prints them in oc's describe layout (see [`crate::describe`]); a stream ends with
//! its Events, as kubectl's describers end, and a tag with those of its stream that
//! concern the tag.

use std::collections::BTreeMap;

use clap::Args;
use kube::Api;
use kube::api::ListParams;
use moor_api::image::{ImageStream, ImageStreamTag, split_image_stream_tag};
use moor_api::scheduled::{ScheduledImport, ScheduledImportStatus};

use super::{emit, finish, no_resources_message, note};
use serde_json::Value;

use crate::client::{ListQuery, Session};
use crate::error::CliError;
use crate::resources::{EVENTS, IMAGE_STREAM_TAGS, IMAGE_STREAMS, NOTIFICATIONS, resolve_args};

pub(crate) const DESCRIBE_EXAMPLES: &str = "\
Resource types: imagestreams (is), imagestreamtags (istag), notifications.

Examples:
  # Tags, where each comes from, and the history of images each has pointed at
  moor describe is keycloak

  # Every image stream of the namespace
  moor describe is

  # The image a tag points at: digest, size, layers, entrypoint, labels, environment
  moor describe istag keycloak:20.0

  # Where a Notification POSTs, and how delivery goes (pending, last success, last error)
  moor describe notification hook";

/// Flags of `moor describe`.
#[derive(Debug, Args)]
pub struct DescribeArgs {
    /// Resource type: is (imagestream) or istag (imagestreamtag), or TYPE/NAME
    #[arg(value_name = "TYPE[/NAME]")]
    pub resource: String,

    /// Names of the resources to describe [default: all in the namespace]
    #[arg(value_name = "NAME")]
    pub names: Vec<String>,
}

/// Runs `moor describe ...`.
pub async fn run(session: &Session, args: DescribeArgs) -> Result<(), CliError> {
    let (ty, names) = resolve_args(&args.resource, &args.names)?;
    if std::ptr::eq(ty, &IMAGE_STREAM_TAGS) {
        return image_stream_tags(session, &names).await;
    }
    if std::ptr::eq(ty, &NOTIFICATIONS) {
        return notifications(session, &names).await;
    }
    if !std::ptr::eq(ty, &IMAGE_STREAMS) {
        return Err(CliError::Usage(format!(
            "describe shows imagestreams (is), imagestreamtags (istag) and notifications for now, not {}",
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
    let schedules = schedules(session, &streams).await;
    let now = jiff::Timestamp::now();
    let empty = BTreeMap::new();
    let mut text: Vec<String> = Vec::new();
    for s in &streams {
        let name = s.metadata.name.clone().unwrap_or_default();
        let mut t = crate::describe::image_stream_with_schedules(
            s,
            schedules.get(&name).unwrap_or(&empty),
            now,
        );
        if let Some(events) = events_about(session, "ImageStream", &name).await {
            if !t.ends_with('\n') {
                t.push('\n');
            }
            t.push_str(&crate::describe::events(&events, now));
        }
        text.push(t);
    }
    emit(&text.join("\n\n"))?;
    finish(errors)
}

/// `moor describe notification [NAME...]`: each Notification with its delivery status.
async fn notifications(session: &Session, names: &[String]) -> Result<(), CliError> {
    use moor_api::notification::Notification;
    let mut errors = Vec::new();
    let mut found: Vec<Notification> = Vec::new();
    let decode = |v: Value| -> Result<Notification, CliError> {
        serde_json::from_value(v)
            .map_err(|e| CliError::Usage(format!("the server sent a bad Notification: {e}")))
    };
    if names.is_empty() {
        let list = session
            .list_json(&NOTIFICATIONS, Some(&session.namespace), None)
            .await?;
        for item in list["items"].as_array().cloned().unwrap_or_default() {
            found.push(decode(item)?);
        }
        if found.is_empty() {
            note(&no_resources_message(Some(&session.namespace)));
        }
    } else {
        for name in names {
            match session
                .get_json(&NOTIFICATIONS, Some(&session.namespace), name)
                .await
            {
                Ok(v) => found.push(decode(v)?),
                Err(e) => errors.push(e.into()),
            }
        }
    }
    let now = jiff::Timestamp::now();
    let text: Vec<String> = found
        .iter()
        .map(|n| crate::describe::notification::notification(n, now))
        .collect();
    emit(&text.join("\n\n"))?;
    finish(errors)
}

/// The events of the session's namespace about the object `kind`/`name`, listed by
/// `involvedObject` as kubectl's describe lists them. Best effort: `None` when the
/// server does not answer, and describe then prints no Events block.
async fn events_about(session: &Session, kind: &str, name: &str) -> Option<Vec<Value>> {
    let fields = format!(
        "involvedObject.kind={kind},involvedObject.name={name},involvedObject.namespace={}",
        session.namespace
    );
    let query = ListQuery {
        labels: None,
        fields: Some(&fields),
    };
    match session
        .list_json_query(&EVENTS, Some(&session.namespace), &query)
        .await
    {
        Ok(list) => Some(list["items"].as_array().cloned().unwrap_or_default()),
        Err(e) => {
            tracing::debug!(error = %e, "no events");
            None
        }
    }
}

/// The scheduler's records (`scheduledimports.moor.io`) of the streams' tags, by
/// stream and tag. Best effort: a server without them describes without them.
async fn schedules(
    session: &Session,
    streams: &[ImageStream],
) -> BTreeMap<String, BTreeMap<String, ScheduledImportStatus>> {
    let mut out: BTreeMap<String, BTreeMap<String, ScheduledImportStatus>> = BTreeMap::new();
    if streams.is_empty() {
        return out;
    }
    let api: Api<ScheduledImport> = Api::namespaced(session.client.clone(), &session.namespace);
    let params = match streams {
        [one] => ListParams::default().fields(&format!(
            "status.imageStream={}",
            one.metadata.name.as_deref().unwrap_or_default()
        )),
        _ => ListParams::default(),
    };
    match api.list(&params).await {
        Ok(list) => {
            for item in list.items {
                out.entry(item.status.image_stream.clone())
                    .or_default()
                    .insert(item.status.tag.clone(), item.status);
            }
        }
        Err(e) => tracing::debug!(error = %e, "no scheduler records"),
    }
    out
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
    // The Events of each stream, listed once however many of its tags are described.
    let mut stream_events: BTreeMap<String, Option<Vec<Value>>> = BTreeMap::new();
    let mut text: Vec<String> = Vec::new();
    for t in &tags {
        let image_name = t.image.metadata.name.as_deref().unwrap_or_default();
        let mut out = crate::describe::image(&t.image, image_name, now);
        let (stream, tag, _) = split_image_stream_tag(t.metadata.name.as_deref().unwrap_or(""));
        if !stream_events.contains_key(stream) {
            let events = events_about(session, "ImageStream", stream).await;
            stream_events.insert(stream.to_string(), events);
        }
        if let Some(Some(events)) = stream_events.get(stream) {
            if !out.ends_with('\n') {
                out.push('\n');
            }
            let about = crate::describe::events_about_tag(events, stream, tag);
            out.push_str(&crate::describe::events(&about, now));
        }
        text.push(out);
    }
    emit(&text.join("\n\n"))?;
    finish(errors)
}
