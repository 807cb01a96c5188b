//! The image trigger controller: watches image streams (moor's own API) and workloads
//! (Deployments, StatefulSets, DaemonSets, CronJobs, through any Kubernetes API: moor's
//! own by default, another cluster with `moor serve --workload-kubeconfig`), and when a
//! tag's resolved pull spec changes, patches every workload whose
//! `image.openshift.io/triggers` names that tag (and is not paused) to the new pull spec.
//! A tag re-pushed with the same digest changes nothing; a rollback of the tag moves the
//! workloads back. Streams are read in process through the [`StreamStore`] port (the
//! stored bytes of each change, decoded without `managedFields`, as the import
//! controller reads them); workloads through the Kubernetes API with kube-rs clients.
//! The patch is a JSON patch that tests the container's name before replacing its image.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Debug;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use futures::stream::{BoxStream, SelectAll};
use futures::{Stream, StreamExt};
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::CronJob;
use k8s_openapi::api::core::v1::Event as CoreEvent;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client};
use moor_api::image::{ImageStream, KIND_IMAGE_STREAM_TAG, parse_image_stream_tag_name};
use moor_api::lookup::{
    TriggerUpdate, Workload, WorkloadKind, tag_pull_spec, trigger_updates, triggers_of,
};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tokio::time::Instant;
use tracing::Instrument;

use moor_apimachinery::ApiServer;

use crate::catalog::{StreamEvent, StreamStore};

/// The field manager the controller's patches are recorded under (also the source of
/// its Events).
pub const FIELD_MANAGER: &str = "moor-image-trigger";

/// The reason of the Event a trigger patch writes on its workload.
pub const UPDATED_REASON: &str = "ImageTriggerUpdated";

/// Errors of building a client for `--workload-kubeconfig`.
#[derive(Debug, thiserror::Error)]
pub enum TriggerError {
    /// The kubeconfig could not be read or used.
    #[error("--workload-kubeconfig {path}: {message}")]
    Kubeconfig { path: String, message: String },
}

/// A kube client that talks to moor's API router in process (no network, no TLS).
pub fn local_client(api: std::sync::Arc<ApiServer>) -> Client {
    Client::new(moor_apimachinery::router(api), "default")
}

/// A kube client for the API server a kubeconfig file names.
pub async fn kubeconfig_client(path: &Path) -> Result<Client, TriggerError> {
    let config = kubeconfig_config(path).await?;
    Client::try_from(config).map_err(|e| TriggerError::Kubeconfig {
        path: path.display().to_string(),
        message: e.to_string(),
    })
}

/// The client configuration of kubeconfig `path` (its proxy settings checked as
/// [`kubeconfig_client`] says).
pub async fn kubeconfig_config(path: &Path) -> Result<kube::Config, TriggerError> {
    let err = |message: String| TriggerError::Kubeconfig {
        path: path.display().to_string(),
        message,
    };
    let kubeconfig = kube::config::Kubeconfig::read_from(path).map_err(|e| err(e.to_string()))?;
    let explicit_proxy = kubeconfig
        .clusters
        .iter()
        .filter_map(|c| c.cluster.as_ref())
        .any(|c| c.proxy_url.as_deref().is_some_and(|p| !p.is_empty()));
    let mut config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .map_err(|e| err(e.to_string()))?;
    // kube takes HTTPS_PROXY from the environment but is built without proxy support:
    // honour NO_PROXY here, and say so when a proxy would really be needed.
    if config.proxy_url.is_some() {
        let host = config.cluster_url.host().unwrap_or("").to_string();
        let port = config.cluster_url.port_u16();
        if explicit_proxy || !no_proxy_matches(&host, port) {
            return Err(err(format!(
                "a proxy is configured for {host} but moor connects to Kubernetes API servers directly; add {host} to NO_PROXY"
            )));
        }
        config.proxy_url = None;
    }
    Ok(config)
}

/// Whether `NO_PROXY`/`no_proxy` exempts `host` (exact host, `host:port`, a `.domain`
/// suffix or `*`). Loopback is always exempt.
fn no_proxy_matches(host: &str, port: Option<u16>) -> bool {
    let list = std::env::var("NO_PROXY")
        .or_else(|_| std::env::var("no_proxy"))
        .unwrap_or_default();
    no_proxy_list_matches(&list, host, port)
}

fn no_proxy_list_matches(list: &str, host: &str, port: Option<u16>) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
    {
        return true;
    }
    list.split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .any(|e| {
            e == "*"
                || e == host
                || port.is_some_and(|p| e == format!("{host}:{p}"))
                || (e.starts_with('.') && host.ends_with(e))
                || host.ends_with(&format!(".{e}"))
        })
}

/// The workload kinds triggers act on (those `oc set triggers` writes to).
pub const TRIGGERED_KINDS: [WorkloadKind; 4] = [
    WorkloadKind::Deployment,
    WorkloadKind::StatefulSet,
    WorkloadKind::DaemonSet,
    WorkloadKind::CronJob,
];

type WorkloadKey = (WorkloadKind, String, String);
type StreamKey = (String, String);

