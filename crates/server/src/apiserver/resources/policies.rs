//! `config.openshift.io/v1` signature policies: `imagepolicies` (namespaced) and
//! `clusterimagepolicies`, stored as they are, validated with OpenShift's rules
//! ([`moor_api::config::validate_spec`]). The importer and the registry read them
//! through [`crate::signatures`]. Strategies only; storage is generic.

use std::sync::Arc;

use moor_api::config::{ClusterImagePolicy, ImagePolicy, ImagePolicySpec, validate_spec};
use moor_api::validation::FieldError;
use serde::Deserialize;
use serde_json::{Value, json};

use moor_apimachinery::codec::decode_as;
use moor_apimachinery::resource::{ALL_VERBS, ResourceDef};
use moor_apimachinery::stored::Strategy;
use moor_apimachinery::table::{Column, TableDef, age_column, age_of, name_column, name_of};

fn def(kind: &'static str, plural: &'static str, namespaced: bool) -> ResourceDef {
    ResourceDef {
        group: moor_api::config::GROUP,
        version: moor_api::config::VERSION,
        kind,
        list_kind: if namespaced {
            "ImagePolicyList"
        } else {
            "ClusterImagePolicyList"
        },
        plural,
        singular: if namespaced {
            "imagepolicy"
        } else {
            "clusterimagepolicy"
        },
        short_names: &[],
        categories: &[],
        namespaced,
        verbs: ALL_VERBS,
        subresources: &["status"],
        selectable_fields: &[],
    }
}

/// `imagepolicies` or `clusterimagepolicies`.
pub struct Policies {
    def: ResourceDef,
}

impl Policies {
    /// The namespaced `imagepolicies`.
    pub fn namespaced() -> Arc<Self> {
        Arc::new(Policies {
            def: def("ImagePolicy", "imagepolicies", true),
        })
    }

    /// The cluster-scoped `clusterimagepolicies`.
    pub fn cluster() -> Arc<Self> {
        Arc::new(Policies {
            def: def("ClusterImagePolicy", "clusterimagepolicies", false),
        })
    }
}

fn column(name: &'static str, description: &'static str) -> Column {
    Column {
        name,
        kind: "string",
        format: "",
        description,
        priority: 0,
    }
}

impl Strategy for Policies {
    fn def(&self) -> &ResourceDef {
        &self.def
    }
    fn decode(&self, body: Value) -> Result<(Value, Vec<String>), String> {
        if self.def.namespaced {
            decode_as::<ImagePolicy>(body)
        } else {
            decode_as::<ClusterImagePolicy>(body)
        }
    }
    fn tracks_generation(&self) -> bool {
        true
    }
    fn table(&self) -> TableDef {
        TableDef {
            columns: vec![
                name_column(),
                column("Root Of Trust", "The policy type of the root of trust"),
                column("Scopes", "The image scopes the policy covers"),
                age_column(),
            ],
            row: Arc::new(|o| {
                let scopes = o
                    .pointer("/spec/scopes")
                    .and_then(Value::as_array)
                    .map(|a| {
                        a.iter()
                            .filter_map(Value::as_str)
                            .collect::<Vec<_>>()
                            .join(",")
                    })
                    .unwrap_or_default();
                vec![
                    json!(name_of(o)),
                    o.pointer("/spec/policy/rootOfTrust/policyType")
                        .cloned()
                        .unwrap_or(json!("")),
                    json!(scopes),
                    json!(age_of(o)),
                ]
            }),
        }
    }
    fn validate(&self, obj: &Value, _old: Option<&Value>) -> Vec<FieldError> {
        let mut errs = Vec::new();
        if name_of(obj).is_empty() {
            errs.push(FieldError::required(
                "metadata.name",
                "name or generateName is required",
            ));
        }
        match obj.get("spec").map(ImagePolicySpec::deserialize) {
            Some(Ok(spec)) => errs.extend(validate_spec(&spec)),
            Some(Err(e)) => errs.push(FieldError::invalid("spec", "", e.to_string())),
            None => errs.push(FieldError::required("spec", "spec is required")),
        }
        errs
    }
}
