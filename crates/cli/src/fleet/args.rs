//! The fleet flags: which targets, how many at once, how long each may take, and the waves
//! a deploy goes out in.

use std::time::Duration;

use capstan_manifest::TargetSelector;
use clap::Args;

/// Options of every command that can run on several targets of `capstan.yaml`.
#[derive(Debug, Args)]
pub(crate) struct FleetArgs {
    /// Run on these targets of capstan.yaml (names, comma-separated) instead of the stage's
    /// `targets`
    #[arg(
        long = "target",
        value_name = "NAMES",
        value_delimiter = ',',
        conflicts_with_all = ["targets", "all_targets", "context", "filename"]
    )]
    pub(crate) target: Vec<String>,

    /// Run on the targets whose labels match KEY=VALUE[,KEY=VALUE]
    #[arg(
        long,
        value_name = "SELECTOR",
        value_parser = TargetSelector::parse_labels,
        conflicts_with_all = ["all_targets", "context", "filename"]
    )]
    pub(crate) targets: Option<TargetSelector>,

    /// Run on every target of capstan.yaml
    #[arg(long, conflicts_with_all = ["context", "filename"])]
    pub(crate) all_targets: bool,

    /// Targets worked on at once
    #[arg(long, value_name = "N", default_value_t = 4,
          value_parser = clap::value_parser!(u16).range(1..=64))]
    pub(crate) parallel: u16,

    /// How long one target may take to connect, lock and plan, and again to apply and prune:
    /// an unreachable or slow cluster costs at most this
    #[arg(long, value_name = "DURATION", default_value = "2m", value_parser = crate::duration)]
    pub(crate) target_timeout: Duration,
}

/// How a deploy goes out to its targets.
#[derive(Debug, Args)]
pub(crate) struct WaveArgs {
    /// Deploy in waves, e.g. `1,25%,rest`: counts, percentages of all targets (rounded up) and
    /// `rest`; targets left over form a last wave. With --wait, each wave waits for readiness
    /// before the next
    #[arg(long, value_name = "SIZES", value_parser = parse_waves)]
    pub(crate) waves: Option<Waves>,

    /// Stop starting targets once more than K have failed [default: 0 with --waves, no limit
    /// otherwise]; the targets not attempted are named
    #[arg(long, value_name = "K")]
    pub(crate) max_failures: Option<usize>,
}

/// `--waves`: the size of each wave, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Waves(Vec<Size>);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Size {
    Count(usize),
    Percent(usize),
    Rest,
}

fn parse_waves(text: &str) -> Result<Waves, String> {
    let mut sizes = Vec::new();
    for part in text.split(',').map(str::trim) {
        let size = if part == "rest" {
            Size::Rest
        } else if let Some(percent) = part.strip_suffix('%') {
            match percent.parse::<usize>() {
                Ok(p) if (1..=100).contains(&p) => Size::Percent(p),
                _ => return Err(format!("`{part}` is not a percentage from 1% to 100%")),
            }
        } else {
            match part.parse::<usize>() {
                Ok(n) if n > 0 => Size::Count(n),
                _ => {
                    return Err(format!(
                        "`{part}` is not a wave size: a count, a percentage such as 25%, or rest"
                    ));
                }
            }
        };
        sizes.push(size);
    }
    Ok(Waves(sizes))
}

impl WaveArgs {
    /// The failures allowed before no further target starts.
    pub(crate) fn max_failures(&self) -> usize {
        match (self.max_failures, &self.waves) {
            (Some(k), _) => k,
            (None, Some(_)) => 0,
            (None, None) => usize::MAX,
        }
    }

    /// The waves over `count` targets, as ranges of their positions; one wave without
    /// `--waves`.
    pub(crate) fn split(&self, count: usize) -> Vec<std::ops::Range<usize>> {
        let sizes = self.waves.as_ref().map_or(&[Size::Rest][..], |w| &w.0);
        let mut waves = Vec::new();
        let mut start = 0;
        for size in sizes {
            if start == count {
                break;
            }
            let left = count - start;
            let take = match *size {
                Size::Count(n) => n.min(left),
                Size::Percent(p) => (count * p).div_ceil(100).clamp(1, left),
                Size::Rest => left,
            };
            waves.push(start..start + take);
            start += take;
        }
        if start < count {
            waves.push(start..count);
        }
        waves
    }
}

#[cfg(test)]
mod tests {
    use super::{WaveArgs, parse_waves};

    fn split(waves: Option<&str>, count: usize) -> Vec<std::ops::Range<usize>> {
        WaveArgs {
            waves: waves.map(|w| parse_waves(w).unwrap()),
            max_failures: None,
        }
        .split(count)
    }

    #[test]
    fn waves_are_counts_then_rounded_up_percentages_then_the_rest() {
        assert_eq!(split(Some("1,25%,rest"), 10), [0..1, 1..4, 4..10]);
        assert_eq!(split(Some("1,25%,rest"), 3), [0..1, 1..2, 2..3]);
        assert_eq!(split(Some("1,25%,rest"), 1), vec![(0..1)]);
        assert_eq!(split(Some("2"), 5), [0..2, 2..5]);
        assert_eq!(split(None, 4), vec![(0..4)]);
    }

    #[test]
    fn wave_sizes_must_be_counts_percentages_or_rest() {
        assert_eq!(
            parse_waves("0").unwrap_err(),
            "`0` is not a wave size: a count, a percentage such as 25%, or rest"
        );
        assert_eq!(
            parse_waves("150%").unwrap_err(),
            "`150%` is not a percentage from 1% to 100%"
        );
    }

    #[test]
    fn waves_stop_at_the_first_failure_unless_told_otherwise() {
        let with = |waves: Option<&str>, max: Option<usize>| WaveArgs {
            waves: waves.map(|w| parse_waves(w).unwrap()),
            max_failures: max,
        };
        assert_eq!(with(Some("1,rest"), None).max_failures(), 0);
        assert_eq!(with(None, None).max_failures(), usize::MAX);
        assert_eq!(with(Some("1,rest"), Some(2)).max_failures(), 2);
    }
}
