//! The few fields of Kubernetes objects the engine reads, and the raw REST calls it makes.
//!
//! Objects are deserialized into slim structs (serde ignores everything else), so listing
//! thousands of workloads keeps memory small: pod templates and managedFields are never held
//! (of a pod template only its requests are read, as a few numbers).

use std::collections::BTreeMap;

use std::sync::LazyLock;

use std::borrow::Cow;

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, Patch, PatchParams};
use kube::core::{ApiResource, DynamicObject, DynamicResourceScope, Resource};
use serde::Deserialize;

/// The Namespace's API resource (not a workload kind: see [`super::kinds`]).
pub static NAMESPACE: LazyLock<ApiResource> = LazyLock::new(|| ApiResource::erase::<Namespace>(&()));

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OwnerRef {
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub controller: Option<bool>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Meta {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub namespace: Option<String>,
    #[serde(default)]
    pub resource_version: Option<String>,
    /// Only the keys the engine reads (see [`is_ours`]).
    #[serde(default, deserialize_with = "only_ours")]
    pub labels: BTreeMap<String, String>,
    /// Only the keys the engine reads (see [`is_ours`]).
    #[serde(default, deserialize_with = "only_ours")]
    pub annotations: BTreeMap<String, String>,
    #[serde(default)]
    pub owner_references: Vec<OwnerRef>,
    /// Set once the object is being deleted (a Terminating namespace, a finalizer holding it).
    #[serde(default)]
    pub deletion_timestamp: Option<String>,
    /// Bumped by the apiserver on every change of `spec` (read for ActivationRequests).
    #[serde(default, deserialize_with = "lenient::integer")]
    pub generation: Option<i64>,
    #[serde(default, deserialize_with = "lenient::text")]
    pub creation_timestamp: Option<lenient::Text>,
}

/// The label and annotation keys the engine reads: its own, and the kinds' pause annotations.
pub fn is_ours(key: &str) -> bool {
    super::kinds::is_read(key)
}

/// Keeps only the keys of [`is_ours`]: a workload's other labels and annotations (app labels,
/// `last-applied-configuration`, …) are skipped while parsing, never held. At thousands of
/// workloads one held map per object was most of the inventory.
fn only_ours<'de, D: serde::Deserializer<'de>>(d: D) -> Result<BTreeMap<String, String>, D::Error> {
    struct Ours;
    impl<'de> serde::de::Visitor<'de> for Ours {
        type Value = BTreeMap<String, String>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a map of strings")
        }
        fn visit_unit<E>(self) -> Result<Self::Value, E> {
            Ok(BTreeMap::new())
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(self, mut m: A) -> Result<Self::Value, A::Error> {
            let mut out = BTreeMap::new();
            while let Some(key) = m.next_key::<std::borrow::Cow<'de, str>>()? {
                if is_ours(&key) {
                    out.insert(key.into_owned(), m.next_value::<String>()?);
                } else {
                    m.next_value::<serde::de::IgnoredAny>()?;
                }
            }
            Ok(out)
        }
    }
    d.deserialize_any(Ours)
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Spec {
    #[serde(default)]
    pub replicas: Option<i32>,
    #[serde(default)]
    pub suspend: Option<bool>,
    /// A Deployment's or StatefulSet's `spec.template`, read only for its requests (see
    /// [`crate::resources`]); the rest of the pod spec is skipped while parsing.
    #[serde(
        default,
        rename = "template",
        deserialize_with = "crate::resources::from_pod_template"
    )]
    pub pod_request: Option<crate::resources::PodRequest>,
    /// An ActivationRequest's `spec.until` and `spec.requestedBy`, as written: what teams
    /// write is read leniently here (any JSON, cut short) and judged later, so one bad request
    /// fails only itself, never the list.
    #[serde(default, deserialize_with = "lenient::text")]
    pub until: Option<lenient::Text>,
    #[serde(default, deserialize_with = "lenient::text")]
    pub requested_by: Option<lenient::Text>,
    /// A HorizontalPodAutoscaler's `minReplicas`, `scaleTargetRef` and `behavior`.
    #[serde(default)]
    pub min_replicas: Option<i32>,
    #[serde(default)]
    pub scale_target_ref: Option<TargetRef>,
    #[serde(default)]
    pub behavior: Option<serde_json::Value>,
}

/// What a HorizontalPodAutoscaler scales.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct TargetRef {
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub name: String,
}

/// A Namespace's `status.phase` (`Terminating` while it is being deleted); an
/// ActivationRequest's answer (phase, message, the generation answered).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    #[serde(default, deserialize_with = "lenient::text_string")]
    pub phase: Option<String>,
    #[serde(default, deserialize_with = "lenient::text_string")]
    pub message: Option<String>,
    #[serde(default, deserialize_with = "lenient::integer")]
    pub observed_generation: Option<i64>,
}

