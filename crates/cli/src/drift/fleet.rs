//! `capstan drift` on a fleet: each target checked as one cluster is, one row and exit code
//! for all.

use std::io::Write as _;

use capstan_drift::{Report, State};

use super::{check_options, text};
use crate::cluster::Cluster;
use crate::deploy::ApplyArgs;
use crate::fleet;
use crate::stage::Loaded;

/// `capstan drift` on each target of a fleet.
pub(super) struct Drift<'a> {
    pub(super) apply: &'a ApplyArgs,
}

impl fleet::Check for Drift<'_> {
    type Report<'m> = Report;

    async fn check(&self, cluster: Cluster, loaded: &Loaded) -> anyhow::Result<(Report, usize)> {
        let (check, _) = check_options(self.apply, loaded);
        let report =
            capstan_drift::detect(&cluster.client, &check, &loaded.manifest, &|_| {}).await?;
        let requests = report.requests;
        Ok((report, requests))
    }

    fn row(&self, report: &Report, row: &mut fleet::Row) {
        let unknown = report.items.iter().find(|i| i.state == State::Unknown);
        row.phase = match (unknown, report.in_sync()) {
            (Some(item), _) => {
                row.error = Some(format!(
                    "{} objects unknown, first: {}: {}",
                    report.count(State::Unknown),
                    item.id,
                    item.error.as_deref().unwrap_or_default()
                ));
                fleet::Phase::Failed
            }
            (None, true) => fleet::Phase::InSync,
            (None, false) => fleet::Phase::Drifted,
        };
    }

    fn plan<'r>(&self, _: &'r Report) -> Option<&'r capstan_apply::Plan<'r>> {
        None
    }

    fn show(&self, target: &str, report: &Report) -> std::io::Result<()> {
        if !report.in_sync() {
            writeln!(std::io::stdout(), "target {target}:")?;
            text(report, false)?;
        }
        Ok(())
    }
}
