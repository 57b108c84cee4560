//! The error printer of both binaries: each error once, its cause chain once,
//! the `hint:` lines last, and every hint in the words the user types.
//!
//! Library errors often embed their cause in their own message (`cannot read
//! X: No such file or directory`) and also return it as `source()`; printing
//! the anyhow chain as is says everything twice. Here a cause whose text the
//! message already holds is left out.
//!
//! Library hints name a setting of the library (`` `ca_file` ``); each command
//! passes a [`Vocabulary`] that says which flag sets it. Never prints
//! anything but the error's own text.

/// How a command spells a library setting: (`` `setting` `` as the library's
/// hints write it, what the user types instead).
pub type Vocabulary = &'static [(&'static str, &'static str)];

/// The error as printed: `error: <message>[: <cause>]...`, then one
/// `hint: ...` line per distinct hint, in the order they were found.
pub fn render(err: &anyhow::Error, vocabulary: Vocabulary) -> String {
    let mut said: Vec<String> = Vec::new();
    let mut hints: Vec<String> = Vec::new();
    let causes: Vec<(String, Vec<String>)> = err
        .chain()
        .map(|cause| {
            let (message, found) = split_hints(&cause.to_string());
            (message.trim().to_string(), found)
        })
        .collect();
    for (i, (message, found)) in causes.iter().enumerate() {
        for h in found {
            if !hints.contains(h) {
                hints.push(h.clone());
            }
        }
        let already = |m: &str| !m.is_empty() && said.iter().any(|s| s.contains(m));
        // A cause already said, or a wrapper of one: when a deeper cause is
        // already said, the ones between (`error sending request for url
        // (...)`, `client error (Connect)`) only repeat it less clearly.
        if message.is_empty() || already(message) || causes[i + 1..].iter().any(|(m, _)| already(m))
        {
            continue;
        }
        said.push(message.clone());
    }
    let mut out = format!("error: {}", said.join(": "));
    for h in hints {
        out.push_str("\nhint: ");
        out.push_str(&h);
    }
    for (setting, flag) in vocabulary {
        out = out.replace(setting, flag);
    }
    out
}

/// Print [`render`] on stderr.
pub fn print(err: &anyhow::Error, vocabulary: Vocabulary) {
    eprintln!("{}", render(err, vocabulary));
}

/// A message without its hints, and the hints: each starts at `hint: ` at
/// the start of the text, of a line, or after `; `, and runs to the next.
fn split_hints(text: &str) -> (String, Vec<String>) {
    const MARKS: [&str; 2] = ["\nhint: ", "; hint: "];
    let first = |s: &str| {
        MARKS
            .iter()
            .filter_map(|m| s.find(m).map(|i| (i, m.len())))
            .min()
    };
    let (message, mut rest) = match text.strip_prefix("hint: ") {
        Some(rest) => ("", Some(rest)),
        None => match first(text) {
            Some((i, len)) => (&text[..i], Some(&text[i + len..])),
            None => (text, None),
        },
    };
    let mut hints = Vec::new();
    while let Some(r) = rest {
        let (hint, next) = match first(r) {
            Some((i, len)) => (&r[..i], Some(&r[i + len..])),
            None => (r, None),
        };
        let hint = hint.trim();
        if !hint.is_empty() {
            hints.push(hint.to_string());
        }
        rest = next;
    }
    (message.to_string(), hints)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Embeds(std::io::Error);
    impl std::fmt::Display for Embeds {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "cannot read b.tar: {}\nhint: check the path", self.0)
        }
    }
    impl std::error::Error for Embeds {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    fn missing() -> std::io::Error {
        std::io::Error::from(std::io::ErrorKind::NotFound)
    }

    #[test]
    fn a_cause_the_message_embeds_is_said_once() {
        let e = anyhow::Error::new(Embeds(missing())).context("verifying b.tar");
        let shown = render(&e, &[]);
        let io = missing().to_string();
        assert_eq!(shown.matches(&io).count(), 1, "{shown}");
        assert_eq!(
            shown,
            format!("error: verifying b.tar: cannot read b.tar: {io}\nhint: check the path")
        );
    }

    #[test]
    fn a_cause_not_in_the_message_is_kept_and_hints_come_last() {
        let e = anyhow::Error::new(missing())
            .context("wrong password for k.key; hint: set ATP_KEY_PASSWORD")
            .context("wrong password for k.key; hint: set ATP_KEY_PASSWORD")
            .context("loading the signing key");
        let shown = render(&e, &[]);
        assert_eq!(
            shown,
            format!(
                "error: loading the signing key: wrong password for k.key: {}\nhint: set ATP_KEY_PASSWORD",
                missing()
            )
        );
    }

    #[derive(Debug)]
    struct Wraps(&'static str, std::io::Error);
    impl std::fmt::Display for Wraps {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.0)
        }
    }
    impl std::error::Error for Wraps {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.1)
        }
    }

    #[test]
    fn wrappers_of_a_cause_the_message_already_says_are_left_out() {
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        let e = anyhow::Error::new(Wraps(
            "error sending request for url (http://r/v2/)",
            refused,
        ))
        .context(format!(
            "GET http://r/v2/: connection refused ({})\nhint: check the port",
            std::io::Error::from(std::io::ErrorKind::ConnectionRefused)
        ));
        let shown = render(&e, &[]);
        assert!(!shown.contains("error sending request"), "{shown}");
        assert_eq!(shown.lines().count(), 2, "{shown}");
    }

    #[test]
    fn library_settings_become_the_commands_flags() {
        let e = anyhow::anyhow!(
            "GET https://r/v2/: TLS failure\nhint: pass the registry's CA with `ca_file` (or `plain_http`)"
        );
        let shown = render(
            &e,
            &[
                ("`ca_file`", "--registry-ca"),
                ("`plain_http`", "--plain-http"),
            ],
        );
        assert!(
            shown.ends_with("\nhint: pass the registry's CA with --registry-ca (or --plain-http)"),
            "{shown}"
        );
    }

    #[test]
    fn several_hints_each_get_a_line() {
        let (m, h) = split_hints("bad spec\nhint: fix a\nhint: fix b; hint: fix c");
        assert_eq!(m, "bad spec");
        assert_eq!(h, ["fix a", "fix b", "fix c"]);
        let (m, h) = split_hints("hint: only a hint");
        assert_eq!((m.as_str(), h.len()), ("", 1));
    }
}
