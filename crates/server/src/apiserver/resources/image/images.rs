//! `images`: stored, cluster-scoped, named by digest.

use std::sync::Arc;

use moor_api::image::Image;
use moor_api::validation::{self, FieldError};
use serde_json::{Value, json};

use super::typed;
use moor_apimachinery::codec::decode_as;
use moor_apimachinery::resource::*;
use moor_apimachinery::stored::Strategy;
use moor_apimachinery::table::{Column, TableDef, name_column, name_of};

/// Images: cluster-scoped, named by digest.
pub struct Images(pub(super) ResourceDef);

impl Default for Images {
    fn default() -> Self {
        Self::new()
    }
}

impl Images {
    /// The images strategy.
    pub fn new() -> Self {
        Images(ResourceDef {
            group: "image.openshift.io",
            version: "v1",
            kind: "Image",
            list_kind: "ImageList",
            plural: "images",
            singular: "image",
            short_names: &[],
            categories: &[],
            namespaced: false,
            verbs: ALL_VERBS,
            subresources: &[],
            selectable_fields: &[],
        })
    }
}

impl Strategy for Images {
    fn def(&self) -> &ResourceDef {
        &self.0
    }
    fn decode(&self, body: Value) -> Result<(Value, Vec<String>), String> {
        decode_as::<Image>(body)
    }
    fn table(&self) -> TableDef {
        TableDef {
            columns: vec![
                name_column(),
                Column {
                    name: "Image Reference",
                    kind: "string",
                    format: "",
                    description: "Where the image can be pulled from",
                    priority: 0,
                },
            ],
            row: Arc::new(|o| {
                vec![
                    json!(name_of(o)),
                    o.get("dockerImageReference").cloned().unwrap_or(json!("")),
                ]
            }),
        }
    }
    fn validate(&self, obj: &Value, _old: Option<&Value>) -> Vec<FieldError> {
        match typed::<Image>(obj) {
            Some(i) => validation::validate_image(&i),
            None => vec![FieldError::invalid("", "", "not a valid Image")],
        }
    }
}
