//! Issue 19, the connected side: `create` carries what refers to each image
//! (a cosign signature under its tag, an SPDX SBOM and an in-toto
//! attestation listed in the fallback tag index, a signature of the SBOM),
//! all written into a real docker-registry by the independent writer
//! (`atp_testkit::supply_chain`: openssl and curl, no code under test).
//! The bundle is reproducible, every bit flip in a referrer is found,
//! `spec.verify` holds images to an upstream key, and bad referrer data is
//! a clear error or a bounded skip.

mod common;
mod supply_chain_support;

use atp_testkit::fixtures::{self, BASE, MODEL_LOADER, ROUTER};
use atp_testkit::supply_chain::{
    fallback_tag, sha256, SupplyChain, UpstreamKey, Writer, OCI_MANIFEST, SPDX,
};
use atp_testkit::Registry;
use common::*;
use serde_json::{json, Value};

/// The source: base and router pushed to `up/`, each with a supply chain,
/// and a signature (by the same key) of base's SBOM, listed in the SBOM's
/// own fallback index.
struct Upstream {
    reg: Registry,
    key: UpstreamKey,
    base: String,
    router: String,
    base_chain: SupplyChain,
    router_chain: SupplyChain,
    nested: String,
}

fn upstream() -> Upstream {
    upstream_on(Registry::plain())
}

fn upstream_on(reg: Registry) -> Upstream {
    let key = UpstreamKey::generate();
    let base = fixtures::push(&reg, &BASE, "up/base");
    let router = fixtures::push(&reg, &ROUTER, "up/router");
    let w = Writer::new(&reg);
    let base_chain = w.write_supply_chain("up/base", &base, BASE.reference, &key);
    let router_chain = w.write_supply_chain("up/router", &router, ROUTER.reference, &key);
    let nested = w.attach(
        "up/base",
        &base_chain.sbom.digest,
        "application/vnd.dev.sigstore.bundle.v0.3+json",
        "application/vnd.dev.sigstore.bundle.v0.3+json",
        br#"{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json"}"#,
    );
    w.write_fallback_index("up/base", &base_chain.sbom.digest, &[nested.descriptor()]);
    Upstream {
        reg,
        key,
        base,
        router,
        base_chain,
        router_chain,
        nested: nested.digest,
    }
}

/// A spec over `images` (source path under the registry, name), with
/// `extra` lines under `spec:`.
fn spec(w: &Work, reg: &Registry, images: &[(&str, &str, &str)], extra: &str) -> String {
    let mut s = format!(
        "metadata: {{name: sc, version: '1'}}\nspec:\n  channel: c\n  sequence: 1\n{extra}  images:\n"
    );
    for (repo_tag, name, more) in images {
        s.push_str(&format!(
            "    - {{source: \"{}/{repo_tag}\", name: \"{name}\"{more}}}\n",
            reg.host()
        ));
    }
    std::fs::write(w.path("spec.yaml"), s).unwrap();
    w.s("spec.yaml")
}

fn both(w: &Work, up: &Upstream, extra: &str) -> String {
    spec(
        w,
        &up.reg,
        &[
            ("up/base:1.0.0", BASE.reference, ""),
            ("up/router:1.4.0", ROUTER.reference, ""),
        ],
        extra,
    )
}

fn create(w: &Work, reg: &Registry, spec: &str, out: &str, extra: &[&str]) -> std::process::Output {
    supply_chain_support::create_cmd(w, spec, out, Some(&reg.host()), extra)
        .env("SOURCE_DATE_EPOCH", "1790000000")
        .output()
        .unwrap()
}

fn inspect_image(w: &Work, bundle: &str, reference: &str) -> Value {
    let o = w.bundler(&["inspect", bundle, "--json"]);
    assert_ok(&o, "inspect");
    json(&o)["images"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["reference"] == reference)
        .unwrap_or_else(|| panic!("{reference} not in {bundle}"))
        .clone()
}

