//! Waiting for something on the server: one polling loop for every wait.

use std::time::Duration;

use tokio::time::Instant;

/// How long to sleep between polls: `initial` at first, multiplied by `factor` after each poll,
/// never more than `max`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    initial: Duration,
    factor: u32,
    max: Duration,
}

impl Backoff {
    /// The same interval every time.
    pub const fn fixed(interval: Duration) -> Self {
        Self {
            initial: interval,
            factor: 1,
            max: interval,
        }
    }

    /// Doubling from `initial` up to `max`: quick for what is nearly there, gentle on the
    /// server for what takes long.
    pub const fn exponential(initial: Duration, max: Duration) -> Self {
        Self {
            initial,
            factor: 2,
            max,
        }
    }

    fn after(&self, delay: Duration) -> Duration {
        (delay * self.factor).min(self.max)
    }
}

/// Polls `condition` until it yields a value or `deadline` passes, sleeping as `backoff` says
/// in between (the last sleep is cut short so the final poll happens at the deadline).
///
/// Like kube-runtime's `wait::Condition`, the condition decides from what it reads whether the
/// wait is over: `Ok(Some(value))` ends it, `Ok(None)` polls again. It can keep what it saw in
/// its captured state (the last message, say) for the caller to report after a timeout.
///
/// ```
/// use std::time::Duration;
/// use capstan_kube::{Backoff, poll_until};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let mut polls = 0;
/// let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
/// let backoff = Backoff::exponential(Duration::from_millis(50), Duration::from_secs(1));
/// let done = poll_until(deadline, backoff, async || {
///     polls += 1;
///     Ok::<_, std::convert::Infallible>((polls == 3).then_some("ready"))
/// })
/// .await;
/// assert_eq!(done, Ok(Some("ready")));
/// # }
/// ```
///
/// # Errors
///
/// The condition's first error, at once. A timeout is not an error: it is `Ok(None)`.
pub async fn poll_until<T, E>(
    deadline: impl Into<Instant>,
    backoff: Backoff,
    mut condition: impl AsyncFnMut() -> Result<Option<T>, E>,
) -> Result<Option<T>, E> {
    let deadline = deadline.into();
    let mut delay = backoff.initial;
    loop {
        if let Some(done) = condition().await? {
            return Ok(Some(done));
        }
        let now = Instant::now();
        if now >= deadline {
            return Ok(None);
        }
        tokio::time::sleep(delay.min(deadline - now)).await;
        delay = backoff.after(delay);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::time::Instant;

    use super::{Backoff, poll_until};

    const MS: Duration = Duration::from_millis(1);

    #[tokio::test(start_paused = true)]
    async fn polling_stops_when_the_condition_holds_after_backing_off() {
        let start = Instant::now();
        let mut polls = 0;
        let result = poll_until(
            start + 60 * 1000 * MS,
            Backoff::exponential(100 * MS, 300 * MS),
            async || {
                polls += 1;
                Ok::<_, ()>((polls == 5).then_some(polls))
            },
        )
        .await;
        assert_eq!(result, Ok(Some(5)));
        // 100, 200, then capped at 300 twice.
        assert_eq!(start.elapsed(), 900 * MS);
    }

    #[tokio::test(start_paused = true)]
    async fn a_timeout_is_none_after_a_last_poll_at_the_deadline() {
        let start = Instant::now();
        let mut polled_at = Vec::new();
        let result = poll_until(start + 1000 * MS, Backoff::fixed(300 * MS), async || {
            polled_at.push(start.elapsed());
            Ok::<Option<()>, ()>(None)
        })
        .await;
        assert_eq!(result, Ok(None));
        assert_eq!(
            polled_at,
            [0, 300, 600, 900, 1000].map(|ms| ms * MS).to_vec()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_conditions_error_ends_the_wait_at_once() {
        let start = Instant::now();
        let mut polls = 0;
        let result: Result<Option<()>, &str> =
            poll_until(start + 1000 * MS, Backoff::fixed(100 * MS), async || {
                polls += 1;
                if polls == 2 { Err("gone") } else { Ok(None) }
            })
            .await;
        assert_eq!(result, Err("gone"));
        assert_eq!(start.elapsed(), 100 * MS);
    }

    #[tokio::test(start_paused = true)]
    async fn a_deadline_already_past_still_polls_once() {
        let mut polls = 0;
        let result = poll_until(Instant::now(), Backoff::fixed(100 * MS), async || {
            polls += 1;
            Ok::<Option<()>, ()>(None)
        })
        .await;
        assert_eq!((result, polls), (Ok(None), 1));
    }
}