/// Any of our kinds, reduced to what the engine needs.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Slim {
    #[serde(default)]
    pub metadata: Meta,
    #[serde(default)]
    pub spec: Spec,
    #[serde(default)]
    pub status: Status,
}

impl Slim {
    /// Being deleted: `deletionTimestamp` set, or (for a Namespace) phase `Terminating`.
    pub fn is_being_deleted(&self) -> bool {
        self.metadata.deletion_timestamp.is_some() || self.status.phase.as_deref() == Some("Terminating")
    }
}

pub mod lenient;

/// The path of a collection (cluster-wide when `namespace` is None), built by kube.
pub fn collection_path(resource: &ApiResource, namespace: Option<&str>) -> String {
    DynamicObject::url_path(resource, namespace)
}

/// One object as a get or a patch answers it, for kube's typed [`Api`]: its full metadata
/// (held only while one answer is read) and the slim spec and status. Read into a [`Slim`].
#[derive(Debug, Clone, Deserialize)]
pub struct Fetched {
    #[serde(default)]
    metadata: ObjectMeta,
    #[serde(default)]
    spec: Spec,
    #[serde(default)]
    status: Status,
}

impl Resource for Fetched {
    type DynamicType = ApiResource;
    type Scope = DynamicResourceScope;

    fn kind(dt: &ApiResource) -> Cow<'_, str> {
        dt.kind.as_str().into()
    }
    fn group(dt: &ApiResource) -> Cow<'_, str> {
        dt.group.as_str().into()
    }
    fn version(dt: &ApiResource) -> Cow<'_, str> {
        dt.version.as_str().into()
    }
    fn api_version(dt: &ApiResource) -> Cow<'_, str> {
        dt.api_version.as_str().into()
    }
    fn plural(dt: &ApiResource) -> Cow<'_, str> {
        dt.plural.as_str().into()
    }
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

impl From<Fetched> for Slim {
    fn from(o: Fetched) -> Slim {
        let m = o.metadata;
        let ours = |map: Option<BTreeMap<String, String>>| -> BTreeMap<String, String> {
            map.unwrap_or_default()
                .into_iter()
                .filter(|(k, _)| is_ours(k))
                .collect()
        };
        let owners = m.owner_references.unwrap_or_default().into_iter();
        Slim {
            metadata: Meta {
                name: m.name.unwrap_or_default(),
                namespace: m.namespace,
                resource_version: m.resource_version,
                labels: ours(m.labels),
                annotations: ours(m.annotations),
                owner_references: owners
                    .map(|r| OwnerRef {
                        kind: r.kind,
                        name: r.name,
                        controller: r.controller,
                    })
                    .collect(),
                deletion_timestamp: m.deletion_timestamp.map(|t| t.0.to_string()),
                generation: m.generation,
                creation_timestamp: m.creation_timestamp.map(|t| lenient::Text::of(&t.0.to_string())),
            },
            spec: o.spec,
            status: o.status,
        }
    }
}

fn api(client: &kube::Client, resource: &ApiResource, namespace: Option<&str>) -> Api<Fetched> {
    match namespace {
        Some(ns) => Api::namespaced_with(client.clone(), ns, resource),
        None => Api::all_with(client.clone(), resource),
    }
}

pub async fn get(
    client: &kube::Client,
    resource: &ApiResource,
    namespace: Option<&str>,
    name: &str,
) -> Result<Slim, kube::Error> {
    api(client, resource, namespace).get(name).await.map(Slim::from)
}

/// A JSON merge patch (RFC 7386). Carrying `metadata.resourceVersion` in it makes the write
/// conditional: the apiserver answers 409 if the object changed since we read it.
pub async fn merge_patch(
    client: &kube::Client,
    resource: &ApiResource,
    namespace: Option<&str>,
    name: &str,
    patch: &serde_json::Value,
) -> Result<Slim, kube::Error> {
    api(client, resource, namespace)
        .patch(name, &PatchParams::default(), &Patch::Merge(patch))
        .await
        .map(Slim::from)
}

/// A JSON merge patch of the `status` subresource (what an ActivationRequest's answer is
/// written through); conditional like [`merge_patch`].
pub async fn merge_patch_status(
    client: &kube::Client,
    resource: &ApiResource,
    namespace: Option<&str>,
    name: &str,
    patch: &serde_json::Value,
) -> Result<Slim, kube::Error> {
    api(client, resource, namespace)
        .patch_status(name, &PatchParams::default(), &Patch::Merge(patch))
        .await
        .map(Slim::from)
}