enum Msg {
    Stream(Box<Result<Event<ImageStream>, String>>),
    Workload(WorkloadKind, Box<Result<Event<Workload>, watcher::Error>>),
}

fn map_event<K>(e: Event<K>, f: impl Fn(K) -> Workload) -> Event<Workload> {
    match e {
        Event::Apply(k) => Event::Apply(f(k)),
        Event::Delete(k) => Event::Delete(f(k)),
        Event::Init => Event::Init,
        Event::InitApply(k) => Event::InitApply(f(k)),
        Event::InitDone => Event::InitDone,
    }
}

fn workload_watch<K>(
    client: &Client,
    kind: WorkloadKind,
    f: fn(K) -> Workload,
) -> BoxStream<'static, Msg>
where
    K: kube::Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + 'static,
{
    watcher(Api::<K>::all(client.clone()))
        .map(move |r| Msg::Workload(kind, Box::new(r.map(|e| map_event(e, f)))))
        .boxed()
}

fn watcher<K>(api: Api<K>) -> impl Stream<Item = Result<Event<K>, watcher::Error>> + Send
where
    K: kube::Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + 'static,
{
    watcher::watcher(api, watcher::Config::default()).default_backoff()
}

/// What the controller knows: each workload that has triggers, and the tags and pull
/// specs of the streams they follow (only those: a stream no workload follows costs
/// nothing; one that a workload starts to follow is read once, by
/// [`TriggerController`]'s reconcile, then kept current by the watch).
#[derive(Default)]
pub struct TriggerState {
    tags: HashMap<StreamKey, HashMap<String, String>>,
    workloads: HashMap<WorkloadKey, Workload>,
    /// The workloads whose triggers follow tags of a stream, and those tags: a moved
    /// tag finds its workloads here, without parsing every workload's triggers.
    followers: HashMap<StreamKey, HashMap<WorkloadKey, BTreeSet<String>>>,
    /// The streams each workload follows (its entries in `followers`).
    followed: HashMap<WorkloadKey, BTreeSet<StreamKey>>,
    stream_init: Option<BTreeSet<StreamKey>>,
    workload_init: HashMap<WorkloadKind, BTreeSet<WorkloadKey>>,
}

fn key_of(kind: WorkloadKind, w: &Workload) -> WorkloadKey {
    let m = w.metadata();
    (
        kind,
        m.namespace.clone().unwrap_or_default(),
        m.name.clone().unwrap_or_default(),
    )
}

/// A stream's namespace and name.
fn stream_key(s: &ImageStream) -> StreamKey {
    (
        s.metadata.namespace.clone().unwrap_or_default(),
        s.metadata.name.clone().unwrap_or_default(),
    )
}

/// Each tag of a stream and the pull spec it resolves to.
fn pull_specs(s: &ImageStream) -> HashMap<String, String> {
    s.status
        .tags
        .iter()
        .filter_map(|t| Some((t.tag.clone(), tag_pull_spec(s, &t.tag)?)))
        .collect()
}

impl TriggerState {
    /// The pull spec tag `name` (`stream:tag`) of namespace `ns` resolves to now.
    pub fn pull_spec(&self, ns: &str, name: &str) -> Option<String> {
        let (stream, tag) = parse_image_stream_tag_name(name).ok()?;
        self.tags
            .get(&(ns.to_string(), stream.to_string()))?
            .get(tag)
            .cloned()
    }

    /// Records a stream; returns the workloads whose triggers follow a tag that moved.
    /// A stream no workload follows is not kept.
    pub fn stream_changed(&mut self, s: &ImageStream) -> Vec<WorkloadKey> {
        let key = stream_key(s);
        if !self.followers.contains_key(&key) {
            self.tags.remove(&key);
            return Vec::new();
        }
        let tags = pull_specs(s);
        let old = self
            .tags
            .insert(key.clone(), tags.clone())
            .unwrap_or_default();
        let moved: BTreeSet<&str> = tags
            .iter()
            .filter(|(t, p)| old.get(*t) != Some(*p))
            .map(|(t, _)| t.as_str())
            .collect();
        if moved.is_empty() {
            return Vec::new();
        }
        self.following(&key, &moved)
    }

    /// The streams workload `key` follows whose tags are not known yet (none of its
    /// triggers followed them when they last changed).
    pub fn unknown_streams(&self, key: &WorkloadKey) -> Vec<StreamKey> {
        self.followed
            .get(key)
            .into_iter()
            .flatten()
            .filter(|s| !self.tags.contains_key(*s))
            .cloned()
            .collect()
    }

    /// Records a stream read for a workload that started to follow it; a change the
    /// watch recorded meanwhile is newer, and kept.
    pub fn stream_read(&mut self, s: &ImageStream) {
        let key = stream_key(s);
        if self.followers.contains_key(&key) && !self.tags.contains_key(&key) {
            self.tags.insert(key, pull_specs(s));
        }
    }

