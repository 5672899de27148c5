//! `capstan`: day-2 GitOps operations on Kubernetes from one command.
//!
//! The binary is a thin layer over capstan's library crates: it parses arguments, reads the
//! project's `capstan.yaml`, calls the libraries with progress and confirmation callbacks, and
//! turns their typed results into output and exit codes. Commands arrive with the crates that
//! implement them.

use clap::Parser;

/// Day-2 GitOps operations on Kubernetes: deploy stages with discriminator-based pruning,
/// SOPS secrets, ClusterAPI and cert-manager operations.
#[derive(Debug, Parser)]
#[command(name = "capstan", version, about)]
struct Cli {}

fn main() {
    let Cli {} = Cli::parse();
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    use super::Cli;

    #[test]
    fn command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
