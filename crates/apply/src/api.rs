//! The few requests capstan makes, each retried on transient failures and counted.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ListMeta, ObjectMeta};
use kube::Client;
use kube::api::{
    DeleteParams, DynamicObject, ListParams, Patch, PatchParams, Preconditions, PropagationPolicy,
};
use kube::core::{ApiResource, Request, Resource as _};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// A client that retries and counts.
#[derive(Clone)]
pub(crate) struct Api {
    client: Client,
    requests: Arc<AtomicUsize>,
    /// Set when retries ran out on a lost connection: the rest of the run fails fast instead
    /// of retrying every remaining object against a server that is gone.
    lost: Arc<AtomicBool>,
}

/// One item of a metadata-only list.
#[derive(Debug, Deserialize)]
pub(crate) struct MetaItem {
    pub(crate) metadata: ObjectMeta,
}

#[derive(Deserialize)]
struct MetaList {
    #[serde(default)]
    metadata: ListMeta,
    /// `null` when empty.
    items: Option<Vec<MetaItem>>,
}

#[derive(Deserialize)]
struct FullList {
    #[serde(default)]
    metadata: ListMeta,
    /// `null` when empty.
    items: Option<Vec<Value>>,
}

/// How one object is addressed: its resource type, namespace and name.
#[derive(Clone, Copy)]
pub(crate) struct Target<'a> {
    pub(crate) resource: &'a ApiResource,
    pub(crate) namespace: Option<&'a str>,
    pub(crate) name: &'a str,
}

/// Server-side apply, as a real write or a dry run.
pub(crate) struct ApplyRequest<'a> {
    pub(crate) manager: &'a str,
    pub(crate) force: bool,
    pub(crate) dry_run: bool,
}

const PAGE: u32 = 500;
const ATTEMPTS: u32 = 5;

impl Api {
    pub(crate) fn new(client: Client) -> Self {
        Self {
            client,
            requests: Arc::default(),
            lost: Arc::default(),
        }
    }

    pub(crate) fn client(&self) -> &Client {
        &self.client
    }

    /// Starts a new run: a server lost in an earlier one is tried again.
    pub(crate) fn reset(&self) {
        self.lost.store(false, Ordering::Relaxed);
    }

    /// Counts a request sent without [`Api::send`] (discovery).
    pub(crate) fn count(&self) {
        self.requests.fetch_add(1, Ordering::Relaxed);
    }

    /// Requests sent so far, retries included.
    pub(crate) fn requests(&self) -> usize {
        self.requests.load(Ordering::Relaxed)
    }

    /// Sends a request, retrying 429, 5xx and failed connections with exponential backoff
    /// (0.2 s, 0.4 s, ... about 3 s in all) before giving up.
    pub(crate) async fn send<T: DeserializeOwned>(
        &self,
        make: impl Fn() -> Result<http::Request<Vec<u8>>, kube::core::request::Error>,
    ) -> Result<T, kube::Error> {
        let mut delay = Duration::from_millis(200);
        let mut attempt = 1;
        loop {
            if self.lost.load(Ordering::Relaxed) {
                return Err(kube::Error::Service(
                    "not sent: the API server stopped answering earlier in this run".into(),
                ));
            }
            let request = make().map_err(kube::Error::BuildRequest)?;
            self.requests.fetch_add(1, Ordering::Relaxed);
            match self.client.request::<T>(request).await {
                Err(error) if attempt < ATTEMPTS && is_transient(&error) => {
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                    attempt += 1;
                }
                Err(error) if is_transient(&error) && status_code(&error).is_none() => {
                    // A server that still answers dropped this one request every time (1.20
                    // panics on a dry-run apply of an APIService): that is the request's
                    // failure, not a lost server, and the rest of the run goes on.
                    self.requests.fetch_add(1, Ordering::Relaxed);
                    if self.client.apiserver_version().await.is_ok() {
                        return Err(kube::Error::Service(
                            format!(
                                "the API server dropped this request {ATTEMPTS} times while it \
                                 answers others, so it fails on this object ({error})"
                            )
                            .into(),
                        ));
                    }
                    self.lost.store(true, Ordering::Relaxed);
                    return Err(error);
                }
                result => return result,
            }
        }
    }

