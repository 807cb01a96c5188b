//! The delivery controller: runs on the leader only, its store writes (deleting a
//! delivered entry, the Notification's status) fenced by the caller's store. One
//! worker per Notification POSTs its outbox entries oldest first (store revision, then
//! key), stops at the first failure and retries it with exponential backoff, so events
//! of one stream arrive in the order they were written, at least once. Entries outlive
//! restarts and leader changes; a receiver that comes back gets them all.
//!
//! Safety: only http(s); the host is resolved at every delivery and each address
//! checked (private, loopback, link-local, ... refused unless allowed), and the POST
//! goes to the checked address (no second lookup to rebind), without redirects.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use futures::StreamExt as _;
use hmac::{KeyInit as _, Mac as _};
use moor_api::notification::{
    Notification, NotificationStatus, OUTBOX_PREFIX, OutboxEntry, outbox_prefix,
};
use moor_store::{KeyValue, ListOptions, Store, StoreError};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use tokio::sync::Notify;
use tokio::task::JoinSet;

use super::{NOTIFICATION_PREFIX, NotifyError, parse_key};

/// The header carrying the body's HMAC-SHA256 (`sha256=<hex>`).
pub const SIGNATURE_HEADER: &str = "x-moor-signature";
/// The CloudEvents structured-mode content type.
pub const CONTENT_TYPE: &str = "application/cloudevents+json; charset=utf-8";
/// The flag that allows private and loopback receivers.
pub const ALLOW_PRIVATE_FLAG: &str = "--allow-private-notification-targets";
/// How often the controller lists everything again, whatever its watch says.
const RESYNC: Duration = Duration::from_secs(30);

/// How the controller delivers.
#[derive(Clone, Debug)]
pub struct DeliveryConfig {
    /// `--allow-private-notification-targets`: private, loopback and link-local
    /// receivers are allowed.
    pub allow_private_targets: bool,
    /// The first wait after a failed delivery; doubled after each further failure.
    pub initial_backoff: Duration,
    /// The longest wait between attempts.
    pub max_backoff: Duration,
    /// How long one POST may take.
    pub timeout: Duration,
    /// The CloudEvents `source` (the server's URL).
    pub source: String,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        DeliveryConfig {
            allow_private_targets: false,
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(60),
            timeout: Duration::from_secs(10),
            source: "moor".into(),
        }
    }
}

/// Labels of a delivery attempt.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AttemptLabels {
    result: &'static str,
}

/// Labels of one Notification.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct NotificationLabels {
    namespace: String,
    name: String,
}

/// `/metrics` families of delivery.
#[derive(Clone)]
pub struct NotificationMetrics {
    attempts: Family<AttemptLabels, Counter>,
    pending: Family<NotificationLabels, Gauge>,
    latency: Histogram,
}

impl Default for NotificationMetrics {
    fn default() -> Self {
        NotificationMetrics {
            attempts: Family::default(),
            pending: Family::default(),
            latency: Histogram::new(exponential_buckets(0.005, 2.0, 16)),
        }
    }
}

impl NotificationMetrics {
    /// Registers `moor_notification_deliveries_total{result}`,
    /// `moor_notification_pending{namespace,name}` and
    /// `moor_notification_delivery_latency_seconds` (from the change to the 2xx).
    pub fn register(&self, metrics: &crate::metrics::Metrics) {
        metrics.register(
            "notification_deliveries",
            "Notification delivery attempts, by result (delivered, failed)",
            self.attempts.clone(),
        );
        metrics.register(
            "notification_pending",
            "Notification events recorded and not delivered yet",
            self.pending.clone(),
        );
        metrics.register(
            "notification_delivery_latency_seconds",
            "Time from the change to its event's delivery",
            self.latency.clone(),
        );
    }
}

