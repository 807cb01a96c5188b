//! Image lookup and image triggers, IO-free: the workload kinds that carry pod specs
//! ([`workload`]), the resolver that turns short names (`keycloak:20.0`) into the pinned
//! pull specs of image stream tags ([`resolve`]), and the `image.openshift.io/triggers`
//! annotation ([`trigger`]). The API server, the admission webhook, the trigger
//! controller and `moor resolve` all call these functions; none of them does IO.

pub mod resolve;
pub mod trigger;
pub mod workload;

pub use resolve::{
    Lookup, Resolution, Rewrite, Skip, StreamSource, Unresolved, candidate_streams, resolve_image,
    resolve_workload, resolves_all_names, tag_pull_spec,
};
pub use trigger::{
    ObjectFieldTrigger, TriggerSource, TriggerUpdate, container_for_field_path, field_path_for,
    parse_triggers, trigger_updates, triggers_of, validate_triggers,
};
pub use workload::{ContainerRef, Workload, WorkloadKind};

#[cfg(test)]
mod tests;
