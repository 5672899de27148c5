//! The JSON spoken across the boundary, and the plugin side's dispatch of it.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread::Thread;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{Error, HandoffRequest, Plugin, SourcedObject};

/// One call from the host.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "call", rename_all = "kebab-case")]
pub(crate) enum Request {
    Info,
    Stages,
    Render {
        stage: String,
    },
    Transform {
        stage: String,
        objects: Vec<SourcedObject>,
    },
    Handoff {
        #[serde(flatten)]
        request: HandoffRequest,
    },
}

/// The plugin's answer: a value, or its own failure.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Response {
    Ok(Value),
    Error(String),
}

/// Answers one request: what a loaded plugin's `call` does once the bytes are in hand.
pub(crate) fn serve(plugin: &dyn Plugin, input: &[u8]) -> Vec<u8> {
    let response = match serde_json::from_slice::<Request>(input) {
        Ok(request) => match block_on(answer(plugin, request)) {
            Ok(value) => Response::Ok(value),
            Err(error) => Response::Error(match error {
                Error::Plugin { message, .. } => message,
                other => other.to_string(),
            }),
        },
        Err(error) => Response::Error(format!("the host sent a request I do not know: {error}")),
    };
    serde_json::to_vec(&response).unwrap_or_default()
}

async fn answer(plugin: &dyn Plugin, request: Request) -> crate::Result<Value> {
    let value = match request {
        Request::Info => serde_json::to_value(plugin.info()),
        Request::Stages => serde_json::to_value(plugin.stages().await?),
        Request::Render { stage } => serde_json::to_value(plugin.render(&stage).await?),
        Request::Transform { stage, objects } => {
            serde_json::to_value(plugin.transform(&stage, objects).await?)
        }
        Request::Handoff { request } => serde_json::to_value(plugin.handoff(request).await?),
    };
    value.map_err(|error| Error::Plugin {
        name: plugin.info().name,
        message: error.to_string(),
    })
}

/// Runs a future to completion on this thread. A loaded plugin has no async runtime of the
/// host's to use (its statics are its own), so each call drives its future here; a plugin that
/// needs tokio builds its own runtime inside.
pub fn block_on<F: Future>(future: F) -> F::Output {
    struct Unpark(Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut context = Context::from_waker(&waker);
    let mut future = pin!(future);
    loop {
        match future.as_mut().poll(&mut context) {
            Poll::Ready(output) => return output,
            Poll::Pending => std::thread::park(),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::serve;
    use crate::{Capability, Document, Info, Plugin, Result, async_trait};

    struct Stages;

    #[async_trait]
    impl Plugin for Stages {
        fn info(&self) -> Info {
            Info {
                name: "stages".to_owned(),
                version: "1.2.3".to_owned(),
                capabilities: vec![Capability::Stages],
            }
        }
        async fn render(&self, stage: &str) -> Result<Vec<Document>> {
            Ok(vec![Document {
                name: format!("{stage}.yaml"),
                text: String::new(),
            }])
        }
    }

    fn answer(request: serde_json::Value) -> serde_json::Value {
        serde_json::from_slice(&serve(&Stages, &serde_json::to_vec(&request).unwrap())).unwrap()
    }

    #[test]
    fn a_request_is_answered_with_the_plugins_value() {
        assert_eq!(
            answer(json!({"call": "render", "stage": "web"})),
            json!({"ok": [{"name": "web.yaml", "text": ""}]})
        );
        assert_eq!(
            answer(json!({"call": "info"})),
            json!({"ok": {"name": "stages", "version": "1.2.3", "capabilities": ["stages"]}})
        );
    }

    #[test]
    fn a_capability_the_plugin_lacks_is_answered_with_an_error() {
        let handoff = json!({"call": "handoff", "stage": "apps", "objects": [], "config": null});
        assert_eq!(
            answer(handoff),
            json!({"error": "plugin stages does not hand off stages"})
        );
    }

    #[test]
    fn an_unknown_capability_from_a_newer_plugin_is_kept_as_unknown() {
        let info: Info = serde_json::from_value(
            json!({"name": "n", "version": "1", "capabilities": ["stages", "teleport"]}),
        )
        .unwrap();
        assert_eq!(info.capabilities, [Capability::Stages, Capability::Unknown]);
    }
}
