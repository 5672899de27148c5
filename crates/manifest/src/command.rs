//! Runs a stage's render command: its standard error streams to the caller line by line while
//! it runs, its standard output is the result.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;

use crate::Error;

/// How many of the last standard error lines a failure reports.
const STDERR_TAIL: usize = 20;

/// What a successful command printed on standard output; `variables` are added to the
/// environment it inherits (a target's `variables`).
pub(crate) fn run(
    stage: &str,
    argv: &[String],
    dir: &Path,
    variables: &BTreeMap<String, String>,
    on_stderr: &mut dyn FnMut(&str),
) -> Result<Vec<u8>, Error> {
    let Some((program, args)) = argv.split_first() else {
        let source = std::io::Error::new(std::io::ErrorKind::InvalidInput, "the command is empty");
        return Err(Error::CommandSpawn {
            stage: stage.to_owned(),
            program: String::new(),
            cause: source,
        });
    };
    let mut child = Command::new(program)
        .args(args)
        .envs(variables)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| Error::CommandSpawn {
            stage: stage.to_owned(),
            program: program.clone(),
            cause: source,
        })?;
    let (Some(mut stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
        unreachable!("both streams are piped")
    };
    // Both pipes are drained at once: a command that fills one while capstan waits on the
    // other would otherwise never finish.
    let output = thread::spawn(move || {
        let mut bytes = Vec::new();
        stdout.read_to_end(&mut bytes).map(|_| bytes)
    });
    let (lines, received) = mpsc::channel();
    let errors = thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    let mut tail = Vec::new();
    for line in received {
        on_stderr(&line);
        if tail.len() == STDERR_TAIL {
            tail.remove(0);
        }
        tail.push(line);
    }
    let _ = errors.join();
    let output = output.join().unwrap_or_else(|_| Ok(Vec::new()));
    let status = child.wait();
    let failed = |status: String| Error::CommandFailed {
        stage: stage.to_owned(),
        command: argv.join(" "),
        status,
        stderr_tail: tail.clone(),
    };
    match (status, output) {
        (Ok(status), Ok(output)) if status.success() => Ok(output),
        (Ok(status), Err(error)) if status.success() => {
            Err(failed(format!("output could not be read: {error}")))
        }
        (Ok(status), _) => Err(failed(describe(status))),
        (Err(error), _) => Err(failed(format!("could not be waited for: {error}"))),
    }
}

fn describe(status: ExitStatus) -> String {
    #[cfg(unix)]
    if let Some(signal) = std::os::unix::process::ExitStatusExt::signal(&status) {
        return format!("was killed by signal {signal}");
    }
    match status.code() {
        Some(code) => format!("exited with code {code}"),
        None => format!("ended with {status}"),
    }
}
