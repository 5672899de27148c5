//! What long work reports while it runs, in words every capstan library shares, so that one
//! progress display serves them all.

/// One step of progress.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Progress {
    /// A phase of work starts (the one before it is over): `total` steps, named for people.
    Phase {
        /// What the phase does (`checking`, `wave 2`, `waiting for readiness`).
        name: String,
        /// How many steps it has.
        total: usize,
    },
    /// This many more steps of the current phase are done.
    Advance(usize),
    /// This many steps of the current phase are done in all (for work that is polled, such as
    /// a wait, rather than counted).
    Position(usize),
    /// Something worth saying about the current phase, which goes on.
    Note(String),
}

/// A progress callback: libraries call it from the working task, never concurrently.
pub type OnProgress = dyn Fn(Progress) + Send + Sync;
