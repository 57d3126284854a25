//! Query strings: an endpoint's parameters, or a 400 that names every parameter it does not
//! know. A misspelt or unsupported parameter is never ignored, since an answer to another
//! question than the one asked looks just like the right one.

use axum::extract::{FromRequestParts, Query};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use utoipa::openapi::path::ParameterIn;
use utoipa::IntoParams;

use crate::ApiError;

/// An endpoint's query parameters, `T`: the names `T` documents in the OpenAPI document are
/// the only ones accepted.
#[derive(Debug)]
pub(crate) struct Params<T>(pub(crate) T);

/// The parameters of an endpoint that takes none.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct NoParams {}

impl<S, T> FromRequestParts<S> for Params<T>
where
    S: Send + Sync,
    T: DeserializeOwned + IntoParams,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let known: Vec<String> = T::into_params(|| Some(ParameterIn::Query))
            .into_iter()
            .map(|p| p.name)
            .collect();
        let known_list = if known.is_empty() {
            "none".to_string()
        } else {
            known.join(", ")
        };
        let Query(pairs) = Query::<Vec<(String, String)>>::try_from_uri(&parts.uri)
            .map_err(|e| ApiError::BadRequest(format!("bad query: {}", e.body_text())))?;
        let mut unknown: Vec<&str> = Vec::new();
        for (name, _) in &pairs {
            if !known.contains(name) && !unknown.contains(&name.as_str()) {
                unknown.push(name);
            }
        }
        if !unknown.is_empty() {
            let names: Vec<String> = unknown.iter().map(|n| format!("{n:?}")).collect();
            return Err(ApiError::BadRequest(format!(
                "unknown parameter{} {} (parameters: {known_list})",
                if unknown.len() == 1 { "" } else { "s" },
                names.join(", ")
            )));
        }
        Query::<T>::try_from_uri(&parts.uri)
            .map(|Query(params)| Params(params))
            .map_err(|e| {
                ApiError::BadRequest(format!(
                    "bad query: {} (parameters: {known_list})",
                    e.body_text()
                ))
            })
    }
}
