//! `capstan`: day-2 GitOps operations on Kubernetes from one command.
//!
//! The binary is a thin layer over capstan's library crates: it parses arguments, reads the
//! project's `capstan.yaml`, calls the libraries with progress and confirmation callbacks, and
//! turns their typed results into output and exit codes.

use std::io::Write as _;

use clap::{Args, CommandFactory as _, FromArgMatches as _, Parser, Subcommand};

mod capi;
mod certs;
mod cluster;
mod deploy;
mod drift;
mod fleet;
mod handoff;
mod hints;
mod history;
mod inspect;
mod kluctl;
mod local;
mod node;
mod output;
mod plugins;
mod progress;
mod prompt;
mod render;
mod rollback;
mod runtime;
mod secrets;
mod show;
mod stage;

/// Day-2 GitOps operations on Kubernetes: deploy stages with discriminator-based pruning,
/// SOPS secrets, ClusterAPI and cert-manager operations.
#[derive(Debug, Parser)]
#[command(
    name = "capstan",
    version,
    about,
    after_help = "Exit codes: 0 success; 1 `diff` found differences or `status` found objects \
                  that are not ready; 2 failure of any kind, invalid manifests included; on \
                  several targets, 2 when any target failed, else 1 when any differs. \
                  `capstan secrets` uses sops' codes for the failures scripts check (see \
                  the README's secrets section)."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// The commands; each one's help is the doc comment of its arguments' struct.
#[derive(Debug, Subcommand)]
enum Command {
    Render(render::RenderArgs),
    Validate(render::ValidateArgs),
    Secrets(secrets::SecretsArgs),
    Local(local::LocalArgs),
    Deploy(deploy::DeployArgs),
    Diff(deploy::DiffArgs),
    Drift(drift::DriftArgs),
    Prune(deploy::PruneArgs),
    History(history::HistoryArgs),
    Rollback(rollback::RollbackArgs),
    Delete(inspect::DeleteArgs),
    List(inspect::ListArgs),
    Status(inspect::StatusArgs),
    Capi(capi::CapiArgs),
    Certs(certs::CertsArgs),
    Plugins(plugins::PluginsArgs),
    Handoff(handoff::HandoffArgs),
    Node(node::NodeArgs),
    Completions(CompletionsArgs),
    Man(ManArgs),
}

/// Print a shell's completion script for capstan, e.g. `capstan completions bash >
/// ~/.local/share/bash-completion/completions/capstan`
#[derive(Debug, Args)]
struct CompletionsArgs {
    /// The shell to complete in
    #[arg(value_enum)]
    shell: clap_complete::Shell,
}

/// Print capstan's manual page (roff), e.g. `capstan man | man -l -`; with --dir, write one
/// page per command there instead
#[derive(Debug, Args)]
struct ManArgs {
    /// Write capstan.1, capstan-deploy.1, ... into this existing folder
    #[arg(long, value_name = "DIR")]
    dir: Option<std::path::PathBuf>,
}

fn completions(args: &CompletionsArgs) -> Result<ExitCode, Failure> {
    use clap_complete::Generator as _;
    let mut command = Cli::command();
    command.set_bin_name("capstan");
    command.build();
    // `try_generate`: a closed pipe is an error to return, where `generate` panics.
    let mut stdout = std::io::stdout().lock();
    args.shell.try_generate(&command, &mut stdout)?;
    stdout.flush()?;
    Ok(ExitCode::Success)
}

fn man(args: &ManArgs) -> Result<ExitCode, Failure> {
    match &args.dir {
        Some(dir) => clap_mangen::generate_to(Cli::command(), dir)?,
        None => {
            let mut stdout = std::io::stdout().lock();
            clap_mangen::Man::new(Cli::command()).render(&mut stdout)?;
            stdout.flush()?;
        }
    }
    Ok(ExitCode::Success)
}

/// How capstan ends; the numbers are part of its interface for scripts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ExitCode {
    Success = 0,
    /// `diff`: something would change; `status`: something is not ready.
    Differences = 1,
    Failure = 2,
}

/// A command's failure: printed on standard error, then capstan exits with 2.
#[derive(Debug)]
struct Failure(anyhow::Error);

