//! Tag history rules, as OpenShift keeps them: adding a tag event (collapse or
//! prepend), import-failure conditions, and the pull spec a tag resolves to under its
//! reference policy. Pure functions over [`ImageStream`]; IO-free.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::{
    ConditionStatus, ImageStream, NamedTagEventList, TagEvent, TagEventCondition,
    TagEventConditionType, TagReference, TagReferencePolicyType,
};
use crate::reference::DockerImageReference;

/// Adds `next` to the history of `tag`, as OpenShift's `AddTagEventToImageStream`:
/// nothing changes when image, pull spec and generation are all the same; when the
/// image or the pull spec is the same, `items[0]` is updated in place; only when both
/// differ is `next` prepended. Any change clears the tag's conditions. Returns whether
/// the stream changed.
pub fn add_tag_event(stream: &mut ImageStream, tag: &str, next: TagEvent) -> bool {
    match stream.status_tag_mut(tag) {
        Some(list) => add_tag_event_to(list, next),
        None => {
            stream.status.tags.push(NamedTagEventList {
                tag: tag.to_string(),
                items: vec![next],
                conditions: vec![],
            });
            true
        }
    }
}

/// [`add_tag_event`] on a tag's history already found: for writers of many tags of
/// one stream, which look each up in an index instead of scanning the list.
pub fn add_tag_event_to(list: &mut NamedTagEventList, next: TagEvent) -> bool {
    let Some(previous) = list.items.first_mut() else {
        list.items = vec![next];
        list.conditions.clear();
        return true;
    };
    let same_ref = previous.docker_image_reference == next.docker_image_reference;
    let same_image = previous.image == next.image;
    let same_gen = previous.generation == next.generation;
    match (same_ref, same_image) {
        (true, true) if same_gen => return false,
        (true, true) => {}
        (true, false) => previous.image = next.image.clone(),
        (false, true) => previous.docker_image_reference = next.docker_image_reference.clone(),
        (false, false) => {
            list.items.insert(0, next);
            list.conditions.clear();
            return true;
        }
    }
    previous.generation = next.generation;
    list.conditions.clear();
    true
}

/// Records a failed import of `tag` (spec generation `generation`): history is kept,
/// an `ImportSuccess=False` condition carries the reason and message. Returns whether
/// the stream changed (the same failure again at the same generation changes nothing
/// but the time, which is kept).
pub fn set_import_failed(
    stream: &mut ImageStream,
    tag: &str,
    reason: &str,
    message: &str,
    generation: i64,
    now: Time,
) -> bool {
    if stream.status_tag(tag).is_none() {
        stream.status.tags.push(NamedTagEventList {
            tag: tag.to_string(),
            items: vec![],
            conditions: vec![],
        });
    }
    let list = stream.status_tag_mut(tag).expect("just ensured");
    set_import_failed_on(list, reason, message, generation, now)
}

/// [`set_import_failed`] on a tag's history already found (see [`add_tag_event_to`]).
pub fn set_import_failed_on(
    list: &mut NamedTagEventList,
    reason: &str,
    message: &str,
    generation: i64,
    now: Time,
) -> bool {
    let cond = TagEventCondition {
        type_: TagEventConditionType::ImportSuccess,
        status: ConditionStatus::False,
        last_transition_time: Some(now),
        reason: reason.to_string(),
        message: message.to_string(),
        generation,
    };
    match list
        .conditions
        .iter_mut()
        .find(|c| c.type_ == TagEventConditionType::ImportSuccess)
    {
        Some(existing) => {
            let same = existing.status == cond.status
                && existing.reason == cond.reason
                && existing.message == cond.message
                && existing.generation == cond.generation;
            if same {
                return false;
            }
            *existing = cond;
        }
        None => list.conditions.push(cond),
    }
    true
}

/// Removes a failed `ImportSuccess` condition of `tag` (a later check of a scheduled
/// tag succeeded without changing its image). Returns whether the stream changed.
pub fn clear_import_failure(stream: &mut ImageStream, tag: &str) -> bool {
    let Some(list) = stream.status_tag_mut(tag) else {
        return false;
    };
    let before = list.conditions.len();
    list.conditions.retain(|c| {
        !(c.type_ == TagEventConditionType::ImportSuccess && c.status == ConditionStatus::False)
    });
    list.conditions.len() != before
}

/// The import failure recorded on `tag`, if any.
pub fn import_failure<'a>(stream: &'a ImageStream, tag: &str) -> Option<&'a TagEventCondition> {
    failure_in(stream.status_tag(tag)?)
}

