//! The resources moor serves, each a [`Strategy`](super::stored::Strategy) over the
//! generic store or a virtual [`RestStorage`](super::resource::RestStorage).

pub mod core;
pub mod image;

use std::sync::Arc;

use moor_store::Store;

use super::ApiConfig;
use super::resource::RestStorage;
use super::stored::StoredResource;

/// Every served resource.
pub fn all(store: Arc<dyn Store>, config: &ApiConfig) -> Vec<Arc<dyn RestStorage>> {
    let stored = |s: Arc<dyn super::stored::Strategy>| -> Arc<dyn RestStorage> {
        Arc::new(StoredResource::new(
            store.clone(),
            s,
            config.serving.clone(),
        ))
    };
    let mut out: Vec<Arc<dyn RestStorage>> = vec![
        stored(core::Namespaces::new()),
        stored(core::Secrets::new()),
        stored(core::Events::new()),
    ];
    out.extend(image::all(store.clone(), config));
    out
}
