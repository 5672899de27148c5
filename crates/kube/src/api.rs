//! The requests capstan makes, each retried on transient failures and counted.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ListMeta, ObjectMeta};
use kube::Client;
use kube::api::{
    DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams, Preconditions,
    PropagationPolicy,
};
use kube::client::Body;
use kube::core::{ApiResource, Request, Resource as _};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::failure::{is_transient, status_code};

/// A client that retries, counts its requests, and stops sending once the server is gone.
///
/// Clones share the counter and the lost-connection breaker, so one run's parallel tasks see
/// the same server state.
#[derive(Clone)]
pub struct Api {
    client: Client,
    requests: Arc<AtomicUsize>,
    /// Set when retries ran out on a lost connection: the rest of the run fails fast instead
    /// of retrying every remaining object against a server that is gone.
    lost: Arc<AtomicBool>,
}

/// One item of a metadata-only list (`PartialObjectMetadata`).
#[derive(Clone, Debug, Default, Deserialize)]
#[non_exhaustive]
pub struct MetaItem {
    /// The object's metadata.
    pub metadata: ObjectMeta,
}

#[derive(Deserialize)]
struct Page<T> {
    #[serde(default)]
    metadata: ListMeta,
    /// `null` when empty.
    items: Option<Vec<T>>,
}

/// How one object is addressed: its resource type, namespace and name.
#[derive(Clone, Copy, Debug)]
pub struct Target<'a> {
    /// The resource type.
    pub resource: &'a ApiResource,
    /// The namespace, for namespaced types.
    pub namespace: Option<&'a str>,
    /// The object's name.
    pub name: &'a str,
}

impl Target<'_> {
    fn request(&self) -> Request {
        Request::new(DynamicObject::url_path(self.resource, self.namespace))
    }
}

const PAGE: u32 = 500;
const ATTEMPTS: u32 = 5;

impl Api {
    /// Wraps a client; nothing is sent yet.
    pub fn new(client: Client) -> Self {
        Self {
            client,
            requests: Arc::default(),
            lost: Arc::default(),
        }
    }

    /// The wrapped client, for requests this wrapper does not make (count them with
    /// [`Api::count`]).
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Starts a new run: a server lost in an earlier one is tried again.
    pub fn reset(&self) {
        self.lost.store(false, Ordering::Relaxed);
    }

    /// Counts a request sent without [`Api::send`] (discovery).
    pub fn count(&self) {
        self.requests.fetch_add(1, Ordering::Relaxed);
    }

