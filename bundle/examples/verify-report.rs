//! Prints the verifier's findings for bundle files: a debugging aid for the
//! broken corpus. `cargo run -p atp-bundle --example verify-report -- KEY.pub NOW FILE...`
//! (NOW as 2026-11-28T00:00:00Z). Never modifies its inputs.

use std::path::Path;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [key, now, files @ ..] = &args[..] else {
        eprintln!("usage: verify-report KEY.pub NOW FILE...");
        std::process::exit(2);
    };
    let key = atp_bundle::keys::load_public_file(Path::new(key)).expect("key");
    let now = atp_bundle::format::info::parse_time(now).expect("NOW like 2026-11-28T00:00:00Z");
    for f in files {
        let r = atp_bundle::verify_file(Path::new(f), &key, now).expect("open");
        println!(
            "{f}: {} finding(s), {} blobs verified",
            r.findings.len(),
            r.blobs.len()
        );
        for x in &r.findings {
            println!("  [{:?}] {x}", x.kind);
        }
    }
}
