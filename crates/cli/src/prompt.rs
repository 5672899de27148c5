//! The one way capstan asks a person: a yes/no question on standard error, the answer read
//! from the terminal.

use std::io::{BufRead as _, IsTerminal as _, Write as _};

/// Asks a yes/no question; an empty answer is `default`, the end of input is no. Callers make
/// sure standard input is a terminal ([`stdin_is_terminal`]), so this never waits on a pipe.
pub(crate) fn ask(question: &str, default: bool) -> std::io::Result<bool> {
    let hint = if default { "[Y/n]" } else { "[y/N]" };
    {
        let mut stderr = std::io::stderr().lock();
        write!(stderr, "{question} {hint} ")?;
        stderr.flush()?;
    }
    let mut answer = String::new();
    if std::io::stdin().lock().read_line(&mut answer)? == 0 {
        return Ok(false);
    }
    Ok(match answer.trim().to_ascii_lowercase().as_str() {
        "" => default,
        "y" | "yes" => true,
        _ => false,
    })
}

/// Asks before the cluster is changed: no, with the reason on standard error, when standard
/// input is not a terminal to answer on.
pub(crate) fn confirm_change(question: &str) -> bool {
    if !stdin_is_terminal() {
        let _ = writeln!(
            std::io::stderr(),
            "error: refusing to change the cluster without confirmation: standard input is not a \
             terminal; pass --yes"
        );
        return false;
    }
    ask(question, false).unwrap_or(false)
}

pub(crate) fn stdin_is_terminal() -> bool {
    std::io::stdin().is_terminal()
}