fn digests(image: &Value) -> Vec<String> {
    image["referrers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["digest"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn create_carries_signature_sbom_attestation_and_nested_reproducibly() {
    let up = upstream();
    let w = Work::new();
    let spec = both(&w, &up, "");
    let o = create(&w, &up.reg, &spec, "a.tar", &[]);
    assert_ok(&o, "create");
    assert!(
        text(&o).contains("referrers (signatures, attestations, SBOMs)"),
        "{}",
        text(&o)
    );

    let base = inspect_image(&w, "a.tar", BASE.reference);
    let c = &up.base_chain;
    // Under each subject by artifact type, then digest; the root's first,
    // then the SBOM's signature (nested).
    let mut under_root = vec![
        (
            c.signature.artifact_type.clone(),
            c.signature.digest.clone(),
        ),
        (c.sbom.artifact_type.clone(), c.sbom.digest.clone()),
        (
            c.attestation.artifact_type.clone(),
            c.attestation.digest.clone(),
        ),
    ];
    under_root.sort();
    let mut want: Vec<String> = under_root.into_iter().map(|(_, d)| d).collect();
    want.push(up.nested.clone());
    assert_eq!(digests(&base), want);
    let sig = base["referrers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["digest"] == c.signature.digest)
        .unwrap();
    assert_eq!(sig["tag"], format!("{}.sig", fallback_tag(&up.base)));
    assert_eq!(sig["subject"], up.base);
    let nested = base["referrers"].as_array().unwrap().last().unwrap();
    assert_eq!(nested["subject"], c.sbom.digest);
    assert!(nested.get("tag").is_none());

    let router = inspect_image(&w, "a.tar", ROUTER.reference);
    assert_eq!(digests(&router).len(), 3);
    assert!(digests(&router).contains(&up.router_chain.signature.digest));
    assert!(router["referrers"]
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["subject"] == up.router));

    // Text: the count and kinds, per image.
    let t = text(&w.bundler(&["inspect", "a.tar"]));
    assert!(
        t.contains("    4 referrers: application/spdx+json, application/vnd.in-toto+json, cosign signature, application/vnd.dev.sigstore.bundle.v0.3+json\n"),
        "{t}"
    );

    // Verified, and reported per image by the installer.
    let o = w.installer(&["verify", "a.tar", "--key", "k.pub", "--json"]);
    assert_ok(&o, "verify");
    let v = json(&o);
    let img = v["images"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["reference"] == BASE.reference)
        .unwrap();
    assert_eq!(img["referrers"].as_array().unwrap().len(), 4);
    assert_eq!(img["referrers"][0]["mediaType"], OCI_MANIFEST);
    let t = text(&w.installer(&["verify", "a.tar", "--key", "k.pub"]));
    assert!(
        t.contains("referrers carried (verified with the bundle):"),
        "{t}"
    );
    assert!(
        t.contains(&format!("{}: 4 referrers:", BASE.reference)),
        "{t}"
    );

    // The same inputs give the same bytes.
    assert_ok(&create(&w, &up.reg, &spec, "b.tar", &[]), "create again");
    assert_eq!(sha256_file(&w.path("a.tar")), sha256_file(&w.path("b.tar")));

    // The signature's payload is in the bundle, byte for byte.
    let bundle = std::fs::read(w.path("a.tar")).unwrap();
    let payload_digest = sha256(&c.payload);
    let payload_at = bundle
        .windows(c.payload.len())
        .position(|win| win == c.payload.as_slice());
    assert!(payload_at.is_some(), "payload {payload_digest} not carried");
}

#[test]
fn every_bit_flip_in_a_referrer_blob_is_detected() {
    let up = upstream();
    let w = Work::new();
    assert_ok(
        &create(&w, &up.reg, &both(&w, &up, ""), "a.tar", &[]),
        "create",
    );
    let good = std::fs::read(w.path("a.tar")).unwrap();
    let key = atp_bundle::keys::load_public_file(&w.path("k.pub")).unwrap();
    let now = time::OffsetDateTime::now_utc();
    let report = atp_bundle::verify::verify_reader(&good[..], &key, now);
    assert!(report.is_ok(), "{:#?}", report.findings);
    // The referrers' manifests and every blob they reference.
    let c = &up.base_chain;
    let mut wanted: Vec<String> = vec![c.signature.digest.clone(), sha256(&c.payload)];
    for a in [&c.sbom, &c.attestation] {
        wanted.push(a.digest.clone());
        let m: Value = serde_json::from_slice(&a.bytes).unwrap();
        wanted.push(m["layers"][0]["digest"].as_str().unwrap().to_string());
    }
    wanted.push(up.nested.clone());
    let mut checked = 0;
    for b in report
        .blobs
        .iter()
        .filter(|b| wanted.contains(&b.digest.to_string()))
    {
        // One bit in every 7th byte, plus the first and last byte.
        let mut at: Vec<u64> = (0..b.size).step_by(7).collect();
        at.push(b.size - 1);
        for i in at {
            let mut bad = good.clone();
            bad[(b.data_offset + i) as usize] ^= 1 << (i % 8);
            let r = atp_bundle::verify::verify_reader(&bad[..], &key, now);
            assert!(
                r.findings
                    .iter()
                    .any(|f| f.digest.as_ref() == Some(&b.digest)),
                "flip at byte {i} of {} not named: {:#?}",
                b.digest,
                r.findings
            );
            checked += 1;
        }
    }
    assert_eq!(
        report
            .blobs
            .iter()
            .filter(|b| wanted.contains(&b.digest.to_string()))
            .count(),
        wanted.len(),
        "every referrer blob is in the bundle"
    );
    assert!(checked > 100, "{checked}");

    // The command line says so too, with exit code 1.
    let b = report
        .blobs
        .iter()
        .find(|b| b.digest.to_string() == c.sbom.digest)
        .unwrap();
    let mut bad = good.clone();
    bad[(b.data_offset + 3) as usize] ^= 0x10;
    std::fs::write(w.path("bad.tar"), bad).unwrap();
    let o = w.installer(&["verify", "bad.tar", "--key", "k.pub"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains(&c.sbom.digest), "{}", text(&o));
}

#[test]
fn referrers_flag_and_spec_choose_what_is_carried() {
    let up = upstream();
    let w = Work::new();
    let spec = both(&w, &up, "");
    assert_ok(
        &create(&w, &up.reg, &spec, "n.tar", &["--referrers", "none"]),
        "none",
    );
    assert!(digests(&inspect_image(&w, "n.tar", BASE.reference)).is_empty());
    let idx = std::process::Command::new("tar")
        .args(["xOf", "n.tar", "index.json"])
        .current_dir(w.dir.path())
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&idx.stdout).contains("referrer"));

    let mark = up.reg.access_log().len();
    assert_ok(
        &create(&w, &up.reg, &spec, "s.tar", &["--referrers", "signatures"]),
        "signatures",
    );
    // The fallback index gives their types: the SBOM and the attestation
    // are never fetched.
    let c = &up.base_chain;
    let fetched: Vec<String> = up
        .reg
        .access_log_since(mark)
        .into_iter()
        .filter(|a| a.path.contains(&c.sbom.digest) || a.path.contains(&c.attestation.digest))
        .map(|a| a.path)
        .collect();
    assert!(fetched.is_empty(), "{fetched:?}");
    assert_eq!(
        digests(&inspect_image(&w, "s.tar", BASE.reference)),
        [up.base_chain.signature.digest.as_str()]
    );

    let spec = both(
        &w,
        &up,
        &format!("  referrers: {{mode: all, artifactTypes: [\"{SPDX}\"]}}\n"),
    );
    assert_ok(&create(&w, &up.reg, &spec, "t.tar", &[]), "artifactTypes");
    assert_eq!(
        digests(&inspect_image(&w, "t.tar", BASE.reference)),
        [up.base_chain.sbom.digest.as_str()]
    );
    // The flag overrides the spec's mode.
    assert_ok(
        &create(&w, &up.reg, &spec, "u.tar", &["--referrers", "none"]),
        "override",
    );
    assert!(digests(&inspect_image(&w, "u.tar", BASE.reference)).is_empty());
}

