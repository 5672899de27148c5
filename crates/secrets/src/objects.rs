//! SOPS-encrypted objects in a stage, decrypted in memory for a deploy (feature `deploy`).

use std::sync::{Mutex, OnceLock};

use capstan_apply::{Prepare, Prepared, ValuePath};
use capstan_manifest::{Label, Object, ObjectId};
use serde_json::Value;

use crate::{DecryptOptions, Error, Format, Identities, SopsFile};

/// Decrypts the objects of a stage that carry a top-level `sops` block, for a
/// [`capstan_apply::Deployer`]: set it as [`capstan_apply::Options::prepare`].
///
/// Each object is decrypted in memory when it is planned, never on disk, and the paths of its
/// encrypted values are handed to the deployer as masked, so no diff or report shows them.
/// `SopsSecret`s (`isindir.github.com`) stay encrypted: the sops-secrets-operator decrypts them
/// in the cluster. Objects without a `sops` block are sent as they are.
///
/// The MAC covers the object as its author encrypted it, so the discriminator label that
/// loading added ([`Object::label_added`]) is taken out before the MAC is checked and put
/// back on the plaintext: give the manifest's label with [`SopsObjects::label`].
///
/// ```no_run
/// use std::sync::Arc;
///
/// use capstan_apply::{DeployRequest, Deployer, Options};
/// use capstan_manifest::{Input, Label, LoadOptions, load};
/// use capstan_secrets::SopsObjects;
///
/// # async fn deploy() -> Result<(), Box<dyn std::error::Error>> {
/// let label = Label::new(Label::DEFAULT_KEY, "shop-prod")?;
/// let manifest = load(&[Input::Path("deploy/prod".into())], &LoadOptions::with_label(label))?;
/// // Identities the sops way: SOPS_AGE_KEY, SOPS_AGE_KEY_FILE, ~/.config/sops/age/keys.txt.
/// let secrets = Arc::new(SopsObjects::from_env().label(manifest.label().cloned()));
/// let mut options = Options::default();
/// options.prepare = Some(secrets.clone());
/// let deployer = Deployer::new(kube::Client::try_default().await?, options);
/// let deployment = deployer
///     .deploy(&manifest, DeployRequest::default(), &|_| {}, &mut |_| true)
///     .await?;
/// assert!(deployment.succeeded());
/// assert!(secrets.unverified().is_empty());
/// # Ok(())
/// # }
/// ```
///
/// # Errors
///
/// Through [`Prepare::prepare`], an object fails (and the deploy writes nothing) when no
/// identity is found or none opens its data key, when its `sops` metadata is invalid, or when
/// a value or the MAC does not authenticate. The message names the cause, never a value.
pub struct SopsObjects {
    label: Option<Label>,
    verify_mac: bool,
    identities: Source,
    /// Objects whose MAC did not verify but that were decrypted because that is allowed.
    unverified: Mutex<Vec<ObjectId>>,
}

/// Where the identities come from.
enum Source {
    /// Found the sops way when the first encrypted object needs them, so that a stage without
    /// encrypted objects needs no key.
    Env(OnceLock<Result<Identities, String>>),
    Given(Identities),
}

impl SopsObjects {
    /// Decrypts with the identities sops would find ([`Identities::from_env`]), looked up
    /// when the first encrypted object needs them.
    pub fn from_env() -> Self {
        Self::new(Source::Env(OnceLock::new()))
    }

    /// Decrypts with `identities`.
    pub fn with_identities(identities: Identities) -> Self {
        Self::new(Source::Given(identities))
    }

    fn new(identities: Source) -> Self {
        Self {
            label: None,
            verify_mac: true,
            identities,
            unverified: Mutex::new(Vec::new()),
        }
    }

    /// The discriminator label that loading put on the objects ([`capstan_manifest::Manifest::label`]).
    #[must_use]
    pub fn label(mut self, label: impl Into<Option<Label>>) -> Self {
        self.label = label.into();
        self
    }

    /// Whether the MAC must verify [default: yes]. Off, an object whose MAC fails is still
    /// decrypted when each value authenticates on its own (a renderer that re-serialised
    /// the object changes its order, which the MAC covers), and is named by
    /// [`SopsObjects::unverified`]: a stage's `sops: {verifyMac: false}`
    /// ([`capstan_manifest::Stage::verify_sops_mac`]).
    #[must_use]
    pub fn verify_mac(mut self, verify: bool) -> Self {
        self.verify_mac = verify;
        self
    }

