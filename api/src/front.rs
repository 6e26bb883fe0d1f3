//! What listens from the first moment: until the backend is reached and the node id claimed,
//! the agent answers its probes (`/livez` 200, `/readyz` 503 naming what it waits for, the
//! health check `starting`) and refuses statistics with 503; then every request goes to the
//! full API. The port is bound at once, so a port in use is an error at start, and an agent
//! waiting for its database is alive, not crash-looping.

use std::sync::{Arc, Mutex, OnceLock};

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tower::ServiceExt as _;

/// The router of a starting agent, and later the full one.
#[derive(Debug)]
pub struct Front {
    ready: OnceLock<Router>,
    /// What the agent waits for now (for `/readyz`).
    waiting_for: Mutex<String>,
    stat_path: String,
    health_path: String,
}

impl Front {
    /// A front for an agent whose stat endpoint and health check are at these paths.
    pub fn new(stat_path: &str, health_path: &str) -> Arc<Self> {
        Arc::new(Self {
            ready: OnceLock::new(),
            waiting_for: Mutex::new("starting".into()),
            stat_path: stat_path.to_owned(),
            health_path: health_path.to_owned(),
        })
    }

    /// Says what the agent waits for now.
    pub fn waiting_for(&self, what: impl Into<String>) {
        *self.waiting_for.lock().expect("lock") = what.into();
    }

    /// From now on, every request goes to `router`.
    pub fn ready(&self, router: Router) {
        let _ = self.ready.set(router);
    }

    /// The router to serve: it dispatches each request to the full API once it is ready.
    pub fn router(self: &Arc<Self>) -> Router {
        Router::new().fallback(dispatch).with_state(self.clone())
    }
}

async fn dispatch(State(front): State<Arc<Front>>, request: Request) -> Response {
    if let Some(router) = front.ready.get() {
        return match router.clone().oneshot(request).await {
            Ok(response) => response,
            Err(never) => match never {},
        };
    }
    let path = request.uri().path();
    let waiting = front.waiting_for.lock().expect("lock").clone();
    if path == "/livez" {
        (StatusCode::OK, "ok\n").into_response()
    } else if path == "/readyz" {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("starting: {waiting}\n"),
        )
            .into_response()
    } else if path == front.health_path {
        json(
            StatusCode::OK,
            r#"{"status": "starting", "db_status":"offline"}"#.to_owned(),
        )
    } else if path == front.stat_path || path == "/metrics" {
        let description = format!("the agent is starting: {waiting}");
        json(
            StatusCode::SERVICE_UNAVAILABLE,
            serde_json::json!({
                "error": "temporarily_unavailable",
                "error_description": description,
            })
            .to_string(),
        )
    } else {
        json(
            StatusCode::NOT_FOUND,
            r#"{"error":"not_found","error_description":"no such endpoint"}"#.to_owned(),
        )
    }
}

fn json(status: StatusCode, body: String) -> Response {
    let mut response = (status, body).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if status == StatusCode::SERVICE_UNAVAILABLE {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
    }
    response
}
