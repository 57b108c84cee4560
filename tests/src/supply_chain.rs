//! An independent writer of upstream supply-chain artifacts, for issue 19's
//! tests: what cosign and an SBOM/attestation tool would leave in a source
//! registry, made without any code under test.
//!
//! * the key pair is P-256 from `openssl ecparam`, and every signature is
//!   `openssl dgst -sha256 -sign` (DER), checked with `openssl dgst -verify`;
//! * every blob and manifest is written by `curl` (an upload session's
//!   `POST` then one `PUT`, and a manifest `PUT`), never by `atp_registry`;
//! * a cosign simple-signing signature is an image manifest with one layer
//!   `application/vnd.dev.cosign.simplesigning.v1+json` whose annotation
//!   `dev.cosignproject.cosign/signature` is the base64 DER signature, under
//!   the tag `sha256-<hex>.sig`;
//! * an SPDX SBOM and an in-toto attestation (a DSSE envelope) are OCI 1.1
//!   artifact manifests (`artifactType`, the empty config, `subject`), listed
//!   in the referrers tag schema's `sha256-<hex>` index, as a client does for
//!   a registry without the referrers API (docker-registry 2.8).
//!
//! Panics with the tool's stderr on any failure: it is test setup.

use std::path::Path;
use std::process::Command;

use base64::Engine as _;
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};

use crate::registry::Registry;

mod key;

use key::run;
pub use key::{openssl_verify, UpstreamKey};

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_EMPTY: &str = "application/vnd.oci.empty.v1+json";
pub const IMAGE_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const SIMPLE_SIGNING: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
pub const COSIGN_SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";
pub const SPDX: &str = "application/spdx+json";
pub const IN_TOTO: &str = "application/vnd.in-toto+json";
pub const DSSE: &str = "application/vnd.dsse.envelope.v1+json";

/// `sha256:<hex>` of some bytes.
pub fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// `sha256-<hex>`: the referrers tag schema's tag for a subject digest.
pub fn fallback_tag(subject: &str) -> String {
    subject.replacen(':', "-", 1)
}

/// cosign's simple-signing payload naming `docker_reference` and the
/// manifest digest.
pub fn simple_signing_payload(docker_reference: &str, manifest_digest: &str) -> Vec<u8> {
    let v = json!({
        "critical": {
            "identity": {"docker-reference": docker_reference},
            "image": {"docker-manifest-digest": manifest_digest},
            "type": "cosign container image signature"
        },
        "optional": null
    });
    serde_json::to_vec(&v).unwrap()
}

/// One artifact written to the registry.
#[derive(Debug, Clone)]
pub struct Artifact {
    pub digest: String,
    pub bytes: Vec<u8>,
    pub media_type: String,
    pub artifact_type: String,
    /// The tag it was pushed under (cosign's, the fallback index's), if any.
    pub tag: Option<String>,
}

impl Artifact {
    /// Its descriptor, as a referrers index lists it.
    pub fn descriptor(&self) -> Value {
        let mut d = json!({
            "mediaType": self.media_type,
            "digest": self.digest,
            "size": self.bytes.len(),
            "artifactType": self.artifact_type,
        });
        let m: Value = serde_json::from_slice(&self.bytes).unwrap();
        if let Some(a) = m.get("annotations") {
            d["annotations"] = a.clone();
        }
        d
    }
}

/// Everything [`write_supply_chain`] wrote for one image.
#[derive(Debug, Clone)]
pub struct SupplyChain {
    pub subject: String,
    pub signature: Artifact,
    pub payload: Vec<u8>,
    pub sbom: Artifact,
    pub attestation: Artifact,
    pub fallback_index: Artifact,
}

/// Plain HTTP writes and reads against a harness registry, with `curl`.
pub struct Writer<'a> {
    reg: &'a Registry,
}

