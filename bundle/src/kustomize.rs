//! Render a kustomize tree with the real `kubectl kustomize`, and find every
//! image field in the result.
//!
//! Image fields are the `image` of containers, initContainers and
//! ephemeralContainers in every pod-template kind, plus extra field paths
//! configured for custom resources. This module only reads: it never applies
//! anything to a cluster.

use std::fmt;
use std::path::{Path, PathBuf};

use serde_json::Value;

/// A rendered Kubernetes object, as parsed JSON.
#[derive(Debug, Clone)]
pub struct Object {
    pub value: Value,
}

/// `Kind/namespace/name` of an object (namespace `-` when cluster-scoped or unset).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct ObjectRef {
    pub kind: String,
    pub namespace: String,
    pub name: String,
}

impl fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.kind, self.namespace, self.name)
    }
}

/// One image field in one rendered object.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ImageUse {
    pub image: String,
    pub object: ObjectRef,
    /// Field path, e.g. `spec.template.spec.containers[0].image`.
    pub field: String,
}

/// An extra image location for a custom resource kind: a dotted path where
/// `name[]` walks every element of a list. The same type the bundle config
/// records them in.
pub use crate::format::ImageField as ExtraField;

/// Why rendering failed.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("cannot run kubectl: {0}\nhint: install kubectl (kustomize v5 is built in) and put it on PATH")]
    Spawn(std::io::Error),
    #[error("kubectl kustomize {dir} failed:\n{stderr}")]
    Failed { dir: PathBuf, stderr: String },
    #[error("kubectl kustomize {dir} printed YAML that does not parse: {message}")]
    Parse { dir: PathBuf, message: String },
}

