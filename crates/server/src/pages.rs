//! The few HTML pages a person sees: login, consent, errors. Plain, self-contained, framed by
//! nobody (RFC 9700 §4.16), never cached.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use tessera_core::LoginError;
use tessera_proto::{CsrfToken, ExposeSecret};

use crate::error::PageError;

/// Escapes text for HTML element content and double-quoted attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

pub(crate) const STYLE: &str = "body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;background:#f3f4f6;color:#111827;margin:0;padding:0 12px}\
main{max-width:380px;margin:10vh auto;background:#fff;border-radius:12px;box-shadow:0 1px 3px rgba(0,0,0,.12);padding:32px}\
h1{font-size:1.25rem;margin:0 0 4px}p{color:#4b5563;line-height:1.5}label{display:block;font-size:.875rem;margin:16px 0 4px;color:#374151}\
input[type=text],input[type=password]{box-sizing:border-box;width:100%;padding:10px;border:1px solid #d1d5db;border-radius:8px;font-size:1rem}\
button{margin-top:20px;padding:10px 16px;border-radius:8px;border:1px solid #1d4ed8;background:#2563eb;color:#fff;font-size:1rem;cursor:pointer}\
button.secondary{background:#fff;color:#1f2937;border-color:#d1d5db;margin-left:8px}.error{color:#b91c1c;background:#fef2f2;padding:8px 12px;border-radius:8px}\
ul{padding-left:20px;color:#374151}li{margin:4px 0}.scope{color:#6b7280;font-size:.75rem;font-family:ui-monospace,monospace}\
code{background:#f3f4f6;padding:2px 4px;border-radius:4px}\
main{overflow-wrap:anywhere}.detail{font-size:.8rem;color:#6b7280}.brand{color:#6b7280;font-size:.8rem;letter-spacing:.08em;text-transform:uppercase}";

pub fn page(
    status: StatusCode,
    title: &str,
    body: &str,
    extra_cookie: Option<HeaderValue>,
) -> Response {
    html_response(status, document(title, body), extra_cookie)
}

/// A whole page in the look of every page here: `title` is text, `body` is HTML that goes in
/// the card under the brand. The CLI's loopback redirect page is made with it too, so that the
/// tab a `tessera login` ends in looks like the pages before it.
pub fn document(title: &str, body: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
<title>{}</title><style>{STYLE}</style></head><body><main><div class=\"brand\">Tessera</div>{body}</main></body></html>",
        escape(title)
    )
}

/// A whole HTML document with the headers every page of ours carries: never cached, never
/// framed, no script, no referrer.
pub(crate) fn html_response(
    status: StatusCode,
    html: String,
    extra_cookie: Option<HeaderValue>,
) -> Response {
    let mut response = (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        html,
    )
        .into_response();
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    if let Some(cookie) = extra_cookie {
        headers.append(header::SET_COOKIE, cookie);
    }
    response
}

pub(crate) fn hidden(name: &str, value: &str) -> String {
    format!(
        "<input type=\"hidden\" name=\"{}\" value=\"{}\">",
        escape(name),
        escape(value)
    )
}

pub struct LoginPage<'a> {
    /// What the login continues to: a client's name, or a page of ours.
    pub client_name: &'a str,
    /// Where the form POSTs.
    pub action: &'a str,
    /// The authorization request the login is part of, carried through the form; `None` for a
    /// login to a page of ours (the connected-apps page).
    pub request: Option<&'a str>,
    pub csrf_token: &'a CsrfToken,
    pub username: &'a str,
    pub notice: LoginNotice,
}

/// Why the login page is shown again, if it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginNotice {
    None,
    BadCredentials,
    /// Too many failures: 429, try again in this many seconds.
    Throttled(u64),
    /// Every password check is busy: 503, try again in this many seconds.
    Busy(u64),
}

impl LoginNotice {
    /// What a failed login shows on the form again, or `Err` when it is no page of ours to
    /// show (the database is unavailable).
    pub(crate) fn of_refusal(error: LoginError) -> Result<Self, PageError> {
        match error {
            LoginError::InvalidCredentials | LoginError::Disabled => Ok(Self::BadCredentials),
            LoginError::Throttled { retry_after_secs } => Ok(Self::Throttled(retry_after_secs)),
            LoginError::Busy { retry_after_secs } => Ok(Self::Busy(retry_after_secs)),
            LoginError::Unavailable => Err(PageError::Unavailable),
        }
    }

