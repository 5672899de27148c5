//! Selections narrow a loaded stage to the objects a command works on.

use std::collections::BTreeMap;

use capstan_manifest::{Input, Label, LoadOptions, Manifest, Selection, load};

fn stage() -> Manifest {
    let text = "apiVersion: v1\nkind: Namespace\nmetadata: {name: shop}\n---\napiVersion: v1\nkind: Secret\nmetadata: {name: token, namespace: shop, labels: {app: web}}\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web, namespace: shop, labels: {app: web}}\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: db, namespace: shop, labels: {app: db}}\n";
    let input = Input::Text {
        name: "stage.yaml".into(),
        text: text.into(),
    };
    let label = Label::new("capstan.io/discriminator", "shop.full").unwrap();
    load(&[input], &LoadOptions::with_label(label)).unwrap()
}

fn selected(include: &[&str], exclude: &[&str]) -> Vec<String> {
    let parse = |texts: &[&str]| texts.iter().map(|text| text.parse().unwrap()).collect();
    let mut manifest = stage();
    manifest.select(&Selection::new(parse(include), parse(exclude)));
    manifest
        .iter()
        .map(|object| object.id().to_string())
        .collect()
}

#[test]
fn selecting_drops_the_objects_a_selection_leaves_out() {
    assert_eq!(
        selected(&["label=app=web", "kind=Namespace"], &["kind=Secret"]),
        ["Namespace shop", "apps/Deployment shop/web"]
    );
    assert_eq!(
        selected(&["namespace=shop"], &["label=app!=db"]),
        ["apps/Deployment shop/db"]
    );
    assert_eq!(selected(&[], &[]).len(), 4);
}

#[test]
fn labels_are_the_objects_own_and_the_discriminator() {
    let manifest = stage();
    let labels = manifest.objects()[1].labels();
    let expected: BTreeMap<String, String> =
        [("app", "web"), ("capstan.io/discriminator", "shop.full")]
            .into_iter()
            .map(|(key, value)| (key.to_owned(), value.to_owned()))
            .collect();
    assert_eq!(labels, expected);
}