impl<E: Into<anyhow::Error>> From<E> for Failure {
    fn from(error: E) -> Self {
        Self(error.into())
    }
}

/// A duration in Go's syntax, as kubectl takes it (`90s`, `5m`, `1h30m`); a bare number is
/// seconds, and whole days (`30d`) are accepted for certificate lifetimes.
fn duration(text: &str) -> Result<std::time::Duration, String> {
    if let Ok(seconds) = text.parse::<u64>() {
        return Ok(std::time::Duration::from_secs(seconds));
    }
    if let Some(days) = text
        .strip_suffix('d')
        .and_then(|days| days.parse::<u64>().ok())
    {
        return Ok(std::time::Duration::from_secs(days.saturating_mul(86_400)));
    }
    match text.parse::<kube::core::Duration>() {
        Ok(duration) if !duration.is_negative() => Ok(duration.into()),
        _ => Err(format!(
            "`{text}` is not a duration such as 90s, 5m, 1h30m or 30d"
        )),
    }
}

/// `2 problems found`: how a failure of invalid manifests ends.
fn problems_found(count: usize) -> String {
    let plural = if count == 1 { "" } else { "s" };
    format!("{count} problem{plural} found")
}

fn report(failure: &Failure) {
    let mut stderr = std::io::stderr().lock();
    let _ = match failure.0.downcast_ref::<capstan_manifest::Error>() {
        Some(capstan_manifest::Error::Invalid(problems)) => {
            for problem in problems {
                let _ = writeln!(stderr, "{problem}");
            }
            writeln!(stderr, "error: {}", problems_found(problems.len()))
        }
        // A server message or a file name can carry terminal control sequences.
        _ => {
            let mut line = format!("{:#}", failure.0);
            if let Some(hint) = hints::inline(&failure.0) {
                line = format!("{line}; {hint}");
            }
            writeln!(
                stderr,
                "error: {}",
                capstan_manifest::escape_controls(&line)
            )
        }
    };
}

fn main() -> std::process::ExitCode {
    let matches = Cli::command().get_matches();
    let json = output::requested(&matches);
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|error| error.exit());
    let result = match &cli.command {
        Command::Render(args) => render::render(args),
        Command::Validate(args) => render::validate(args),
        Command::Secrets(args) => secrets::run(args),
        Command::Local(args) => local::run(args),
        Command::Deploy(args) => deploy::deploy(args),
        Command::Diff(args) => deploy::diff(args),
        Command::Drift(args) => drift::drift(args),
        Command::Prune(args) => deploy::prune(args),
        Command::History(args) => history::run(args),
        Command::Rollback(args) => rollback::rollback(args),
        Command::Delete(args) => inspect::delete(args),
        Command::List(args) => inspect::list(args),
        Command::Status(args) => inspect::status(args),
        Command::Capi(args) => capi::run(args),
        Command::Certs(args) => certs::run(args),
        Command::Plugins(args) => plugins::run(args),
        Command::Handoff(args) => handoff::handoff(args),
        Command::Node(args) => node::run(args),
        Command::Completions(args) => completions(args),
        Command::Man(args) => man(args),
    };
    let code = result.unwrap_or_else(|failure| {
        // `capstan render | head` closing the pipe early is the reader's choice, not a failure.
        let closed = failure
            .0
            .downcast_ref::<std::io::Error>()
            .map(std::io::Error::kind);
        if closed == Some(std::io::ErrorKind::BrokenPipe) {
            return ExitCode::Success;
        }
        report(&failure);
        if json {
            // A script reading standard output gets the failure there too, in the contract.
            let _ = output::print(&output::ErrorReport::new(&failure.0));
        }
        ExitCode::Failure
    });
    std::process::ExitCode::from(code as u8)
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    use super::Cli;

    #[test]
    fn command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn durations() {
        use std::time::Duration;
        assert_eq!(super::duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(super::duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(super::duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(super::duration("2"), Ok(Duration::from_secs(2)));
        assert_eq!(super::duration("30d"), Ok(Duration::from_secs(30 * 86_400)));
        assert!(super::duration("5 minutes").is_err());
        assert!(super::duration("-5s").is_err());
    }
}
