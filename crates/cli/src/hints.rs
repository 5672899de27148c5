//! What to do about an error, in capstan's own flags: the libraries state what is wrong in
//! their terms (`Options::force_conflicts`), and this is the one place that knows which flag
//! of which command sets it.

/// The advice that completes an error's line, after `; `: for refusals whose remedy is a flag.
pub(crate) fn inline(error: &anyhow::Error) -> Option<String> {
    if let Some(error) = error.downcast_ref::<capstan_kube::Error>() {
        return context(error);
    }
    match error.downcast_ref::<capstan_apply::Error>()? {
        capstan_apply::Error::Kube(error) => context(error),
        capstan_apply::Error::EmptyManifest { .. } => {
            Some("pass --allow-empty if that is what you want".to_owned())
        }
        _ => None,
    }
}

/// Lines of advice below a plan's or a deploy's errors, each once.
pub(crate) fn for_objects<'e>(
    errors: impl Iterator<Item = &'e capstan_apply::Error>,
) -> Vec<&'static str> {
    let mut hints = Vec::new();
    for error in errors {
        let hint = match error {
            capstan_apply::Error::NotAdopted { .. } => {
                "take such objects over with --adopt, or `adopt: true` on the stage"
            }
            capstan_apply::Error::Conflict { .. } => {
                "take fields other managers own over with --force-conflicts, or remove them \
                 from the manifest"
            }
            _ => continue,
        };
        if !hints.contains(&hint) {
            hints.push(hint);
        }
    }
    hints
}

fn context(error: &capstan_kube::Error) -> Option<String> {
    match error {
        capstan_kube::Error::NotStageContext { wanted, .. } => Some(format!(
            "switch with `kubectl config use-context {wanted}` or pass `--context {wanted}`"
        )),
        capstan_kube::Error::OtherContext { explicit, .. } => Some(format!(
            "pass --override-stage-context with `--context {explicit}` to use it anyway"
        )),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::{for_objects, inline};

    fn line(error: impl Into<anyhow::Error>) -> String {
        let error = error.into();
        match inline(&error) {
            Some(hint) => format!("{error:#}; {hint}"),
            None => format!("{error:#}"),
        }
    }

    #[test]
    fn a_refused_stage_context_reads_with_the_flags_that_change_it() {
        let not_current = capstan_kube::Error::NotStageContext {
            wanted: "prod".to_owned(),
            current: "current".to_owned(),
        };
        assert_eq!(
            line(not_current),
            "the stage deploys to context \"prod\" but the current context is \"current\"; \
             switch with `kubectl config use-context prod` or pass `--context prod`"
        );
        let other = capstan_kube::Error::OtherContext {
            wanted: "prod".to_owned(),
            explicit: "other".to_owned(),
        };
        assert_eq!(
            line(other),
            "the stage deploys to context \"prod\", not \"other\"; pass \
             --override-stage-context with `--context other` to use it anyway"
        );
    }

    #[test]
    fn an_empty_prune_is_refused_with_the_flag_that_allows_it() {
        let error = capstan_apply::Error::EmptyManifest {
            selector: "capstan.io/discriminator=x".to_owned(),
        };
        assert!(
            line(error).ends_with("; pass --allow-empty if that is what you want"),
            "the hint follows the library's message"
        );
    }

    #[test]
    fn a_conflict_is_followed_by_the_force_conflicts_hint_once() {
        let conflict = || capstan_apply::Error::Conflict {
            id: capstan_manifest::ObjectId::new("v1", "ConfigMap", Some("ns"), "c"),
            message: "conflict with \"kubectl\"".to_owned(),
        };
        let errors = [conflict(), conflict()];
        let hints = for_objects(errors.iter());
        assert_eq!(hints.len(), 1);
        assert!(hints[0].contains("--force-conflicts"), "{hints:?}");
    }
}
