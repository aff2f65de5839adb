//! The `tessera` binary as a user runs it: admin commands, config checks, serve and shutdown.

use crate::common;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

struct Env {
    dir: tempfile::TempDir,
}

impl Env {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn command(&self) -> Command {
        common::tessera(self.dir.path())
    }

    fn run(&self, args: &[&str], stdin: Option<&str>) -> std::process::Output {
        common::run(self.command(), args, stdin)
    }

    fn json(&self, args: &[&str], stdin: Option<&str>) -> Value {
        common::json(self.command(), args, stdin)
    }

    /// Creates a user with this password.
    fn user(&self, username: &str, password: &str) -> Value {
        common::create_user(self.command(), username, password)
    }

    /// Creates a confidential client redirecting to `https://a/cb`; returns its id.
    fn client(&self, name: &str) -> String {
        let client = self.json(
            &[
                "admin",
                "--json",
                "client",
                "create",
                "--name",
                name,
                "--redirect-uri",
                "https://a/cb",
            ],
            None,
        );
        client["client_id"].as_str().unwrap().to_owned()
    }
}

#[test]
fn clients_can_be_created_listed_updated_rotated_and_deleted() {
    let _lane = common::lane(common::lanes::SHARED);
    let env = Env::new();
    let created = env.json(
        &[
            "admin",
            "--json",
            "client",
            "create",
            "--name",
            "App",
            "--redirect-uri",
            "http://127.0.0.1:9/cb",
            "--redirect-uri",
            "https://app.example/cb",
            "--scopes",
            "api refresh_token",
            "--refresh-token-policy",
            "specific_lifetime:30:DAYS",
            "--access-token-ttl",
            "15m",
            "--rotate-refresh-tokens",
        ],
        None,
    );
    let id = created["client_id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("3MVG9"));
    assert_eq!(created["client_secret"].as_str().unwrap().len(), 64);
    assert_eq!(created["access_token_ttl"], "15m");
    assert_eq!(created["refresh_token_policy"], "specific_lifetime:30:DAYS");
    assert_eq!(created["rotate_refresh_tokens"], true);

    let shown = env.json(&["admin", "client", "show", &id, "--json"], None);
    assert!(
        shown.get("client_secret").is_none(),
        "a secret is shown only once"
    );
    let listed = env.json(&["admin", "--json", "client", "list"], None);
    assert_eq!(listed.as_array().unwrap().len(), 1);

    let updated = env.json(
        &[
            "admin",
            "--json",
            "client",
            "update",
            &id,
            "--access-token-ttl",
            "2h",
            "--rotate-refresh-tokens",
            "false",
        ],
        None,
    );
    assert_eq!(updated["access_token_ttl"], "2h");
    assert_eq!(updated["rotate_refresh_tokens"], false);
    assert_eq!(updated["redirect_uris"].as_array().unwrap().len(), 2);

    let rotated = env.json(&["admin", "--json", "client", "rotate-secret", &id], None);
    assert_ne!(rotated["client_secret"], created["client_secret"]);

    let public = env.json(
        &[
            "admin",
            "--json",
            "client",
            "create",
            "--public",
            "--name",
            "CLI",
            "--redirect-uri",
            "http://127.0.0.1/cb",
        ],
        None,
    );
    assert!(public.get("client_secret").is_none());
    assert_eq!(public["rotate_refresh_tokens"], true);

    env.json(&["admin", "--json", "client", "delete", &id], None);
    let out = env.run(&["admin", "client", "show", &id], None);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not found"));
}

#[test]
fn signing_keys_are_rotated_listed_and_retired_but_never_the_last_signing_one() {
    let _lane = common::lane(common::lanes::SHARED);
    let env = Env::new();
    assert_eq!(
        env.json(&["admin", "--json", "keys", "list"], None),
        json!([])
    );
    let first = env.json(&["admin", "--json", "keys", "rotate"], None);
    assert_eq!(
        first["state"], "signing",
        "the first key signs at once: {first}"
    );
    let second = env.json(&["admin", "--json", "keys", "rotate"], None);
    assert_eq!(second["state"], "pending", "{second}");
    // One JWKS cache lifetime (a day by default), and the minute a node keeps its copy of the
    // keys.
    let (day_ms, node_cache_ms) = (86_400_000, 60_000);
    assert_eq!(
        second["sign_from"].as_i64().unwrap() - second["publish_at"].as_i64().unwrap(),
        day_ms + node_cache_ms
    );
    let states: Vec<Value> = env
        .json(&["admin", "--json", "keys", "list"], None)
        .as_array()
        .unwrap()
        .iter()
        .map(|k| json!([k["kid"], k["state"]]))
        .collect();
    assert_eq!(
        states,
        [
            json!([first["kid"], "signing"]),
            json!([second["kid"], "pending"])
        ]
    );

    let first_kid = first["kid"].as_str().unwrap();
    let refused = env.run(&["admin", "keys", "retire", first_kid], None);
    assert!(!refused.status.success());
    let message = String::from_utf8(refused.stderr).unwrap();
    assert!(message.contains("only key that can sign"), "{message}");
    assert!(!env
        .run(&["admin", "keys", "retire", "no-such-key"], None)
        .status
        .success());
    let retired = env.json(
        &[
            "admin",
            "--json",
            "keys",
            "retire",
            second["kid"].as_str().unwrap(),
        ],
        None,
    );
    assert_eq!(retired["kid"], second["kid"]);
    assert!(retired["retire_at"].is_number(), "{retired}");

    // ES256 keys have their own schedule: the first signs at once, beside the RS256 one.
    let ec = env.json(
        &["admin", "--json", "keys", "rotate", "--alg", "ES256"],
        None,
    );
    assert_eq!(
        (&ec["alg"], &ec["state"]),
        (&json!("ES256"), &json!("signing")),
        "{ec}"
    );
    let listed = env.run(&["admin", "keys", "list"], None);
    let text = String::from_utf8(listed.stdout).unwrap();
    assert!(
        text.lines()
            .any(|l| l.contains(ec["kid"].as_str().unwrap()) && l.contains("ES256")),
        "{text}"
    );
    assert!(!env
        .run(&["admin", "keys", "rotate", "--alg", "HS256"], None)
        .status
        .success());
}

#[test]
fn a_clients_openid_connect_settings_are_set_shown_and_cleared_from_the_command_line() {
    let _lane = common::lane(common::lanes::SHARED);
    let env = Env::new();
    let id = env.client("OIDC");
    let shown = env.json(&["admin", "client", "show", &id, "--json"], None);
    assert_eq!(shown["id_token_validity"], "2m", "Salesforce's default");
    assert_eq!(shown["id_token_alg"], "RS256");
    assert_eq!(shown["jwt_access_tokens"], false);

    let updated = env.json(
        &[
            "admin",
            "--json",
            "client",
            "update",
            &id,
            "--id-token-validity",
            "1h",
            "--id-token-audience",
            "https://api.example.com",
            "--id-token-audience",
            "urn:example:b",
            "--id-token-standard-claims",
            "--echo-nonce-on-refresh",
            "--id-token-alg",
            "es256",
            "--jwt-access-tokens",
        ],
        None,
    );
    assert_eq!(updated["id_token_validity"], "1h");
    assert_eq!(
        updated["id_token_audiences"],
        serde_json::json!(["https://api.example.com", "urn:example:b"])
    );
    assert_eq!(updated["id_token_standard_claims"], true);
    assert_eq!(updated["echo_nonce_on_refresh"], true);
    assert_eq!(updated["id_token_alg"], "ES256");
    assert_eq!(updated["jwt_access_tokens"], true);
    let text = String::from_utf8(env.run(&["admin", "client", "show", &id], None).stdout).unwrap();
    assert!(
        text.contains("id token       ES256 1h, also for https://api.example.com urn:example:b, standard claims, nonce on refresh"),
        "{text}"
    );
    assert!(text.contains("access tokens  JWT (RFC 9068)"), "{text}");

    let cleared = env.json(
        &[
            "admin",
            "--json",
            "client",
            "update",
            &id,
            "--id-token-audience",
            "",
            "--jwt-access-tokens",
            "false",
        ],
        None,
    );
    assert_eq!(cleared["id_token_audiences"], serde_json::json!([]));
    assert_eq!(cleared["jwt_access_tokens"], false);
    assert_eq!(
        cleared["id_token_alg"], "ES256",
        "what was not given is kept"
    );

    for (flag, value, expected) in [
        ("--id-token-validity", "90s", "whole minutes"),
        ("--id-token-validity", "13h", "whole minutes"),
        ("--id-token-alg", "HS256", "not RS256 or ES256"),
        ("--id-token-audience", "has space", "no spaces"),
    ] {
        let out = env.run(&["admin", "client", "update", &id, flag, value], None);
        assert!(!out.status.success(), "{flag} {value}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(expected), "{flag} {value}: {err}");
    }
}

#[test]
fn a_clients_dpop_settings_are_off_until_set_and_then_shown() {
    let _lane = common::lane(common::lanes::SHARED);
    let env = Env::new();
    let id = env.client("DPoP");
    // `admin --json client …args`, answered with the client's (dpop, dpop_nonce).
    let dpop_of = |args: &[&str]| {
        let client = env.json(&[&["admin", "--json", "client"], args].concat(), None);
        (client["dpop"].clone(), client["dpop_nonce"].clone())
    };
    assert_eq!(dpop_of(&["show", &id]), (json!("off"), json!(false)));
    let public = [
        "create",
        "--public",
        "--name",
        "Bound from the start",
        "--redirect-uri",
        "https://a/cb",
        "--dpop",
        "required",
    ];
    assert_eq!(dpop_of(&public), (json!("required"), json!(false)));
    let both = ["update", &id, "--dpop", "Allowed", "--dpop-nonce"];
    assert_eq!(dpop_of(&both), (json!("allowed"), json!(true)));
    let text = String::from_utf8(env.run(&["admin", "client", "show", &id], None).stdout).unwrap();
    assert!(
        text.contains("dpop           allowed, nonce required"),
        "{text}"
    );
    assert_eq!(
        dpop_of(&["update", &id, "--dpop-nonce", "false"]),
        (json!("allowed"), json!(false)),
        "what was not given is kept"
    );

    let out = env.run(
        &["admin", "client", "update", &id, "--dpop", "sometimes"],
        None,
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("off, allowed or required"), "{err}");
}

#[test]
fn a_clients_controls_are_set_shown_and_pkce_required_cannot_be_unset() {
    let _lane = common::lane(common::lanes::SHARED);
    let env = Env::new();
    let id = env.client("Partner app");
    let show = |args: &[&str]| env.json(&[&["admin", "--json", "client"], args].concat(), None);
    let shown = show(&["show", &id]);
    assert_eq!(
        (
            &shown["pkce_required"],
            &shown["rotation_required"],
            &shown["idle_cap"],
            &shown["blocked"]
        ),
        (&json!(false), &json!(false), &json!(null), &json!(false))
    );

    let set = show(&[
        "update",
        &id,
        "--pkce-required",
        "--rotation-required",
        "--idle-cap",
        "--block",
    ]);
    assert_eq!(set["pkce_required"], true);
    assert_eq!(set["rotation_required"], true);
    assert_eq!(
        set["rotate_refresh_tokens"], true,
        "requiring rotation turns it on"
    );
    assert_eq!(set["idle_cap"], "30d", "the cap given alone is 30 days");
    assert_eq!(set["blocked"], true);
    assert_eq!(
        set["effective_refresh_policy"],
        "specific_inactivity:30:DAYS"
    );
    let text = String::from_utf8(env.run(&["admin", "client", "show", &id], None).stdout).unwrap();
    assert!(
        text.contains("policy         infinite, capped at 30 days idle by the idle-limit cap"),
        "{text}"
    );
    assert!(
        text.contains("controls       PKCE required, rotation required, idle cap 30d, BLOCKED"),
        "{text}"
    );

    for (args, expected) in [
        (
            ["--pkce-required", "false"],
            "PKCE required cannot be turned off, as in Salesforce",
        ),
        (
            ["--rotate-refresh-tokens", "false"],
            "rotation is required for this client",
        ),
    ] {
        let out = env.run(
            &[&["admin", "client", "update", &id], &args[..]].concat(),
            None,
        );
        assert!(!out.status.success(), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(expected), "{args:?}: {err}");
    }

    let lifted = show(&["update", &id, "--idle-cap", "off", "--unblock"]);
    assert_eq!(
        (&lifted["idle_cap"], &lifted["blocked"]),
        (&json!(null), &json!(false))
    );
    assert_eq!(lifted["effective_refresh_policy"], "infinite");
    assert_eq!(lifted["pkce_required"], true, "still required");
    let twelve_hours = show(&["update", &id, "--idle-cap", "12h"]);
    assert_eq!(
        twelve_hours["effective_refresh_policy"],
        "specific_inactivity:12:HOURS"
    );
}

#[test]
fn rotation_is_set_off_on_or_audit_and_show_prints_the_audit_summary() {
    let _lane = common::lane(common::lanes::SHARED);
    let env = Env::new();
    let id = env.client("Partner app");
    let update = |args: &[&str]| {
        env.json(
            &[&["admin", "--json", "client", "update", &id], args].concat(),
            None,
        )
    };
    let audited = update(&["--rotation", "audit"]);
    assert_eq!(
        (&audited["rotation"], &audited["rotate_refresh_tokens"]),
        (&json!("audit"), &json!(true))
    );
    let shown = env.json(&["admin", "--json", "client", "show", &id], None);
    let summary = &shown["rotation_audit_30d"];
    assert_eq!(summary["families_would_have_been_revoked"], 0, "{summary}");
    assert_eq!(summary["families"], json!([]));
    let text = String::from_utf8(env.run(&["admin", "client", "show", &id], None).stdout).unwrap();
    assert!(text.contains("rotation       audit"), "{text}");
    assert!(
        text.contains("rotation audit (30 days): 0 families would have been revoked"),
        "{text}"
    );

    // Audit comes before requiring rotation; the two flags for rotation exclude each other.
    for (args, expected) in [
        (
            &["--rotation-required"][..],
            "rotation audit mode is for before rotation is required",
        ),
        (&["--rotation", "sometimes"][..], "is not off, on or audit"),
        (
            &["--rotation", "on", "--rotate-refresh-tokens", "true"][..],
            "cannot be used with",
        ),
    ] {
        let out = env.run(&[&["admin", "client", "update", &id], args].concat(), None);
        assert!(!out.status.success(), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(expected), "{args:?}: {err}");
    }

    let on = update(&["--rotation", "on", "--rotation-required"]);
    assert_eq!(
        (&on["rotation"], &on["rotation_required"]),
        (&json!("on"), &json!(true))
    );
    let required =
        String::from_utf8(env.run(&["admin", "client", "show", &id], None).stdout).unwrap();
    assert!(
        !required.contains("rotation audit ("),
        "no summary to show: {required}"
    );
    let off = update(&["--rotation-required", "false", "--rotation", "off"]);
    assert_eq!(
        (&off["rotation"], &off["rotate_refresh_tokens"]),
        (&json!("off"), &json!(false))
    );
    // The earlier flag still works.
    let back = update(&["--rotate-refresh-tokens"]);
    assert_eq!(back["rotation"], "on");

    // The audit trail by kind: a minted grant's `issued` event, and no rotation_audit event.
    env.user("r@example.com", "first password");
    let mint = [
        "admin",
        "token",
        "mint",
        "--client-id",
        &id,
        "--username",
        "r@example.com",
    ];
    env.json(&mint, None);
    let events = |kind: &str| {
        let out = env.run(
            &["admin", "--json", "events", "--client", &id, "--kind", kind],
            None,
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    assert!(events("rotation_audit").trim().is_empty());
    assert!(
        events("issued").contains("\"issued\""),
        "{}",
        events("issued")
    );
    let bad = env.run(&["admin", "events", "--kind", "nonsense"], None);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("is not an event kind"));
}

#[test]
fn a_clients_ip_allowlist_is_set_shown_cleared_and_bad_lists_are_refused_with_why() {
    let _lane = common::lane(common::lanes::SHARED);
    let env = Env::new();
    let id = env.client("Partner app");
    let admin = |args: &[&str]| env.json(&[&["admin", "--json", "client"], args].concat(), None);
    assert_eq!(admin(&["show", &id])["ip_allowlist"], json!([]));

    let set = admin(&[
        "update",
        &id,
        "--ip-allowlist",
        "203.0.113.0/24,2001:db8::/32, 198.51.100.7",
    ]);
    assert_eq!(
        set["ip_allowlist"],
        json!(["203.0.113.0/24", "2001:db8::/32", "198.51.100.7/32"])
    );
    let text = String::from_utf8(env.run(&["admin", "client", "show", &id], None).stdout).unwrap();
    assert!(
        text.contains("ip allowlist   203.0.113.0/24 2001:db8::/32 198.51.100.7/32"),
        "{text}"
    );
    assert!(text.contains("IP allowlist (3 ranges)"), "{text}");

    let too_many = (0..129)
        .map(|n| format!("10.0.{n}.0/24"))
        .collect::<Vec<_>>()
        .join(",");
    for (list, expected) in [
        (too_many.as_str(), "at most 128 ranges; 129 given"),
        (
            "203.0.113.0/33",
            "\"203.0.113.0/33\" is not an IPv4 or IPv6 range",
        ),
        ("example.com", "\"example.com\" is not an IP address"),
        (
            "203.0.113.9/24",
            "has bits set past its /24 prefix; the range is 203.0.113.0/24",
        ),
        ("0.0.0.0/0", "write 0.0.0.0/0! if that is meant"),
        ("::/0", "write ::/0! if that is meant"),
    ] {
        let out = env.run(
            &["admin", "client", "update", &id, "--ip-allowlist", list],
            None,
        );
        assert!(!out.status.success(), "{list}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("IP allowlist: "), "{list}: {err}");
        assert!(err.contains(expected), "{list}: {err}");
    }
    assert_eq!(admin(&["show", &id])["ip_allowlist"], set["ip_allowlist"]);

    let any_v6 = admin(&["update", &id, "--ip-allowlist", "203.0.113.0/24,::/0!"]);
    assert_eq!(any_v6["ip_allowlist"], json!(["203.0.113.0/24", "::/0"]));
    let cleared = admin(&["update", &id, "--ip-allowlist", "none"]);
    assert_eq!(cleared["ip_allowlist"], json!([]));
}

#[test]
fn the_config_files_client_defaults_apply_to_new_clients_unless_a_flag_says_otherwise() {
    let _lane = common::lane(common::lanes::SHARED);
    let env = Env::new();
    let path = env.dir.path().join("defaults.toml");
    std::fs::write(
        &path,
        "client_default_pkce_required = true\nclient_default_rotation_required = true\n\
         client_default_idle_cap = \"30d\"\nclient_default_ip_allowlist = \"203.0.113.0/24\"\n",
    )
    .unwrap();
    let config = path.to_str().unwrap();
    let create = |extra: &[&str]| {
        let base = [
            "admin",
            "--json",
            "--config",
            config,
            "client",
            "create",
            "--name",
            "App",
            "--redirect-uri",
            "https://a/cb",
        ];
        env.json(&[&base[..], extra].concat(), None)
    };
    let defaulted = create(&[]);
    assert_eq!(defaulted["pkce_required"], true);
    assert_eq!(defaulted["rotation_required"], true);
    assert_eq!(defaulted["rotate_refresh_tokens"], true);
    assert_eq!(defaulted["idle_cap"], "30d");
    assert_eq!(defaulted["ip_allowlist"], json!(["203.0.113.0/24"]));

    let explicit = create(&[
        "--pkce-required",
        "false",
        "--rotation-required",
        "false",
        "--idle-cap",
        "off",
        "--ip-allowlist",
        "2001:db8::/32",
    ]);
    assert_eq!(explicit["pkce_required"], false);
    assert_eq!(explicit["rotation_required"], false);
    assert_eq!(explicit["rotate_refresh_tokens"], false);
    assert_eq!(explicit["idle_cap"], json!(null));
    assert_eq!(explicit["ip_allowlist"], json!(["2001:db8::/32"]));

    // An update never reads the defaults.
    let id = explicit["client_id"].as_str().unwrap();
    let updated = env.json(
        &[
            "admin", "--json", "--config", config, "client", "update", id, "--name", "B",
        ],
        None,
    );
    assert_eq!(updated["pkce_required"], false);
    assert_eq!(updated["ip_allowlist"], json!(["2001:db8::/32"]));

    // A bad default is refused before anything is done, naming the key.
    let mut command = env.command();
    command.env("TESSERA_CLIENT_DEFAULT_IP_ALLOWLIST", "0.0.0.0/0");
    let out = common::run(command, &["admin", "client", "list"], None);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("client default IP allowlist") && err.contains("no restriction"),
        "{err}"
    );
}

#[test]
fn bad_client_settings_are_refused_with_a_clear_message() {
    let _lane = common::lane(common::lanes::SHARED);
    let env = Env::new();
    for (args, expected) in [
        (
            vec!["admin", "client", "create", "--name", "x"],
            "redirect-uri",
        ),
        (
            vec![
                "admin",
                "client",
                "create",
                "--name",
                "x",
                "--redirect-uri",
                "not a uri",
            ],
            "absolute",
        ),
        (
            vec![
                "admin",
                "client",
                "create",
                "--name",
                "x",
                "--redirect-uri",
                "https://a/cb",
                "--refresh-token-policy",
                "forever",
            ],
            "policy",
        ),
        (
            vec![
                "admin",
                "client",
                "create",
                "--name",
                "x",
                "--redirect-uri",
                "https://a/cb",
                "--access-token-ttl",
                "2w",
            ],
            "duration",
        ),
    ] {
        let out = env.run(&args, None);
        assert!(!out.status.success(), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(expected), "{args:?}: {err}");
    }
}

/// A redirect URI that could leak a code or run script is refused at registration and on
/// update, naming what is wrong.
#[test]
fn dangerous_redirect_uris_are_refused_at_create_and_update() {
    let _lane = common::lane(common::lanes::SHARED);
    let env = Env::new();
    let refused = [
        ("javascript:alert(1)", "javascript:"),
        ("data:text/html,hi", "data:"),
        ("file:///etc/passwd", "file:"),
        ("vbscript:x", "vbscript:"),
        ("http://app.example.com/cb", "plain http"),
        ("https://app.example.com/cb#x", "fragment"),
        ("myapp://cb", "reverse-domain"),
    ];
    for (uri, why) in refused {
        let out = env.run(
            &[
                "admin",
                "client",
                "create",
                "--name",
                "x",
                "--redirect-uri",
                uri,
            ],
            None,
        );
        assert!(!out.status.success(), "{uri} was accepted");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(why), "{uri}: {err}");
    }
    let client = env.json(
        &[
            "admin",
            "--json",
            "client",
            "create",
            "--name",
            "ok",
            "--redirect-uri",
            "com.example.app:/cb",
            "--redirect-uri",
            "http://localhost:3000/cb",
        ],
        None,
    );
    let id = client["client_id"].as_str().unwrap();
    let out = env.run(
        &[
            "admin",
            "client",
            "update",
            id,
            "--redirect-uri",
            "javascript:alert(1)",
        ],
        None,
    );
    assert!(!out.status.success());
    let shown = env.json(&["admin", "--json", "client", "show", id], None);
    assert_eq!(shown["redirect_uris"][0], "com.example.app:/cb");
}

#[test]
fn users_can_be_created_disabled_enabled_and_given_a_new_password() {
    let _lane = common::lane(common::lanes::SHARED);
    let env = Env::new();
    let user = env.json(
        &[
            "admin",
            "--json",
            "user",
            "create",
            "--username",
            "ann@example.com",
            "--password-stdin",
            "--email",
            "ann@example.com",
        ],
        Some("a long password\n"),
    );
    assert!(user["id"].as_str().unwrap().starts_with("005"));
    let dup = env.run(
        &[
            "admin",
            "user",
            "create",
            "--username",
            "ann@example.com",
            "--password-stdin",
        ],
        Some("another password"),
    );
    assert!(!dup.status.success());
    let short = env.run(
        &[
            "admin",
            "user",
            "create",
            "--username",
            "bo@example.com",
            "--password-stdin",
        ],
        Some("short"),
    );
    assert!(!short.status.success());
    assert_eq!(
        env.json(
            &["admin", "--json", "user", "disable", "ann@example.com"],
            None
        )["disabled"],
        true
    );
    assert_eq!(
        env.json(
            &["admin", "--json", "user", "enable", "ann@example.com"],
            None
        )["disabled"],
        false
    );
    env.json(
        &[
            "admin",
            "--json",
            "user",
            "set-password",
            "ann@example.com",
            "--password-stdin",
        ],
        Some("an even longer password"),
    );
    let list = env.json(&["admin", "--json", "user", "list"], None);
    assert_eq!(list[0]["username"], "ann@example.com");
}

/// The admin console's role: given at creation or later, taken away, shown by `user list`.
#[test]
fn the_admin_role_is_given_at_creation_or_later_and_taken_away() {
    let _lane = common::lane(common::lanes::SHARED);
    let env = Env::new();
    assert_eq!(
        env.user("ann@example.com", "a long password")["admin"],
        false
    );
    let root = env.json(
        &[
            "admin",
            "--json",
            "user",
            "create",
            "--username",
            "root@example.com",
            "--password-stdin",
            "--admin",
        ],
        Some("a long password"),
    );
    assert_eq!(root["admin"], true);
    let role = |command: &str, username: &str| {
        env.json(&["admin", "--json", "user", command, username], None)["admin"].clone()
    };
    assert_eq!(role("grant-admin", "ann@example.com"), true);
    assert_eq!(role("revoke-admin", "root@example.com"), false);
    let list = env.json(&["admin", "--json", "user", "list"], None);
    let admins: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .filter(|u| u["admin"] == true)
        .map(|u| u["username"].as_str().unwrap())
        .collect();
    assert_eq!(admins, ["ann@example.com"]);
    let text = env.run(&["admin", "user", "list"], None);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.lines()
            .any(|l| l.contains("ann@example.com") && l.contains("(admin)")),
        "{text}"
    );
    assert!(!env
        .run(
            &["admin", "user", "grant-admin", "nobody@example.com"],
            None
        )
        .status
        .success());
}

/// A new password revokes the user's grants (the usual reason for a change is a compromise),
/// unless --keep-sessions.
#[test]
fn set_password_revokes_the_users_grants_unless_kept() {
    let _lane = common::lane(common::lanes::SHARED);
    let env = Env::new();
    env.user("p@example.com", "first password");
    let id: &str = &env.client("P");
    let mint = || {
        env.json(
            &[
                "admin",
                "token",
                "mint",
                "--client-id",
                id,
                "--username",
                "p@example.com",
                "--scope",
                "api refresh_token",
            ],
            None,
        )
    };
    mint();
    let kept = env.json(
        &[
            "admin",
            "--json",
            "user",
            "set-password",
            "p@example.com",
            "--password-stdin",
            "--keep-sessions",
        ],
        Some("second password"),
    );
    assert_eq!(kept["revoked_grants"], 0);
    mint();
    let changed = env.json(
        &[
            "admin",
            "--json",
            "user",
            "set-password",
            "p@example.com",
            "--password-stdin",
        ],
        Some("third password"),
    );
    assert_eq!(changed["revoked_grants"], 2);
    let grants = env.json(
        &["admin", "--json", "grants", "--user", "p@example.com"],
        None,
    );
    assert!(grants
        .as_array()
        .unwrap()
        .iter()
        .all(|g| !g["revoked_at"].is_null()));
}

#[test]
fn token_mint_prints_the_token_endpoint_body() {
    let _lane = common::lane(common::lanes::SHARED);
    let env = Env::new();
    env.user("m@example.com", "mint password");
    let id: &str = &env.client("Load");
    let minted = env.json(
        &[
            "admin",
            "token",
            "mint",
            "--client-id",
            id,
            "--username",
            "m@example.com",
            "--scope",
            "api refresh_token",
        ],
        None,
    );
    assert!(minted["access_token"].as_str().unwrap().contains('!'));
    assert!(minted["refresh_token"].is_string());
    assert_eq!(minted["scope"], "api refresh_token");
    let bad = env.run(
        &[
            "admin",
            "token",
            "mint",
            "--client-id",
            id,
            "--username",
            "m@example.com",
            "--scope",
            "full",
        ],
        None,
    );
    assert!(!bad.status.success());
}

/// `admin` reads the same settings as `serve`, from the environment and the config file: a
/// mint under TESSERA_MAX_GRANTS_PER_USER_CLIENT=2 evicts by that limit, not the default 5.
#[test]
fn admin_commands_honour_the_servers_settings_from_the_environment() {
    let _lane = common::lane(common::lanes::SHARED);
    let env = Env::new();
    env.user("l@example.com", "limit password");
    let id: &str = &env.client("L");
    for _ in 0..3 {
        let mut command = env.command();
        command.env("TESSERA_MAX_GRANTS_PER_USER_CLIENT", "2");
        common::json(
            command,
            &[
                "admin",
                "token",
                "mint",
                "--client-id",
                id,
                "--username",
                "l@example.com",
                "--scope",
                "api refresh_token",
            ],
            None,
        );
    }
    let grants = env.json(
        &["admin", "--json", "grants", "--user", "l@example.com"],
        None,
    );
    let live = grants
        .as_array()
        .unwrap()
        .iter()
        .filter(|g| g["revoked_at"].is_null())
        .count();
    assert_eq!(live, 2, "{grants:#}");
}

#[test]
fn unknown_database_schemes_are_refused_naming_the_supported_ones() {
    let _lane = common::lane(common::lanes::SHARED);
    let env = Env::new();
    let out = env.run(
        &[
            "admin",
            "--database",
            "mysql://root@localhost/db",
            "user",
            "list",
        ],
        None,
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("unsupported database URL scheme") && stderr.contains("sqlite://"),
        "{stderr}"
    );
    assert!(!env.dir.path().join("mysql:").exists());
    assert!(!std::path::Path::new("mysql:").exists());
}

/// An unknown key is refused in one line (before, the whole list of keys, with nested
/// backticks, a `default.` prefix and the path twice).
#[test]
fn an_unknown_config_key_is_refused_in_one_line_naming_the_key_it_is_close_to() {
    let _lane = common::lane(common::lanes::SHARED);
    let env = Env::new();
    let path = env.dir.path().join("bad.toml");
    std::fs::write(&path, "expires_in = true\nlisen = \"127.0.0.1:1\"\n").unwrap();
    let out = env.run(
        &["admin", "--config", path.to_str().unwrap(), "user", "list"],
        None,
    );
    assert!(!out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!(
            "error: {}:2: unknown key `lisen`, did you mean `listen`?\n",
            path.display()
        )
    );
}

fn http_get(port: u16, path: &str) -> Option<String> {
    use std::io::Read;
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut text = String::new();
    stream.read_to_string(&mut text).ok()?;
    Some(text)
}

#[test]
fn serve_dev_seeds_prints_a_walkthrough_and_stops_cleanly_on_sigterm() {
    let _lane = common::lane(common::lanes::SHARED);
    let env = Env::new();
    let port = common::free_port();
    let child = spawn_dev(&env, port);
    assert!(wait_until_up(port).starts_with("HTTP/1.1 200"));
    let discovery = http_get(port, "/.well-known/oauth-authorization-server").unwrap();
    assert!(discovery.contains(&format!("http://127.0.0.1:{port}/services/oauth2/token")));

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "exit status {:?}", output.status);
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.contains("demo@example.com"));
    assert!(text.contains("client_secret"));
    assert!(text.contains("/services/oauth2/authorize?response_type=code"));
    // Step 4 says which scope gives a refresh token, and step 1's URL asks for it.
    let refresh_step = text
        .split("4. Get a new access token with the refresh token")
        .nth(1)
        .expect("a refresh step");
    assert!(
        refresh_step.contains("scope has refresh_token") && refresh_step.contains("offline_access"),
        "{refresh_step}"
    );
    assert!(text.contains("scope=api+id+refresh_token+web"), "{text}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(env.dir.path().join("server.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}

