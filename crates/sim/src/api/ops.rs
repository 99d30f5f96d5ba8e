//! Operations endpoints: health (503 while an injected start-up delay lasts), the model list,
//! version, Prometheus metrics and the fault control.

use std::sync::Arc;

use axum::{
    body::Bytes,
    extract::State,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};

use super::{json_response, to_json};
use crate::Simulator;

/// `GET /health` (also `/health/ready`, `/v2/health/ready`): 200 with an empty body when ready;
/// 503 during an injected start-up delay or if an engine stopped.
pub async fn health(State(sim): State<Arc<Simulator>>) -> StatusCode {
    if sim.is_ready() && !sim.engine_died() { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE }
}

/// `GET /v1/models`: base models, then LoRA adapters (with their `parent`), as vLLM lists them
/// (`root` is the name here, vLLM's is the model's path; the permission id is fixed per name).
pub async fn models(State(sim): State<Arc<Simulator>>) -> Response {
    let base = &sim.cfg.served_models[0];
    let card = |id: &str, parent: Option<&str>| {
        serde_json::json!({
            "id": id, "object": "model", "created": sim.created, "owned_by": "vllm",
            "root": parent.unwrap_or(id), "parent": parent, "max_model_len": sim.cfg.max_model_len,
            "permission": [{
                "id": format!("modelperm-{:016x}", crate::tokens::content_hash(0, &crate::tokens::encode(id), 0)),
                "object": "model_permission", "created": sim.created, "allow_create_engine": false,
                "allow_sampling": true, "allow_logprobs": true, "allow_search_indices": false, "allow_view": true,
                "allow_fine_tuning": false, "organization": "*", "group": null, "is_blocking": false,
            }],
        })
    };
    let data: Vec<_> = sim
        .cfg
        .served_models
        .iter()
        .map(|m| card(m, None))
        .chain(sim.cfg.lora_adapters.iter().map(|l| card(l, Some(base))))
        .collect();
    json_response(200, to_json(&serde_json::json!({"object": "list", "data": data})))
}

/// `GET /version`.
pub async fn version() -> Response {
    json_response(200, to_json(&serde_json::json!({"version": concat!("inferbench-sim ", env!("CARGO_PKG_VERSION"))})))
}

/// `GET /metrics`: Prometheus text format 0.0.4.
pub async fn metrics(State(sim): State<Arc<Simulator>>) -> Response {
    let mut r = sim.metrics.render().into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"));
    r
}

/// `GET /admin/faults`: the current fault settings.
pub async fn get_faults(State(sim): State<Arc<Simulator>>) -> Response {
    json_response(200, to_json(&sim.faults()))
}

/// `POST /admin/faults`: a partial update (only the keys given change); 400 on unknown keys or
/// bad values, with nothing changed.
pub async fn post_faults(State(sim): State<Arc<Simulator>>, body: Bytes) -> Response {
    let patch: serde_json::Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return json_response(400, to_json(&serde_json::json!({"error": format!("invalid JSON: {e}")}))),
    };
    match sim.patch_faults(&patch) {
        Ok(f) => json_response(200, to_json(&f)),
        Err(e) => json_response(400, to_json(&serde_json::json!({"error": e.0}))),
    }
}
