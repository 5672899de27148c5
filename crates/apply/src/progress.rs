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
#[cfg(test)]
mod tests {
    use capstan_kube::Progress;
    use capstan_manifest::ObjectId;

    use crate::vocab::{Action, Event};

    #[test]
    fn phases_start_with_their_totals_and_objects_advance_them() {
        let id = ObjectId::new("v1", "ConfigMap", Some("ns"), "c");
        let phase = |name: &str, total| {
            Some(Progress::Phase {
                name: name.to_owned(),
                total,
            })
        };
        assert_eq!(
            Event::Checking { total: 4 }.progress(),
            phase("checking", 4)
        );
        assert_eq!(
            Event::Wave {
                index: 2,
                writes: 3
            }
            .progress(),
            phase("wave 2", 3)
        );
        let applied = Event::Applied {
            id: &id,
            action: Action::Create,
            ok: false,
        };
        assert_eq!(applied.progress(), Some(Progress::Advance(1)));
        assert_eq!(
            Event::Waiting { total: 5 }.progress(),
            phase("waiting for readiness", 5)
        );
        assert_eq!(
            Event::Ready { ready: 3, total: 5 }.progress(),
            Some(Progress::Position(3))
        );
        assert_eq!(Event::Discovered { resources: 90 }.progress(), None);
    }
}
