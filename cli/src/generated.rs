//! Shell completions (bash, zsh, fish) and man pages, generated from a
//! binary's clap definition into `docs/completions` and `docs/man`, and the
//! check that the committed copies are current. Each binary's unit test
//! calls [`check_or_write`]; `make generated` runs those tests with
//! [`WRITE_VAR`] set to rewrite the files. Never writes outside `docs_dir`.

use std::path::{Path, PathBuf};

use clap_complete::Shell;

/// Set to rewrite the files instead of checking them (`make generated`).
pub const WRITE_VAR: &str = "ATP_WRITE_GENERATED";

/// Every generated file of `cmd`: its path under the docs folder, and bytes.
pub fn files(cmd: clap::Command) -> Vec<(PathBuf, Vec<u8>)> {
    let mut cmd = cmd;
    cmd.build();
    let bin = cmd.get_name().to_string();
    let mut out = Vec::new();
    for (shell, file) in [
        (Shell::Bash, format!("{bin}.bash")),
        (Shell::Zsh, format!("_{bin}")),
        (Shell::Fish, format!("{bin}.fish")),
    ] {
        let mut buf = Vec::new();
        clap_complete::generate(shell, &mut cmd.clone(), bin.clone(), &mut buf);
        out.push((Path::new("completions").join(file), buf));
    }
    let man = |c: clap::Command, name: String| {
        let mut buf = Vec::new();
        clap_mangen::Man::new(c)
            .render(&mut buf)
            .expect("rendering into memory");
        (Path::new("man").join(format!("{name}.1")), buf)
    };
    out.push(man(cmd.clone(), bin.clone()));
    for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
        let name = format!("{bin}-{}", sub.get_name());
        // clap names are `&'static str` without its `string` feature; a few
        // bytes per subcommand, once per run of the check.
        let leaked: &'static str = Box::leak(name.clone().into_boxed_str());
        out.push(man(sub.clone().name(leaked), name));
    }
    out
}

/// The generated files of `cmd` that are missing or differ under `docs_dir`.
pub fn stale(cmd: clap::Command, docs_dir: &Path) -> Vec<PathBuf> {
    files(cmd)
        .into_iter()
        .filter(|(rel, bytes)| std::fs::read(docs_dir.join(rel)).ok().as_ref() != Some(bytes))
        .map(|(rel, _)| rel)
        .collect()
}

/// Rewrite every generated file of `cmd` under `docs_dir`.
pub fn write(cmd: clap::Command, docs_dir: &Path) -> std::io::Result<()> {
    for (rel, bytes) in files(cmd) {
        let path = docs_dir.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&path, bytes)?;
    }
    Ok(())
}

/// For a unit test: with [`WRITE_VAR`] set, rewrite the files; otherwise
/// panic naming every stale one and the command that brings them up to date.
pub fn check_or_write(cmd: clap::Command, docs_dir: &Path) {
    if std::env::var_os(WRITE_VAR).is_some() {
        write(cmd, docs_dir).expect("writing the generated completions and man pages");
        return;
    }
    let stale = stale(cmd, docs_dir);
    assert!(
        stale.is_empty(),
        "completions or man pages are not current under {}: {stale:#?}\nhint: run `make generated` and commit the result",
        docs_dir.display()
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn demo() -> clap::Command {
        clap::Command::new("demo").version("1").subcommand(
            clap::Command::new("run").about("Run it").arg(
                clap::Arg::new("fast")
                    .long("fast")
                    .help("Go fast")
                    .action(clap::ArgAction::SetTrue),
            ),
        )
    }

    #[test]
    fn a_written_tree_is_current_and_a_changed_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let names: Vec<PathBuf> = files(demo()).into_iter().map(|(p, _)| p).collect();
        for want in [
            "completions/demo.bash",
            "completions/_demo",
            "completions/demo.fish",
            "man/demo.1",
            "man/demo-run.1",
        ] {
            assert!(names.contains(&PathBuf::from(want)), "{want}: {names:?}");
        }
        assert_eq!(stale(demo(), dir.path()).len(), names.len());
        write(demo(), dir.path()).unwrap();
        assert!(stale(demo(), dir.path()).is_empty());
        std::fs::write(dir.path().join("man/demo-run.1"), "old").unwrap();
        assert_eq!(stale(demo(), dir.path()), [PathBuf::from("man/demo-run.1")]);
    }
}
