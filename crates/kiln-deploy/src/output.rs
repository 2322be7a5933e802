//! The objects generated, and their deterministic output: keys sorted, YAML documents or
//! one JSON `List`.

use std::collections::BTreeMap;

/// One object, as the JSON value it serializes to (keys sorted).
#[derive(Clone, Debug, PartialEq)]
pub struct Object {
    /// `Deployment`, `Service`, ...
    pub kind: &'static str,
    /// The object's `metadata.name` ([`Options::name`]).
    ///
    /// [`Options::name`]: crate::Options::name
    pub name: String,
    /// The whole object as the JSON value it serializes to, keys sorted.
    pub value: serde_json::Value,
}

/// The objects and what the user should know about them.
#[derive(Clone, Debug, Default)]
pub struct Objects {
    /// The objects generated, in this order where present: Deployment (or Job), Service,
    /// HorizontalPodAutoscaler, PodDisruptionBudget.
    pub objects: Vec<Object>,
    /// Things the user should know that do not stop the deployment, e.g. pods without probes.
    pub warnings: Vec<String>,
}

/// Sorts the keys of every object in `v`, so the output does not depend on how
/// serde_json keeps maps.
fn sorted(v: serde_json::Value) -> serde_json::Value {
    match v {
        serde_json::Value::Object(m) => {
            let b: BTreeMap<String, serde_json::Value> =
                m.into_iter().map(|(k, v)| (k, sorted(v))).collect();
            serde_json::Value::Object(b.into_iter().collect())
        }
        serde_json::Value::Array(a) => {
            serde_json::Value::Array(a.into_iter().map(sorted).collect())
        }
        v => v,
    }
}

pub(crate) fn object<T: serde::Serialize>(kind: &'static str, name: &str, o: &T) -> Object {
    Object {
        kind,
        name: name.to_string(),
        value: sorted(serde_json::to_value(o).expect("k8s-openapi objects serialize")),
    }
}

/// The objects as YAML documents separated by `---`.
pub fn to_yaml(objects: &[Object]) -> String {
    objects
        .iter()
        .map(|o| serde_yaml::to_string(&o.value).expect("JSON values serialize as YAML"))
        .collect::<Vec<_>>()
        .join("---\n")
}

/// The objects as one JSON `List`.
pub fn to_json(objects: &[Object]) -> String {
    let list = serde_json::json!({
        "apiVersion": "v1",
        "kind": "List",
        "items": objects.iter().map(|o| o.value.clone()).collect::<Vec<_>>(),
    });
    let mut s = serde_json::to_string_pretty(&sorted(list)).expect("JSON values serialize");
    s.push('\n');
    s
}
