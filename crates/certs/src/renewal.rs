//! When cert-manager renews a certificate (`pki.RenewalTime`), and how long its backoff holds
//! a failed issuance.

use std::time::Duration;

use k8s_openapi::jiff::{SignedDuration, Timestamp};

/// The renewal settings of a Certificate's spec.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RenewalPolicy {
    /// `spec.renewBefore`.
    pub renew_before: Option<Duration>,
    /// `spec.renewBeforePercentage` (cert-manager 1.15 and later).
    pub renew_before_percentage: Option<i32>,
    /// `spec.renewal.policy: Disabled` (cert-manager 1.21 and later): never renewed.
    pub disabled: bool,
}

impl RenewalPolicy {
    /// Read from a Certificate's `spec`; a `renewBefore` that does not parse counts as unset,
    /// as cert-manager's API validation would not have let it in.
    pub fn from_spec(spec: &serde_json::Value) -> Self {
        Self {
            renew_before: spec["renewBefore"]
                .as_str()
                .and_then(|text| text.parse::<kube::core::Duration>().ok())
                .filter(|duration| !duration.is_negative())
                .map(Into::into),
            renew_before_percentage: spec["renewBeforePercentage"]
                .as_i64()
                .and_then(|p| i32::try_from(p).ok()),
            disabled: spec["renewal"]["policy"].as_str() == Some("Disabled"),
        }
    }
}

/// When cert-manager renews a certificate valid from `not_before` to `not_after`:
/// `renewBefore` ahead of the end when it is shorter than the lifetime, else the percentage
/// of the lifetime, else a third of it; truncated to the second. `None` when renewal is
/// disabled.
pub fn renewal_time(
    not_before: Timestamp,
    not_after: Timestamp,
    policy: &RenewalPolicy,
) -> Option<Timestamp> {
    if policy.disabled {
        return None;
    }
    let lifetime = not_after.duration_since(not_before);
    let before = match (policy.renew_before, policy.renew_before_percentage) {
        (Some(before), _)
            if SignedDuration::try_from(before)
                .is_ok_and(|b| b > SignedDuration::ZERO && b < lifetime) =>
        {
            SignedDuration::try_from(before).unwrap_or_default()
        }
        (_, Some(percent)) if 0 < percent && percent < 100 => {
            // cert-manager multiplies in floating point nanoseconds.
            let nanos = lifetime.as_nanos() as f64 * f64::from(percent) / 100.0;
            SignedDuration::from_nanos(nanos as i64)
        }
        _ => lifetime / 3,
    };
    let at = not_after.checked_sub(before).ok()?;
    Timestamp::from_second(at.as_second()).ok()
}

/// Until when cert-manager's trigger controller holds off after `attempts` failed issuances,
/// the last at `last_failure`: an hour, doubled per further attempt, at most 32 hours.
pub fn backoff_until(last_failure: Timestamp, attempts: u32) -> Timestamp {
    let hours = 1_i64 << attempts.saturating_sub(1).min(5);
    last_failure
        .checked_add(SignedDuration::from_hours(hours))
        .unwrap_or(Timestamp::MAX)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use k8s_openapi::jiff::Timestamp;

    use super::{RenewalPolicy, backoff_until, renewal_time};

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    const DAY: u64 = 86_400;

    #[test]
    fn without_settings_renewal_is_at_two_thirds_of_the_lifetime() {
        let policy = RenewalPolicy::default();
        assert_eq!(
            renewal_time(
                at("2026-01-01T00:00:00Z"),
                at("2026-04-01T00:00:00Z"),
                &policy
            ),
            Some(at("2026-03-02T00:00:00Z"))
        );
    }

    #[test]
    fn a_third_of_an_odd_lifetime_is_truncated_to_the_second() {
        // 100 s: renewal 33.33 s before the end, 66.67 s after the start, truncated to 66.
        assert_eq!(
            renewal_time(
                at("2026-01-01T00:00:00Z"),
                at("2026-01-01T00:01:40Z"),
                &RenewalPolicy::default()
            ),
            Some(at("2026-01-01T00:01:06Z"))
        );
    }

    #[test]
    fn renew_before_shorter_than_the_lifetime_wins_over_the_percentage() {
        let policy = RenewalPolicy {
            renew_before: Some(Duration::from_secs(10 * 60)),
            renew_before_percentage: Some(50),
            disabled: false,
        };
        assert_eq!(
            renewal_time(
                at("2026-01-01T00:00:00Z"),
                at("2026-01-01T01:00:00Z"),
                &policy
            ),
            Some(at("2026-01-01T00:50:00Z"))
        );
    }

    #[test]
    fn renew_before_as_long_as_the_lifetime_is_ignored_for_the_percentage_or_a_third() {
        let mut policy = RenewalPolicy {
            renew_before: Some(Duration::from_secs(90 * DAY)),
            renew_before_percentage: Some(25),
            disabled: false,
        };
        let (start, end) = (at("2026-01-01T00:00:00Z"), at("2026-01-31T00:00:00Z"));
        assert_eq!(
            renewal_time(start, end, &policy),
            Some(at("2026-01-23T12:00:00Z"))
        );
        policy.renew_before_percentage = Some(100);
        assert_eq!(
            renewal_time(start, end, &policy),
            Some(at("2026-01-21T00:00:00Z"))
        );
    }

    #[test]
    fn disabled_renewal_has_no_time() {
        let policy = RenewalPolicy {
            disabled: true,
            ..RenewalPolicy::default()
        };
        assert_eq!(
            renewal_time(
                at("2026-01-01T00:00:00Z"),
                at("2026-02-01T00:00:00Z"),
                &policy
            ),
            None
        );
    }

    #[test]
    fn the_policy_is_read_from_the_spec_in_go_duration_syntax() {
        let spec = serde_json::json!({"renewBefore": "360h0m0s", "renewBeforePercentage": 20});
        assert_eq!(
            RenewalPolicy::from_spec(&spec),
            RenewalPolicy {
                renew_before: Some(Duration::from_secs(15 * DAY)),
                renew_before_percentage: Some(20),
                disabled: false
            }
        );
    }

    #[test]
    fn backoff_doubles_from_an_hour_up_to_32_hours() {
        let failed = at("2026-01-01T00:00:00Z");
        assert_eq!(backoff_until(failed, 1), at("2026-01-01T01:00:00Z"));
        assert_eq!(backoff_until(failed, 3), at("2026-01-01T04:00:00Z"));
        assert_eq!(backoff_until(failed, 40), at("2026-01-02T08:00:00Z"));
    }
}