/// Starts `serve --dev` on `port` and reads its walkthrough up to the demo client's
/// credentials: the running server and (client id, secret).
fn start_dev(env: &Env, port: u16) -> (std::process::Child, String, String) {
    use std::io::BufRead;
    let mut child = spawn_dev(env, port);
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let (mut id, mut secret) = (None, None);
    for line in lines.by_ref() {
        let line = line.unwrap();
        let mut words = line.split_whitespace();
        match (words.next(), words.next()) {
            (Some("client_id"), Some(value)) => id = Some(value.to_owned()),
            (Some("client_secret"), Some(value)) => {
                secret = Some(value.to_owned());
                break;
            }
            _ => {}
        }
    }
    // The rest of the walkthrough still has to go somewhere: a closed pipe would fail the
    // server's print.
    std::thread::spawn(move || lines.for_each(drop));
    (child, id.unwrap(), secret.unwrap())
}

/// Whether the server takes these client credentials: a refresh with a made-up token is refused
/// with `invalid_grant` when they are right, `invalid_client` when not.
fn credentials_work(port: u16, client_id: &str, secret: &str) -> bool {
    use std::io::Read;
    let body = format!(
        "grant_type=refresh_token&refresh_token=made-up&client_id={client_id}&client_secret={secret}"
    );
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        stream,
        "POST /services/oauth2/token HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    assert!(
        text.contains("invalid_grant") != text.contains("invalid_client"),
        "{text}"
    );
    text.contains("invalid_grant")
}