#[test]
fn spec_verify_refuses_unsigned_wrong_key_and_other_digest_and_accepts_the_signed() {
    let up = upstream();
    let w = Work::new();
    let key = up.key.public_pem_path().display().to_string();
    let verify = format!("  verify: {{key: \"{key}\"}}\n");

    // Signed by the key, naming their own digests: accepted.
    assert_ok(
        &create(&w, &up.reg, &both(&w, &up, &verify), "ok.tar", &[]),
        "signed",
    );

    // An unsigned image is refused, naming it; no bundle is written.
    fixtures::push(&up.reg, &MODEL_LOADER, "up/loader");
    let images = [
        ("up/base:1.0.0", BASE.reference, ""),
        ("up/loader:1.4.0", MODEL_LOADER.reference, ""),
    ];
    let o = create(
        &w,
        &up.reg,
        &spec(&w, &up.reg, &images, &verify),
        "x.tar",
        &[],
    );
    assert!(!o.status.success());
    let t = text(&o);
    assert!(t.contains(MODEL_LOADER.reference), "{t}");
    assert!(t.contains("spec.verify: no cosign signature of"), "{t}");
    assert!(!w.path("x.tar").exists());

    // Signed by another key: refused.
    let other = UpstreamKey::generate();
    let wr = Writer::new(&up.reg);
    let loader = fixtures::index_digest(&MODEL_LOADER);
    wr.sign("up/loader", &loader, MODEL_LOADER.reference, &other);
    let o = create(
        &w,
        &up.reg,
        &spec(&w, &up.reg, &images, &verify),
        "x.tar",
        &[],
    );
    assert!(!o.status.success());
    let t = text(&o);
    assert!(t.contains("1 signature(s) under"), "{t}");
    assert!(t.contains("none made by the key"), "{t}");

    // Per image: the loader held to the other key is accepted.
    let per_image = [
        ("up/base:1.0.0", BASE.reference, ""),
        (
            "up/loader:1.4.0",
            MODEL_LOADER.reference,
            &*format!(
                ", verify: {{key: \"{}\"}}",
                other.public_pem_path().display()
            ),
        ),
    ];
    assert_ok(
        &create(
            &w,
            &up.reg,
            &spec(&w, &up.reg, &per_image, &verify),
            "p.tar",
            &[],
        ),
        "per-image key",
    );

    // Base's signature copied under the loader's tag: by the key, but it
    // names base's digest.
    let base_sig = wr
        .get_manifest("up/base", &format!("{}.sig", fallback_tag(&up.base)))
        .unwrap();
    let m: Value = serde_json::from_slice(&base_sig).unwrap();
    for d in [&m["config"]["digest"], &m["layers"][0]["digest"]] {
        let bytes = wr.get_blob("up/base", d.as_str().unwrap());
        wr.put_blob("up/loader", &bytes);
    }
    wr.put_manifest(
        "up/loader",
        &format!("{}.sig", fallback_tag(&loader)),
        OCI_MANIFEST,
        &base_sig,
    );
    let o = create(
        &w,
        &up.reg,
        &spec(&w, &up.reg, &images, &verify),
        "x.tar",
        &[],
    );
    assert!(!o.status.success());
    let t = text(&o);
    assert!(
        t.contains(&format!(
            "names the manifest digest {}, not the image's {loader}",
            up.base
        )),
        "{t}"
    );
}