    /// The workloads with a trigger on one of `tags` of stream `key`.
    fn following(&self, key: &StreamKey, tags: &BTreeSet<&str>) -> Vec<WorkloadKey> {
        let Some(workloads) = self.followers.get(key) else {
            return Vec::new();
        };
        workloads
            .iter()
            .filter(|(_, followed)| followed.iter().any(|t| tags.contains(t.as_str())))
            .map(|(wk, _)| wk.clone())
            .collect()
    }

    /// Records a workload (only those with triggers are kept); returns whether it has
    /// triggers to look at.
    pub fn workload_changed(&mut self, kind: WorkloadKind, w: Workload) -> Option<WorkloadKey> {
        let key = key_of(kind, &w);
        let Some(triggers) = triggers_of(&w) else {
            self.workload_removed(&key);
            return None;
        };
        self.unindex(&key);
        for t in triggers.iter().flatten() {
            if t.from.kind != KIND_IMAGE_STREAM_TAG {
                continue;
            }
            let Ok((stream, tag)) = parse_image_stream_tag_name(&t.from.name) else {
                continue;
            };
            let ns = if t.from.namespace.is_empty() {
                key.1.clone()
            } else {
                t.from.namespace.clone()
            };
            let stream = (ns, stream.to_string());
            self.followers
                .entry(stream.clone())
                .or_default()
                .entry(key.clone())
                .or_default()
                .insert(tag.to_string());
            self.followed.entry(key.clone()).or_default().insert(stream);
        }
        self.workloads.insert(key.clone(), w);
        Some(key)
    }

    /// Forgets a workload (deleted, or without triggers now).
    pub fn workload_removed(&mut self, key: &WorkloadKey) {
        self.workloads.remove(key);
        self.unindex(key);
    }

    fn unindex(&mut self, key: &WorkloadKey) {
        for stream in self.followed.remove(key).unwrap_or_default() {
            if let Some(workloads) = self.followers.get_mut(&stream) {
                workloads.remove(key);
                if workloads.is_empty() {
                    self.followers.remove(&stream);
                    self.tags.remove(&stream);
                }
            }
        }
    }

    /// The JSON patch that brings workload `key` in line with its triggers, if any, and
    /// the updates it makes.
    pub fn patch_for(&self, key: &WorkloadKey) -> Option<(Vec<Value>, Vec<TriggerUpdate>)> {
        let w = self.workloads.get(key)?;
        let updates = trigger_updates(w, |ns, name| self.pull_spec(ns, name));
        if updates.is_empty() {
            return None;
        }
        let mut ops = Vec::new();
        for u in &updates {
            let r = &u.rewrite;
            ops.push(json!({"op": "test", "path": r.container.name_pointer(key.0), "value": r.container.name}));
            ops.push(json!({"op": "replace", "path": r.pointer, "value": r.to}));
        }
        Some((ops, updates))
    }
}

/// First delay before listing the streams again after their watch failed; it doubles
/// up to [`STREAM_RELIST_MAX`] while lists keep failing.
const STREAM_RELIST_FIRST: Duration = Duration::from_millis(500);
/// Longest delay between two lists of the streams.
const STREAM_RELIST_MAX: Duration = Duration::from_secs(30);

/// The streams as a kube watcher would give them (`Init`, `InitApply` for each, `InitDone`,
/// then `Apply`/`Delete`), read in process: a list, then the store's watch from its
/// revision, listing again when the watch ends or fails. Each change is decoded from
/// the stored bytes without `managedFields` (no JSON tree, no HTTP watch line, no
/// typed decode of the managed fields, which on a large stream are as big as its spec).
/// Hand-written rather than `kube::runtime::watcher` because the source is not an API
/// server but the storage itself.
fn stored_stream_watch(streams: Arc<dyn StreamStore>) -> BoxStream<'static, Msg> {
    enum Step {
        List(Duration),
        Watch(crate::catalog::StreamEvents),
    }
    let msg = |r: Result<Event<ImageStream>, String>| Msg::Stream(Box::new(r));
    futures::stream::unfold(Step::List(Duration::ZERO), move |step| {
        let streams = streams.clone();
        async move {
            let next_delay = |d: Duration| (d * 2).clamp(STREAM_RELIST_FIRST, STREAM_RELIST_MAX);
            let (batch, next) = match step {
                Step::List(delay) => {
                    if !delay.is_zero() {
                        tokio::time::sleep(delay).await;
                    }
                    let listed = match streams.list_streams().await {
                        Ok(list) => streams
                            .watch_streams(&list.resource_version)
                            .await
                            .map(|events| (list.streams, events)),
                        Err(e) => Err(e),
                    };
                    match listed {
                        Ok((list, events)) => {
                            let mut batch = Vec::with_capacity(list.len() + 2);
                            batch.push(msg(Ok(Event::Init)));
                            batch.extend(list.into_iter().map(|s| msg(Ok(Event::InitApply(s)))));
                            batch.push(msg(Ok(Event::InitDone)));
                            (batch, Step::Watch(events))
                        }
                        Err(e) => (vec![msg(Err(e.to_string()))], Step::List(next_delay(delay))),
                    }
                }
                Step::Watch(mut events) => match events.next().await {
                    Some(Ok(StreamEvent::Changed(stored))) => {
                        let ev = stored
                            .decode()
                            .map(Event::Apply)
                            .map_err(|e| format!("decoding a stream: {e}"));
                        (vec![msg(ev)], Step::Watch(events))
                    }
                    Some(Ok(StreamEvent::Deleted { namespace, name })) => {
                        let mut s = ImageStream::default();
                        s.metadata.namespace = Some(namespace);
                        s.metadata.name = Some(name);
                        (vec![msg(Ok(Event::Delete(s)))], Step::Watch(events))
                    }
                    Some(Err(e)) => (
                        vec![msg(Err(e.to_string()))],
                        Step::List(STREAM_RELIST_FIRST),
                    ),
                    None => (Vec::new(), Step::List(STREAM_RELIST_FIRST)),
                },
            };
            Some((futures::stream::iter(batch), next))
        }
    })
    .flatten()
    .boxed()
}

