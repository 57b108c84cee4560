//! Passwords from standard input (`--password-stdin` and the like). Never
//! echoes, logs or puts a password into an error.

use std::io::Read;

use anyhow::{bail, Context, Result};

/// Read a password from standard input for `flag` (e.g. `--password-stdin`):
/// everything up to EOF, trailing line endings removed. Empty input is an
/// error naming the flag.
pub fn from_stdin(flag: &str) -> Result<String> {
    let mut p = String::new();
    std::io::stdin()
        .read_to_string(&mut p)
        .with_context(|| format!("{flag}: reading the password from standard input"))?;
    match trim(&p) {
        "" => bail!(
            "{flag}: standard input was empty\nhint: printf '%s' \"$PASSWORD\" | <command> ... {flag}"
        ),
        p => Ok(p.to_string()),
    }
}

/// Ask for a password on the terminal (`/dev/tty`) with `prompt`, echo off,
/// and restore the terminal however the read ends.
pub fn prompt_hidden(prompt: &str) -> Result<String> {
    use rustix::termios::{tcgetattr, tcsetattr, LocalModes, OptionalActions};
    use std::io::{BufRead, Write};
    let tty = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")
        .context("opening the terminal (/dev/tty) to ask for a password")?;
    let saved = tcgetattr(&tty).context("reading the terminal's settings")?;
    let mut quiet = saved.clone();
    quiet.local_modes.remove(LocalModes::ECHO);
    quiet.local_modes.insert(LocalModes::ECHONL);
    tcsetattr(&tty, OptionalActions::Now, &quiet).context("turning the terminal's echo off")?;
    let read = (|| -> std::io::Result<String> {
        (&tty).write_all(prompt.as_bytes())?;
        (&tty).flush()?;
        let mut line = String::new();
        std::io::BufReader::new(&tty).read_line(&mut line)?;
        Ok(trim(&line).to_string())
    })();
    let restored = tcsetattr(&tty, OptionalActions::Now, &saved);
    let password = read.context("reading the password from the terminal")?;
    restored.context("restoring the terminal's echo")?;
    Ok(password)
}

/// The password without the line endings a shell `echo` or a file adds.
fn trim(p: &str) -> &str {
    p.trim_end_matches(['\n', '\r'])
}

#[cfg(test)]
mod tests {
    use super::trim;

    #[test]
    fn trailing_line_endings_are_removed_and_nothing_else() {
        assert_eq!(trim("pw\n"), "pw");
        assert_eq!(trim("pw\r\n"), "pw");
        assert_eq!(trim(" p w \n\n"), " p w ");
        assert_eq!(trim("\n"), "");
    }
}
