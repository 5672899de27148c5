//! Who holds a stage lock: what [`Error::Locked`](crate::Error::Locked) and waiting runs tell.

use std::fmt;
use std::time::Duration;

use serde::{Serialize, Serializer};

/// Who holds a stage lock, as read from its Lease.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LockHolder {
    /// The holder's identity, such as `alice@laptop pid 4242`.
    pub holder: String,
    /// What it works on, such as `project/stage`; empty when the Lease does not say.
    pub owner: String,
    /// When it took the lock, RFC 3339 in UTC.
    pub acquired: Option<String>,
    /// How long until the lock expires unless the holder renews it, by this machine's clock;
    /// `None` when the Lease records no renewal time or duration.
    #[serde(rename = "expires_in_seconds", serialize_with = "seconds")]
    pub expires_in: Option<Duration>,
}

impl fmt::Display for LockHolder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}`", self.holder)?;
        if !self.owner.is_empty() {
            write!(f, " for `{}`", self.owner)?;
        }
        if let Some(acquired) = &self.acquired {
            write!(f, ", since {acquired}")?;
        }
        if let Some(expires_in) = self.expires_in {
            write!(
                f,
                ", expiring in {} s unless renewed",
                whole_seconds(expires_in)
            )?;
        }
        Ok(())
    }
}

/// A duration rounded up to whole seconds, as messages and JSON show it.
pub(crate) fn whole_seconds(duration: Duration) -> u64 {
    duration.as_secs() + u64::from(duration.subsec_nanos() > 0)
}

fn seconds<S: Serializer>(duration: &Option<Duration>, serializer: S) -> Result<S::Ok, S::Error> {
    duration.map(whole_seconds).serialize(serializer)
}