    pub(crate) fn status(self) -> StatusCode {
        match self {
            Self::None | Self::BadCredentials => StatusCode::OK,
            Self::Throttled(_) => StatusCode::TOO_MANY_REQUESTS,
            Self::Busy(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    pub(crate) fn message(self) -> Option<String> {
        match self {
            Self::None => None,
            Self::BadCredentials => Some("Please check your username and password. If you still can't log in, contact your administrator.".into()),
            Self::Throttled(secs) => Some(format!("Too many failed attempts. Try again in {secs} seconds.")),
            Self::Busy(secs) => Some(format!("The server is busy. Try again in {secs} seconds.")),
        }
    }

    pub(crate) fn retry_after(self) -> Option<u64> {
        match self {
            Self::Throttled(secs) | Self::Busy(secs) => Some(secs),
            _ => None,
        }
    }
}

pub fn login(p: LoginPage<'_>, cookie: Option<HeaderValue>) -> Response {
    let error = p
        .notice
        .message()
        .map(|e| format!("<p class=\"error\" role=\"alert\">{}</p>", escape(&e)))
        .unwrap_or_default();
    let body = format!(
        "<h1>Log in</h1><p>to continue to <strong>{client}</strong></p>{error}\
<form method=\"post\" action=\"{action}\">{request}{csrf}\
<label for=\"username\">Username</label><input type=\"text\" id=\"username\" name=\"username\" value=\"{username}\" autocomplete=\"username\" required autofocus>\
<label for=\"password\">Password</label><input type=\"password\" id=\"password\" name=\"password\" autocomplete=\"current-password\" required>\
<button type=\"submit\">Log in</button></form>",
        client = escape(p.client_name),
        action = escape(p.action),
        request = p
            .request
            .map(|request| hidden("request", request))
            .unwrap_or_default(),
        csrf = hidden("csrf_token", p.csrf_token.expose_secret()),
        username = escape(p.username),
    );
    let mut response = page(p.notice.status(), "Log in", &body, cookie);
    if let Some(secs) = p.notice.retry_after() {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    response
}

pub struct ConsentPage<'a> {
    pub client_name: &'a str,
    pub username: &'a str,
    pub scopes: Vec<&'a str>,
    pub request: &'a str,
    pub csrf_token: &'a CsrfToken,
}

fn describe_scope(scope: &str) -> &'static str {
    match scope {
        "api" => "Access and manage your data",
        "refresh_token" | "offline_access" => {
            "Perform requests at any time, even when you are not logged in"
        }
        "id" | "profile" | "openid" => "Access your basic information",
        "email" => "Access your email address",
        "web" => "Access the service through the web",
        "full" => "Full access",
        _ => "Other access",
    }
}

/// Each thing the client will be able to do, once, followed in small print by the scopes that
/// grant it (`refresh_token` and `offline_access` are one line, not the same sentence twice).
fn scope_items(scopes: &[&str]) -> String {
    let mut lines: Vec<(&str, Vec<&str>)> = Vec::new();
    for scope in scopes {
        let description = describe_scope(scope);
        match lines.iter_mut().find(|(d, _)| *d == description) {
            Some((_, names)) => names.push(scope),
            None => lines.push((description, vec![scope])),
        }
    }
    lines
        .iter()
        .map(|(description, names)| {
            format!(
                "<li>{} <span class=\"scope\">{}</span></li>",
                escape(description),
                escape(&names.join(", "))
            )
        })
        .collect()
}

pub fn consent(p: ConsentPage<'_>, cookie: Option<HeaderValue>) -> Response {
    let items = scope_items(&p.scopes);
    let body = format!(
        "<h1>Allow access?</h1><p><strong>{client}</strong> is asking to access your account <strong>{user}</strong>. It will be able to:</p>\
<ul>{items}</ul><form method=\"post\" action=\"/services/oauth2/authorize/consent\">{request}{csrf}\
<button type=\"submit\" name=\"decision\" value=\"allow\">Allow</button>\
<button type=\"submit\" name=\"decision\" value=\"deny\" class=\"secondary\">Deny</button></form>",
        client = escape(p.client_name),
        user = escape(p.username),
        request = hidden("request", p.request),
        csrf = hidden("csrf_token", p.csrf_token.expose_secret()),
    );
    page(StatusCode::OK, "Allow access?", &body, cookie)
}

/// An error that cannot be sent back to the client.
#[derive(Debug)]
pub struct ErrorPage<'a> {
    pub status: StatusCode,
    /// The OAuth error code, shown for whoever the person reports the error to.
    pub code: &'a str,
    /// The error description, as the token endpoint would send it (lower case, no full stop).
    pub description: &'a str,
    /// The redirect URI the request asked for, when that is what was refused.
    pub refused_redirect_uri: Option<&'a str>,
}

impl<'a> ErrorPage<'a> {
    /// A page with no redirect URI to show.
    pub fn new(status: StatusCode, code: &'a str, description: &'a str) -> Self {
        Self {
            status,
            code,
            description,
            refused_redirect_uri: None,
        }
    }
}

/// What is wrong with the client, by error code, for the person who followed its link; `None`
/// for codes that are not about how the client is set up.
fn what_is_wrong_with_the_client(code: &str) -> Option<&'static str> {
    match code {
        "redirect_uri_mismatch" => Some(
            "it asked to send you back to an address it is not allowed to use, so you were not \
sent there",
        ),
        "redirect_uri_missing" => Some("it did not say where to send you back to"),
        "invalid_client_id" => Some("this server does not know it"),
        _ => None,
    }
}

