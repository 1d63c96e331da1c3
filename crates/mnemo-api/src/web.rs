//! The web app (issue 21), served beside gRPC on the API's own port.
//!
//! - Browsers call the same gRPC services through gRPC-Web
//!   ([`GrpcWebForBrowsersLayer`], outermost in [`crate::server`];
//!   HTTP/1.1 accepted beside HTTP/2): the same interceptors, limits and
//!   statuses as any other client.
//! - Every other request is for the app: the files `web/` builds
//!   (`web/build.sh`, into `web/dist`), embedded in the binary at compile
//!   time, so the one binary is all an operator deploys. A debug build reads
//!   them from `web/dist` as they are now. A path that names no file gets
//!   `index.html` (the app's own routes: `/documents`, `/search`); a gRPC
//!   call to an unknown method gets `UNIMPLEMENTED`, as without the app.
//!
//! Owns: the embedded files, their content types, caching and security
//! headers. Must not: read tokens or serve anything of an owner's (every
//! owner's datum goes through the gRPC services and their interceptors).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::Body;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use tower_layer::Layer;
use tower_service::Service;

/// gRPC-Web for browsers, and nothing else: a request whose content type is
/// `application/grpc-web…` goes through tonic-web's translation; every
/// other request (gRPC, the app's files over HTTP/1.1) reaches the server
/// untouched. (tonic-web alone refuses any HTTP/1.1 request that is not
/// gRPC-Web, the app's page included.)
#[derive(Debug, Clone, Copy, Default)]
pub struct GrpcWebForBrowsersLayer;

impl<S: Clone> Layer<S> for GrpcWebForBrowsersLayer {
    type Service = GrpcWebForBrowsers<S>;

    fn layer(&self, inner: S) -> Self::Service {
        GrpcWebForBrowsers {
            grpc_web: tonic_web::GrpcWebLayer::new().layer(inner.clone()),
            inner,
        }
    }
}

/// See [`GrpcWebForBrowsersLayer`].
#[derive(Debug, Clone)]
pub struct GrpcWebForBrowsers<S> {
    grpc_web: tonic_web::GrpcWebService<S>,
    inner: S,
}

type TonicBody = tonic::body::Body;
type BoxFuture<T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + Send>>;

impl<S> Service<Request<TonicBody>> for GrpcWebForBrowsers<S>
where
    S: Service<Request<TonicBody>, Response = Response<TonicBody>> + Send,
    S::Future: Send + 'static,
{
    type Response = Response<TonicBody>;
    type Error = S::Error;
    type Future = BoxFuture<Self::Response, Self::Error>;

    // Both copies are asked: the server's layers and router reserve
    // nothing when polled, so the one not called holds nothing back.
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        match self.inner.poll_ready(cx) {
            Poll::Ready(Ok(())) => {
                <tonic_web::GrpcWebService<S> as Service<Request<TonicBody>>>::poll_ready(
                    &mut self.grpc_web,
                    cx,
                )
            }
            other => other,
        }
    }

    fn call(&mut self, req: Request<TonicBody>) -> Self::Future {
        if is_grpc_web(&req) {
            Box::pin(<tonic_web::GrpcWebService<S> as Service<
                Request<TonicBody>,
            >>::call(&mut self.grpc_web, req))
        } else {
            Box::pin(self.inner.call(req))
        }
    }
}

fn is_grpc_web<B>(req: &Request<B>) -> bool {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("application/grpc-web"))
}

/// The built app (`web/dist`); empty when it was not built before this
/// binary was.
#[derive(rust_embed::RustEmbed)]
#[folder = "../../web/dist/"]
#[allow_missing = true]
struct Assets;

/// What the app may load: its own files and calls to this server only
/// (the token in sessionStorage must not be readable by any other script).
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
style-src 'self'; img-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; \
frame-ancestors 'none'; form-action 'self'";

/// Shown when the binary was built without the app.
const NOT_BUILT: &str = "<!doctype html><meta charset=utf-8><title>mnemo</title>\
<p>This mnemo was built without its web app: run <code>web/build.sh</code>, then build mnemo again.";

/// The router's fallback: the app's files, or `UNIMPLEMENTED` for a gRPC
/// call no service took.
pub async fn serve(req: Request<Body>) -> Response<Body> {
    if is_grpc(&req) {
        return tonic::Status::unimplemented(format!("no method {}", req.uri().path())).into_http();
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return plain(StatusCode::METHOD_NOT_ALLOWED, "only GET and HEAD here");
    }
    let path = req.uri().path().trim_start_matches('/');
    let (file, name) = match Assets::get(path).filter(|_| !path.is_empty()) {
        Some(f) => (f, path),
        // The app's own routes (no dot in their last segment) get the app.
        None if !last_segment(path).contains('.') => match Assets::get("index.html") {
            Some(f) => (f, "index.html"),
            None => return html(StatusCode::OK, NOT_BUILT),
        },
        None => return plain(StatusCode::NOT_FOUND, "no such file"),
    };
    let mut response = Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, file.metadata.mimetype())
        .header(header::CONTENT_LENGTH, file.data.len())
        .header(header::CACHE_CONTROL, cache_control(name));
    if let Some(h) = response.headers_mut() {
        security_headers(h);
    }
    let body = if req.method() == Method::HEAD {
        Body::empty()
    } else {
        // Embedded (release): the binary's own bytes, not a copy.
        match file.data {
            std::borrow::Cow::Borrowed(bytes) => Body::from(bytes::Bytes::from_static(bytes)),
            std::borrow::Cow::Owned(bytes) => Body::from(bytes),
        }
    };
    response.body(body).unwrap_or_else(|_| {
        plain(
            StatusCode::INTERNAL_SERVER_ERROR,
            "cannot build the response",
        )
    })
}