#[test]
fn a_listed_referrer_that_does_not_exist_is_an_error_naming_it() {
    let up = upstream();
    let w = Work::new();
    let wr = Writer::new(&up.reg);
    // docker-registry refuses an index naming a manifest it lacks: list a
    // real one, then delete it.
    let ghost = wr.attach(
        "up/base",
        &up.base,
        SPDX,
        SPDX,
        b"{\"spdxVersion\":\"SPDX-2.3\"}",
    );
    let mut entries = wr.fallback_entries("up/base", &up.base);
    entries.push(ghost.descriptor());
    wr.write_fallback_index("up/base", &up.base, &entries);
    let del = std::process::Command::new("curl")
        .args(["-sS", "--noproxy", "*", "--fail-with-body", "-X", "DELETE"])
        .arg(format!(
            "{}/v2/up/base/manifests/{}",
            up.reg.url(),
            ghost.digest
        ))
        .output()
        .unwrap();
    assert_ok(&del, "curl DELETE");
    let o = create(&w, &up.reg, &both(&w, &up, ""), "x.tar", &[]);
    assert!(!o.status.success());
    let t = text(&o);
    assert!(t.contains(&ghost.digest), "{t}");
    assert!(t.contains("the manifest is not there"), "{t}");
    assert!(!w.path("x.tar").exists());
}