/// Run `kubectl kustomize DIR` and return its YAML output.
pub fn render(dir: &Path) -> Result<String, RenderError> {
    let out = crate::kubectl::command()
        .arg("kustomize")
        .arg(dir)
        .output()
        .map_err(RenderError::Spawn)?;
    if !out.status.success() {
        return Err(RenderError::Failed {
            dir: dir.to_path_buf(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    String::from_utf8(out.stdout).map_err(|e| RenderError::Parse {
        dir: dir.to_path_buf(),
        message: e.to_string(),
    })
}

/// Split rendered multi-document YAML into objects (empty documents dropped).
pub fn parse_objects(yaml: &str, dir: &Path) -> Result<Vec<Object>, RenderError> {
    use serde::Deserialize;
    let mut objects = Vec::new();
    for doc in serde_yaml_ng::Deserializer::from_str(yaml) {
        let value = Value::deserialize(doc).map_err(|e| RenderError::Parse {
            dir: dir.to_path_buf(),
            message: e.to_string(),
        })?;
        if !value.is_null() {
            objects.push(Object { value });
        }
    }
    Ok(objects)
}

impl Object {
    pub fn kind(&self) -> &str {
        self.value["kind"].as_str().unwrap_or("")
    }
    pub fn reference(&self) -> ObjectRef {
        let meta = &self.value["metadata"];
        ObjectRef {
            kind: self.kind().to_string(),
            namespace: meta["namespace"].as_str().unwrap_or("-").to_string(),
            name: meta["name"].as_str().unwrap_or("-").to_string(),
        }
    }
}

/// Where the pod spec sits in each pod-template kind.
fn pod_spec_path(kind: &str) -> Option<&'static [&'static str]> {
    match kind {
        "Deployment"
        | "StatefulSet"
        | "DaemonSet"
        | "Job"
        | "ReplicaSet"
        | "ReplicationController"
        | "PodTemplate" => Some(&["spec", "template", "spec"]),
        "CronJob" => Some(&["spec", "jobTemplate", "spec", "template", "spec"]),
        "Pod" => Some(&["spec"]),
        _ => None,
    }
}

/// Every image field in the objects, in object order.
pub fn image_uses(objects: &[Object], extra: &[ExtraField]) -> Vec<ImageUse> {
    let mut uses = Vec::new();
    for obj in objects {
        let kind = obj.kind();
        if let Some(path) = pod_spec_path(kind) {
            let mut pod = &obj.value;
            for seg in path {
                pod = &pod[*seg];
            }
            let prefix = path.join(".");
            for list in ["initContainers", "containers", "ephemeralContainers"] {
                if let Some(items) = pod[list].as_array() {
                    for (i, c) in items.iter().enumerate() {
                        if let Some(image) = c["image"].as_str() {
                            uses.push(ImageUse {
                                image: image.to_string(),
                                object: obj.reference(),
                                field: format!("{prefix}.{list}[{i}].image"),
                            });
                        }
                    }
                }
            }
        }
        for f in extra.iter().filter(|f| f.kind == kind) {
            walk_path(&obj.value, &f.path, String::new(), &mut |field, v| {
                if let Some(image) = v.as_str() {
                    uses.push(ImageUse {
                        image: image.to_string(),
                        object: obj.reference(),
                        field,
                    });
                }
            });
        }
    }
    uses
}

fn walk_path(value: &Value, path: &str, at: String, found: &mut dyn FnMut(String, &Value)) {
    let (seg, rest) = match path.split_once('.') {
        Some((s, r)) => (s, Some(r)),
        None => (path, None),
    };
    let join = |name: &str| {
        if at.is_empty() {
            name.to_string()
        } else {
            format!("{at}.{name}")
        }
    };
    let mut visit = |v: &Value, here: String| match rest {
        Some(r) => walk_path(v, r, here, found),
        None => found(here, v),
    };
    if let Some(name) = seg.strip_suffix("[]") {
        if let Some(items) = value[name].as_array() {
            for (i, v) in items.iter().enumerate() {
                visit(v, format!("{}[{i}]", join(name)));
            }
        }
    } else if !value[seg].is_null() {
        visit(&value[seg], join(seg));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RENDERED: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: s, namespace: ns}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: d, namespace: ns}
spec:
  template:
    spec:
      initContainers: [{name: i, image: "atp/init:1"}]
      containers: [{name: a, image: "docker.io/atp/a:1"}, {name: b, image: "b@sha256:00"}]
---
apiVersion: batch/v1
kind: CronJob
metadata: {name: c}
spec:
  jobTemplate:
    spec:
      template:
        spec:
          containers: [{name: x, image: "x:2"}]
---
apiVersion: example.com/v1
kind: Workload
metadata: {name: w, namespace: ns}
spec:
  workers: [{image: "w:1"}, {image: "w:2"}]
"#;

    #[test]
    fn finds_every_image_field_with_its_object_and_path() {
        let objs = parse_objects(RENDERED, Path::new(".")).unwrap();
        assert_eq!(objs.len(), 4);
        let extra = [ExtraField {
            kind: "Workload".into(),
            path: "spec.workers[].image".into(),
        }];
        let uses = image_uses(&objs, &extra);
        let got: Vec<(String, String, String)> = uses
            .iter()
            .map(|u| (u.image.clone(), u.object.to_string(), u.field.clone()))
            .collect();
        let want = [
            (
                "atp/init:1",
                "Deployment/ns/d",
                "spec.template.spec.initContainers[0].image",
            ),
            (
                "docker.io/atp/a:1",
                "Deployment/ns/d",
                "spec.template.spec.containers[0].image",
            ),
            (
                "b@sha256:00",
                "Deployment/ns/d",
                "spec.template.spec.containers[1].image",
            ),
            (
                "x:2",
                "CronJob/-/c",
                "spec.jobTemplate.spec.template.spec.containers[0].image",
            ),
            ("w:1", "Workload/ns/w", "spec.workers[0].image"),
            ("w:2", "Workload/ns/w", "spec.workers[1].image"),
        ];
        let want: Vec<(String, String, String)> = want
            .iter()
            .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn renders_a_real_kustomization_with_kubectl() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("kustomization.yaml"),
            "resources: [pod.yaml]\nimages:\n- name: nginx\n  newName: reg.local/nginx\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("pod.yaml"),
            "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers: [{name: c, image: nginx}]\n",
        )
        .unwrap();
        let yaml = render(dir.path()).unwrap();
        let uses = image_uses(&parse_objects(&yaml, dir.path()).unwrap(), &[]);
        assert_eq!(uses.len(), 1);
        assert_eq!(uses[0].image, "reg.local/nginx");
        let err = render(&dir.path().join("missing")).unwrap_err();
        assert!(err.to_string().contains("kubectl kustomize"), "{err}");
    }
}