/// The controller: image streams read in process, workloads through a client.
pub struct TriggerController {
    streams: Arc<dyn StreamStore>,
    workloads: Client,
    state: TriggerState,
    queue: BTreeMap<WorkloadKey, (Instant, u32)>,
}

impl TriggerController {
    /// A controller reading streams from `streams` and watching and patching
    /// workloads through `workloads`.
    pub fn new(streams: Arc<dyn StreamStore>, workloads: Client) -> Self {
        TriggerController {
            streams,
            workloads,
            state: TriggerState::default(),
            queue: BTreeMap::new(),
        }
    }

    fn enqueue(&mut self, key: WorkloadKey) {
        self.queue.entry(key).or_insert((Instant::now(), 0));
    }

    fn handle(&mut self, msg: Msg) {
        match msg {
            Msg::Stream(ev) => self.handle_stream(*ev),
            Msg::Workload(kind, ev) => self.handle_workload(kind, *ev),
        }
    }

    fn handle_stream(&mut self, ev: Result<Event<ImageStream>, String>) {
        match ev {
            Err(e) => {
                tracing::warn!(error = %e, "image trigger: watching image streams")
            }
            Ok(ev) => match ev {
                Event::Init => self.state.stream_init = Some(BTreeSet::new()),
                Event::InitApply(s) | Event::Apply(s) => {
                    if let Some(seen) = &mut self.state.stream_init {
                        seen.insert((
                            s.metadata.namespace.clone().unwrap_or_default(),
                            s.metadata.name.clone().unwrap_or_default(),
                        ));
                    }
                    for k in self.state.stream_changed(&s) {
                        self.enqueue(k);
                    }
                }
                Event::Delete(s) => {
                    self.state.tags.remove(&(
                        s.metadata.namespace.clone().unwrap_or_default(),
                        s.metadata.name.clone().unwrap_or_default(),
                    ));
                }
                Event::InitDone => {
                    if let Some(seen) = self.state.stream_init.take() {
                        self.state.tags.retain(|k, _| seen.contains(k));
                    }
                }
            },
        }
    }

    fn handle_workload(&mut self, kind: WorkloadKind, ev: Result<Event<Workload>, watcher::Error>) {
        match ev {
            Err(e) => tracing::debug!(%kind, error = %e, "image trigger: watching workloads"),
            Ok(ev) => match ev {
                Event::Init => {
                    self.state.workload_init.insert(kind, BTreeSet::new());
                }
                Event::InitApply(w) | Event::Apply(w) => {
                    let key = key_of(kind, &w);
                    if let Some(seen) = self.state.workload_init.get_mut(&kind) {
                        seen.insert(key);
                    }
                    if let Some(k) = self.state.workload_changed(kind, w) {
                        self.enqueue(k);
                    }
                }
                Event::Delete(w) => {
                    let key = key_of(kind, &w);
                    self.state.workload_removed(&key);
                    self.queue.remove(&key);
                }
                Event::InitDone => {
                    if let Some(seen) = self.state.workload_init.remove(&kind) {
                        let gone: Vec<WorkloadKey> = (self.state.workloads.keys())
                            .filter(|k| k.0 == kind && !seen.contains(*k))
                            .cloned()
                            .collect();
                        for key in gone {
                            self.state.workload_removed(&key);
                        }
                    }
                }
            },
        }
    }