/// Runs the controller until dropped (when leadership is lost): `store` is fenced.
pub async fn run(store: Arc<dyn Store>, config: DeliveryConfig, metrics: NotificationMetrics) {
    let ctx = Arc::new(Worker {
        store,
        config,
        metrics,
    });
    let mut workers: HashMap<(String, String), (Arc<Notify>, tokio::task::AbortHandle)> =
        HashMap::new();
    let mut tasks = JoinSet::new();
    loop {
        let revision = match ctx.store.current_revision().await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "notifications: reading the store");
                tokio::time::sleep(ctx.config.initial_backoff).await;
                continue;
            }
        };
        if let Err(e) = sync(&ctx, &mut workers, &mut tasks, true).await {
            tracing::warn!(error = %e, "notifications: listing");
            tokio::time::sleep(ctx.config.initial_backoff).await;
            continue;
        }
        let (outbox, notifications) = match (
            ctx.store.watch(OUTBOX_PREFIX, revision).await,
            ctx.store.watch(NOTIFICATION_PREFIX, revision).await,
        ) {
            (Ok(o), Ok(n)) => (o, n),
            (Err(e), _) | (_, Err(e)) => {
                tracing::warn!(error = %e, "notifications: watching");
                tokio::time::sleep(ctx.config.initial_backoff).await;
                continue;
            }
        };
        let mut changes = futures::stream::select(outbox, notifications);
        let resync = tokio::time::sleep(RESYNC);
        tokio::pin!(resync);
        loop {
            tokio::select! {
                change = changes.next() => match change {
                    Some(Ok(event)) => {
                        if let Some((ns, name)) = parse_key(OUTBOX_PREFIX, entry_owner(&event.kv.key)) {
                            if let Some((wake, _)) = workers.get(&(ns.to_owned(), name.to_owned())) {
                                wake.notify_one();
                            }
                        } else if let Err(e) = sync(&ctx, &mut workers, &mut tasks, false).await {
                            tracing::warn!(error = %e, "notifications: listing");
                        }
                    }
                    Some(Err(e)) => {
                        tracing::debug!(error = %e, "notifications: watch ended");
                        break;
                    }
                    None => break,
                },
                _ = &mut resync => break,
            }
        }
    }
}

/// `/moor/outbox/<ns>/<name>/<id>` → `/moor/outbox/<ns>/<name>` (what [`parse_key`]
/// reads); other keys unchanged.
fn entry_owner(key: &str) -> &str {
    match key.strip_prefix(OUTBOX_PREFIX) {
        Some(rest) if rest.matches('/').count() == 2 => &key[..key.rfind('/').unwrap_or(key.len())],
        _ => key,
    }
}

/// Starts a worker per Notification, stops those of deleted ones, wakes every worker,
/// and with `clean` deletes the entries of Notifications that are gone (a full list of
/// the outbox: at start and on each resync, not on every status write).
async fn sync(
    ctx: &Arc<Worker>,
    workers: &mut HashMap<(String, String), (Arc<Notify>, tokio::task::AbortHandle)>,
    tasks: &mut JoinSet<()>,
    clean: bool,
) -> Result<(), NotifyError> {
    let listed = ctx
        .store
        .list(NOTIFICATION_PREFIX, ListOptions::default())
        .await?;
    let mut live = std::collections::HashSet::new();
    for kv in &listed.kvs {
        let Some((ns, name)) = parse_key(NOTIFICATION_PREFIX, &kv.key) else {
            continue;
        };
        let id = (ns.to_owned(), name.to_owned());
        live.insert(id.clone());
        let (wake, _) = workers.entry(id.clone()).or_insert_with(|| {
            let wake = Arc::new(Notify::new());
            let (ctx, w) = (ctx.clone(), wake.clone());
            let handle = tasks.spawn(async move { ctx.work(&id.0, &id.1, &w).await });
            (wake, handle)
        });
        wake.notify_one();
    }
    workers.retain(|id, (_, handle)| {
        let keep = live.contains(id);
        if !keep {
            handle.abort();
        }
        keep
    });
    if !clean {
        return Ok(());
    }
    // Entries of Notifications that are gone.
    let entries = ctx
        .store
        .list(OUTBOX_PREFIX, ListOptions::default())
        .await?;
    for kv in entries.kvs {
        if let Some((ns, name)) = parse_key(OUTBOX_PREFIX, entry_owner(&kv.key))
            && !live.contains(&(ns.to_owned(), name.to_owned()))
        {
            let _ = ctx.store.delete(&kv.key, Some(kv.mod_revision)).await;
        }
    }
    Ok(())
}

struct Worker {
    store: Arc<dyn Store>,
    config: DeliveryConfig,
    metrics: NotificationMetrics,
}

impl Worker {
    async fn work(&self, ns: &str, name: &str, wake: &Notify) {
        let key = format!("{NOTIFICATION_PREFIX}{ns}/{name}");
        let labels = NotificationLabels {
            namespace: ns.to_owned(),
            name: name.to_owned(),
        };
        let mut backoff = self.config.initial_backoff;
        loop {
            let failed = match self.round(ns, name, &key, &labels).await {
                Ok(None) => false,
                Ok(Some(e)) => {
                    tracing::info!(namespace = ns, notification = name, error = %e, "notification delivery failed");
                    true
                }
                Err(e) => {
                    tracing::warn!(namespace = ns, notification = name, error = %e, "notifications");
                    true
                }
            };
            if failed {
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(self.config.max_backoff);
            } else {
                backoff = self.config.initial_backoff;
                let _ = tokio::time::timeout(RESYNC, wake.notified()).await;
            }
        }
    }

