//! A tiny "devices" API protected by tokenops: every route needs a token with
//! `devices:read`, checked by the `tokenops-client` tower layer; one device
//! is shown only to a token limited to that device, its site or its group
//! (or to a token with `resources: all`).
//!
//! `router(gate)` is the whole service, so tests and benchmarks serve it as
//! `main.rs` does.

use std::sync::Arc;

use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};
use serde::Serialize;
use tokenops_client::ResourceRef;
use tokenops_client::gateway::{Gate, Identity};

/// One device of the inventory.
#[derive(Debug, Clone, Serialize)]
pub struct Device {
    pub serial: &'static str,
    pub site: &'static str,
    pub group: &'static str,
    pub model: &'static str,
}

impl Device {
    /// What a token may be limited to for this device to be visible.
    fn resources(&self) -> [ResourceRef; 3] {
        [
            ResourceRef::new("device", self.serial),
            ResourceRef::new("site", self.site),
            ResourceRef::new("device_group", self.group),
        ]
    }
}

/// The inventory (fixed: the example is about access, not storage).
pub const DEVICES: [Device; 4] = [
    Device {
        serial: "SN-42",
        site: "berlin",
        group: "sensors",
        model: "T-1000",
    },
    Device {
        serial: "SN-43",
        site: "paris",
        group: "sensors",
        model: "T-1000",
    },
    Device {
        serial: "SN-44",
        site: "berlin",
        group: "cameras",
        model: "C-20",
    },
    Device {
        serial: "SN-45",
        site: "oslo",
        group: "cameras",
        model: "C-20",
    },
];

/// The API, every route behind `gate` with `devices:read`.
pub fn router(gate: &Gate) -> Router {
    routes().layer(gate.require("devices:read"))
}

/// The same routes with a fixed identity instead of the check: only for
/// measuring what the check costs.
pub fn unchecked(identity: Identity) -> Router {
    routes().layer(Extension(Arc::new(identity)))
}

fn routes() -> Router {
    Router::new()
        .route("/v1/devices", get(list_devices))
        .route("/v1/devices/{serial}", get(get_device))
}

/// The devices the token may see.
async fn list_devices(Extension(me): Extension<Arc<Identity>>) -> Json<Vec<Device>> {
    Json(
        DEVICES
            .iter()
            .filter(|d| me.allows_any(&d.resources()))
            .cloned()
            .collect(),
    )
}

/// One device, if the token may see it.
async fn get_device(
    Extension(me): Extension<Arc<Identity>>,
    Path(serial): Path<String>,
) -> Response {
    let Some(device) = DEVICES.iter().find(|d| d.serial == serial) else {
        // Only a token that could see it learns that it does not exist.
        let asked = ResourceRef::new("device", serial);
        if let Err(refusal) = me.require_any([&asked]) {
            return refusal.to_response::<axum::body::Body>();
        }
        return (StatusCode::NOT_FOUND, "no such device").into_response();
    };
    if let Err(refusal) = me.require_any(&device.resources()) {
        return refusal.to_response::<axum::body::Body>();
    }
    Json(device.clone()).into_response()
}