    async fn reconcile(&mut self, key: WorkloadKey, attempt: u32) {
        // The streams this workload started to follow are read once; the watch keeps
        // them current from then on. One that does not exist yet comes with its
        // creation's watch event.
        for (ns, name) in self.state.unknown_streams(&key) {
            match self.streams.stream(&ns, &name).await {
                Ok(Some(stream)) => self.state.stream_read(&stream),
                Ok(None) => {}
                Err(e) => {
                    let delay = Duration::from_secs(1 << attempt.min(6));
                    tracing::warn!(namespace = %ns, stream = %name, error = %e, retry_in = ?delay, "image trigger: reading a followed stream failed");
                    self.queue
                        .insert(key, (Instant::now() + delay, attempt + 1));
                    return;
                }
            }
        }
        let Some((ops, updates)) = self.state.patch_for(&key) else {
            return;
        };
        let notes: Vec<String> = updates.iter().map(change_note).collect();
        let (kind, ns, name) = &key;
        let gvk = GroupVersionKind::gvk(kind.group(), kind.version(), kind.kind());
        let ar = ApiResource::from_gvk_with_plural(&gvk, kind.plural());
        let api: Api<DynamicObject> = Api::namespaced_with(self.workloads.clone(), ns, &ar);
        let patch: json_patch_v4::Patch = match serde_json::from_value(Value::Array(ops)) {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(error = %e, "image trigger: building the patch");
                return;
            }
        };
        let params = PatchParams {
            field_manager: Some(FIELD_MANAGER.into()),
            ..Default::default()
        };
        // The image stream tags this workload's triggers follow (`ns/stream:tag`).
        let tags: Vec<String> = self
            .state
            .workloads
            .get(&key)
            .and_then(triggers_of)
            .and_then(Result::ok)
            .unwrap_or_default()
            .into_iter()
            .filter(|t| !t.paused && t.from.kind == KIND_IMAGE_STREAM_TAG)
            .map(|t| {
                let from_ns = if t.from.namespace.is_empty() {
                    ns.as_str()
                } else {
                    t.from.namespace.as_str()
                };
                format!("{from_ns}/{}", t.from.name)
            })
            .collect();
        let span = tracing::info_span!(
            "trigger_patch",
            namespace = %ns,
            %kind,
            %name,
            tags = %tags.join(","),
        );
        let result = api
            .patch(name, &params, &Patch::Json::<()>(patch))
            .instrument(span.clone())
            .await;
        let _span = span.enter();
        match result {
            Ok(patched) => {
                tracing::info!(%kind, namespace = %ns, %name, changes = %notes.join(", "), "image trigger updated the workload");
                self.record_updated(*kind, &patched, &notes).await;
            }
            // Changed or gone meanwhile: its next watch event decides again.
            Err(kube::Error::Api(s)) if matches!(s.code, 404 | 409 | 422) => {
                tracing::debug!(%kind, namespace = %ns, %name, reason = %s.reason, message = %s.message, "image trigger: patch not applied");
            }
            Err(e) => {
                let delay = Duration::from_secs(1 << attempt.min(6));
                tracing::warn!(%kind, namespace = %ns, %name, error = %e, retry_in = ?delay, "image trigger: patch failed");
                self.queue
                    .insert(key.clone(), (Instant::now() + delay, attempt + 1));
            }
        }
    }

    /// Records an `ImageTriggerUpdated` Event on the patched workload, in the API that
    /// holds it (best effort: a refused Event leaves the patch standing).
    async fn record_updated(&self, kind: WorkloadKind, patched: &DynamicObject, notes: &[String]) {
        let event = updated_event(
            kind,
            patched,
            notes,
            &moor_apimachinery::stored::now_rfc3339(),
        );
        let ns = patched.metadata.namespace.as_deref().unwrap_or("default");
        let api: Api<CoreEvent> = Api::namespaced(self.workloads.clone(), ns);
        let event: CoreEvent = match serde_json::from_value(event) {
            Ok(e) => e,
            Err(e) => {
                tracing::error!(error = %e, "image trigger: building the event");
                return;
            }
        };
        if let Err(e) = api.create(&PostParams::default(), &event).await {
            tracing::warn!(%kind, namespace = %ns, error = %e, "image trigger: recording the event failed");
        }
    }

    /// Runs until the process ends.
    pub async fn run(mut self) {
        let mut events: SelectAll<BoxStream<'static, Msg>> = SelectAll::new();
        events.push(stored_stream_watch(self.streams.clone()));
        events.push(workload_watch::<Deployment>(
            &self.workloads,
            WorkloadKind::Deployment,
            Workload::Deployment,
        ));
        events.push(workload_watch::<StatefulSet>(
            &self.workloads,
            WorkloadKind::StatefulSet,
            Workload::StatefulSet,
        ));
        events.push(workload_watch::<DaemonSet>(
            &self.workloads,
            WorkloadKind::DaemonSet,
            Workload::DaemonSet,
        ));
        events.push(workload_watch::<CronJob>(
            &self.workloads,
            WorkloadKind::CronJob,
            Workload::CronJob,
        ));
        loop {
            let next = self.queue.values().map(|(t, _)| *t).min();
            let sleep = async {
                match next {
                    Some(t) => tokio::time::sleep_until(t).await,
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                msg = events.next() => match msg {
                    Some(m) => self.handle(m),
                    None => return,
                },
                _ = sleep => {
                    let now = Instant::now();
                    let due: Vec<(WorkloadKey, u32)> = self
                        .queue
                        .iter()
                        .filter(|(_, (t, _))| *t <= now)
                        .map(|(k, (_, a))| (k.clone(), *a))
                        .collect();
                    for (k, attempt) in due {
                        self.queue.remove(&k);
                        self.reconcile(k, attempt).await;
                    }
                }
            }
        }
    }
}

