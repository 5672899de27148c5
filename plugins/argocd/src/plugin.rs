//! The backend as a capstan plugin.

use capstan_plugin::{Capability, Handoff, HandoffRequest, Info, Plugin, async_trait};

use crate::{Config, hand_off};

/// The Argo CD handoff backend.
#[derive(Debug, Default)]
pub struct ArgoCd;

#[async_trait]
impl Plugin for ArgoCd {
    fn info(&self) -> Info {
        Info {
            name: "argocd".to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            capabilities: vec![Capability::Handoff],
        }
    }

    async fn handoff(&self, request: HandoffRequest) -> capstan_plugin::Result<Handoff> {
        let failed = |message: String| capstan_plugin::Error::Plugin {
            name: "argocd".to_owned(),
            message,
        };
        let config: Config = if request.config.is_null() {
            Config::default()
        } else {
            serde_json::from_value(request.config.clone())
                .map_err(|error| failed(crate::Error::Config(error.to_string()).to_string()))?
        };
        hand_off(&request, &config).map_err(|error| failed(error.to_string()))
    }
}