    pub(crate) async fn get(&self, target: Target<'_>) -> Result<Option<Value>, kube::Error> {
        let request = request(target);
        match self
            .send(|| request.get(target.name, &Default::default()))
            .await
        {
            Err(error) if status_code(&error) == Some(404) => Ok(None),
            result => result.map(Some),
        }
    }

    pub(crate) async fn apply(
        &self,
        target: Target<'_>,
        body: &Value,
        how: &ApplyRequest<'_>,
    ) -> Result<Value, kube::Error> {
        let mut params = PatchParams::apply(how.manager);
        params.force = how.force;
        params.dry_run = how.dry_run;
        let request = request(target);
        self.send(|| request.patch(target.name, &params, &Patch::Apply(body)))
            .await
    }

    /// Deletes in the background, only if the object still has `uid`. `Ok(false)` when it is
    /// already gone.
    pub(crate) async fn delete(&self, target: Target<'_>, uid: &str) -> Result<bool, kube::Error> {
        let params = DeleteParams {
            propagation_policy: Some(PropagationPolicy::Background),
            preconditions: Some(Preconditions {
                uid: Some(uid.to_owned()),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        let request = request(target);
        match self
            .send::<Value>(|| request.delete(target.name, &params))
            .await
        {
            Ok(_) => Ok(true),
            Err(error) if status_code(&error) == Some(404) => Ok(false),
            Err(error) => Err(error),
        }
    }

    /// All objects' metadata (`PartialObjectMetadata`) of a type, in one namespace or all,
    /// optionally selected by label; page by page.
    pub(crate) async fn list_metadata(
        &self,
        resource: &ApiResource,
        namespace: Option<&str>,
        selector: Option<&str>,
    ) -> Result<Vec<MetaItem>, kube::Error> {
        let request = Request::new(DynamicObject::url_path(resource, namespace));
        let mut items = Vec::new();
        let mut token = None;
        loop {
            let params = list_params(selector, token.take());
            let page: MetaList = self.send(|| request.list_metadata(&params)).await?;
            items.extend(page.items.into_iter().flatten());
            match page.metadata.continue_ {
                Some(next) if !next.is_empty() => token = Some(next),
                _ => return Ok(items),
            }
        }
    }

    /// Whole objects of a type across all namespaces, selected by label; page by page.
    pub(crate) async fn list(
        &self,
        resource: &ApiResource,
        selector: &str,
    ) -> Result<Vec<Value>, kube::Error> {
        let request = Request::new(DynamicObject::url_path(resource, None));
        let mut items = Vec::new();
        let mut token = None;
        loop {
            let params = list_params(Some(selector), token.take());
            let page: FullList = self.send(|| request.list(&params)).await?;
            items.extend(page.items.into_iter().flatten());
            match page.metadata.continue_ {
                Some(next) if !next.is_empty() => token = Some(next),
                _ => return Ok(items),
            }
        }
    }
}

fn request(target: Target<'_>) -> Request {
    Request::new(DynamicObject::url_path(target.resource, target.namespace))
}

fn list_params(selector: Option<&str>, token: Option<String>) -> ListParams {
    let mut params = ListParams::default().limit(PAGE);
    if let Some(selector) = selector {
        params = params.labels(selector);
    }
    if let Some(token) = token {
        params = params.continue_token(&token);
    }
    params
}

/// The HTTP status of an error the server answered.
pub(crate) fn status_code(error: &kube::Error) -> Option<u16> {
    match error {
        kube::Error::Api(status) => Some(status.code),
        _ => None,
    }
}

/// What a 1.20 apiserver's 500 says when the request itself is invalid (a server-side apply
/// body that does not fit the schema; newer servers answer 4xx): retrying cannot help.
const INVALID_REQUEST_500: &str = "failed to create typed patch object";

/// Throttling, server trouble and lost connections pass; anything else would fail again.
fn is_transient(error: &kube::Error) -> bool {
    match error {
        kube::Error::Api(status) if status.message.starts_with(INVALID_REQUEST_500) => false,
        kube::Error::Api(status) => matches!(status.code, 429 | 500 | 502 | 503 | 504),
        kube::Error::HyperError(_) | kube::Error::Service(_) => true,
        _ => false,
    }
}