/// Whether the app was embedded (`mnemo doctor`, the start-up log).
pub fn is_built() -> bool {
    Assets::get("index.html").is_some()
}

fn is_grpc<B>(req: &Request<B>) -> bool {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("application/grpc"))
}

fn last_segment(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// Vite names what it builds under `assets/` by content hash: kept a year.
/// Everything else (index.html above all) is checked every time, so a new
/// deployment is picked up at once.
fn cache_control(name: &str) -> &'static str {
    if name.starts_with("assets/") {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    }
}

fn security_headers(h: &mut http::HeaderMap) {
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
}

fn plain(status: StatusCode, text: &'static str) -> Response<Body> {
    let mut r = Response::new(Body::from(text));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    security_headers(r.headers_mut());
    r
}

fn html(status: StatusCode, text: &'static str) -> Response<Body> {
    let mut r = plain(status, text);
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(path: &str) -> Request<Body> {
        Request::builder().uri(path).body(Body::empty()).unwrap()
    }

    #[tokio::test]
    async fn an_unknown_grpc_method_is_unimplemented_not_the_app() {
        let req = Request::builder()
            .method(Method::POST)
            .uri("/mnemo.v1.Nope/Call")
            .header(header::CONTENT_TYPE, "application/grpc-web+proto")
            .body(Body::empty())
            .unwrap();
        let r = serve(req).await;
        assert_eq!(
            r.headers().get("grpc-status").map(|v| v.as_bytes()),
            Some(&b"12"[..])
        );
    }

    #[tokio::test]
    async fn the_apps_routes_get_the_app_and_missing_files_a_404() {
        let r = serve(get("/documents")).await;
        assert_eq!(r.status(), StatusCode::OK);
        let ct = r.headers()[header::CONTENT_TYPE].to_str().unwrap();
        assert!(ct.starts_with("text/html"), "{ct}");
        assert!(r.headers().contains_key(header::CONTENT_SECURITY_POLICY));
        let missing = serve(get("/assets/nothing-here.js")).await;
        assert_eq!(missing.status(), StatusCode::NOT_FOUND);
        let post = Request::builder()
            .method(Method::POST)
            .uri("/")
            .body(Body::empty())
            .unwrap();
        assert_eq!(serve(post).await.status(), StatusCode::METHOD_NOT_ALLOWED);
    }

    /// Answers 200 with the content type it was asked with.
    #[derive(Clone)]
    struct Echo;

    impl Service<Request<TonicBody>> for Echo {
        type Response = Response<TonicBody>;
        type Error = std::convert::Infallible;
        type Future = std::future::Ready<Result<Self::Response, Self::Error>>;

        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, req: Request<TonicBody>) -> Self::Future {
            let asked = req.headers().get(header::CONTENT_TYPE).cloned();
            let mut r = Response::new(TonicBody::empty());
            if let Some(t) = asked {
                r.headers_mut().insert("x-asked", t);
            }
            std::future::ready(Ok(r))
        }
    }

    #[tokio::test]
    async fn only_grpc_web_is_translated_and_http1_pages_pass() {
        let mut svc = GrpcWebForBrowsersLayer.layer(Echo);
        // tonic-web alone answers this one 400.
        let page = Request::builder()
            .version(http::Version::HTTP_11)
            .uri("/documents")
            .body(TonicBody::empty())
            .unwrap();
        let r = svc.call(page).await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert!(r.headers().get("x-asked").is_none());
        let call = Request::builder()
            .version(http::Version::HTTP_11)
            .method(Method::POST)
            .uri("/mnemo.v1.DocumentService/List")
            .header(header::CONTENT_TYPE, "application/grpc-web+proto")
            .body(TonicBody::empty())
            .unwrap();
        let r = svc.call(call).await.unwrap();
        assert_eq!(
            r.headers().get("x-asked").map(|v| v.as_bytes()),
            Some(&b"application/grpc"[..]),
            "the service sees plain gRPC"
        );
        assert_eq!(
            r.headers().get(header::CONTENT_TYPE).map(|v| v.as_bytes()),
            Some(&b"application/grpc-web+proto"[..]),
            "the browser gets gRPC-Web back"
        );
    }

    #[test]
    fn only_hashed_assets_are_cached() {
        assert_eq!(cache_control("index.html"), "no-cache");
        assert!(cache_control("assets/index-3f2a.js").contains("immutable"));
    }
}