#[test]
fn a_referrer_whose_subject_is_another_image_is_an_error() {
    let up = upstream();
    let w = Work::new();
    let wr = Writer::new(&up.reg);
    // The router's SBOM (subject: router) listed as one of base's. The
    // writer puts it in up/router; copy it (and its blobs) to up/base.
    let sbom = &up.router_chain.sbom;
    let m: Value = serde_json::from_slice(&sbom.bytes).unwrap();
    for d in [&m["config"]["digest"], &m["layers"][0]["digest"]] {
        let bytes = wr.get_blob("up/router", d.as_str().unwrap());
        wr.put_blob("up/base", &bytes);
    }
    wr.put_manifest("up/base", &sbom.digest, OCI_MANIFEST, &sbom.bytes);
    let mut entries = wr.fallback_entries("up/base", &up.base);
    entries.push(sbom.descriptor());
    wr.write_fallback_index("up/base", &up.base, &entries);
    let o = create(&w, &up.reg, &both(&w, &up, ""), "x.tar", &[]);
    assert!(!o.status.success());
    let t = text(&o);
    assert!(t.contains(&sbom.digest), "{t}");
    assert!(t.contains(&format!("its subject is {}", up.router)), "{t}");
}

#[test]
fn a_loop_of_referrers_ends_and_carries_each_once() {
    let up = upstream();
    let w = Work::new();
    let wr = Writer::new(&up.reg);
    // The SBOM's nested signature lists the SBOM back, and base's own index
    // lists base itself: both already carried.
    let c = &up.base_chain;
    let back = json!({"mediaType": OCI_MANIFEST, "digest": c.sbom.digest, "size": c.sbom.bytes.len(), "artifactType": SPDX});
    wr.write_fallback_index("up/base", &up.nested, &[back]);
    let base_bytes = wr.get_manifest("up/base", &up.base).unwrap();
    let mut entries = wr.fallback_entries("up/base", &up.base);
    entries
        .push(json!({"mediaType": BASE.media_type, "digest": up.base, "size": base_bytes.len()}));
    wr.write_fallback_index("up/base", &up.base, &entries);
    let o = create(&w, &up.reg, &both(&w, &up, ""), "l.tar", &[]);
    assert_ok(&o, "create with a loop");
    let got = digests(&inspect_image(&w, "l.tar", BASE.reference));
    assert_eq!(got.len(), 4, "{got:?}");
    assert_ok(
        &w.installer(&["verify", "l.tar", "--key", "k.pub"]),
        "verify",
    );
}

#[test]
fn a_huge_fallback_index_is_skipped_with_a_warning() {
    let up = upstream();
    let w = Work::new();
    let wr = Writer::new(&up.reg);
    // 1,500 entries (the SBOM again and again: docker-registry only takes
    // an index whose manifests it holds), over the bound of 1,024.
    let sbom = &up.base_chain.sbom;
    let entries: Vec<Value> = (0..1500)
        .map(|i| {
            let mut d = sbom.descriptor();
            d["annotations"] = json!({"n": i.to_string()});
            d
        })
        .collect();
    wr.write_fallback_index("up/base", &up.base, &entries);
    let mark = up.reg.access_log().len();
    let o = create(&w, &up.reg, &both(&w, &up, ""), "h.tar", &[]);
    assert_ok(&o, "create");
    assert!(text(&o).contains("skipping referrers"), "{}", text(&o));
    assert!(text(&o).contains("over the limit of 1024"), "{}", text(&o));
    // Only the cosign signature (by tag) came along for base; the listed
    // SBOM was not even asked for.
    let base = inspect_image(&w, "h.tar", BASE.reference);
    assert_eq!(digests(&base), [up.base_chain.signature.digest.as_str()]);
    let asked = up
        .reg
        .access_log_since(mark)
        .iter()
        .filter(|a| a.path.contains(&sbom.digest))
        .count();
    assert_eq!(asked, 0);
}