/// `description` as a sentence: capitalised, unless it starts with a parameter name such as
/// `redirect_uri`, which is left as it is spelled, and with a full stop.
fn as_sentence(description: &str) -> String {
    let starts_with_a_name = description
        .split(' ')
        .next()
        .is_some_and(|word| word.contains('_'));
    let mut sentence = description.to_owned();
    if !starts_with_a_name {
        if let Some(first) = sentence.get_mut(0..1) {
            first.make_ascii_uppercase();
        }
    }
    sentence.push('.');
    sentence
}

/// The error page: what happened in words, the description as a sentence, the refused redirect
/// URI if that is the trouble, and the code. Everything the request brought is escaped text
/// that wraps (`overflow-wrap` on `main`), never the URL-encoded `error=…&error_description=…`
/// a redirect would carry, which does not wrap and reads as noise.
pub fn authorize_error(p: ErrorPage<'_>) -> Response {
    let explanation = what_is_wrong_with_the_client(p.code)
        .map(|what| {
            format!(
                "<p>The application that sent you here is not set up correctly: {}.</p>",
                escape(what)
            )
        })
        .unwrap_or_default();
    let redirect_uri = p
        .refused_redirect_uri
        .map(|uri| {
            format!(
                "<p class=\"detail\">Redirect URI: <code>{}</code></p>",
                escape(uri)
            )
        })
        .unwrap_or_default();
    let body = format!(
        "<h1>This request cannot be completed</h1>{explanation}\
<p class=\"error\" role=\"alert\">{description}</p>\
<p>Nothing was shared with the application.</p>{redirect_uri}\
<p class=\"detail\">Error code: <code>{code}</code></p>",
        description = escape(&as_sentence(p.description)),
        code = escape(p.code),
    );
    page(p.status, "Error", &body, None)
}

/// The database is unreachable: nothing happened, try again shortly.
pub fn unavailable() -> Response {
    page(
        StatusCode::SERVICE_UNAVAILABLE,
        "Temporarily unavailable",
        "<h1>Temporarily unavailable</h1><p>The service cannot complete this step right now. \
Nothing was changed. Please try again in a moment.</p>",
        None,
    )
}

pub fn success() -> Response {
    page(
        StatusCode::OK,
        "Success",
        "<h1>Remote access authorized</h1><p>You can close this window.</p>",
        None,
    )
}

/// The end user's logout, to confirm: a form that POSTs back with the session's CSRF token.
pub fn logout(username: &str, csrf_token: &CsrfToken) -> Response {
    let body = format!(
        "<h1>Log out?</h1><p>You are logged in as <strong>{user}</strong>. Logging out ends \
every session of yours on this site, on every device.</p>\
<form method=\"post\" action=\"/secur/logout.jsp\">{csrf}\
<button type=\"submit\">Log out</button></form>",
        user = escape(username),
        csrf = hidden("csrf_token", csrf_token.expose_secret()),
    );
    page(StatusCode::OK, "Log out?", &body, None)
}

/// After the end user's logout (or when there was no session): the session cookie cleared.
pub fn logged_out(clear_cookie: Option<HeaderValue>) -> Response {
    page(
        StatusCode::OK,
        "Logged out",
        "<h1>You are logged out</h1><p>You can close this window.</p>",
        clear_cookie,
    )
}
