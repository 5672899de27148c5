//! Which live objects a stage may prune or delete: its label says so, and its ownership record
//! must not say otherwise.
//!
//! The discriminator label alone is a weak proof: two stages can end up with the same value
//! (earlier defaults joined project and stage with `-`, so `rel-x`/`y-full` and `rel-x-y`/`full`
//! collided), and anybody can copy a label. So every write also records the owning
//! `project/stage` in [`OWNER_ANNOTATION`], and an object whose record names another stage is
//! never pruned or deleted, whatever its label says and whatever `force_prune` says.

use capstan_manifest::Label;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::options::Options;
use crate::vocab::{Keep, OWNER_ANNOTATION};

/// The label selector for the stage's objects: its discriminator, and the value an earlier
/// default gave it, so objects written before the change are found and relabelled.
pub(crate) fn selector(label: &Label, options: &Options) -> String {
    match options.legacy_discriminator.as_deref() {
        Some(legacy) if legacy != label.value() => {
            format!("{} in ({},{legacy})", label.key(), label.value())
        }
        _ => label.selector(),
    }
}

/// What the ownership record (or, for objects written before records existed, the label)
/// says against deleting the object.
pub(crate) fn verdict(meta: &ObjectMeta, label: &Label, options: &Options) -> Option<Keep> {
    let recorded = meta
        .annotations
        .as_ref()
        .and_then(|annotations| annotations.get(OWNER_ANNOTATION));
    if let Some(recorded) = recorded {
        return (options.owner.as_deref() != Some(recorded.as_str())).then(|| {
            Keep::OwnedElsewhere {
                recorded: recorded.clone(),
                ours: options.owner.clone(),
            }
        });
    }
    let value = meta
        .labels
        .as_ref()
        .and_then(|labels| labels.get(label.key()));
    match (value, options.legacy_discriminator.as_deref()) {
        (Some(value), Some(legacy))
            if value == legacy && ambiguous(legacy) && !options.force_prune =>
        {
            Some(Keep::AmbiguousLegacyLabel {
                value: legacy.to_owned(),
            })
        }
        _ => None,
    }
}

/// Whether a legacy `<project>-<stage>` value can be split in more than one way: with a single
/// `-` only one project and stage can have made it.
fn ambiguous(legacy: &str) -> bool {
    legacy.matches('-').count() > 1
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use capstan_manifest::Label;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    use super::{selector, verdict};
    use crate::vocab::OWNER_ANNOTATION;
    use crate::{Keep, Options};

    fn meta(owner: Option<&str>, value: &str) -> ObjectMeta {
        ObjectMeta {
            annotations: owner
                .map(|owner| BTreeMap::from([(OWNER_ANNOTATION.to_owned(), owner.to_owned())])),
            labels: Some(BTreeMap::from([(
                Label::DEFAULT_KEY.to_owned(),
                value.to_owned(),
            )])),
            ..ObjectMeta::default()
        }
    }

    fn options(owner: &str, legacy: Option<&str>) -> Options {
        Options {
            owner: Some(owner.to_owned()),
            legacy_discriminator: legacy.map(str::to_owned),
            ..Options::default()
        }
    }

    #[test]
    fn an_object_recorded_for_another_stage_is_kept_with_both_names() {
        let label = Label::new(Label::DEFAULT_KEY, "rel-x.y-full").unwrap();
        let keep = verdict(
            &meta(Some("rel-x-y/full"), "rel-x.y-full"),
            &label,
            &options("rel-x/y-full", None),
        );
        assert_eq!(
            keep,
            Some(Keep::OwnedElsewhere {
                recorded: "rel-x-y/full".to_owned(),
                ours: Some("rel-x/y-full".to_owned()),
            })
        );
        let mine = meta(Some("rel-x/y-full"), "rel-x.y-full");
        assert_eq!(verdict(&mine, &label, &options("rel-x/y-full", None)), None);
    }

    #[test]
    fn force_prune_never_overrides_another_stages_record() {
        let label = Label::new(Label::DEFAULT_KEY, "x").unwrap();
        let mut options = options("a/b", None);
        options.force_prune = true;
        assert!(verdict(&meta(Some("c/d"), "x"), &label, &options).is_some());
    }

    #[test]
    fn legacy_objects_are_the_stages_unless_their_label_could_be_another_stages() {
        let label = Label::new(Label::DEFAULT_KEY, "shop.full").unwrap();
        let plain = options("shop/full", Some("shop-full"));
        assert_eq!(verdict(&meta(None, "shop-full"), &label, &plain), None);

        let label = Label::new(Label::DEFAULT_KEY, "rel-x.y-full").unwrap();
        let split = options("rel-x/y-full", Some("rel-x-y-full"));
        assert_eq!(
            verdict(&meta(None, "rel-x-y-full"), &label, &split),
            Some(Keep::AmbiguousLegacyLabel {
                value: "rel-x-y-full".to_owned()
            })
        );
        assert_eq!(verdict(&meta(None, "rel-x.y-full"), &label, &split), None);
    }

    #[test]
    fn keep_reasons_read_back_from_their_json() {
        let keeps = [
            Keep::NotManaged,
            Keep::Owned("ReplicaSet web-1".to_owned()),
            Keep::OwnedElsewhere {
                recorded: "a/b".to_owned(),
                ours: None,
            },
            Keep::NamespaceNotEmpty {
                holds: vec![capstan_manifest::ObjectId::new(
                    "v1",
                    "Secret",
                    Some("x"),
                    "s",
                )],
                more: 3,
            },
        ];
        for keep in keeps {
            let json = serde_json::to_string(&keep).unwrap();
            assert_eq!(serde_json::from_str::<Keep>(&json).unwrap(), keep, "{json}");
        }
    }

    #[test]
    fn the_selector_finds_objects_under_the_legacy_value_too() {
        let label = Label::new(Label::DEFAULT_KEY, "shop.full").unwrap();
        assert_eq!(
            selector(&label, &options("shop/full", Some("shop-full"))),
            "capstan.io/discriminator in (shop.full,shop-full)"
        );
        assert_eq!(
            selector(&label, &options("shop/full", None)),
            "capstan.io/discriminator=shop.full"
        );
    }
}
