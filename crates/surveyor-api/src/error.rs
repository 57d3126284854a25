//! The API's one error type: a status code and a message safe to show a client, written as
//! the one error body every endpoint documents.

use std::time::Duration;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use surveyor_store::StoreError;
use utoipa::ToSchema;

/// How long a client is asked to wait after a timeout: the overload that caused it is
/// usually over by then, and a retry sooner would add to it.
pub(crate) const RETRY_AFTER_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    NotFound(String),
    /// No valid bearer token where one is needed.
    #[error("{0}")]
    Unauthorized(String),
    /// A valid token whose role may not see this.
    #[error("{0}")]
    Forbidden(String),
    /// The token's request rate is used up; come back after this long.
    #[error("too many requests: this token's rate is used up, retry after {} s", .0.as_secs())]
    TooManyRequests(Duration),
    /// Not ready to answer (readiness: the store is unreachable).
    #[error("{0}")]
    Unavailable(String),
    /// The request ran past the server's request timeout (`serve --request-timeout`).
    #[error(
        "the request took longer than this server allows ({} s); try again later, or ask for \
         less",
        .0.as_secs_f64()
    )]
    RequestTimeout(Duration),
    /// The request's body is larger than the server accepts (`serve --max-body`).
    #[error("the request body is larger than this server accepts ({0} bytes)")]
    PayloadTooLarge(usize),
    /// The store failed; the cause is logged, never sent to the client.
    #[error("storage error")]
    Store(#[from] StoreError),
}

/// Every error the API answers: a stable code and a message safe to show.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ErrorDetail {
    /// `bad_request`, `unauthorized`, `forbidden`, `not_found`, `gone`, `too_many_requests`, …
    code: String,
    message: String,
}

impl ApiError {
    fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::TooManyRequests(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unavailable(_)
            | ApiError::RequestTimeout(_)
            | ApiError::Store(StoreError::Timeout { .. }) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Store(StoreError::InvalidQuery(_)) => StatusCode::BAD_REQUEST,
            ApiError::Store(StoreError::UnknownScan(_)) => StatusCode::NOT_FOUND,
            ApiError::Store(StoreError::ScanPruned(_)) => StatusCode::GONE,
            ApiError::Store(e) if e.is_retryable() => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// How long the client should wait before asking again, when we can say.
    fn retry_after(&self) -> Option<Duration> {
        match self {
            ApiError::TooManyRequests(wait) => Some(*wait),
            ApiError::RequestTimeout(_) | ApiError::Store(StoreError::Timeout { .. }) => {
                Some(RETRY_AFTER_TIMEOUT)
            }
            _ => None,
        }
    }

    /// The body: our own messages about the request as they are, the store's causes only
    /// in the server log.
    fn body(&self, status: StatusCode) -> ErrorBody {
        let message = match self {
            ApiError::Store(
                e @ (StoreError::InvalidQuery(_)
                | StoreError::UnknownScan(_)
                | StoreError::ScanPruned(_)),
            ) => e.to_string(),
            // A busy database, not a broken one: logged as a warning, and the client told to
            // come back.
            ApiError::Store(error @ StoreError::Timeout { .. }) => {
                tracing::warn!(%error, "a store query ran past the statement timeout");
                "the store took too long to answer; try again later, or ask for less".to_string()
            }
            ApiError::Store(error) => {
                tracing::error!(%error, "store error while answering an API request");
                "internal error; the server log has details".to_string()
            }
            other => other.to_string(),
        };
        let code = status
            .canonical_reason()
            .unwrap_or("error")
            .to_ascii_lowercase()
            .replace(' ', "_");
        ErrorBody {
            error: ErrorDetail { code, message },
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let mut response = (status, Json(self.body(status))).into_response();
        if let Some(wait) = self.retry_after() {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(wait.as_secs()));
        }
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"surveyor\""),
            );
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Status, `Retry-After` and body of an error as a client gets it.
    async fn answer(error: ApiError) -> (StatusCode, Option<String>, serde_json::Value) {
        let response = error.into_response();
        let status = response.status();
        let retry = response
            .headers()
            .get(header::RETRY_AFTER)
            .map(|v| v.to_str().unwrap().to_string());
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        (status, retry, serde_json::from_slice(&body).unwrap())
    }

    #[tokio::test]
    async fn a_store_timeout_is_a_503_with_retry_after_that_shows_no_internals() {
        let error = ApiError::Store(StoreError::Timeout {
            backend: surveyor_store::Backend::Postgres,
            action: "count the census",
            source: sqlx::Error::PoolTimedOut,
        });
        let (status, retry, body) = answer(error).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(retry.as_deref(), Some("5"));
        assert_eq!(body["error"]["code"], "service_unavailable");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains("took too long"), "{message}");
        assert!(
            !message.contains("PostgreSQL") && !message.contains("census"),
            "{message}"
        );
    }

    #[tokio::test]
    async fn other_store_failures_stay_500_without_retry_after() {
        let error = ApiError::Store(StoreError::Query {
            backend: surveyor_store::Backend::Postgres,
            action: "count the census",
            source: sqlx::Error::RowNotFound,
        });
        let (status, retry, body) = answer(error).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(retry, None);
        assert_eq!(body["error"]["code"], "internal_server_error");
    }
}
