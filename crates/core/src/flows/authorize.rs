//! The authorization endpoint's request validation (RFC 6749 §4.1.1, §4.2.1; RFC 9700 §4.11;
//! docs/salesforce-compatibility.md, "Authorization endpoint", "User-Agent flow";
//! docs/security.md, "Redirect URIs", "PKCE"). Which errors may be redirected and which must
//! be shown to the user is decided here, once.

use tessera_proto::{Params, Scope};
use url::Url;

use crate::model::{Client, DpopMode};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseKind {
    /// Web Server flow: `response_type=code`, result in the query.
    Code,
    /// User-Agent flow: `response_type=token`, result in the fragment.
    Token,
    /// User-Agent flow with an ID token: `response_type=token id_token` (either order; OpenID
    /// Connect Core §3.2), result in the fragment.
    TokenAndIdToken,
}

impl ResponseKind {
    /// The response types Salesforce answers, as their sets of values: `code`, `token`, and
    /// `token id_token` in either order. `id_token` alone, `code id_token`, `code token` and
    /// `none` it refuses, and so do we.
    fn of(response_type: &str) -> Option<Self> {
        let mut values: Vec<&str> = response_type.split(' ').collect();
        values.sort_unstable();
        match values.as_slice() {
            ["code"] => Some(Self::Code),
            ["token"] => Some(Self::Token),
            ["id_token", "token"] => Some(Self::TokenAndIdToken),
            _ => None,
        }
    }

    /// Whether the result goes in the redirect URI's fragment (the User-Agent flow).
    pub fn in_fragment(self) -> bool {
        matches!(self, Self::Token | Self::TokenAndIdToken)
    }
}

/// The longest `nonce` kept: it comes back in every ID token of the grant, and is stored with
/// its code and its grant. OpenID Connect sets no limit; a random value needs far less.
pub const MAX_NONCE_LEN: usize = 512;

/// A validated authorization request, ready for login and consent.
#[derive(Debug, Clone)]
pub struct AuthorizationRequest {
    pub client: Client,
    pub redirect_uri: String,
    pub kind: ResponseKind,
    pub scope: Scope,
    pub state: Option<String>,
    pub code_challenge: Option<String>,
    pub prompt_login: bool,
    pub prompt_consent: bool,
    pub login_hint: Option<String>,
    /// The OpenID Connect `nonce`, echoed in the ID token (required for `token id_token`).
    pub nonce: Option<String>,
    /// RFC 9449 §10: the thumbprint of the DPoP key the code is bound to; its exchange must
    /// prove that key.
    pub dpop_jkt: Option<String>,
}

/// Errors that must not be redirected (RFC 6749 §3.1.2.4, RFC 9700 §4.11.2): the client or the
/// redirect URI cannot be trusted, so the user is told on a page of ours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthorizePageError {
    /// The query string or form is not valid form encoding.
    MalformedRequest,
    MissingClientId,
    InvalidClientId,
    RedirectUriMissing,
    RedirectUriMismatch,
    RepeatedParameter,
    /// Registered, but not a safe target (registered before the rules of
    /// [`redirect_uri_safety`] were enforced): never redirected to.
    UnsafeRedirectUri,
}

impl AuthorizePageError {
    pub fn code(self) -> &'static str {
        match self {
            Self::MissingClientId | Self::InvalidClientId => "invalid_client_id",
            Self::RedirectUriMissing => "redirect_uri_missing",
            Self::RedirectUriMismatch | Self::UnsafeRedirectUri => "redirect_uri_mismatch",
            Self::RepeatedParameter | Self::MalformedRequest => "invalid_request",
        }
    }

    /// Whether the request was refused for its redirect URI (one was sent, and it is not a
    /// registered, safe target), rather than for its client or its form.
    pub(crate) fn is_about_the_redirect_uri(self) -> bool {
        matches!(self, Self::RedirectUriMismatch | Self::UnsafeRedirectUri)
    }

    pub fn description(self) -> &'static str {
        match self {
            Self::MissingClientId => "client identifier missing",
            Self::InvalidClientId => "client identifier invalid",
            Self::RedirectUriMissing => "redirect_uri missing",
            Self::RedirectUriMismatch => "redirect_uri must match configuration",
            Self::UnsafeRedirectUri => "redirect_uri is not a safe redirect target",
            Self::RepeatedParameter => "client_id and redirect_uri must be sent once",
            Self::MalformedRequest => "malformed request",
        }
    }
}

