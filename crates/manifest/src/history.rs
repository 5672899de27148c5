//! `history:` of `capstan.yaml`: how many deploy records a stage keeps in its cluster.

use serde::Deserialize;

/// How much deployment history each stage keeps in its state namespace (`history:` of
/// `capstan.yaml`, for every stage of the project).
///
/// ```yaml
/// history:
///   keep: 10            # revisions per stage [default: 10]; 0 records nothing
///   maxBytes: 67108864  # all of a stage's records together [default: 64 MiB]
/// ```
///
/// The oldest revisions go first when either limit is passed; the newest is always kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
#[non_exhaustive]
pub struct History {
    /// Revisions kept per stage; 0 turns recording off.
    pub keep: usize,
    /// Bytes all of a stage's record Secrets may take together.
    pub max_bytes: u64,
}

impl History {
    /// Revisions kept unless `history.keep` says otherwise.
    pub const DEFAULT_KEEP: usize = 10;
    /// Bytes kept unless `history.maxBytes` says otherwise: 64 MiB.
    pub const DEFAULT_MAX_BYTES: u64 = 64 << 20;

    /// Whether deploys of the stage are recorded at all.
    pub fn enabled(&self) -> bool {
        self.keep > 0
    }
}

impl Default for History {
    fn default() -> Self {
        Self {
            keep: Self::DEFAULT_KEEP,
            max_bytes: Self::DEFAULT_MAX_BYTES,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::History;

    #[test]
    fn history_takes_keep_and_max_bytes_with_defaults_and_refuses_other_keys() {
        let parsed: History = serde_yaml::from_str("keep: 3").unwrap();
        assert_eq!(parsed.keep, 3);
        assert_eq!(parsed.max_bytes, History::DEFAULT_MAX_BYTES);
        assert!(
            !serde_yaml::from_str::<History>("keep: 0")
                .unwrap()
                .enabled()
        );
        let error = serde_yaml::from_str::<History>("kept: 3").unwrap_err();
        assert!(
            error.to_string().contains("unknown field `kept`"),
            "{error}"
        );
    }
}