    /// Requests sent so far, retries included.
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::Relaxed)
    }

    /// Sends a request, retrying 429, 5xx and failed connections with exponential backoff
    /// (0.2 s, 0.4 s, ... about 3 s in all) before giving up. A 500 that says the request
    /// itself is invalid is not retried.
    ///
    /// # Errors
    ///
    /// The last failure: the server's answer, or the connection's error. A request the server
    /// dropped every time while it still answers others fails alone; when the server stopped
    /// answering altogether, this and every later request of the run fail without being sent
    /// (until [`Api::reset`]).
    pub async fn send<T: DeserializeOwned>(
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

    /// Reads an object; `Ok(None)` when it does not exist.
    ///
    /// # Errors
    ///
    /// As [`Api::send`], but a 404 is `Ok(None)`.
    pub async fn get(&self, target: Target<'_>) -> Result<Option<Value>, kube::Error> {
        let request = target.request();
        match self
            .send(|| request.get(target.name, &Default::default()))
            .await
        {
            Err(error) if status_code(&error) == Some(404) => Ok(None),
            result => result.map(Some),
        }
    }

    /// Server-side applies `body` (`PatchParams::apply(manager)`, with `force` and `dry_run`
    /// as wanted); the object as the server stored it, or would.
    ///
    /// # Errors
    ///
    /// As [`Api::send`].
    pub async fn apply(
        &self,
        target: Target<'_>,
        body: &Value,
        params: &PatchParams,
    ) -> Result<Value, kube::Error> {
        let request = target.request();
        self.send(|| request.patch(target.name, params, &Patch::Apply(body)))
            .await
    }

    /// Patches the object's `status` subresource (which a write of the object itself leaves
    /// alone); the object as the server stored it.
    ///
    /// # Errors
    ///
    /// As [`Api::send`]; a 404 when the object does not exist or its type has no status
    /// subresource.
    pub async fn patch_status<P: Serialize>(
        &self,
        target: Target<'_>,
        patch: &Patch<P>,
        params: &PatchParams,
    ) -> Result<Value, kube::Error> {
        let request = target.request();
        self.send(|| request.patch_subresource("status", target.name, params, patch))
            .await
    }

    /// Deletes in the background, only if the object still has `uid`. `Ok(false)` when it is
    /// already gone.
    ///
    /// # Errors
    ///
    /// As [`Api::send`]; a 409 when the object has another UID now.
    pub async fn delete(&self, target: Target<'_>, uid: &str) -> Result<bool, kube::Error> {
        let params = DeleteParams {
            propagation_policy: Some(PropagationPolicy::Background),
            preconditions: Some(Preconditions {
                uid: Some(uid.to_owned()),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        let request = target.request();
        match self
            .send::<Value>(|| request.delete(target.name, &params))
            .await
        {
            Ok(_) => Ok(true),
            Err(error) if status_code(&error) == Some(404) => Ok(false),
            Err(error) => Err(error),
        }
    }

    /// All objects' metadata of a type, in one namespace or all, optionally selected by
    /// label; page by page.
    ///
    /// # Errors
    ///
    /// As [`Api::send`], for any page.
    pub async fn list_metadata(
        &self,
        resource: &ApiResource,
        namespace: Option<&str>,
        selector: Option<&str>,
    ) -> Result<Vec<MetaItem>, kube::Error> {
        let request = Request::new(DynamicObject::url_path(resource, namespace));
        self.pages(selector, None, |params| request.list_metadata(params))
            .await
    }

    /// Whole objects of a type across all namespaces, selected by label; page by page.
    ///
    /// # Errors
    ///
    /// As [`Api::send`], for any page.
    pub async fn list(
        &self,
        resource: &ApiResource,
        selector: &str,
    ) -> Result<Vec<Value>, kube::Error> {
        let request = Request::new(DynamicObject::url_path(resource, None));
        self.pages(Some(selector), None, |params| request.list(params))
            .await
    }

    /// Whole objects of a type, in one namespace or all, selected by label and by field
    /// (`spec.nodeName=node-1`: the pods of a node); page by page.
    ///
    /// # Errors
    ///
    /// As [`Api::send`], for any page.
    pub async fn list_selected<T: DeserializeOwned>(
        &self,
        resource: &ApiResource,
        namespace: Option<&str>,
        labels: Option<&str>,
        fields: Option<&str>,
    ) -> Result<Vec<T>, kube::Error> {
        let request = Request::new(DynamicObject::url_path(resource, namespace));
        self.pages(labels, fields, |params| request.list(params))
            .await
    }

    /// Creates a subresource of an object (a pod's `eviction`) and returns the server's answer
    /// as it came, status code and body, whatever the code: a 429 there is a disruption
    /// budget's verdict with its causes in the body, not throttling to retry. Only a lost
    /// connection is retried, as in [`Api::send`].
    ///
    /// # Errors
    ///
    /// The connection's error, when the server never answered; the breaker as in
    /// [`Api::send`].
    pub async fn create_subresource(
        &self,
        target: Target<'_>,
        subresource: &str,
        body: &Value,
    ) -> Result<(u16, Vec<u8>), kube::Error> {
        let bytes = serde_json::to_vec(body).map_err(kube::Error::SerdeError)?;
        let request = target.request();
        let mut delay = Duration::from_millis(200);
        let mut attempt = 1;
        loop {
            if self.lost.load(Ordering::Relaxed) {
                return Err(kube::Error::Service(
                    "not sent: the API server stopped answering earlier in this run".into(),
                ));
            }
            let built = request
                .create_subresource(
                    subresource,
                    target.name,
                    &PostParams::default(),
                    bytes.clone(),
                )
                .map_err(kube::Error::BuildRequest)?;
            self.requests.fetch_add(1, Ordering::Relaxed);
            match self.client.send(built.map(Body::from)).await {
                Ok(response) => {
                    let code = response.status().as_u16();
                    let body = response.into_body().collect_bytes().await?;
                    return Ok((code, body.to_vec()));
                }
                Err(error) if attempt < ATTEMPTS && is_transient(&error) => {
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                    attempt += 1;
                }
                Err(error) => return Err(error),
            }
        }
    }

    /// Follows `continue` tokens until the last page.
    async fn pages<T: DeserializeOwned>(
        &self,
        selector: Option<&str>,
        fields: Option<&str>,
        make: impl Fn(&ListParams) -> Result<http::Request<Vec<u8>>, kube::core::request::Error>,
    ) -> Result<Vec<T>, kube::Error> {
        let mut items = Vec::new();
        let mut token = None;
        loop {
            let params = list_params(selector, fields, token.take());
            let page: Page<T> = self.send(|| make(&params)).await?;
            items.extend(page.items.into_iter().flatten());
            match page.metadata.continue_ {
                Some(next) if !next.is_empty() => token = Some(next),
                _ => return Ok(items),
            }
        }
    }
}

fn list_params(selector: Option<&str>, fields: Option<&str>, token: Option<String>) -> ListParams {
    let mut params = ListParams::default().limit(PAGE);
    if let Some(selector) = selector {
        params = params.labels(selector);
    }
    if let Some(fields) = fields {
        params = params.fields(fields);
    }
    if let Some(token) = token {
        params = params.continue_token(&token);
    }
    params
}