    /// The objects decrypted without a valid MAC, sorted; a caller warns about them by name.
    pub fn unverified(&self) -> Vec<ObjectId> {
        let mut ids = self
            .unverified
            .lock()
            .map(|ids| ids.clone())
            .unwrap_or_default();
        ids.sort();
        ids
    }

    fn identities(&self) -> Result<&Identities, String> {
        let identities = match &self.identities {
            Source::Given(identities) => identities,
            Source::Env(found) => found
                .get_or_init(|| Identities::from_env().map_err(|error| error.to_string()))
                .as_ref()
                .map_err(Clone::clone)?,
        };
        if identities.is_empty() {
            let hint = match self.identities {
                Source::Env(_) => ": set SOPS_AGE_KEY_FILE or SOPS_AGE_KEY",
                Source::Given(_) => "",
            };
            return Err(format!("no age identity to decrypt it with{hint}"));
        }
        Ok(identities)
    }
}

impl Prepare for SopsObjects {
    fn prepare(&self, object: &Object) -> Result<Option<Prepared>, String> {
        let id = object.id();
        let mut value = object.to_value();
        let is_sops_secret = id.group() == "isindir.github.com" && id.kind() == "SopsSecret";
        if value.get("sops").is_none() || is_sops_secret {
            return Ok(None);
        }
        let label = self.label.as_ref().filter(|_| object.label_added());
        if let Some(label) = label {
            remove_label(&mut value, label.key());
        }
        let mut masked = Vec::new();
        encrypted_paths(&value, &mut Vec::new(), &mut masked);
        let text = serde_json::to_vec(&value).map_err(|error| error.to_string())?;
        let file = SopsFile::parse(id.to_string(), Format::Json, &text)
            .map_err(|error| format!("cannot read its sops metadata: {error}"))?;
        let identities = self.identities()?;
        let decrypted = match file.decrypt_with(identities, &DecryptOptions::default()) {
            Err(Error::Integrity { .. }) if !self.verify_mac => {
                let lenient = DecryptOptions { verify_mac: false };
                let decrypted = file.decrypt_with(identities, &lenient).map_err(describe)?;
                if let Ok(mut ids) = self.unverified.lock() {
                    ids.push(id.clone());
                }
                decrypted
            }
            result => result.map_err(describe)?,
        };
        let mut body: Value = serde_json::from_slice(&decrypted.to_plaintext())
            .map_err(|_| "its plaintext is not JSON".to_owned())?;
        if let Some(label) = label {
            body["metadata"]["labels"][label.key()] = Value::String(label.value().to_owned());
        }
        Ok(Some(Prepared { body, masked }))
    }
}

fn describe(error: Error) -> String {
    match error {
        Error::Integrity { what, .. } => format!(
            "SOPS integrity check failed ({what}); if a renderer re-serialised the object, set \
             `sops: {{verifyMac: false}}` on the stage"
        ),
        error => error.to_string(),
    }
}

fn remove_label(object: &mut Value, key: &str) {
    if let Some(Value::Object(labels)) = object.pointer_mut("/metadata/labels") {
        labels.remove(key);
        if labels.is_empty()
            && let Some(Value::Object(metadata)) = object.pointer_mut("/metadata")
        {
            metadata.remove("labels");
        }
    }
}