/// `serve --dev` on `port`, its walkthrough piped.
fn spawn_dev(env: &Env, port: u16) -> std::process::Child {
    spawn_dev_on(env, &format!("127.0.0.1:{port}"))
}

fn spawn_dev_on(env: &Env, listen: &str) -> std::process::Child {
    env.command()
        .args(["serve", "--dev", "--listen", listen])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// The first answer of `/healthz`, waited for.
fn wait_until_up(port: u16) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(reply) = http_get(port, "/healthz") {
            return reply;
        }
        assert!(Instant::now() < deadline, "server did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_host_name_is_a_listen_address() {
    let _lane = common::lane(common::lanes::SHARED);
    let env = Env::new();
    let port = common::free_port();
    let mut server = spawn_dev_on(&env, &format!("localhost:{port}"));
    let stdout = server.stdout.take().unwrap();
    std::thread::spawn(move || std::io::copy(&mut { stdout }, &mut std::io::sink()));
    assert!(wait_until_up(port).starts_with("HTTP/1.1 200"));
    let discovery = http_get(port, "/.well-known/oauth-authorization-server").unwrap();
    assert!(discovery.contains(&format!("http://localhost:{port}/services/oauth2/token")));
    server.kill().unwrap();
    server.wait().unwrap();
}

#[test]
fn dev_restarts_keep_the_demo_secret_and_a_start_on_a_taken_port_changes_nothing() {
    let _lane = common::lane(common::lanes::SHARED);
    let env = Env::new();
    let port = common::free_port();
    let (mut running, id, secret) = start_dev(&env, port);
    wait_until_up(port);
    assert!(credentials_work(port, &id, &secret));
    assert!(!credentials_work(port, &id, "not-the-secret"));

    // A second start on the same port fails, and the running server's secret still works.
    let second = env.run(
        &["serve", "--dev", "--listen", &format!("127.0.0.1:{port}")],
        None,
    );
    assert!(!second.status.success());
    assert!(String::from_utf8_lossy(&second.stderr).contains("binding"));
    assert!(credentials_work(port, &id, &secret));

    // A restart prints the same credentials, and they work.
    running.kill().unwrap();
    running.wait().unwrap();
    let (mut restarted, id_again, secret_again) = start_dev(&env, port);
    assert_eq!(
        (id_again.as_str(), secret_again.as_str()),
        (id.as_str(), secret.as_str())
    );
    wait_until_up(port);
    assert!(credentials_work(port, &id, &secret));
    restarted.kill().unwrap();
    restarted.wait().unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let kept = env.dir.path().join("dev-credentials.json");
        let mode = std::fs::metadata(kept).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}

#[test]
fn lifecycle_admin_commands_revoke_show_chains_and_follow_events() {
    let _lane = common::lane(common::lanes::SHARED);
    let env = Env::new();
    env.user("l@example.com", "lifecycle password");
    let client = env.json(
        &[
            "admin",
            "--json",
            "client",
            "create",
            "--name",
            "L",
            "--redirect-uri",
            "https://a/cb",
            "--rotate-refresh-tokens",
            "--refresh-retry-window",
            "0s",
        ],
        None,
    );
    assert_eq!(client["refresh_retry_window"], "0s");
    let id = client["client_id"].as_str().unwrap();
    let too_long = env.run(
        &[
            "admin",
            "client",
            "update",
            id,
            "--refresh-retry-window",
            "1h",
        ],
        None,
    );
    assert!(!too_long.status.success());
    for _ in 0..2 {
        env.json(
            &[
                "admin",
                "token",
                "mint",
                "--client-id",
                id,
                "--username",
                "l@example.com",
                "--scope",
                "api refresh_token",
            ],
            None,
        );
    }
    let grants = env.json(
        &["admin", "--json", "grants", "--user", "l@example.com"],
        None,
    );
    let grants = grants.as_array().unwrap();
    assert_eq!(grants.len(), 2);
    assert_eq!(grants[0]["chain"][0]["kind"], "issued");
    let grant_id = grants[0]["grant_id"].as_str().unwrap().to_owned();

    let one = env.json(&["admin", "--json", "revoke", "--grant", &grant_id], None);
    assert_eq!(one["revoked_grants"], 1);
    let again = env.json(&["admin", "--json", "revoke", "--grant", &grant_id], None);
    assert_eq!(again["revoked_grants"], 0);
    let by_user = env.json(
        &["admin", "--json", "revoke", "--user", "l@example.com"],
        None,
    );
    assert_eq!(by_user["revoked_grants"], 1);
    // `admin revoke --user` is "log out everywhere", as `admin user revoke-all` is: one
    // `user_grants_revoked` event of the user, each grant's `revoked` event naming it.
    // `events --json` prints one JSON document an event.
    let printed = env
        .run(
            &["admin", "--json", "events", "--user", "l@example.com"],
            None,
        )
        .stdout;
    let events: Vec<Value> = serde_json::Deserializer::from_slice(&printed)
        .into_iter::<Value>()
        .map(Result::unwrap)
        .collect();
    let of_kind = |kind: &str| -> Vec<Value> {
        events
            .iter()
            .filter(|e| e["kind"] == kind)
            .cloned()
            .collect()
    };
    let action = of_kind("user_grants_revoked");
    assert_eq!(action.len(), 1, "{events:?}");
    assert_eq!(action[0]["detail"], "1 grant, by admin command line");
    let last_revoked = of_kind("revoked").pop().unwrap();
    assert_eq!(
        last_revoked["detail"],
        "log out everywhere, by admin command line"
    );
    let again = env.run(&["admin", "user", "revoke-all", "l@example.com"], None);
    assert!(again.status.success());
    assert_eq!(
        String::from_utf8(again.stdout).unwrap().trim(),
        "revoked 0 grant(s) of user l@example.com"
    );
    let unknown = env.run(&["admin", "user", "revoke-all", "nobody@example.com"], None);
    assert!(!unknown.status.success(), "an unknown user is an error");
    let stderr = String::from_utf8(unknown.stderr).unwrap();
    assert!(stderr.contains("nobody@example.com"), "{stderr}");
    let by_client = env.json(&["admin", "--json", "revoke", "--client", id], None);
    assert_eq!(by_client["revoked_grants"], 0);
    assert!(
        !env.run(&["admin", "revoke"], None).status.success(),
        "a target is required"
    );

    let text =
        String::from_utf8(env.run(&["admin", "events", "--limit", "10"], None).stdout).unwrap();
    assert!(
        text.contains("issued") && text.contains("revoked"),
        "{text}"
    );
    let stats = env.json(&["admin", "--json", "stats"], None);
    assert_eq!(stats["live_grants"], 0);
    assert_eq!(stats["refresh_tokens"]["revoked"], 2);
    let purged = env.json(&["admin", "--json", "housekeeping"], None);
    assert!(purged["grants"].is_number());

    // `events --follow` prints new events as they come. The follower may take a moment to
    // start, so keep minting until one of the new events shows up (or give up after 20 s).
    let mut follower = env
        .command()
        .args(["admin", "events", "--follow", "--limit", "0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = follower.stdout.take().unwrap();
    let (lines_tx, lines_rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut seen = false;
    while !seen && Instant::now() < deadline {
        env.json(
            &[
                "admin",
                "token",
                "mint",
                "--client-id",
                id,
                "--username",
                "l@example.com",
                "--scope",
                "api refresh_token",
            ],
            None,
        );
        while let Ok(line) = lines_rx.recv_timeout(Duration::from_millis(1000)) {
            if line.contains("issued") {
                seen = true;
                break;
            }
        }
    }
    follower.kill().unwrap();
    follower.wait().unwrap();
    assert!(seen, "events --follow printed no new event");
}

#[test]
fn disabling_a_user_and_rotating_a_secret_with_revocation_revoke_grants() {
    let _lane = common::lane(common::lanes::SHARED);
    let env = Env::new();
    env.user("d@example.com", "disable password");
    let id: &str = &env.client("D");
    let mint = || {
        env.json(
            &[
                "admin",
                "token",
                "mint",
                "--client-id",
                id,
                "--username",
                "d@example.com",
                "--scope",
                "api refresh_token",
            ],
            None,
        )
    };
    mint();
    env.json(
        &["admin", "--json", "user", "disable", "d@example.com"],
        None,
    );
    let grants = env.json(
        &["admin", "--json", "grants", "--user", "d@example.com"],
        None,
    );
    assert!(grants[0]["revoked_at"].is_number());
    env.json(
        &["admin", "--json", "user", "enable", "d@example.com"],
        None,
    );
    mint();
    env.json(&["admin", "--json", "client", "rotate-secret", id], None);
    let grants = env.json(
        &["admin", "--json", "grants", "--user", "d@example.com"],
        None,
    );
    assert!(
        grants[0]["revoked_at"].is_null(),
        "plain secret rotation keeps tokens"
    );
    env.json(
        &[
            "admin",
            "--json",
            "client",
            "rotate-secret",
            id,
            "--revoke-tokens",
        ],
        None,
    );
    let grants = env.json(
        &["admin", "--json", "grants", "--user", "d@example.com"],
        None,
    );
    assert!(grants[0]["revoked_at"].is_number());
}

#[test]
fn the_server_runs_housekeeping_on_its_own() {
    let _lane = common::lane(common::lanes::SHARED);
    let env = Env::new();
    env.user("h@example.com", "housekeeping password");
    let client = env.json(
        &[
            "admin",
            "--json",
            "client",
            "create",
            "--name",
            "H",
            "--redirect-uri",
            "https://a/cb",
            "--access-token-ttl",
            "1s",
        ],
        None,
    );
    let id = client["client_id"].as_str().unwrap();
    env.json(
        &[
            "admin",
            "token",
            "mint",
            "--client-id",
            id,
            "--username",
            "h@example.com",
            "--scope",
            "api",
        ],
        None,
    );
    assert_eq!(
        env.json(&["admin", "--json", "stats"], None)["live_grants"],
        1
    );
    let port = common::free_port();
    let mut server = env
        .command()
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--housekeeping-interval",
            "1s",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut purged = false;
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(500));
        let stats = env.json(&["admin", "--json", "stats"], None);
        if stats["live_grants"] == 0 {
            purged = true;
            break;
        }
    }
    server.kill().unwrap();
    server.wait().unwrap();
    assert!(
        purged,
        "the access-only grant, its access token expired, was not removed"
    );
}

#[test]
fn each_command_shows_only_its_own_options_in_its_help() {
    let _lane = common::lane(common::lanes::SHARED);
    let env = Env::new();
    let help = |args: &[&str]| {
        let out = env.run(args, None);
        assert!(out.status.success(), "{args:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    let login = help(&["login", "--help"]);
    for server_only in ["--database", "--data-dir", "--listen", "--config"] {
        assert!(!login.contains(server_only), "{server_only} in:\n{login}");
    }
    let client_id = login
        .lines()
        .find(|l| l.trim_start().starts_with("--client-id <CLIENT_ID>"))
        .unwrap_or_else(|| panic!("no --client-id in:\n{login}"));
    assert!(client_id.contains("The client"), "{client_id}");
    assert!(help(&["token", "--help"]).contains("--verify"));
    // The client commands' --profile is theirs alone.
    for server in [
        &["serve", "--help"][..],
        &["admin", "client", "update", "--help"],
    ] {
        assert!(!help(server).contains("--profile"), "{server:?}");
    }
}

#[test]
fn serve_dev_does_not_publish_the_demo_password_off_loopback_unless_asked() {
    let _lane = common::lane(common::lanes::SHARED);
    let env = Env::new();
    let port = common::free_port();
    let listen = format!("0.0.0.0:{port}");
    let refused = env.run(&["serve", "--dev", "--listen", &listen], None);
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("refusing --dev"), "{stderr}");
    assert!(stderr.contains("not a loopback address"), "{stderr}");
    assert!(stderr.contains("--dev-public"), "{stderr}");
    // Refused before anything was seeded.
    assert!(!env.dir.path().join("dev-credentials.json").exists());

    let mut server = env
        .command()
        .args(["serve", "--dev", "--dev-public", "--listen", &listen])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = server.stdout.take().unwrap();
    std::thread::spawn(move || std::io::copy(&mut { stdout }, &mut std::io::sink()));
    assert!(wait_until_up(port).starts_with("HTTP/1.1 200"));
    server.kill().unwrap();
    server.wait().unwrap();
}

/// `tessera admin user logout` ends the browser session a running server made: the session
/// cookie that got a code without a prompt gets the login page after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_user_logout_ends_the_browser_session_of_a_running_server() {
    let _lane = common::lane(common::lanes::SHARED);
    let server = common::Server::start(&[], &[]);
    let (client_id, _) = server.user_and_client("2h", &[]);
    let authorize = format!(
        "{}/services/oauth2/authorize?response_type=code&client_id={client_id}&redirect_uri=http%3A%2F%2F127.0.0.1%3A9%2Fcb",
        server.base
    );
    let browser = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let text = |response: reqwest::Response| async move { response.text().await.unwrap() };
    let field = |html: &str, name: &str| tessera_testkit::hidden_value(html, name).unwrap();
    let page = text(browser.get(&authorize).send().await.unwrap()).await;
    let login = browser
        .post(format!("{}/services/oauth2/authorize/login", server.base))
        .form(&[
            ("request", field(&page, "request")),
            ("csrf_token", field(&page, "csrf_token")),
            ("username", "ada@example.com".to_owned()),
            ("password", "ada's password".to_owned()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 303);
    let consent_url = format!(
        "{}{}",
        server.base,
        login.headers()["location"].to_str().unwrap()
    );
    let consent = text(browser.get(consent_url).send().await.unwrap()).await;
    let allowed = browser
        .post(format!("{}/services/oauth2/authorize/consent", server.base))
        .form(&[
            ("request", field(&consent, "request")),
            ("csrf_token", field(&consent, "csrf_token")),
            ("decision", "allow".to_owned()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(allowed.status(), 302);
    // Remembered: the session alone gets a code.
    assert_eq!(browser.get(&authorize).send().await.unwrap().status(), 302);

    let user = server.admin(&["user", "logout", "ada@example.com"], None, &[]);
    assert_eq!(user["username"], "ada@example.com");
    let after = browser.get(&authorize).send().await.unwrap();
    assert_eq!(after.status(), 200);
    assert!(text(after).await.contains("name=\"password\""));
}

/// `tessera` at a pseudo-terminal, as a person at a shell runs it: `script` (util-linux) gives
/// it one, and this reads what the terminal shows and types into it.
struct AtTerminal {
    child: std::process::Child,
    typing: std::process::ChildStdin,
    shown: std::sync::mpsc::Receiver<Vec<u8>>,
    screen: String,
    /// The terminal's device, which `stty -F` reads the settings of.
    tty: std::path::PathBuf,
    /// Where the shell wrote the device's name.
    _dir: tempfile::TempDir,
}

/// Long enough for a loaded machine; reached only when the command hangs (Enter did nothing).
const HANG: Duration = Duration::from_secs(120);

impl AtTerminal {
    /// Runs `tessera args` at a terminal, with the environment of `command`.
    fn start(command: &Command, args: &[&str]) -> Option<Self> {
        if Command::new("script").arg("--version").output().is_err() {
            eprintln!("skipped: the terminal test needs `script` (util-linux)");
            return None;
        }
        let quote = |word: &str| format!("'{}'", word.replace('\'', r"'\''"));
        let dir = tempfile::tempdir().unwrap();
        let tty = dir.path().join("tty");
        let line = std::iter::once(command.get_program().to_str().unwrap())
            .chain(args.iter().copied())
            .map(quote)
            .collect::<Vec<_>>()
            .join(" ");
        let line = format!("tty > {}; exec {line}", quote(tty.to_str().unwrap()));
        let mut script = Command::new("script");
        script
            .args(["--quiet", "--return", "--command", &line, "/dev/null"])
            .env("SHELL", "/bin/sh")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (key, value) in command.get_envs() {
            match value {
                Some(value) => script.env(key, value),
                None => script.env_remove(key),
            };
        }
        let mut child = script.spawn().unwrap();
        let typing = child.stdin.take().unwrap();
        let mut output = child.stdout.take().unwrap();
        let (send, shown) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut buffer = [0u8; 4096];
            while let Ok(n @ 1..) = std::io::Read::read(&mut output, &mut buffer) {
                if send.send(buffer[..n].to_vec()).is_err() {
                    return;
                }
            }
        });
        let mut terminal = Self {
            child,
            typing,
            shown,
            screen: String::new(),
            tty: std::path::PathBuf::new(),
            _dir: dir,
        };
        let deadline = Instant::now() + HANG;
        terminal.tty = loop {
            match std::fs::read_to_string(&tty) {
                Ok(path) if path.ends_with('\n') => break path.trim().into(),
                _ => assert!(Instant::now() < deadline, "the terminal never started"),
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        Some(terminal)
    }

    /// Waits until the terminal shows `text`.
    fn wait_for(&mut self, text: &str) {
        let deadline = Instant::now() + HANG;
        while !self.screen.contains(text) {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.shown.recv_timeout(left) {
                Ok(bytes) => self.screen.push_str(&String::from_utf8_lossy(&bytes)),
                Err(_) => panic!(
                    "the terminal never showed {text:?}; it shows:\n{}",
                    self.screen
                ),
            }
        }
    }

    /// Waits until the terminal no longer echoes what is typed (the command turned echo off).
    fn wait_for_echo_off(&self) {
        let deadline = Instant::now() + HANG;
        loop {
            let settings = Command::new("stty")
                .arg("-F")
                .arg(&self.tty)
                .arg("-a")
                .output()
                .unwrap();
            let settings = String::from_utf8_lossy(&settings.stdout).into_owned();
            if settings.split_whitespace().any(|s| s == "-echo") {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "echo never turned off: {settings}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn type_text(&mut self, text: &str) {
        self.typing.write_all(text.as_bytes()).unwrap();
        self.typing.flush().unwrap();
    }

    /// Waits for the command to end, with standard input still open (no Ctrl-D): whether it
    /// succeeded, and everything the terminal showed.
    fn finish(mut self) -> (bool, String) {
        let deadline = Instant::now() + HANG;
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!(
                    "still running with the input open; it shows:\n{}",
                    self.screen
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        drop(self.typing);
        while let Ok(bytes) = self.shown.recv_timeout(Duration::from_secs(5)) {
            self.screen.push_str(&String::from_utf8_lossy(&bytes));
        }
        (status.success(), self.screen)
    }
}

/// Logs `username` in with `password` on the authorization pages (the test fails if the
/// password is refused).
async fn log_in(server: &common::Server, client_id: &str, username: &str, password: &str) {
    let url = format!(
        "{}/services/oauth2/authorize?response_type=code&client_id={client_id}&redirect_uri=http%3A%2F%2F127.0.0.1%3A9%2Fcb",
        server.base
    );
    let location = common::authorize_in_browser(&server.base, &url, username, password).await;
    assert!(location.contains("code="), "{location}");
}

/// An administrator created at a terminal: the password is asked for, not echoed, and Enter
/// ends it (before, nothing was shown, every key echoed, and only Ctrl-D finished); the user
/// then logs in with it. Piped in, the password is read as before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_typed_at_a_terminal_is_prompted_for_not_echoed_and_ended_by_enter() {
    let _lane = common::lane(common::lanes::SHARED);
    let server = common::Server::start(&[], &[]);
    let (client_id, _) = server.user_and_client("2h", &[]);
    const TYPED: &str = "typed at the terminal";
    let command = common::tessera(server.dir.path());
    let args = [
        "admin",
        "--json",
        "user",
        "create",
        "--username",
        "root@example.com",
        "--password-stdin",
        "--admin",
    ];
    let Some(mut terminal) = AtTerminal::start(&command, &args) else {
        return;
    };
    terminal.wait_for("Password for root@example.com: ");
    // Typed only once echo is off, as a person types after the prompt; typed earlier it would be
    // echoed by the terminal before the command could say otherwise.
    terminal.wait_for_echo_off();
    terminal.type_text(&format!("{TYPED}\r"));
    let (succeeded, screen) = terminal.finish();
    assert!(succeeded, "{screen}");
    assert!(
        !screen.contains(TYPED),
        "the password was echoed:\n{screen}"
    );
    assert!(screen.contains("\"admin\": true"), "{screen}");
    log_in(&server, &client_id, "root@example.com", TYPED).await;

    common::create_user(
        common::tessera(server.dir.path()),
        "ops@example.com",
        "piped in by a script\n",
    );
    log_in(
        &server,
        &client_id,
        "ops@example.com",
        "piped in by a script",
    )
    .await;
}

/// A database path with a typo in its directory is refused, naming the directory, and nothing
/// is created (before, the directories were made silently, at the filesystem's root too); the
/// default database's directory, in a data directory not made yet, is still created.
#[test]
fn a_database_path_in_a_missing_directory_is_refused_but_the_default_one_is_created() {
    let _lane = common::lane(common::lanes::SHARED);
    let env = Env::new();
    let typo = env.dir.path().join("var-lib-tesera");
    let refused = env.run(
        &[
            "admin",
            "user",
            "list",
            "--database",
            &format!("sqlite://{}/tessera.db", typo.display()),
        ],
        None,
    );
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains(&format!("its directory {} does not exist", typo.display())),
        "{stderr}"
    );
    assert!(!typo.exists());

    let data_dir = env.dir.path().join("not").join("made").join("yet");
    let listed = env
        .command()
        .args(["admin", "user", "list"])
        .env("TESSERA_DATA_DIR", &data_dir)
        .output()
        .unwrap();
    assert!(listed.status.success(), "{listed:?}");
    assert!(data_dir.join("tessera.db").is_file());
}
