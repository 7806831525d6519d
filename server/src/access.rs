//! Who may call what on the operator API: every route's permission, checked on the server for the
//! caller's role and scope, and the view links (watchers of one sandbox, with an expiry and
//! revocation).
//!
//! The rules live in one table ([`rule`]); a route missing from it is refused to everyone, so a
//! new route cannot be reachable by mistake. A refusal answers 403 with the reason and goes on the
//! ledger; nothing of the request runs.

use airlock_domain::{Permission, Principal};
use airlock_supervisor::access::Access;
use airlock_supervisor::api::LinkRequest;
use axum::extract::{MatchedPath, Path, Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};

use crate::operator::ApiError;

/// The caller of an operator API request, put there by the auth layer.
#[derive(Debug, Clone)]
pub struct Caller(pub Principal);

/// What a route needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    /// The permission.
    pub permission: Permission,
    /// A view link may call it although it names no sandbox (the answer is filtered to its own).
    pub link_ok: bool,
}

const fn needs(permission: Permission) -> Rule {
    Rule {
        permission,
        link_ok: false,
    }
}

const fn filtered(permission: Permission) -> Rule {
    Rule {
        permission,
        link_ok: true,
    }
}

/// The rule of a route (`path` as the router spells it, without `/api`); `None` for a route with
/// no rule, which nobody may call.
pub fn rule(method: &Method, path: &str) -> Option<Rule> {
    use Permission::*;
    let get = *method == Method::GET;
    let post = *method == Method::POST;
    let delete = *method == Method::DELETE;
    Some(match path {
        "/me" if get => filtered(See),
        "/snapshot" | "/events" | "/sandboxes" if get => filtered(See),
        "/sandboxes" if post => needs(Manage),
        "/sandboxes/{id}" if get => needs(See),
        "/sandboxes/{id}" if delete => needs(Manage),
        "/sandboxes/{id}/screenshot" | "/sandboxes/{id}/view" | "/sandboxes/{id}/network" if get => {
            needs(See)
        }
        "/sandboxes/{id}/lease" | "/sandboxes/{id}/input" if post => needs(Drive),
        "/sandboxes/{id}/approvals/{approval}" | "/sandboxes/{id}/egress/{ask}" if post => needs(Decide),
        "/sandboxes/{id}/links" if post => needs(Links),
        "/sandboxes/{id}/files" | "/sandboxes/{id}/files/list" if get => needs(Files),
        "/sandboxes/{id}/files" if post => needs(Files),
        "/links" if get => needs(Links),
        "/links/{link}" if delete => needs(Links),
        "/approvals" | "/egress" | "/ledger" | "/ledger/export" | "/ledger/verify" | "/blobs/{hash}"
        | "/policy"
            if get =>
        {
            needs(See)
        }
        "/policy/mode" if post => needs(Policy),
        _ => return None,
    })
}

/// The `{id}` segment of `uri_path` where the route template `route` has it (both may or may not
/// carry the `/api` prefix: they are aligned from the end).
fn sandbox_in(route: &str, uri_path: &str) -> Option<String> {
    let t: Vec<&str> = route.trim_end_matches('/').split('/').collect();
    let u: Vec<&str> = uri_path.trim_end_matches('/').split('/').collect();
    let at = t.iter().position(|s| *s == "{id}")?;
    let from_end = t.len() - at;
    u.len()
        .checked_sub(from_end)
        .and_then(|i| u.get(i))
        .map(|s| s.to_string())
}

/// The route layer: checks the caller against the matched route's rule before the handler runs.
pub async fn authorize(State(access): State<Access>, req: Request, next: Next) -> Response {
    let Some(Caller(principal)) = req.extensions().get::<Caller>().cloned() else {
        return ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "no caller on the request",
        )
        .into_response();
    };
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string())
        .unwrap_or_default();
    let route = route.strip_prefix("/api").unwrap_or(&route).to_string();
    let request = format!("{} /api{}", req.method(), req.uri().path());
    let sandbox = sandbox_in(&route, req.uri().path());
    let Some(rule) = rule(req.method(), &route) else {
        let message = format!("{request} has no access rule; nobody may call it");
        tracing::error!(%message);
        return ApiError::new(StatusCode::FORBIDDEN, "forbidden", message).into_response();
    };
    match principal.check(rule.permission, sandbox.as_deref(), rule.link_ok) {
        Ok(()) => next.run(req).await,
        Err(forbidden) => {
            let on = sandbox.clone().or_else(|| match &principal.scope {
                airlock_domain::Scope::Sandbox(s) => Some(s.clone()),
                airlock_domain::Scope::All => None,
            });
            refuse(&access, request, on.as_deref(), forbidden, &principal.name)
                .await
                .into_response()
        }
    }
}