/// `container "web" follows default/keycloak:20.0: OLD -> NEW`.
fn change_note(u: &TriggerUpdate) -> String {
    format!(
        "container {:?} follows {}/{}: {} -> {}",
        u.rewrite.container.name, u.namespace, u.tag, u.rewrite.from, u.rewrite.to
    )
}

/// The core/v1 Event a trigger patch leaves on its workload (as `oc describe` and
/// `kubectl events` show them), written at `now`.
fn updated_event(
    kind: WorkloadKind,
    patched: &DynamicObject,
    notes: &[String],
    now: &str,
) -> Value {
    let m = &patched.metadata;
    let name = m.name.as_deref().unwrap_or_default();
    let api_version = match kind.group() {
        "" => kind.version().to_owned(),
        g => format!("{g}/{}", kind.version()),
    };
    json!({
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"generateName": format!("{name}."), "namespace": m.namespace},
        "involvedObject": {
            "kind": kind.kind(), "apiVersion": api_version, "name": name,
            "namespace": m.namespace, "uid": m.uid, "resourceVersion": m.resource_version,
        },
        "reason": UPDATED_REASON,
        "message": format!("Image trigger updated {}", notes.join("; ")),
        "type": "Normal",
        "source": {"component": FIELD_MANAGER},
        "reportingComponent": FIELD_MANAGER,
        "firstTimestamp": now, "lastTimestamp": now, "count": 1,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use moor_api::image::history::add_tag_event;
    use moor_api::image::{TagEvent, TagReference};

    fn stream(digest: &str) -> ImageStream {
        let mut s = ImageStream::default();
        s.metadata.name = Some("keycloak".into());
        s.metadata.namespace = Some("default".into());
        s.spec.tags.push(TagReference {
            name: "20.0".into(),
            ..Default::default()
        });
        add_tag_event(
            &mut s,
            "20.0",
            TagEvent {
                docker_image_reference: format!("quay.io/keycloak/keycloak@{digest}"),
                image: digest.into(),
                ..Default::default()
            },
        );
        s
    }

    fn deployment(image: &str, paused: bool) -> Workload {
        let triggers = format!(
            r#"[{{"from":{{"kind":"ImageStreamTag","name":"keycloak:20.0"}},"fieldPath":"spec.template.spec.containers[?(@.name==\"web\")].image","paused":{paused}}}]"#
        );
        Workload::from_value(
            WorkloadKind::Deployment,
            json!({"apiVersion": "apps/v1", "kind": "Deployment",
                   "metadata": {"name": "web", "namespace": "default",
                                "annotations": {"image.openshift.io/triggers": triggers}},
                   "spec": {"selector": {}, "template": {"spec": {"containers": [
                       {"name": "sidecar", "image": "busybox"}, {"name": "web", "image": image}]}}}}),
        )
        .unwrap()
    }

    #[test]
    fn a_patch_leaves_an_event_naming_the_tag_and_both_images() {
        let d1 = format!("sha256:{}", "1".repeat(64));
        let d2 = format!("sha256:{}", "2".repeat(64));
        let mut st = TriggerState::default();
        let key = st
            .workload_changed(
                WorkloadKind::Deployment,
                deployment(&format!("quay.io/keycloak/keycloak@{d1}"), false),
            )
            .unwrap();
        st.stream_changed(&stream(&d2));
        let (_, updates) = st.patch_for(&key).unwrap();
        let notes: Vec<String> = updates.iter().map(change_note).collect();
        let patched: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default", "uid": "u-1", "resourceVersion": "7"}
        }))
        .unwrap();
        let e = updated_event(
            WorkloadKind::Deployment,
            &patched,
            &notes,
            "2026-12-06T00:00:00Z",
        );
        assert_eq!(
            e["involvedObject"],
            json!({"kind": "Deployment", "apiVersion": "apps/v1", "name": "web",
                   "namespace": "default", "uid": "u-1", "resourceVersion": "7"})
        );
        assert_eq!(e["reason"], UPDATED_REASON);
        assert_eq!(
            e["message"],
            format!(
                "Image trigger updated container \"web\" follows default/keycloak:20.0: quay.io/keycloak/keycloak@{d1} -> quay.io/keycloak/keycloak@{d2}"
            )
        );
        assert_eq!(e["metadata"]["generateName"], "web.");
        let _: CoreEvent = serde_json::from_value(e).expect("a valid core/v1 Event");
    }

    /// A [`StreamStore`] whose lists and watches the test scripts: each list answers
    /// with the next of `lists`, each watch with the next of `watches`.
    struct Scripted {
        lists: std::sync::Mutex<Vec<Vec<ImageStream>>>,
        watches: std::sync::Mutex<Vec<Vec<Result<StreamEvent, ApiError>>>>,
    }

    use crate::catalog::{StoredStream, StreamChange, StreamEvents, StreamList, StreamPart};
    use moor_api::image::Image;
    use moor_apimachinery::error::ApiError;

    #[async_trait::async_trait]
    impl StreamStore for Scripted {
        async fn stream(&self, _: &str, _: &str) -> Result<Option<ImageStream>, ApiError> {
            Err(ApiError::BadRequest("not scripted".into()))
        }
        async fn stream_stored(&self, _: &str, _: &str) -> Result<Option<StoredStream>, ApiError> {
            Err(ApiError::BadRequest("not scripted".into()))
        }
        async fn list_streams(&self) -> Result<StreamList, ApiError> {
            let mut lists = self.lists.lock().unwrap();
            let streams = if lists.is_empty() {
                Vec::new()
            } else {
                lists.remove(0)
            };
            Ok(StreamList {
                streams,
                resource_version: "5".into(),
                ..Default::default()
            })
        }
        async fn streams_version(&self) -> Result<String, ApiError> {
            Ok("5".into())
        }
        async fn watch_streams(&self, rv: &str) -> Result<StreamEvents, ApiError> {
            assert_eq!(rv, "5", "watched from the list's version");
            let mut watches = self.watches.lock().unwrap();
            let events = if watches.is_empty() {
                Vec::new()
            } else {
                watches.remove(0)
            };
            // The watch stays open once its events are out (as a real one does).
            Ok(futures::stream::iter(events)
                .chain(futures::stream::pending())
                .boxed())
        }
        async fn modify_stream(
            &self,
            _: &str,
            _: &str,
            _: StreamPart,
            _: &StreamChange<'_>,
        ) -> Result<bool, ApiError> {
            Err(ApiError::BadRequest("not scripted".into()))
        }
        async fn tag_pushed(&self, _: &str, _: &str, _: &str, _: &Image) -> Result<(), ApiError> {
            Err(ApiError::BadRequest("not scripted".into()))
        }
    }

    fn apply_name(m: Option<Msg>) -> String {
        match m {
            Some(Msg::Stream(ev)) => match *ev {
                Ok(Event::Init) => "init".into(),
                Ok(Event::InitApply(s)) => format!("init-apply {}", s.metadata.name.unwrap()),
                Ok(Event::InitDone) => "init-done".into(),
                Ok(Event::Apply(s)) => {
                    assert_eq!(s.metadata.managed_fields, None, "decoded without them");
                    let rv = s.metadata.resource_version.unwrap();
                    format!("apply {} at {rv}", s.metadata.name.unwrap())
                }
                Ok(Event::Delete(s)) => format!(
                    "delete {}/{}",
                    s.metadata.namespace.unwrap(),
                    s.metadata.name.unwrap()
                ),
                Err(_) => "error".into(),
            },
            _ => "other".into(),
        }
    }

    /// The controller's streams come from the storage's watch of stored bytes, each
    /// change decoded without its managed fields, as a kube watcher would order them;
    /// a failed watch lists again.
    #[tokio::test(start_paused = true)]
    async fn streams_are_listed_then_watched_in_process_and_listed_again_after_an_error() {
        let d1 = format!("sha256:{}", "1".repeat(64));
        let mut changed = serde_json::to_value(stream(&d1)).unwrap();
        changed["metadata"]["managedFields"] = json!([{"manager": "m", "operation": "Update",
            "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {}}}]);
        let stored = StoredStream {
            bytes: serde_json::to_vec(&changed).unwrap().into(),
            revision: 7,
        };
        let mut other = stream(&d1);
        other.metadata.name = Some("other".into());
        let store = Scripted {
            lists: std::sync::Mutex::new(vec![vec![stream(&d1)], vec![other]]),
            watches: std::sync::Mutex::new(vec![vec![
                Ok(StreamEvent::Changed(stored)),
                Ok(StreamEvent::Deleted {
                    namespace: "default".into(),
                    name: "keycloak".into(),
                }),
                Err(ApiError::Expired("watch closed: too slow".into())),
            ]]),
        };
        let mut events = stored_stream_watch(Arc::new(store));
        let mut seen = Vec::new();
        for _ in 0..9 {
            seen.push(apply_name(events.next().await));
        }
        assert_eq!(
            seen,
            [
                "init",
                "init-apply keycloak",
                "init-done",
                "apply keycloak at 7",
                "delete default/keycloak",
                "error",
                // Listed again (after a delay the paused clock skips).
                "init",
                "init-apply other",
                "init-done",
            ]
        );
    }

    #[test]
    fn no_proxy_lists() {
        assert!(no_proxy_list_matches("", "127.0.0.1", Some(1)));
        assert!(no_proxy_list_matches("", "::1", None));
        assert!(no_proxy_list_matches("", "localhost", None));
        assert!(!no_proxy_list_matches("", "k8s.example", None));
        assert!(no_proxy_list_matches("a, .example", "k8s.example", None));
        assert!(no_proxy_list_matches("example", "k8s.example", None));
        assert!(no_proxy_list_matches(
            "k8s.example:6443",
            "k8s.example",
            Some(6443)
        ));
        assert!(no_proxy_list_matches("*", "anything", None));
        assert!(!no_proxy_list_matches("other.example", "k8s.example", None));
    }

    #[test]
    fn tags_that_move_patch_their_workloads() {
        let d1 = format!("sha256:{}", "1".repeat(64));
        let d2 = format!("sha256:{}", "2".repeat(64));
        let mut st = TriggerState::default();
        let key = st
            .workload_changed(WorkloadKind::Deployment, deployment("keycloak:20.0", false))
            .unwrap();
        assert!(st.patch_for(&key).is_none(), "no tag known yet");
        assert_eq!(st.stream_changed(&stream(&d1)), vec![key.clone()]);
        let (ops, _) = st.patch_for(&key).unwrap();
        assert_eq!(
            ops,
            vec![
                json!({"op": "test", "path": "/spec/template/spec/containers/1/name", "value": "web"}),
                json!({"op": "replace", "path": "/spec/template/spec/containers/1/image",
                       "value": format!("quay.io/keycloak/keycloak@{d1}")}),
            ]
        );
        // The same digest again moves nothing.
        assert!(st.stream_changed(&stream(&d1)).is_empty());
        // Once the workload runs d1, a move to d2 asks for d2.
        st.workload_changed(
            WorkloadKind::Deployment,
            deployment(&format!("quay.io/keycloak/keycloak@{d1}"), false),
        );
        assert!(st.patch_for(&key).is_none());
        assert_eq!(st.stream_changed(&stream(&d2)).len(), 1);
        assert!(st.patch_for(&key).unwrap().1[0].rewrite.to.ends_with(&d2));
        // Paused triggers are left alone.
        st.workload_changed(
            WorkloadKind::Deployment,
            deployment(&format!("quay.io/keycloak/keycloak@{d1}"), true),
        );
        assert!(st.patch_for(&key).is_none());
        // Workloads without triggers are not kept.
        let mut plain = deployment("x", false);
        plain.metadata_mut().annotations = None;
        assert!(
            st.workload_changed(WorkloadKind::Deployment, plain)
                .is_none()
        );
        assert!(st.workloads.is_empty());
        assert!(
            st.followers.is_empty() && st.followed.is_empty(),
            "a workload without triggers leaves no index entry"
        );
        assert!(st.stream_changed(&stream(&d1)).is_empty());
    }

    #[test]
    fn only_followed_streams_are_kept_and_a_stream_followed_late_is_read_once() {
        let d1 = format!("sha256:{}", "1".repeat(64));
        let mut st = TriggerState::default();
        assert!(st.stream_changed(&stream(&d1)).is_empty());
        assert!(st.tags.is_empty(), "no workload follows it: not kept");
        let key = st
            .workload_changed(WorkloadKind::Deployment, deployment("keycloak:20.0", false))
            .unwrap();
        let stream_key = ("default".to_string(), "keycloak".to_string());
        assert_eq!(st.unknown_streams(&key), vec![stream_key.clone()]);
        assert!(st.patch_for(&key).is_none(), "its tags are not known yet");
        st.stream_read(&stream(&d1));
        assert!(st.unknown_streams(&key).is_empty());
        let (_, updates) = st.patch_for(&key).unwrap();
        assert!(updates[0].rewrite.to.ends_with(&d1));
        // A read older than what the watch recorded meanwhile does not replace it.
        let d2 = format!("sha256:{}", "2".repeat(64));
        assert_eq!(st.stream_changed(&stream(&d2)), vec![key.clone()]);
        st.stream_read(&stream(&d1));
        assert!(st.patch_for(&key).unwrap().1[0].rewrite.to.ends_with(&d2));
        // Its last follower gone, the stream is dropped.
        st.workload_removed(&key);
        assert!(st.tags.is_empty() && st.followers.is_empty());
    }

    #[test]
    fn a_moved_tag_finds_only_the_workloads_that_follow_it() {
        let d1 = format!("sha256:{}", "1".repeat(64));
        let mut st = TriggerState::default();
        let follows = st
            .workload_changed(WorkloadKind::Deployment, deployment("keycloak:20.0", false))
            .unwrap();
        let triggers = r#"[{"from":{"kind":"ImageStreamTag","name":"keycloak:21.0"},"fieldPath":"spec.template.spec.containers[?(@.name==\"web\")].image"}]"#;
        let other = Workload::from_value(
            WorkloadKind::Deployment,
            json!({"apiVersion": "apps/v1", "kind": "Deployment",
                   "metadata": {"name": "other", "namespace": "default",
                                "annotations": {"image.openshift.io/triggers": triggers}},
                   "spec": {"selector": {}, "template": {"spec": {"containers": [
                       {"name": "web", "image": "keycloak:21.0"}]}}}}),
        )
        .unwrap();
        st.workload_changed(WorkloadKind::Deployment, other)
            .unwrap();
        assert_eq!(st.followers.len(), 1, "both follow tags of one stream");
        assert_eq!(st.stream_changed(&stream(&d1)), vec![follows.clone()]);
        // Deleted, it is no longer found.
        st.workload_removed(&follows);
        assert!(!st.followed.contains_key(&follows));
        let d2 = format!("sha256:{}", "2".repeat(64));
        assert!(st.stream_changed(&stream(&d2)).is_empty());
    }
}