#[test]
fn a_pruned_index_carries_its_platform_manifests_referrers_and_is_verified_as_upstream_signed() {
    let up = upstream();
    let w = Work::new();
    let wr = Writer::new(&up.reg);
    let index: Value =
        serde_json::from_slice(&wr.get_manifest("up/router", &up.router).unwrap()).unwrap();
    let arm = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["platform"]["architecture"] == "arm64")
        .unwrap()["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let sbom = wr.attach_sbom("up/router", &arm);
    wr.write_fallback_index("up/router", &arm, &[sbom.descriptor()]);
    // spec.verify checks the signature of the index upstream signed, the
    // one before pruning.
    let key = up.key.public_pem_path().display().to_string();
    let spec = both(&w, &up, &format!("  verify: {{key: \"{key}\"}}\n"));
    let o = create(
        &w,
        &up.reg,
        &spec,
        "arm.tar",
        &["--platform", "linux/arm64"],
    );
    assert_ok(&o, "create --platform with spec.verify");
    // The index's referrers name the source index, which is not carried:
    // only the arm64 manifest's SBOM comes along.
    let router = inspect_image(&w, "arm.tar", ROUTER.reference);
    assert_ne!(router["digest"], up.router);
    assert_eq!(digests(&router), [sbom.digest.as_str()]);
    assert_eq!(router["referrers"][0]["subject"], arm);
    assert_ok(
        &w.installer(&["verify", "arm.tar", "--key", "k.pub"]),
        "verify",
    );
}

#[test]
fn nesting_is_followed_to_a_depth_of_three() {
    let reg = Registry::plain();
    let base = fixtures::push(&reg, &BASE, "up/base");
    let wr = Writer::new(&reg);
    // A chain: each artifact refers to the one before, the first to base,
    // each listed in its subject's fallback index.
    let mut subject = base.clone();
    let mut chain = Vec::new();
    for i in 0..4 {
        let a = wr.attach(
            "up/base",
            &subject,
            SPDX,
            SPDX,
            format!("{{\"depth\":{i}}}").as_bytes(),
        );
        wr.write_fallback_index("up/base", &subject, &[a.descriptor()]);
        subject = a.digest.clone();
        chain.push(a.digest);
    }
    let w = Work::new();
    let spec = spec(&w, &reg, &[("up/base:1.0.0", BASE.reference, "")], "");
    assert_ok(&create(&w, &reg, &spec, "d.tar", &[]), "create");
    assert_eq!(
        digests(&inspect_image(&w, "d.tar", BASE.reference)),
        chain[..3]
    );
}

#[test]
fn local_sources_carry_no_referrers_and_cannot_be_held_to_spec_verify() {
    let w = Work::new();
    assert_ok(&w.create_demo("demo.tar", &[]), "create the demo");
    let o = w.bundler(&["inspect", "demo.tar", "--json"]);
    assert_ok(&o, "inspect");
    for img in json(&o)["images"].as_array().unwrap() {
        assert_eq!(img["referrers"], json!([]), "{}", img["reference"]);
    }
    let key = UpstreamKey::generate();
    let layout = BASE.path();
    std::fs::write(
        w.path("spec.yaml"),
        format!(
            "metadata: {{name: l, version: '1'}}\nspec:\n  channel: c\n  sequence: 1\n  verify: {{key: \"{}\"}}\n  images:\n    - {{source: \"oci:{}:{}\", name: \"{}\"}}\n",
            key.public_pem_path().display(),
            layout.display(),
            BASE.tag,
            BASE.reference
        ),
    )
    .unwrap();
    let o = supply_chain_support::create_cmd(&w, &w.s("spec.yaml"), "x.tar", None, &[])
        .output()
        .unwrap();
    assert!(!o.status.success(), "{}", text(&o));
    let t = text(&o);
    assert!(t.contains("spec.verify needs a registry source"), "{t}");
    assert!(t.contains(BASE.reference), "{t}");
    assert!(!w.path("x.tar").exists());
}

#[test]
fn referrers_are_read_with_the_source_registrys_credentials() {
    let up = upstream_on(Registry::basic());
    let w = Work::new();
    let spec = both(&w, &up, "");
    let o = create(&w, &up.reg, &spec, "a.tar", &[]);
    assert!(!o.status.success(), "anonymous: {}", text(&o));
    let (user, password) = up.reg.credentials().unwrap();
    w.docker_login(&up.reg.host(), &user, &password);
    let o = create(&w, &up.reg, &spec, "a.tar", &[]);
    assert_ok(&o, "create with basic auth");
    assert!(
        !text(&o).contains(&password),
        "password leaked: {}",
        text(&o)
    );
    assert_eq!(
        digests(&inspect_image(&w, "a.tar", BASE.reference)).len(),
        4
    );
    assert_eq!(
        digests(&inspect_image(&w, "a.tar", ROUTER.reference)).len(),
        3
    );
}