fn failure_in(status: &NamedTagEventList) -> Option<&TagEventCondition> {
    status.conditions.iter().find(|c| {
        c.type_ == TagEventConditionType::ImportSuccess && c.status == ConditionStatus::False
    })
}

/// Whether the spec tag's generation is newer than what its history has observed
/// (OpenShift's `DifferentTagGeneration`): the tag needs importing.
pub fn needs_import(stream: &ImageStream, tag: &str) -> bool {
    let Some(spec) = stream.spec_tag(tag) else {
        return false;
    };
    spec_needs_import(spec, stream.status_tag(tag))
}

fn spec_needs_import(spec: &TagReference, status: Option<&NamedTagEventList>) -> bool {
    let Some(spec_gen) = spec.generation else {
        return true;
    };
    let observed_event = status.and_then(|s| s.items.first()).map(|e| e.generation);
    let observed_failure = status
        .and_then(|s| {
            s.conditions
                .iter()
                .find(|c| c.type_ == TagEventConditionType::ImportSuccess)
        })
        .map(|c| c.generation);
    let observed = observed_event.into_iter().chain(observed_failure).max();
    observed.is_none_or(|g| spec_gen > g)
}

/// A stream's spec and status tags by name (the first of a name, as the stream's own
/// look-ups find it), built once so that asking about every tag of a large stream
/// costs linear time, not a scan per tag.
pub struct TagIndex<'a> {
    spec: std::collections::HashMap<&'a str, &'a TagReference>,
    status: std::collections::HashMap<&'a str, &'a NamedTagEventList>,
}

impl<'a> TagIndex<'a> {
    /// Indexes `stream`'s tags.
    pub fn new(stream: &'a ImageStream) -> Self {
        let mut status = std::collections::HashMap::with_capacity(stream.status.tags.len());
        for t in &stream.status.tags {
            status.entry(t.tag.as_str()).or_insert(t);
        }
        TagIndex {
            spec: stream.spec_tags_by_name(),
            status,
        }
    }

    /// [`needs_import`], looked up in the index.
    pub fn needs_import(&self, tag: &str) -> bool {
        self.spec
            .get(tag)
            .is_some_and(|spec| spec_needs_import(spec, self.status.get(tag).copied()))
    }

    /// [`import_failure`], looked up in the index.
    pub fn import_failure(&self, tag: &str) -> Option<&'a TagEventCondition> {
        failure_in(self.status.get(tag)?)
    }

    /// [`ImageStream::latest_tagged_image`], looked up in the index.
    pub fn latest_tagged_image(&self, tag: &str) -> Option<&'a TagEvent> {
        self.status.get(tag)?.items.first()
    }

    /// The spec tag named `tag`.
    pub fn spec_tag(&self, tag: &str) -> Option<&'a TagReference> {
        self.spec.get(tag).copied()
    }
}