/// Records that `who` was refused `request` (on sandbox `on`) and answers 403 with the reason:
/// the route layer's refusal, and a handler's when the permission depends on the request's body.
pub(crate) async fn refuse(
    access: &Access,
    request: String,
    on: Option<&str>,
    forbidden: airlock_domain::Forbidden,
    who: &str,
) -> ApiError {
    let message = forbidden.to_string();
    access.record_refusal(request, on, forbidden, who).await;
    ApiError::new(StatusCode::FORBIDDEN, "forbidden", message)
}

/// `POST /api/sandboxes/{id}/links`.
pub async fn create_link(
    Extension(access): Extension<Access>,
    Extension(Caller(caller)): Extension<Caller>,
    Path(id): Path<String>,
    body: Option<Json<LinkRequest>>,
) -> Result<impl IntoResponse, ApiError> {
    let ttl = body.and_then(|Json(b)| b.ttl_s);
    Ok((
        StatusCode::CREATED,
        Json(access.create(&id, &caller.name, ttl).await?),
    ))
}

/// `GET /api/links`.
pub async fn list_links(Extension(access): Extension<Access>) -> impl IntoResponse {
    Json(access.live())
}

/// `DELETE /api/links/{link}`.
pub async fn revoke_link(
    Extension(access): Extension<Access>,
    Extension(Caller(caller)): Extension<Caller>,
    Path(link): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(access.revoke(&link, &caller.name).await?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sandbox_is_read_from_where_the_route_names_it() {
        assert_eq!(
            sandbox_in("/api/sandboxes/{id}/lease", "/sandboxes/s-1/lease").as_deref(),
            Some("s-1")
        );
        assert_eq!(
            sandbox_in("/sandboxes/{id}", "/api/sandboxes/s-2").as_deref(),
            Some("s-2")
        );
        assert_eq!(
            sandbox_in(
                "/sandboxes/{id}/approvals/{approval}",
                "/sandboxes/s3/approvals/7"
            )
            .as_deref(),
            Some("s3")
        );
        assert_eq!(sandbox_in("/ledger", "/ledger"), None);
    }

    #[test]
    fn changing_things_needs_more_than_seeing_them() {
        let r = |m: Method, p: &str| rule(&m, p).map(|r| r.permission);
        assert_eq!(r(Method::POST, "/sandboxes/{id}/lease"), Some(Permission::Drive));
        assert_eq!(r(Method::POST, "/sandboxes/{id}/input"), Some(Permission::Drive));
        assert_eq!(
            r(Method::POST, "/sandboxes/{id}/approvals/{approval}"),
            Some(Permission::Decide)
        );
        assert_eq!(
            r(Method::POST, "/sandboxes/{id}/egress/{ask}"),
            Some(Permission::Decide)
        );
        assert_eq!(r(Method::DELETE, "/sandboxes/{id}"), Some(Permission::Manage));
        assert_eq!(r(Method::POST, "/policy/mode"), Some(Permission::Policy));
        assert_eq!(r(Method::GET, "/sandboxes/{id}/view"), Some(Permission::See));
    }

    #[test]
    fn a_route_without_a_rule_is_nobodys() {
        assert_eq!(rule(&Method::POST, "/ledger"), None);
        assert_eq!(rule(&Method::GET, "/sandboxes/{id}/lease"), None);
        assert_eq!(rule(&Method::PUT, "/policy/mode"), None);
    }

    #[test]
    fn only_filtered_routes_serve_a_link_without_naming_its_sandbox() {
        for p in ["/me", "/snapshot", "/events", "/sandboxes"] {
            assert!(rule(&Method::GET, p).is_some_and(|r| r.link_ok), "{p}");
        }
        for p in [
            "/ledger",
            "/approvals",
            "/egress",
            "/blobs/{hash}",
            "/policy",
            "/ledger/export",
        ] {
            assert!(rule(&Method::GET, p).is_some_and(|r| !r.link_ok), "{p}");
        }
    }
}