/// An error to send back to the client's redirect URI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizeRedirectError {
    pub code: &'static str,
    pub description: &'static str,
}

/// Where the result of an authorization goes, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedirectTarget {
    pub redirect_uri: String,
    pub kind: ResponseKind,
    pub state: Option<String>,
}

impl RedirectTarget {
    /// The redirect URI with `pairs`, `iss` and `state` appended to its query (code flow) or put
    /// in its fragment (user-agent flow), URL-encoded.
    ///
    /// RFC 9207 §2: every authorization response, success or error, carries `iss`, the issuer
    /// of the metadata, so a client talking to several servers can tell which one answered
    /// (mix-up defence).
    pub fn location(&self, issuer: &str, pairs: &[(&str, &str)]) -> String {
        let mut ser = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in pairs {
            ser.append_pair(k, v);
        }
        ser.append_pair("iss", issuer);
        if let Some(state) = &self.state {
            ser.append_pair("state", state);
        }
        let encoded = ser.finish();
        if self.kind.in_fragment() {
            format!("{}#{encoded}", self.redirect_uri)
        } else {
            let sep = if self.redirect_uri.contains('?') {
                '&'
            } else {
                '?'
            };
            format!("{}{sep}{encoded}", self.redirect_uri)
        }
    }

    pub(crate) fn error_location(&self, issuer: &str, error: &AuthorizeRedirectError) -> String {
        self.location(
            issuer,
            &[
                ("error", error.code),
                ("error_description", error.description),
            ],
        )
    }
}

/// Schemes that run or read something where they land instead of reaching an application.
const FORBIDDEN_SCHEMES: &[&str] = &["javascript", "data", "file", "vbscript", "blob", "about"];

/// A redirect URI a code or a token may be sent to:
/// - absolute, without a fragment (RFC 6749 §3.1.2);
/// - `https`; or plain `http` only to the loopback interface or `localhost`, where nothing
///   crosses a network (RFC 8252 §7.3), since anything else would carry the code in clear;
/// - or a private-use scheme in reverse-domain form, `com.example.app:/callback` (RFC 8252
///   §7.1), never one that runs or reads something (`javascript:`, `data:`, `file:`, …).
pub(crate) fn redirect_uri_safety(uri: &str) -> Result<(), String> {
    let refuse = |why: &str| Err(why.to_owned());
    let Ok(parsed) = url::Url::parse(uri) else {
        return refuse("not an absolute URI");
    };
    if parsed.fragment().is_some() || uri.contains('#') {
        return refuse("must not have a fragment (RFC 6749 §3.1.2)");
    }
    let scheme = parsed.scheme();
    if FORBIDDEN_SCHEMES.contains(&scheme) {
        return refuse(&format!("the {scheme}: scheme is never a redirect target"));
    }
    match scheme {
        "https" if parsed.host().is_some() => Ok(()),
        "https" => refuse("an https URI needs a host"),
        "http" => {
            let loopback = match parsed.host() {
                Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
                Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
                Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
                None => false,
            };
            if loopback {
                Ok(())
            } else {
                refuse(
                    "plain http is allowed only to 127.0.0.1, [::1] or localhost (RFC 8252 §7.3); \
                     use https",
                )
            }
        }
        private if private.contains('.') => Ok(()),
        _ => refuse(
            "a private-use scheme must be in reverse-domain form, like \
             com.example.app:/callback (RFC 8252 §7.1)",
        ),
    }
}

/// Whether `requested` is one of the client's redirect URIs: exact string comparison (RFC 9700
/// §4.1.3), except that a registered loopback `http` URI without a port matches any port
/// (RFC 8252 §7.3).
pub(crate) fn redirect_uri_registered(client: &Client, requested: &str) -> bool {
    client.redirect_uris.iter().any(|registered| {
        registered == requested || loopback_matches_any_port(registered, requested)
    })
}

