//! The console's stylesheet and script, compiled into the binary (no CDN,
//! no other origin). The script is the console's own and only enhances:
//! every view works without it.

use axum::extract::Path;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};

/// The stylesheet.
const CSS: &str = include_str!("assets/console.css");
/// The script (live updates, confirmation of the login link's removal
/// from the address bar).
const JS: &str = include_str!("assets/console.js");
/// The tab icon (so the browser asks for no `/favicon.ico`).
const ICON: &str = include_str!("assets/favicon.svg");

/// `/assets/{file}`.
pub(super) async fn serve(Path(file): Path<String>) -> Response {
    match file.as_str() {
        "console.css" => ([(CONTENT_TYPE, "text/css; charset=utf-8")], CSS).into_response(),
        "console.js" => ([(CONTENT_TYPE, "text/javascript; charset=utf-8")], JS).into_response(),
        "favicon.svg" => ([(CONTENT_TYPE, "image/svg+xml")], ICON).into_response(),
        _ => super::web::not_found().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assets_need_no_other_origin() {
        for asset in [
            CSS,
            JS,
            ICON.trim_start_matches("<svg xmlns=\"http://www.w3.org/2000/svg\""),
        ] {
            assert!(!asset.contains("http://"), "an absolute URL in an asset");
            assert!(!asset.contains("https://"), "an absolute URL in an asset");
            assert!(!asset.contains("//cdn"), "a CDN in an asset");
        }
        assert!(!JS.contains("eval("), "no eval under a strict CSP");
    }
}