    /// Delivers what is pending, oldest first, up to the first failure (returned), and
    /// records how it went on the Notification's status.
    async fn round(
        &self,
        ns: &str,
        name: &str,
        key: &str,
        labels: &NotificationLabels,
    ) -> Result<Option<NotifyError>, NotifyError> {
        let Some(kv) = self.store.get(key).await? else {
            return Ok(None);
        };
        let notification = decode::<Notification>(&kv)?;
        let mut entries = self
            .store
            .list(&outbox_prefix(ns, name), ListOptions::default())
            .await?
            .kvs;
        entries.sort_by(|a, b| (a.create_revision, &a.key).cmp(&(b.create_revision, &b.key)));
        let pending = entries.len();
        let mut delivered = 0usize;
        let mut failure = None;
        for kv in &entries {
            let entry = decode::<OutboxEntry>(kv)?;
            match self.deliver(&notification, &entry).await {
                Ok(()) => {
                    self.metrics
                        .attempts
                        .get_or_create(&AttemptLabels {
                            result: "delivered",
                        })
                        .inc();
                    if let Ok(t) = entry.time.parse::<jiff::Timestamp>() {
                        let secs = jiff::Timestamp::now().duration_since(t).as_secs_f64();
                        self.metrics.latency.observe(secs.max(0.0));
                    }
                    match self.store.delete(&kv.key, Some(kv.mod_revision)).await {
                        Ok(_) | Err(StoreError::NotFound(_)) => {}
                        Err(e) => return Err(e.into()),
                    }
                    delivered += 1;
                }
                Err(e) => {
                    self.metrics
                        .attempts
                        .get_or_create(&AttemptLabels { result: "failed" })
                        .inc();
                    failure = Some(e);
                    break;
                }
            }
        }
        let left = pending - delivered;
        self.metrics
            .pending
            .get_or_create(labels)
            .set(i64::try_from(left).unwrap_or(i64::MAX));
        self.write_status(key, left, delivered, failure.as_ref())
            .await?;
        Ok(failure)
    }