/// Paths of every encrypted value (`ENC[...]`), which must never be shown once decrypted.
fn encrypted_paths(value: &Value, path: &mut ValuePath, found: &mut Vec<ValuePath>) {
    match value {
        Value::String(text) if text.starts_with("ENC[") => found.push(path.clone()),
        Value::Object(map) => {
            for (key, value) in map {
                if key != "sops" || !path.is_empty() {
                    path.push(key.clone());
                    encrypted_paths(value, path, found);
                    path.pop();
                }
            }
        }
        Value::Array(items) => {
            for (index, item) in items.iter().enumerate() {
                path.push(index.to_string());
                encrypted_paths(item, path, found);
                path.pop();
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use capstan_manifest::{Input, LoadOptions, Manifest, load};

    use super::*;
    use crate::{EncryptOptions, Identity, Recipients, Selection};

    const SECRET: &str = "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\n  namespace: shop\nstringData:\n  password: hunter2\n";

    /// `text` encrypted as `sops encrypt --encrypted-regex '^(data|stringData)$'` would.
    fn encrypted(identity: &Identity, text: &str) -> String {
        let options = EncryptOptions {
            recipients: Recipients::any_of([identity.recipient()]),
            selection: Selection::EncryptedRegex("^(data|stringData)$".to_owned()),
            ..EncryptOptions::default()
        };
        let file =
            SopsFile::encrypt("secret.yaml", Format::Yaml, text.as_bytes(), &options).unwrap();
        String::from_utf8(file.to_bytes()).unwrap()
    }

    fn loaded(text: &str) -> Manifest {
        let label = Label::new(Label::DEFAULT_KEY, "shop-prod").unwrap();
        let input = Input::Text {
            name: "secret.yaml".to_owned(),
            text: text.to_owned(),
        };
        load(&[input], &LoadOptions::with_label(label)).unwrap()
    }

    fn objects(identity: &Identity, manifest: &Manifest) -> SopsObjects {
        SopsObjects::with_identities([identity.clone()].into_iter().collect())
            .label(manifest.label().cloned())
    }

    #[test]
    fn an_encrypted_object_is_sent_decrypted_labelled_and_with_its_values_masked() {
        let identity = Identity::generate();
        let manifest = loaded(&encrypted(&identity, SECRET));
        let prepared = objects(&identity, &manifest)
            .prepare(&manifest.objects()[0])
            .unwrap()
            .unwrap();
        assert_eq!(prepared.body["stringData"]["password"], "hunter2");
        assert_eq!(
            prepared.body["metadata"]["labels"][Label::DEFAULT_KEY],
            "shop-prod"
        );
        assert!(prepared.body.get("sops").is_none());
        assert_eq!(prepared.masked, [vec!["stringData", "password"]]);
    }

    #[test]
    fn plain_objects_and_sops_secrets_are_sent_as_they_are() {
        let identity = Identity::generate();
        let sops_secret = encrypted(
            &identity,
            "apiVersion: isindir.github.com/v1alpha3\nkind: SopsSecret\nmetadata:\n  name: api\n  namespace: shop\nspec:\n  secretTemplates:\n  - name: api\n    stringData:\n      token: t0ken\n",
        );
        for text in [SECRET.to_owned(), sops_secret] {
            let manifest = loaded(&text);
            let prepared = objects(&identity, &manifest).prepare(&manifest.objects()[0]);
            assert!(matches!(prepared, Ok(None)), "{prepared:?}");
        }
    }

    #[test]
    fn a_broken_mac_fails_with_the_stage_setting_to_allow_it_and_never_the_value() {
        let identity = Identity::generate();
        // Re-serialised as a renderer would: two values swap places, each keeps its own tag.
        let two = SECRET.replace("  password:", "  user: admin\n  password:");
        let encrypted = encrypted(&identity, &two);
        let mut lines: Vec<&str> = encrypted.lines().collect();
        let user = lines
            .iter()
            .position(|l| l.starts_with("    user:"))
            .unwrap();
        lines.swap(user, user + 1);
        let manifest = loaded(&(lines.join("\n") + "\n"));
        let object = &manifest.objects()[0];

        let strict = objects(&identity, &manifest);
        let message = strict.prepare(object).unwrap_err();
        assert!(
            message.starts_with("SOPS integrity check failed (")
                && message.ends_with(
                    "); if a renderer re-serialised the object, set `sops: {verifyMac: false}` on \
                     the stage"
                ),
            "{message}"
        );
        assert!(!message.contains("hunter2") && !message.contains("admin"));

        let lenient = objects(&identity, &manifest).verify_mac(false);
        let prepared = lenient.prepare(object).unwrap().unwrap();
        assert_eq!(prepared.body["stringData"]["password"], "hunter2");
        assert_eq!(lenient.unverified(), [object.id().clone()]);
    }

    #[test]
    fn without_identities_an_encrypted_object_fails_and_a_plain_one_does_not() {
        let identity = Identity::generate();
        let manifest = loaded(&encrypted(&identity, SECRET));
        let none = SopsObjects::with_identities(Identities::new());
        assert_eq!(
            none.prepare(&manifest.objects()[0]).unwrap_err(),
            "no age identity to decrypt it with"
        );
        assert!(matches!(
            none.prepare(&loaded(SECRET).objects()[0]),
            Ok(None)
        ));
    }

    #[test]
    fn an_identity_that_does_not_open_the_data_key_names_the_object() {
        let manifest = loaded(&encrypted(&Identity::generate(), SECRET));
        let other = objects(&Identity::generate(), &manifest);
        let message = other.prepare(&manifest.objects()[0]).unwrap_err();
        assert!(
            message.starts_with("no identity opens the data key of `Secret shop/db`"),
            "{message}"
        );
    }
}
