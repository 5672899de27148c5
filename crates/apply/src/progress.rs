//! A deployer's events in the words every capstan library reports progress in.

use capstan_kube::Progress;

use crate::vocab::Event;

impl Event<'_> {
    /// The event in the words every capstan library reports progress in: what a display
    /// needs, without the objects.
    pub fn progress(&self) -> Option<Progress> {
        let phase = |name: String, total: usize| Some(Progress::Phase { name, total });
        match *self {
            Event::Discovered { .. } => None,
            Event::Checking { total } => phase("checking".to_owned(), total),
            Event::Wave { index, writes } => phase(format!("wave {index}"), writes),
            Event::Scanning { resources } => phase("scanning resource types".to_owned(), resources),
            Event::Waiting { total } => phase("waiting for readiness".to_owned(), total),
            Event::Checked { .. } | Event::Applied { .. } | Event::Deleted { .. } => {
                Some(Progress::Advance(1))
            }
            Event::Establishing { count } => Some(Progress::Note(format!(
                "waiting for {count} CRDs to be Established"
            ))),
            Event::Ready { ready, .. } => Some(Progress::Position(ready)),
        }
    }
}