fn loopback_matches_any_port(registered: &str, requested: &str) -> bool {
    let (Ok(reg), Ok(req)) = (Url::parse(registered), Url::parse(requested)) else {
        return false;
    };
    let is_loopback = |u: &Url| matches!(u.host_str(), Some("127.0.0.1") | Some("[::1]"));
    // Url normalises, so also require that the raw strings differ only in the port.
    reg.scheme() == "http"
        && is_loopback(&reg)
        && reg.port().is_none()
        && !registered.contains(&format!("{}:", reg.host_str().unwrap_or_default()))
        && req.scheme() == "http"
        && req.host_str() == reg.host_str()
        && req.path() == reg.path()
        && req.query() == reg.query()
        && req.fragment().is_none()
        && req.username().is_empty()
        && req.password().is_none()
        && {
            let mut without_port = req.clone();
            without_port.set_port(None).is_ok() && without_port.as_str() == reg.as_str()
        }
}

/// The first checks: client and redirect URI. Anything wrong here is shown, never redirected.
pub(crate) fn check_client_and_redirect(
    params: &Params,
    client: Option<Client>,
) -> Result<(Client, String), AuthorizePageError> {
    if params.is_repeated("client_id") || params.is_repeated("redirect_uri") {
        return Err(AuthorizePageError::RepeatedParameter);
    }
    let redirect_uri = params.get("redirect_uri");
    if params.get("client_id").is_none() {
        return Err(AuthorizePageError::MissingClientId);
    }
    let client = client.ok_or(AuthorizePageError::InvalidClientId)?;
    let redirect_uri = redirect_uri.ok_or(AuthorizePageError::RedirectUriMissing)?;
    if !redirect_uri_registered(&client, redirect_uri) {
        return Err(AuthorizePageError::RedirectUriMismatch);
    }
    if redirect_uri_safety(redirect_uri).is_err() {
        return Err(AuthorizePageError::UnsafeRedirectUri);
    }
    Ok((client, redirect_uri.to_owned()))
}