/// The pull spec `tag` resolves to: its current event's reference, or under the
/// `Local` reference policy `<status.dockerImageRepository>@<image>` (served by moor's
/// registry), falling back to the source reference when that cannot be built.
pub fn resolve_tag_reference(stream: &ImageStream, tag: &str) -> Option<String> {
    let event = stream.latest_tagged_image(tag)?;
    let local = stream
        .spec_tag(tag)
        .and_then(|t| t.reference_policy.type_.as_ref())
        .is_some_and(|p| *p == TagReferencePolicyType::Local);
    if !local || event.image.is_empty() || stream.status.docker_image_repository.is_empty() {
        return Some(event.docker_image_reference.clone());
    }
    match DockerImageReference::parse(&stream.status.docker_image_repository) {
        Ok(r) => Some(format!(
            "{}@{}",
            r.without_tag().without_id().exact(),
            event.image
        )),
        Err(_) => Some(event.docker_image_reference.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::{TagReference, TagReferencePolicy};

    fn ev(r: &str, image: &str, g: i64) -> TagEvent {
        TagEvent {
            docker_image_reference: r.into(),
            image: image.into(),
            generation: g,
            ..Default::default()
        }
    }

    fn now() -> Time {
        Time("2026-01-01T00:00:00Z".parse().unwrap())
    }

    #[test]
    fn history_collapses_or_prepends_like_openshift() {
        let mut s = ImageStream::default();
        assert!(add_tag_event(
            &mut s,
            "t",
            ev("q/a@sha256:1", "sha256:1", 1)
        ));
        assert!(
            !add_tag_event(&mut s, "t", ev("q/a@sha256:1", "sha256:1", 1)),
            "identical: no change"
        );
        assert!(
            add_tag_event(&mut s, "t", ev("q/a@sha256:1", "sha256:1", 2)),
            "generation only: in place"
        );
        assert_eq!(s.status_tag("t").unwrap().items.len(), 1);
        assert_eq!(s.status_tag("t").unwrap().items[0].generation, 2);
        assert!(
            add_tag_event(&mut s, "t", ev("mirror/a@sha256:1", "sha256:1", 3)),
            "same image: in place"
        );
        assert_eq!(s.status_tag("t").unwrap().items.len(), 1);
        assert_eq!(
            s.status_tag("t").unwrap().items[0].docker_image_reference,
            "mirror/a@sha256:1"
        );
        assert!(
            add_tag_event(&mut s, "t", ev("q/a@sha256:2", "sha256:2", 4)),
            "both differ: prepend"
        );
        let items = &s.status_tag("t").unwrap().items;
        assert_eq!(items.len(), 2);
        assert_eq!(items[0].image, "sha256:2");
        assert_eq!(items[1].image, "sha256:1");
    }

    #[test]
    fn failures_keep_history_and_success_clears_them() {
        let mut s = ImageStream::default();
        add_tag_event(&mut s, "t", ev("q/a@sha256:1", "sha256:1", 1));
        assert!(set_import_failed(
            &mut s,
            "t",
            "NotFound",
            "manifest unknown",
            2,
            now()
        ));
        assert!(!set_import_failed(
            &mut s,
            "t",
            "NotFound",
            "manifest unknown",
            2,
            now()
        ));
        assert_eq!(s.status_tag("t").unwrap().items.len(), 1, "history kept");
        assert_eq!(import_failure(&s, "t").unwrap().reason, "NotFound");
        add_tag_event(&mut s, "t", ev("q/a@sha256:2", "sha256:2", 3));
        assert!(import_failure(&s, "t").is_none());
    }

    #[test]
    fn a_later_success_clears_the_failure_only() {
        let mut s = ImageStream::default();
        assert!(!clear_import_failure(&mut s, "t"), "no tag: no change");
        add_tag_event(&mut s, "t", ev("q/a@sha256:1", "sha256:1", 1));
        assert!(!clear_import_failure(&mut s, "t"), "no failure: no change");
        set_import_failed(&mut s, "t", "NotFound", "gone", 1, now());
        assert!(clear_import_failure(&mut s, "t"));
        assert!(import_failure(&s, "t").is_none());
        assert_eq!(s.status_tag("t").unwrap().items.len(), 1, "history kept");
    }

    #[test]
    fn needs_import_follows_generations() {
        let mut s = ImageStream::default();
        s.spec.tags.push(TagReference {
            name: "t".into(),
            generation: Some(2),
            ..Default::default()
        });
        assert!(needs_import(&s, "t"));
        add_tag_event(&mut s, "t", ev("q/a@sha256:1", "sha256:1", 2));
        assert!(!needs_import(&s, "t"));
        s.spec.tags[0].generation = Some(3);
        assert!(needs_import(&s, "t"));
        set_import_failed(&mut s, "t", "NotFound", "x", 3, now());
        assert!(
            !needs_import(&s, "t"),
            "a recorded failure observes the generation"
        );
        assert!(!needs_import(&s, "nope"));
    }

    #[test]
    fn local_policy_resolves_to_the_stream_repository() {
        let mut s = ImageStream::default();
        s.status.docker_image_repository = "moor.local:8443/ns/keycloak".into();
        let digest = format!("sha256:{}", "a".repeat(64));
        s.spec.tags.push(TagReference {
            name: "t".into(),
            reference_policy: TagReferencePolicy {
                type_: Some(TagReferencePolicyType::Local),
            },
            ..Default::default()
        });
        add_tag_event(
            &mut s,
            "t",
            ev(&format!("quay.io/k/k@{digest}"), &digest, 1),
        );
        assert_eq!(
            resolve_tag_reference(&s, "t").unwrap(),
            format!("moor.local:8443/ns/keycloak@{digest}")
        );
        s.spec.tags[0].reference_policy.type_ = Some(TagReferencePolicyType::Source);
        assert_eq!(
            resolve_tag_reference(&s, "t").unwrap(),
            format!("quay.io/k/k@{digest}")
        );
        assert!(resolve_tag_reference(&s, "missing").is_none());
    }
}
