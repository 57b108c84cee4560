//! Regenerates the committed fixture images:
//! `cargo run -p atp-testkit --bin gen-fixtures -- fixtures/images`.
//!
//! Output is byte-for-byte reproducible (see `atp_testkit::fixture_gen`);
//! it replaces only the fixture layout directories under the given path.

fn main() -> anyhow::Result<()> {
    let out = std::env::args_os()
        .nth(1)
        .map(std::path::PathBuf::from)
        .unwrap_or_else(atp_testkit::fixtures::images_dir);
    atp_testkit::fixture_gen::generate(&out)?;
    println!("fixture images written to {}", out.display());
    Ok(())
}