/// The remaining checks, once the redirect URI is trusted: their errors go back to it.
pub(crate) fn check_request(
    params: &Params,
    client: Client,
    redirect_uri: String,
) -> Result<AuthorizationRequest, (RedirectTarget, AuthorizeRedirectError)> {
    let response_type = params.get("response_type");
    // Until the response type is known, errors go to the query, as for the code flow.
    let known_kind = response_type
        .filter(|_| !params.is_repeated("response_type"))
        .and_then(ResponseKind::of);
    let kind = known_kind.unwrap_or(ResponseKind::Code);
    let state = params.get("state").map(str::to_owned);
    let target = RedirectTarget {
        redirect_uri: redirect_uri.clone(),
        kind,
        state: state.clone(),
    };
    let fail =
        |code, description| Err((target.clone(), AuthorizeRedirectError { code, description }));

    if params.repeated().is_some() {
        return fail("invalid_request", "a parameter was sent more than once");
    }
    match (response_type, known_kind) {
        (_, Some(_)) => {}
        (None, _) => return fail("invalid_request", "response_type is required"),
        (Some(_), None) => return fail("unsupported_response_type", "response type not supported"),
    }
    if client.controls.blocked {
        return fail(
            "unauthorized_client",
            crate::flows::token_request::APP_BLOCKED,
        );
    }
    if kind.in_fragment() && !client.allow_user_agent_flow {
        return fail(
            "unauthorized_client",
            "this client may not use the user-agent flow",
        );
    }

    let scope = match params.get("scope") {
        None => client.scopes.clone(),
        Some(text) => match Scope::parse(text) {
            Some(scope) if !scope.is_empty() && scope.is_subset(&client.scopes) => scope,
            _ => {
                return fail(
                    "invalid_scope",
                    "requested scope is invalid, unknown, or malformed",
                )
            }
        },
    };

    let nonce = params.get("nonce").filter(|n| !n.is_empty());
    if nonce.is_some_and(|n| n.len() > MAX_NONCE_LEN) {
        return fail("invalid_request", "nonce is too long");
    }
    if kind == ResponseKind::TokenAndIdToken {
        if !scope.contains(crate::flows::id_token::OPENID_SCOPE) {
            return fail(
                "invalid_request",
                "response_type id_token requires the openid scope",
            );
        }
        // OpenID Connect Core §3.2.2.1: the implicit flow's nonce is REQUIRED; it is what
        // binds the ID token in the fragment to this browser's request.
        if nonce.is_none() {
            return fail(
                "invalid_request",
                "nonce is required with response_type id_token",
            );
        }
    }

    // A thumbprint is base64url of a SHA-256 digest, as an S256 challenge is. The user-agent
    // flow's tokens come in a fragment, which no proof can accompany: a client that must bind
    // its tokens cannot use it.
    // A client without DPoP has it ignored, as a server without DPoP would (RFC 9449 §10).
    let dpop_jkt = params
        .get("dpop_jkt")
        .filter(|j| !j.is_empty() && client.dpop.mode != DpopMode::Off);
    if dpop_jkt.is_some_and(|jkt| !is_s256_challenge(jkt)) {
        return fail(
            "invalid_request",
            "dpop_jkt must be a JWK SHA-256 thumbprint",
        );
    }
    if kind.in_fragment() && (dpop_jkt.is_some() || client.dpop.mode == DpopMode::Required) {
        return fail(
            "unauthorized_client",
            "DPoP-bound tokens cannot be issued in the user-agent flow",
        );
    }

    let code_challenge = params.get("code_challenge");
    let method = params.get("code_challenge_method");
    let code_challenge = match (kind, code_challenge, method) {
        (ResponseKind::Token | ResponseKind::TokenAndIdToken, _, _) => None,
        // S256 even without a method (Salesforce; jsforce never sends one); `plain` refused.
        (ResponseKind::Code, Some(challenge), None | Some("S256")) => {
            if !is_s256_challenge(challenge) {
                return fail(
                    "invalid_request",
                    "code_challenge must be base64url of a SHA-256 digest",
                );
            }
            Some(challenge.to_owned())
        }
        (ResponseKind::Code, Some(_), Some(_)) => {
            return fail(
                "invalid_request",
                "only the S256 code_challenge_method is supported",
            )
        }
        (ResponseKind::Code, None, Some(_)) => {
            return fail("invalid_request", "missing required code challenge")
        }
        (ResponseKind::Code, None, None) if client.is_public() || client.controls.pkce_required => {
            // RFC 9700 §2.1.1: public clients MUST use PKCE; so must a client an administrator
            // made require it (docs/controls.md).
            return fail("invalid_request", "missing required code challenge");
        }
        (ResponseKind::Code, None, None) => None,
    };

    let prompt = params.get("prompt").unwrap_or_default();
    let prompts: Vec<&str> = prompt.split(' ').filter(|p| !p.is_empty()).collect();
    if prompts
        .iter()
        .any(|p| !matches!(*p, "login" | "consent" | "select_account"))
    {
        return fail(
            "invalid_request",
            "prompt must be login, consent or select_account",
        );
    }

    Ok(AuthorizationRequest {
        client,
        redirect_uri,
        kind,
        scope,
        state,
        code_challenge,
        prompt_login: prompts.contains(&"login") || prompts.contains(&"select_account"),
        prompt_consent: prompts.contains(&"consent"),
        login_hint: params.get("login_hint").map(str::to_owned),
        nonce: nonce.map(str::to_owned),
        dpop_jkt: dpop_jkt.map(str::to_owned),
    })
}