    /// Writes the status when it changes (retrying lost races with other writers).
    async fn write_status(
        &self,
        key: &str,
        pending: usize,
        delivered: usize,
        failure: Option<&NotifyError>,
    ) -> Result<(), NotifyError> {
        let now = k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(jiff::Timestamp::now());
        for _ in 0..5 {
            let Some(kv) = self.store.get(key).await? else {
                return Ok(());
            };
            let mut obj: serde_json::Value = decode(&kv)?;
            let old: NotificationStatus = obj
                .get("status")
                .cloned()
                .and_then(|s| serde_json::from_value(s).ok())
                .unwrap_or_default();
            let mut status = old.clone();
            status.pending = pending as u64;
            status.delivered += delivered as u64;
            if delivered > 0 {
                status.last_success_time = Some(now.clone());
            }
            match failure {
                Some(e) => {
                    status.last_error = Some(e.to_string());
                    status.last_error_time = Some(now.clone());
                }
                None if delivered > 0 => status.last_error = None,
                None => {}
            }
            // An unchanged failure does not rewrite the object on every retry.
            let same_failure = failure.is_some()
                && old.last_error == status.last_error
                && old.pending == status.pending
                && delivered == 0;
            if status == old || same_failure {
                return Ok(());
            }
            obj["status"] =
                serde_json::to_value(&status).map_err(|source| NotifyError::Decode {
                    what: key.to_owned(),
                    source,
                })?;
            let bytes = serde_json::to_vec(&obj).map_err(|source| NotifyError::Decode {
                what: key.to_owned(),
                source,
            })?;
            match self.store.update(key, bytes.into(), kv.mod_revision).await {
                Ok(_) => return Ok(()),
                Err(StoreError::Conflict { .. }) => continue,
                Err(StoreError::NotFound(_)) => return Ok(()),
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// One POST of `entry` to the Notification's receiver.
    async fn deliver(&self, n: &Notification, entry: &OutboxEntry) -> Result<(), NotifyError> {
        let url = reqwest::Url::parse(&n.spec.url)
            .map_err(|e| NotifyError::Target(format!("{}: {e}", n.spec.url)))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(NotifyError::Target(format!(
                "{}: only http and https are allowed",
                n.spec.url
            )));
        }
        let host = url
            .host_str()
            .ok_or_else(|| NotifyError::Target(format!("{}: no host", n.spec.url)))?
            .to_owned();
        let port = url.port_or_known_default().unwrap_or(80);
        let addr = self.resolve(&host, port).await?;
        let body =
            serde_json::to_vec(&entry.cloudevent(&self.config.source)).map_err(|source| {
                NotifyError::Decode {
                    what: entry.id.clone(),
                    source,
                }
            })?;
        let bare_host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(self.config.timeout)
            .no_proxy()
            .resolve(&bare_host, addr)
            .build()
            .map_err(|e| NotifyError::Delivery(e.to_string()))?;
        let mut request = client
            .post(url.clone())
            .header(reqwest::header::CONTENT_TYPE, CONTENT_TYPE)
            .header("ce-id", &entry.id);
        if let Some(r) = &n.spec.secret_ref {
            let ns = n.metadata.namespace.as_deref().unwrap_or_default();
            let key = self.secret_key(ns, &r.name, &r.key).await?;
            request = request.header(SIGNATURE_HEADER, signature(&key, &body));
        }
        let response = request
            .body(body)
            .send()
            .await
            .map_err(|e| NotifyError::Delivery(format!("POST {url}: {e}")))?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err(NotifyError::Delivery(format!(
                "POST {url}: {}",
                response.status()
            )))
        }
    }

    /// The address to POST to: `host` resolved now, every address checked.
    async fn resolve(&self, host: &str, port: u16) -> Result<SocketAddr, NotifyError> {
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host((bare, port))
            .await
            .map_err(|e| NotifyError::Target(format!("resolving {host}: {e}")))?
            .collect();
        let first = *addrs
            .first()
            .ok_or_else(|| NotifyError::Target(format!("{host} has no address")))?;
        if !self.config.allow_private_targets
            && let Some(bad) = addrs.iter().find(|a| !is_public(a.ip()))
        {
            return Err(NotifyError::Target(format!(
                "{host} resolves to {}, a private, loopback or link-local address; \
                 start the server with {ALLOW_PRIVATE_FLAG} to allow it",
                bad.ip()
            )));
        }
        Ok(first)
    }

    /// The value of `key` in Secret `ns/name`.
    async fn secret_key(&self, ns: &str, name: &str, key: &str) -> Result<Vec<u8>, NotifyError> {
        let missing = || NotifyError::Delivery(format!("secret {ns}/{name} has no key {key:?}"));
        let kv = self
            .store
            .get(&format!("/registry/core/secrets/{ns}/{name}"))
            .await?
            .ok_or_else(missing)?;
        let secret: serde_json::Value = decode(&kv)?;
        let encoded = secret
            .pointer(&format!(
                "/data/{}",
                key.replace('~', "~0").replace('/', "~1")
            ))
            .and_then(serde_json::Value::as_str)
            .ok_or_else(missing)?;
        base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .map_err(|_| missing())
    }
}

/// `sha256=<hex HMAC-SHA256 of body under key>`.
pub fn signature(key: &[u8], body: &[u8]) -> String {
    let mut mac = <hmac::Hmac<sha2_hmac::Sha256>>::new_from_slice(key)
        .expect("HMAC takes keys of any length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

fn decode<T: serde::de::DeserializeOwned>(kv: &KeyValue) -> Result<T, NotifyError> {
    serde_json::from_slice(&kv.value).map_err(|source| NotifyError::Decode {
        what: kv.key.clone(),
        source,
    })
}

/// Whether `ip` is a public unicast address: not loopback, private, link-local,
/// shared (CGNAT), unspecified, broadcast, multicast, documentation, or unique-local;
/// an IPv4-mapped IPv6 address is judged as its IPv4 address. Hand-written: std's
/// `is_global` is unstable.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || o[0] == 0
                || (o[0] == 100 && (o[1] & 0xc0) == 64)
                || (o[0] == 192 && o[1] == 0 && o[2] == 0)
                || (o[0] == 198 && (o[1] & 0xfe) == 18)
                || o[0] >= 240)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let s = v6.segments();
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00
                || (s[0] & 0xffc0) == 0xfe80
                || (s[0] == 0x2001 && s[1] == 0x0db8))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_loopback_and_link_local_addresses_are_not_public() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
        ] {
            assert!(!is_public(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["8.8.8.8", "1.1.1.1", "2606:4700::1111"] {
            assert!(is_public(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn the_signature_is_rfc_4231s_hmac_sha256() {
        // RFC 4231, test case 2.
        assert_eq!(
            signature(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn an_entry_key_names_its_notification() {
        assert_eq!(
            entry_owner("/moor/outbox/ns/hook/0001-abc"),
            "/moor/outbox/ns/hook"
        );
        assert_eq!(
            parse_key(OUTBOX_PREFIX, entry_owner("/moor/outbox/ns/hook/0001-abc")),
            Some(("ns", "hook"))
        );
    }
}