impl<'a> Writer<'a> {
    pub fn new(reg: &'a Registry) -> Writer<'a> {
        Writer { reg }
    }

    fn curl(&self) -> Command {
        let mut c = Command::new("curl");
        c.args(["-sS", "--noproxy", "*", "--fail-with-body"]);
        if let Some(ca) = self.reg.ca_cert_path() {
            c.arg("--cacert").arg(ca);
        }
        if let Some((u, p)) = self.reg.credentials() {
            c.arg("-u").arg(format!("{u}:{p}"));
        }
        c
    }

    /// Upload a blob: `POST` an upload session, then one `PUT` with the
    /// bytes and the digest; its digest.
    pub fn put_blob(&self, repo: &str, bytes: &[u8]) -> String {
        let d = sha256(bytes);
        let start = format!("{}/v2/{repo}/blobs/uploads/", self.reg.url());
        let location = run(
            self.curl().args(["-X", "POST", "-o", "/dev/null"]).args([
                "-w",
                "%header{location}",
                &start,
            ]),
            None,
        );
        let location = String::from_utf8(location).unwrap();
        let location = if location.starts_with('/') {
            format!("{}{location}", self.reg.url())
        } else {
            location
        };
        let sep = if location.contains('?') { '&' } else { '?' };
        let url = format!("{location}{sep}digest={d}");
        run(
            self.curl()
                .args(["-X", "PUT", "-H", "Content-Type: application/octet-stream"])
                .args(["--data-binary", "@-", &url]),
            Some(bytes),
        );
        d
    }

    /// PUT a manifest under a tag or digest; its digest.
    pub fn put_manifest(
        &self,
        repo: &str,
        reference: &str,
        media_type: &str,
        bytes: &[u8],
    ) -> String {
        let url = format!("{}/v2/{repo}/manifests/{reference}", self.reg.url());
        run(
            self.curl()
                .args(["-X", "PUT", "-H", &format!("Content-Type: {media_type}")])
                .args(["--data-binary", "@-", &url]),
            Some(bytes),
        );
        sha256(bytes)
    }

    /// GET a manifest by tag or digest: its bytes, or `None` on 404.
    pub fn get_manifest(&self, repo: &str, reference: &str) -> Option<Vec<u8>> {
        let url = format!("{}/v2/{repo}/manifests/{reference}", self.reg.url());
        let out = self
            .curl()
            .args(["-H", &format!("Accept: {OCI_MANIFEST}, {OCI_INDEX}")])
            .args(["-w", "\n%{http_code}", &url])
            .output()
            .expect("running curl");
        let mut body = out.stdout;
        let nl = body.iter().rposition(|b| *b == b'\n').expect("curl -w");
        let code = String::from_utf8_lossy(&body[nl + 1..]).to_string();
        body.truncate(nl);
        match code.as_str() {
            "200" => Some(body),
            "404" => None,
            other => panic!(
                "GET {url}: HTTP {other}: {}",
                String::from_utf8_lossy(&body)
            ),
        }
    }

    /// GET a blob's bytes.
    pub fn get_blob(&self, repo: &str, digest: &str) -> Vec<u8> {
        let url = format!("{}/v2/{repo}/blobs/{digest}", self.reg.url());
        run(self.curl().args(["-L", &url]), None)
    }

    /// cosign's signature of `subject` under `sha256-<hex>.sig`.
    pub fn sign(
        &self,
        repo: &str,
        subject: &str,
        docker_reference: &str,
        key: &UpstreamKey,
    ) -> (Artifact, Vec<u8>) {
        let payload = simple_signing_payload(docker_reference, subject);
        let signature = base64::engine::general_purpose::STANDARD.encode(key.sign(&payload));
        let payload_digest = self.put_blob(repo, &payload);
        let config = serde_json::to_vec(&json!({
            "architecture": "", "os": "", "config": {},
            "created": "0001-01-01T00:00:00Z",
            "history": [{"created": "0001-01-01T00:00:00Z"}],
            "rootfs": {"type": "layers", "diff_ids": [payload_digest]}
        }))
        .unwrap();
        let config_digest = self.put_blob(repo, &config);
        let manifest = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": IMAGE_CONFIG, "digest": config_digest, "size": config.len()},
            "layers": [{
                "mediaType": SIMPLE_SIGNING, "digest": payload_digest, "size": payload.len(),
                "annotations": {COSIGN_SIGNATURE_ANNOTATION: signature}
            }]
        }))
        .unwrap();
        let tag = format!("{}.sig", fallback_tag(subject));
        let digest = self.put_manifest(repo, &tag, OCI_MANIFEST, &manifest);
        let art = Artifact {
            digest,
            bytes: manifest,
            media_type: OCI_MANIFEST.into(),
            artifact_type: IMAGE_CONFIG.into(),
            tag: Some(tag),
        };
        (art, payload)
    }

    /// An OCI 1.1 artifact manifest referring to `subject` (pushed by digest).
    pub fn attach(
        &self,
        repo: &str,
        subject: &str,
        artifact_type: &str,
        layer_type: &str,
        content: &[u8],
    ) -> Artifact {
        let empty = self.put_blob(repo, b"{}");
        let layer = self.put_blob(repo, content);
        let subject_bytes = self
            .get_manifest(repo, subject)
            .unwrap_or_else(|| panic!("subject {repo}@{subject} is not in the registry"));
        let subject_type = serde_json::from_slice::<Value>(&subject_bytes).unwrap()["mediaType"]
            .as_str()
            .unwrap_or(OCI_MANIFEST)
            .to_string();
        let manifest = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": artifact_type,
            "config": {"mediaType": OCI_EMPTY, "digest": empty, "size": 2, "data": "e30="},
            "layers": [{"mediaType": layer_type, "digest": layer, "size": content.len()}],
            "subject": {"mediaType": subject_type, "digest": subject, "size": subject_bytes.len()},
            "annotations": {"org.opencontainers.image.created": "2026-01-01T00:00:00Z"}
        }))
        .unwrap();
        let digest = sha256(&manifest);
        self.put_manifest(repo, &digest, OCI_MANIFEST, &manifest);
        Artifact {
            digest,
            bytes: manifest,
            media_type: OCI_MANIFEST.into(),
            artifact_type: artifact_type.into(),
            tag: None,
        }
    }

    /// An SPDX 2.3 SBOM of `subject`.
    pub fn attach_sbom(&self, repo: &str, subject: &str) -> Artifact {
        let sbom = serde_json::to_vec(&json!({
            "spdxVersion": "SPDX-2.3", "dataLicense": "CC0-1.0", "SPDXID": "SPDXRef-DOCUMENT",
            "name": format!("{repo}@{subject}"),
            "documentNamespace": format!("https://sbom.example/{subject}"),
            "creationInfo": {"created": "2026-01-01T00:00:00Z", "creators": ["Tool: atp-testkit"]},
            "packages": [{"SPDXID": "SPDXRef-busybox", "name": "busybox", "versionInfo": "1.36.1",
                          "downloadLocation": "NOASSERTION"}]
        }))
        .unwrap();
        self.attach(repo, subject, SPDX, SPDX, &sbom)
    }

    /// An in-toto statement about `subject` in a DSSE envelope signed by `key`.
    pub fn attach_attestation(&self, repo: &str, subject: &str, key: &UpstreamKey) -> Artifact {
        let statement = serde_json::to_vec(&json!({
            "_type": "https://in-toto.io/Statement/v1",
            "subject": [{"name": repo, "digest": {"sha256": subject.trim_start_matches("sha256:")}}],
            "predicateType": "https://slsa.dev/provenance/v1",
            "predicate": {"buildDefinition": {"buildType": "https://atp-offline.example/test"}}
        }))
        .unwrap();
        // DSSE's pre-authentication encoding, signed as the envelope says.
        let mut pae =
            format!("DSSEv1 {} {IN_TOTO} {} ", IN_TOTO.len(), statement.len()).into_bytes();
        pae.extend_from_slice(&statement);
        let b64 = base64::engine::general_purpose::STANDARD;
        let envelope = serde_json::to_vec(&json!({
            "payloadType": IN_TOTO,
            "payload": b64.encode(&statement),
            "signatures": [{"keyid": "", "sig": b64.encode(key.sign(&pae))}]
        }))
        .unwrap();
        self.attach(repo, subject, IN_TOTO, DSSE, &envelope)
    }

    /// Write the `sha256-<hex>` index listing `entries` (descriptors).
    pub fn write_fallback_index(&self, repo: &str, subject: &str, entries: &[Value]) -> Artifact {
        let index = serde_json::to_vec(&json!({
            "schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries
        }))
        .unwrap();
        let tag = fallback_tag(subject);
        let digest = self.put_manifest(repo, &tag, OCI_INDEX, &index);
        Artifact {
            digest,
            bytes: index,
            media_type: OCI_INDEX.into(),
            artifact_type: String::new(),
            tag: Some(tag),
        }
    }

    /// The entries of `subject`'s fallback index in `repo` (empty when absent).
    pub fn fallback_entries(&self, repo: &str, subject: &str) -> Vec<Value> {
        self.get_manifest(repo, &fallback_tag(subject))
            .map(|b| {
                serde_json::from_slice::<Value>(&b).unwrap()["manifests"]
                    .as_array()
                    .unwrap()
                    .clone()
            })
            .unwrap_or_default()
    }

    /// Sign `subject` (cosign tag), attach an SBOM and an attestation, and
    /// list those two in the fallback index.
    pub fn write_supply_chain(
        &self,
        repo: &str,
        subject: &str,
        docker_reference: &str,
        key: &UpstreamKey,
    ) -> SupplyChain {
        let (signature, payload) = self.sign(repo, subject, docker_reference, key);
        let sbom = self.attach_sbom(repo, subject);
        let attestation = self.attach_attestation(repo, subject, key);
        let fallback_index = self.write_fallback_index(
            repo,
            subject,
            &[sbom.descriptor(), attestation.descriptor()],
        );
        SupplyChain {
            subject: subject.into(),
            signature,
            payload,
            sbom,
            attestation,
            fallback_index,
        }
    }

    /// Read `subject`'s cosign signature back from this registry and check
    /// it with `openssl dgst -verify` against `public_pem`: the payload of
    /// the layer whose signature verifies (cosign's `.sig` manifest holds one
    /// layer per signature), else a message saying what was wrong.
    pub fn verified_signature(
        &self,
        repo: &str,
        subject: &str,
        public_pem: &Path,
    ) -> Result<Value, String> {
        let tag = format!("{}.sig", fallback_tag(subject));
        let m = self
            .get_manifest(repo, &tag)
            .ok_or_else(|| format!("{repo}:{tag} is not in the registry"))?;
        let m: Value = serde_json::from_slice(&m).map_err(|e| e.to_string())?;
        let layers = m["layers"].as_array().ok_or("no layers")?;
        let mut why = Vec::new();
        for layer in layers {
            match self.verified_layer(repo, layer, public_pem) {
                Ok(payload) => return Ok(payload),
                Err(e) => why.push(e),
            }
        }
        Err(format!("no layer verifies: {}", why.join("; ")))
    }

    /// One signature layer checked against `public_pem`: its payload.
    fn verified_layer(
        &self,
        repo: &str,
        layer: &Value,
        public_pem: &Path,
    ) -> Result<Value, String> {
        if layer["mediaType"] != SIMPLE_SIGNING {
            return Err(format!("layer media type {}", layer["mediaType"]));
        }
        let sig = layer["annotations"][COSIGN_SIGNATURE_ANNOTATION]
            .as_str()
            .ok_or("no signature annotation")?;
        let sig = base64::engine::general_purpose::STANDARD
            .decode(sig)
            .map_err(|e| e.to_string())?;
        let payload = self.get_blob(repo, layer["digest"].as_str().ok_or("no layer digest")?);
        if sha256(&payload) != layer["digest"] {
            return Err("the payload blob does not hash to its digest".into());
        }
        if !openssl_verify(public_pem, &payload, &sig) {
            return Err("openssl dgst -verify: the signature does not verify".into());
        }
        serde_json::from_slice(&payload).map_err(|e| e.to_string())
    }
}