fn is_s256_challenge(challenge: &str) -> bool {
    challenge.len() == 43
        && challenge
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl AuthorizationRequest {
    pub fn target(&self) -> RedirectTarget {
        RedirectTarget {
            redirect_uri: self.redirect_uri.clone(),
            kind: self.kind,
            state: self.state.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::RefreshTokenPolicy;
    use crate::time::Timestamp;

    fn client(public: bool, uris: &[&str]) -> Client {
        Client {
            client_id: "3MVG9test".into(),
            name: "t".into(),
            secret_hash: (!public).then_some([0u8; 32]),
            redirect_uris: uris.iter().map(|s| s.to_string()).collect(),
            scopes: Scope::parse("api refresh_token id").unwrap(),
            refresh_token_policy: RefreshTokenPolicy::Infinite,
            access_token_ttl_secs: 7200,
            rotate_refresh_tokens: false,
            allow_user_agent_flow: false,
            refresh_retry_window_secs: 60,
            created_at: Timestamp(0),
            openid: Default::default(),
            dpop: Default::default(),
            controls: Default::default(),
        }
    }

    fn params(q: &str) -> Params {
        Params::parse(q).unwrap()
    }

    #[test]
    fn redirect_uri_variants_are_rejected() {
        let c = client(false, &["https://c.example/cb"]);
        for bad in [
            "https://c.example/cb/",
            "https://c.example/CB",
            "https://c.example/cb?x=1",
            "https://c.example/cb#f",
            "http://c.example/cb",
            "https://c.example:8443/cb",
            "https://evil.c.example/cb",
            "https://c.example.evil.com/cb",
            "https://c.example@evil.com/cb",
            "https://c.example/cb/../x",
            "https://c.example/%2Fcb",
        ] {
            assert!(!redirect_uri_registered(&c, bad), "{bad}");
        }
        assert!(redirect_uri_registered(&c, "https://c.example/cb"));
    }

    #[test]
    fn loopback_redirects_match_any_port_only_when_registered_without_one() {
        let c = client(true, &["http://127.0.0.1/cb"]);
        assert!(redirect_uri_registered(&c, "http://127.0.0.1:51234/cb"));
        assert!(!redirect_uri_registered(&c, "http://127.0.0.1:51234/other"));
        assert!(!redirect_uri_registered(&c, "http://localhost:51234/cb"));
        let fixed = client(true, &["http://127.0.0.1:8976/callback"]);
        assert!(redirect_uri_registered(
            &fixed,
            "http://127.0.0.1:8976/callback"
        ));
        assert!(!redirect_uri_registered(
            &fixed,
            "http://127.0.0.1:8977/callback"
        ));
    }

    #[test]
    fn an_unsafe_uri_registered_before_the_rules_is_never_redirected_to() {
        let c = client(false, &["javascript:alert(1)", "http://app.example.com/cb"]);
        for uri in ["javascript:alert(1)", "http://app.example.com/cb"] {
            let q = format!(
                "client_id=x&redirect_uri={}",
                url::form_urlencoded::byte_serialize(uri.as_bytes()).collect::<String>()
            );
            assert_eq!(
                check_client_and_redirect(&params(&q), Some(c.clone())).unwrap_err(),
                AuthorizePageError::UnsafeRedirectUri,
                "{uri}"
            );
        }
    }

    #[test]
    fn bad_client_or_redirect_is_never_redirected() {
        let c = client(false, &["https://c.example/cb"]);
        assert_eq!(
            check_client_and_redirect(&params("redirect_uri=https://c.example/cb"), None)
                .unwrap_err(),
            AuthorizePageError::MissingClientId
        );
        assert_eq!(
            check_client_and_redirect(
                &params("client_id=x&redirect_uri=https://c.example/cb"),
                None
            )
            .unwrap_err(),
            AuthorizePageError::InvalidClientId
        );
        assert_eq!(
            check_client_and_redirect(
                &params("client_id=x&redirect_uri=https://evil/cb"),
                Some(c.clone())
            )
            .unwrap_err(),
            AuthorizePageError::RedirectUriMismatch
        );
        assert_eq!(
            check_client_and_redirect(
                &params("client_id=x&client_id=y&redirect_uri=https://c.example/cb"),
                Some(c)
            )
            .unwrap_err(),
            AuthorizePageError::RepeatedParameter
        );
    }

    fn redirect_error(q: &str, public: bool) -> (String, AuthorizeRedirectError) {
        let c = client(public, &["https://c.example/cb"]);
        let (target, e) = check_request(&params(q), c, "https://c.example/cb".into()).unwrap_err();
        (target.error_location("https://as.example", &e), e)
    }

    #[test]
    fn request_errors_go_back_to_the_client_with_state() {
        let (loc, e) = redirect_error("response_type=id_token&state=s1", false);
        assert_eq!(e.code, "unsupported_response_type");
        assert!(loc.starts_with("https://c.example/cb?error=unsupported_response_type&"));
        assert!(loc.ends_with("&iss=https%3A%2F%2Fas.example&state=s1"));
        assert_eq!(redirect_error("state=s", false).1.code, "invalid_request");
        assert_eq!(
            redirect_error("response_type=code&scope=full", false)
                .1
                .code,
            "invalid_scope"
        );
        assert_eq!(
            redirect_error("response_type=code&prompt=none", false)
                .1
                .code,
            "invalid_request"
        );
        assert_eq!(
            redirect_error("response_type=code&state=a&state=b", false)
                .1
                .code,
            "invalid_request"
        );
    }

    #[test]
    fn user_agent_flow_needs_the_client_flag_and_answers_in_the_fragment() {
        let (loc, e) = redirect_error("response_type=token&state=x", false);
        assert_eq!(e.code, "unauthorized_client");
        assert!(loc.starts_with("https://c.example/cb#error=unauthorized_client"));
    }

    #[test]
    fn pkce_is_s256_without_a_method_and_required_for_public_clients() {
        let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
        let c = client(true, &["https://c.example/cb"]);
        let ok = check_request(
            &params(&format!("response_type=code&code_challenge={challenge}")),
            c,
            "https://c.example/cb".into(),
        )
        .unwrap();
        assert_eq!(ok.code_challenge.as_deref(), Some(challenge));
        assert_eq!(
            redirect_error("response_type=code", true).1.description,
            "missing required code challenge"
        );
        assert_eq!(
            redirect_error(
                &format!(
                    "response_type=code&code_challenge={challenge}&code_challenge_method=plain"
                ),
                false
            )
            .1
            .code,
            "invalid_request"
        );
        assert_eq!(
            redirect_error("response_type=code&code_challenge=short", false)
                .1
                .code,
            "invalid_request"
        );
    }

    #[test]
    fn a_confidential_client_made_to_require_pkce_is_refused_a_request_without_a_challenge() {
        let mut c = client(false, &["https://c.example/cb"]);
        c.controls.pkce_required = true;
        let (_, e) = check_request(
            &params("response_type=code"),
            c.clone(),
            "https://c.example/cb".into(),
        )
        .unwrap_err();
        assert_eq!(
            (e.code, e.description),
            ("invalid_request", "missing required code challenge")
        );
        let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
        let ok = check_request(
            &params(&format!("response_type=code&code_challenge={challenge}")),
            c,
            "https://c.example/cb".into(),
        );
        assert!(ok.is_ok());
    }

    #[test]
    fn a_blocked_client_is_sent_back_unauthorized() {
        let mut c = client(false, &["https://c.example/cb"]);
        c.controls.blocked = true;
        let (_, e) = check_request(
            &params("response_type=code&state=s"),
            c,
            "https://c.example/cb".into(),
        )
        .unwrap_err();
        assert_eq!(
            (e.code, e.description),
            ("unauthorized_client", "this app is blocked by admin")
        );
    }

    #[test]
    fn dpop_jkt_is_kept_when_it_is_a_thumbprint_refused_otherwise_and_ignored_without_dpop() {
        let jkt = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs";
        let check = |mode, query: &str| {
            let c = Client {
                dpop: crate::model::DpopSettings {
                    mode,
                    require_nonce: false,
                },
                ..client(false, &["https://c.example/cb"])
            };
            check_request(&params(query), c, "https://c.example/cb".into())
        };
        let query = format!("response_type=code&dpop_jkt={jkt}");
        let kept = check(DpopMode::Allowed, &query).unwrap();
        assert_eq!(kept.dpop_jkt.as_deref(), Some(jkt));
        assert_eq!(check(DpopMode::Off, &query).unwrap().dpop_jkt, None);
        let (_, refused) =
            check(DpopMode::Allowed, "response_type=code&dpop_jkt=short").unwrap_err();
        assert_eq!(refused.code, "invalid_request");
    }

    #[test]
    fn omitted_scope_grants_the_clients_scopes_and_unknown_parameters_are_ignored() {
        let c = client(false, &["https://c.example/cb"]);
        let ok = check_request(
            &params("response_type=code&foo=bar&prompt=login+consent"),
            c.clone(),
            "https://c.example/cb".into(),
        )
        .unwrap();
        assert_eq!(ok.scope, c.scopes);
        assert!(ok.prompt_login && ok.prompt_consent);
    }

    fn openid_client() -> Client {
        Client {
            scopes: Scope::parse("api openid refresh_token").unwrap(),
            allow_user_agent_flow: true,
            ..client(false, &["https://c.example/cb"])
        }
    }

    fn openid_request(q: &str) -> Result<AuthorizationRequest, (String, AuthorizeRedirectError)> {
        check_request(&params(q), openid_client(), "https://c.example/cb".into())
            .map_err(|(target, e)| (target.error_location("https://as.example", &e), e))
    }

    #[test]
    fn token_id_token_is_accepted_in_either_order_and_answers_in_the_fragment() {
        for response_type in ["token+id_token", "id_token+token"] {
            let request = openid_request(&format!(
                "response_type={response_type}&scope=openid+api&nonce=n-0S6"
            ))
            .unwrap();
            assert_eq!(request.kind, ResponseKind::TokenAndIdToken);
            assert_eq!(request.nonce.as_deref(), Some("n-0S6"));
            assert!(request
                .target()
                .location("https://as.example", &[])
                .starts_with("https://c.example/cb#"));
        }
        let code = openid_request("response_type=code&scope=openid&nonce=abc").unwrap();
        assert_eq!(code.kind, ResponseKind::Code);
        assert_eq!(code.nonce.as_deref(), Some("abc"));
    }

    #[test]
    fn the_response_types_salesforce_refuses_are_unsupported() {
        for response_type in [
            "id_token",
            "code+id_token",
            "code+token",
            "code+token+id_token",
            "none",
            "token+token",
            "Code",
        ] {
            let (location, e) = openid_request(&format!(
                "response_type={response_type}&scope=openid&nonce=n"
            ))
            .unwrap_err();
            assert_eq!(e.code, "unsupported_response_type", "{response_type}");
            assert!(location.contains("?error="), "{location}");
        }
    }

    #[test]
    fn token_id_token_needs_the_openid_scope_and_a_nonce() {
        let (location, e) =
            openid_request("response_type=token+id_token&scope=api&nonce=n").unwrap_err();
        assert_eq!(
            (e.code, e.description),
            (
                "invalid_request",
                "response_type id_token requires the openid scope"
            )
        );
        assert!(location.starts_with("https://c.example/cb#error=invalid_request"));
        let (_, e) = openid_request("response_type=token+id_token&scope=openid").unwrap_err();
        assert_eq!(
            e.description,
            "nonce is required with response_type id_token"
        );
    }

    #[test]
    fn a_nonce_longer_than_512_bytes_is_refused() {
        let at_limit = "n".repeat(MAX_NONCE_LEN);
        assert!(openid_request(&format!("response_type=code&nonce={at_limit}")).is_ok());
        let (_, e) = openid_request(&format!("response_type=code&nonce={at_limit}n")).unwrap_err();
        assert_eq!(
            (e.code, e.description),
            ("invalid_request", "nonce is too long")
        );
    }

    #[test]
    fn openid_asked_by_a_client_not_allowed_it_is_an_invalid_scope() {
        let c = Client {
            allow_user_agent_flow: true,
            ..client(false, &["https://c.example/cb"])
        };
        for q in [
            "response_type=code&scope=openid+api",
            "response_type=token+id_token&scope=openid&nonce=n",
        ] {
            let (_, e) =
                check_request(&params(q), c.clone(), "https://c.example/cb".into()).unwrap_err();
            assert_eq!(e.code, "invalid_scope", "{q}");
        }
    }
}
