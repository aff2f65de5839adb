//! Several `tessera serve` nodes on one PostgreSQL database: one behaviour, whichever node a
//! request lands on. Each test creates its own database on the PostgreSQL at
//! `TESSERA_TEST_POSTGRES_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`) and drops
//! it afterwards. Without a reachable server the tests are skipped with a loud message, unless
//! `TESSERA_TEST_POSTGRES_URL` is set (CI sets it): then they fail.

use crate::common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::Server;
use serde_json::Value;
use tessera_testkit::postgres::{self, TestDatabase};
use tessera_testkit::tcp_proxy::{self, TcpProxy};

const USERNAME: &str = "ada@example.com";
const PASSWORD: &str = "ada's password";
const REDIRECT: &str = "http://127.0.0.1:9/cb";

/// The PostgreSQL server's URL, or `None` (after saying so) when the tests are to be skipped.
async fn postgres() -> Option<String> {
    postgres::server_or_skip("The several-node tests are skipped.").await
}

/// Refuses new connections to `db` and ends every session on it: terminated again until none
/// is left, since a connection that was being opened while the first round ran is not yet
/// listed in pg_stat_activity and would survive it.
async fn refuse_connections(db: &TestDatabase) {
    let name = &db.name;
    db.execute_as_admin(&format!("ALTER DATABASE {name} ALLOW_CONNECTIONS false"))
        .await;
    let client = postgres::connect(&db.admin_url).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let sessions: i64 = client
            .query_one(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
                 WHERE datname = $1 AND pid <> pg_backend_pid()",
                &[name],
            )
            .await
            .unwrap()
            .get(0);
        if sessions == 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "sessions on {name} outlive termination"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Two nodes (or more) on one database, with one server key.
struct Cluster {
    db: TestDatabase,
    key: String,
    nodes: Vec<Server>,
}

impl Cluster {
    async fn start(admin_url: &str, nodes: usize) -> Self {
        let db = TestDatabase::create(admin_url, "tessera_nodes").await;
        let key: String = (0..4)
            .map(|_| format!("{:016x}", tessera_testkit::random_u64()))
            .collect();
        let mut cluster = Self {
            db,
            key,
            nodes: Vec::new(),
        };
        for _ in 0..nodes {
            cluster.add_node(&[]);
        }
        cluster
    }

    fn add_node(&mut self, env: &[(&str, &str)]) -> usize {
        let url = self.db.url.clone();
        self.add_node_at(&url, env)
    }

    /// A node that reaches the database at `url` (through a proxy, say).
    fn add_node_at(&mut self, url: &str, env: &[(&str, &str)]) -> usize {
        let mut all = vec![("TESSERA_SERVER_KEY", self.key.as_str())];
        all.extend_from_slice(env);
        let node = Server::start(&["--database", url], &all);
        self.nodes.push(node);
        self.nodes.len() - 1
    }

    fn base(&self, node: usize) -> &str {
        &self.nodes[node].base
    }

    fn admin(&self, args: &[&str], stdin: Option<&str>) -> Value {
        self.admin_with(args, stdin, &[])
    }

    /// `tessera admin` with `env` besides the server key (the settings the nodes run with).
    fn admin_with(&self, args: &[&str], stdin: Option<&str>, env: &[(&str, &str)]) -> Value {
        let mut full = vec!["--database", self.db.url.as_str()];
        full.extend_from_slice(args);
        let mut all = vec![("TESSERA_SERVER_KEY", self.key.as_str())];
        all.extend_from_slice(env);
        self.nodes[0].admin(&full, stdin, &all)
    }

    /// A user, and a confidential client with `options`; returns the client's id and secret.
    fn user_and_client(&self, options: &[&str]) -> Client {
        self.admin(
            &["user", "create", "--username", USERNAME, "--password-stdin"],
            Some(PASSWORD),
        );
        cluster_client(self, options)
    }
}

struct Client {
    http: reqwest::Client,
    id: String,
    secret: String,
}

/// An answer: status and body.
struct Reply {
    status: u16,
    body: Value,
    retry_after: Option<String>,
}

impl Client {
    async fn post(&self, url: String, form: &[(&str, &str)]) -> Reply {
        let response = self.http.post(url).form(form).send().await.unwrap();
        reply(response).await
    }

    async fn refresh(&self, base: &str, refresh_token: &str) -> Reply {
        self.post(
            format!("{base}/services/oauth2/token"),
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh_token),
                ("client_id", &self.id),
                ("client_secret", &self.secret),
            ],
        )
        .await
    }

    async fn api(&self, base: &str, access_token: &str) -> Reply {
        let response = self
            .http
            .get(format!("{base}/services/data/v65.0/sobjects"))
            .bearer_auth(access_token)
            .send()
            .await
            .unwrap();
        reply(response).await
    }

    async fn revoke(&self, base: &str, token: &str) -> u16 {
        self.post(
            format!("{base}/services/oauth2/revoke"),
            &[("token", token)],
        )
        .await
        .status
    }

    /// The family of `tokens` (a token response) is revoked as seen from each of `nodes`: its
    /// refresh token refused, its access token too.
    async fn assert_revoked_on(&self, nodes: &[&str], tokens: &Value) {
        for node in nodes {
            let refresh = self.refresh(node, &field(tokens, "refresh_token")).await;
            assert_eq!(refresh.status, 400, "{node}: {}", refresh.body);
            let api = self.api(node, &field(tokens, "access_token")).await;
            assert_eq!(api.status, 401, "{node}: {}", api.body);
        }
    }

    /// The Web Server flow on `base`, as a person in a browser does it: the login form, the
    /// consent form, then the code exchange. Returns the token response.
    async fn login(&self, base: &str) -> Value {
        self.login_for(base, "api refresh_token").await
    }

    /// [`Self::login`], asking for `scope`.
    async fn login_for(&self, base: &str, scope: &str) -> Value {
        let authorize = format!(
            "{base}/services/oauth2/authorize?response_type=code&client_id={}&redirect_uri={}\
             &scope={}&state=s",
            self.id,
            url_encode(REDIRECT),
            url_encode(scope)
        );
        let location = common::authorize_in_browser(base, &authorize, USERNAME, PASSWORD).await;
        let code = common::code_in(&location);
        let tokens = self
            .post(
                format!("{base}/services/oauth2/token"),
                &[
                    ("grant_type", "authorization_code"),
                    ("code", &code),
                    ("redirect_uri", REDIRECT),
                    ("client_id", &self.id),
                    ("client_secret", &self.secret),
                ],
            )
            .await;
        assert_eq!(tokens.status, 200, "code exchange: {}", tokens.body);
        tokens.body
    }
}

fn url_encode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

async fn reply(response: reqwest::Response) -> Reply {
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    let text = response.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Reply {
        status,
        body,
        retry_after,
    }
}

fn field(body: &Value, name: &str) -> String {
    body[name]
        .as_str()
        .unwrap_or_else(|| panic!("no {name} in {body}"))
        .to_owned()
}

/// 50 simultaneous refreshes of one token, alternating between the nodes.
async fn storm(cluster: &Cluster, client: &Arc<Client>, token: &str) -> Vec<Reply> {
    let tasks: Vec<_> = (0..50)
        .map(|n| {
            let (client, token) = (Arc::clone(client), token.to_owned());
            let base = cluster.base(n % cluster.nodes.len()).to_owned();
            tokio::spawn(async move { client.refresh(&base, &token).await })
        })
        .collect();
    let mut replies = Vec::new();
    for task in tasks {
        replies.push(task.await.unwrap());
    }
    replies
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_on_one_node_refreshes_on_the_other_and_a_storm_makes_one_successor() {
    let _lane = common::lane(common::lanes::NODES);
    let Some(admin_url) = postgres().await else {
        return;
    };
    let cluster = Cluster::start(&admin_url, 2).await;
    let strict = Arc::new(cluster.user_and_client(&[
        "--rotate-refresh-tokens",
        "--refresh-retry-window",
        "0s",
    ]));
    let tokens = strict.login(cluster.base(0)).await;
    let refreshed = strict
        .refresh(cluster.base(1), &field(&tokens, "refresh_token"))
        .await;
    assert_eq!(refreshed.status, 200, "{}", refreshed.body);
    assert_eq!(
        strict
            .api(cluster.base(0), &field(&refreshed.body, "access_token"))
            .await
            .status,
        200
    );

    // Window 0: one 200, the rest invalid_grant, never a 5xx.
    let replies = storm(&cluster, &strict, &field(&refreshed.body, "refresh_token")).await;
    let ok: Vec<&Reply> = replies.iter().filter(|r| r.status == 200).collect();
    assert_eq!(ok.len(), 1, "exactly one successor");
    for r in replies.iter().filter(|r| r.status != 200) {
        assert_eq!(r.status, 400, "{}", r.body);
        assert_eq!(r.body["error"], "invalid_grant", "{}", r.body);
    }
    let successor = field(&ok[0].body, "refresh_token");
    assert_eq!(
        strict.refresh(cluster.base(0), &successor).await.status,
        200
    );

    // With a window: every one of them gets the same pair.
    let windowed = Arc::new(cluster_client(
        &cluster,
        &["--rotate-refresh-tokens", "--refresh-retry-window", "60s"],
    ));
    let tokens = windowed.login(cluster.base(1)).await;
    let replies = storm(&cluster, &windowed, &field(&tokens, "refresh_token")).await;
    let pairs: std::collections::BTreeSet<(String, String)> = replies
        .iter()
        .map(|r| {
            assert_eq!(r.status, 200, "{}", r.body);
            (
                field(&r.body, "refresh_token"),
                field(&r.body, "access_token"),
            )
        })
        .collect();
    assert_eq!(pairs.len(), 1, "one successor pair for all 50");
}

/// A confidential client with `options`.
fn cluster_client(cluster: &Cluster, options: &[&str]) -> Client {
    let mut create = vec![
        "client",
        "create",
        "--name",
        "App",
        "--redirect-uri",
        REDIRECT,
    ];
    create.extend_from_slice(options);
    let client = cluster.admin(&create, None);
    Client {
        http: reqwest::Client::new(),
        id: client["client_id"].as_str().unwrap().to_owned(),
        secret: client["client_secret"].as_str().unwrap().to_owned(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reuse_and_revocation_on_one_node_take_effect_on_the_other() {
    let _lane = common::lane(common::lanes::NODES);
    let Some(admin_url) = postgres().await else {
        return;
    };
    let cluster = Cluster::start(&admin_url, 2).await;
    let client =
        cluster.user_and_client(&["--rotate-refresh-tokens", "--refresh-retry-window", "0s"]);
    let (a, b) = (cluster.base(0), cluster.base(1));

    // Rotated on A; the old token presented on B (after the 2 s grace) is reuse: the family is
    // revoked on both.
    let first = client.login(a).await;
    let second = client
        .refresh(a, &field(&first, "refresh_token"))
        .await
        .body;
    assert_eq!(
        client.api(b, &field(&second, "access_token")).await.status,
        200
    );
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    let reuse = client.refresh(b, &field(&first, "refresh_token")).await;
    assert_eq!(
        (reuse.status, reuse.body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    client.assert_revoked_on(&[a, b], &second).await;

    // An access token revoked on A is refused on B on the next request.
    let tokens = client.login(b).await;
    let access = field(&tokens, "access_token");
    assert_eq!(client.api(b, &access).await.status, 200);
    assert_eq!(client.revoke(a, &access).await, 200);
    assert_eq!(
        client.api(b, &access).await.status,
        401,
        "refused on B at once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_out_everywhere_from_the_command_line_is_refused_on_every_node_at_once() {
    let _lane = common::lane(common::lanes::NODES);
    let Some(admin_url) = postgres().await else {
        return;
    };
    let cluster = Cluster::start(&admin_url, 2).await;
    let client = cluster.user_and_client(&[]);
    let (a, b) = (cluster.base(0), cluster.base(1));

    // Two grants, one made on each node, each token in use on the other node (so that both
    // nodes hold it as valid).
    let on_a = client.login(a).await;
    let on_b = client.login(b).await;
    for (node, tokens) in [(b, &on_a), (a, &on_b)] {
        let api = client.api(node, &field(tokens, "access_token")).await;
        assert_eq!(api.status, 200, "{}", api.body);
    }

    // `tessera admin user revoke-all` against the shared database: no node told directly.
    let revoked = cluster.admin(&["user", "revoke-all", USERNAME], None);
    assert_eq!(revoked["revoked_grants"], 2, "{revoked}");
    client.assert_revoked_on(&[a, b], &on_a).await;
    client.assert_revoked_on(&[b, a], &on_b).await;
    // The newest event of the user (`events` prints each event as one JSON document).
    let newest = cluster.admin(&["events", "--user", USERNAME, "--limit", "1"], None);
    assert_eq!(newest["kind"], "user_grants_revoked", "{newest}");
    assert_eq!(newest["detail"], "2 grants, by admin command line");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jwt_access_token_revoked_on_one_node_is_refused_on_the_other_when_notified() {
    let _lane = common::lane(common::lanes::NODES);
    let Some(admin_url) = postgres().await else {
        return;
    };
    // Behind one public URL, as a cluster is: a JWT names its issuer and audience.
    let mut cluster = Cluster::start(&admin_url, 0).await;
    for _ in 0..2 {
        cluster.add_node(&[("TESSERA_ISSUER", "http://tessera.test")]);
    }
    let client = cluster.user_and_client(&["--jwt-access-tokens"]);
    let (a, b) = (cluster.base(0), cluster.base(1));

    // Issued on one node, verified on the other from the keys both read from the database;
    // the token (then a grant's refresh token) revoked on the first, refused on the other at
    // once.
    for (issuer, verifier, revoked) in [(a, b, "access_token"), (b, a, "refresh_token")] {
        let tokens = client.login(issuer).await;
        let access = field(&tokens, "access_token");
        assert_eq!(access.split('.').count(), 3, "a JWT: {access}");
        assert_eq!(client.api(verifier, &access).await.status, 200);
        assert_eq!(client.revoke(issuer, &field(&tokens, revoked)).await, 200);
        // The other node learns of it when PostgreSQL's notification arrives: within
        // milliseconds, which a machine busy compiling can stretch; never by expiry.
        let deadline = Instant::now() + Duration::from_secs(2);
        let mut refused = client.api(verifier, &access).await;
        while refused.status == 200 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
            refused = client.api(verifier, &access).await;
        }
        assert_eq!(refused.status, 401, "{revoked} revoked: {}", refused.body);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_with_a_skewed_clock_decides_on_the_databases_time() {
    let _lane = common::lane(common::lanes::NODES);
    let Some(admin_url) = postgres().await else {
        return;
    };
    if !common::libfaketime("skewed-node test") {
        return;
    }
    let mut cluster = Cluster::start(&admin_url, 1).await;
    // 15 minutes behind: by its own clock, a token valid for 10 minutes from the database's
    // time would not be valid yet, and one it stamped would expire 15 minutes early.
    let skewed = cluster.add_node(&[("LD_PRELOAD", common::LIBFAKETIME), ("FAKETIME", "-15m")]);
    let client = cluster.user_and_client(&["--access-token-ttl", "10m"]);
    let (a, s) = (cluster.base(0).to_owned(), cluster.base(skewed).to_owned());

    // The node's own clock is off indeed: its Date header says so.
    let date = reqwest::get(format!("{s}/healthz"))
        .await
        .unwrap()
        .headers()["date"]
        .to_str()
        .unwrap()
        .to_owned();
    let served = httpdate::parse_http_date(&date)
        .unwrap()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    let local = tessera_core::time::Clock::now(&tessera_core::time::SystemClock).millis();
    let behind = Duration::from_millis((local - served.as_millis() as i64).max(0) as u64);
    assert!(
        behind > Duration::from_secs(14 * 60),
        "the skewed node's Date is {date}"
    );

    let from_a = client.login(&a).await;
    assert_eq!(
        client.api(&s, &field(&from_a, "access_token")).await.status,
        200
    );

    let from_skewed = client
        .refresh(&s, &field(&from_a, "refresh_token"))
        .await
        .body;
    let issued: i64 = field(&from_skewed, "issued_at").parse().unwrap();
    let database_now = database_millis(&cluster.db.url).await;
    assert!(
        (issued - database_now).abs() < 60_000,
        "issued_at {issued} is the database's time {database_now}, not 15 minutes off"
    );
    assert_eq!(
        client
            .api(&a, &field(&from_skewed, "access_token"))
            .await
            .status,
        200
    );
    // Its expiry, as the skewed node stamped it, is 10 minutes after the database's time: read
    // through introspection on the other node.
    let introspected = client
        .post(
            format!("{a}/services/oauth2/introspect"),
            &[
                ("token", &field(&from_skewed, "access_token")),
                ("client_id", &client.id),
                ("client_secret", &client.secret),
            ],
        )
        .await
        .body;
    assert_eq!(introspected["active"], true, "{introspected}");
    let exp = introspected["exp"].as_i64().unwrap();
    let expected = database_now / 1000 + 600;
    assert!(
        (exp - expected).abs() < 60,
        "exp {exp}, expected about {expected}"
    );
}

async fn database_millis(url: &str) -> i64 {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client
        .query_one(
            "SELECT (extract(epoch from clock_timestamp()) * 1000)::bigint",
            &[],
        )
        .await
        .unwrap()
        .get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_is_503_and_service_resumes_without_a_restart() {
    let _lane = common::lane(common::lanes::NODES);
    let Some(admin_url) = postgres().await else {
        return;
    };
    let cluster = Cluster::start(&admin_url, 1).await;
    let client = cluster.user_and_client(&["--rotate-refresh-tokens"]);
    let base = cluster.base(0).to_owned();
    let tokens = client.login(&base).await;
    let refresh_token = field(&tokens, "refresh_token");

    let name = &cluster.db.name;
    refuse_connections(&cluster.db).await;
    let down = client.refresh(&base, &refresh_token).await;
    assert_eq!(down.status, 503, "{}", down.body);
    assert_eq!(down.body["error"], "temporarily_unavailable");
    assert!(down.retry_after.is_some(), "Retry-After");
    let http = reqwest::Client::new();
    let status = |path: &'static str| {
        let (http, base) = (http.clone(), base.clone());
        async move {
            http.get(format!("{base}{path}"))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(status("/readyz").await, 503);
    assert_eq!(status("/healthz").await, 200);

    cluster
        .db
        .execute_as_admin(&format!("ALTER DATABASE {name} ALLOW_CONNECTIONS true"))
        .await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let again = client.refresh(&base, &refresh_token).await;
        if again.status == 200 {
            break;
        }
        assert_eq!(
            again.status, 503,
            "only 503 while it recovers: {}",
            again.body
        );
        assert!(Instant::now() < deadline, "service did not resume");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(status("/readyz").await, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mixed_load_over_two_nodes_has_no_5xx_and_no_broken_chain() {
    let _lane = common::lane(common::lanes::NODES);
    let Some(admin_url) = postgres().await else {
        return;
    };
    let cluster = Cluster::start(&admin_url, 2).await;
    let client = Arc::new(cluster.user_and_client(&[
        "--rotate-refresh-tokens",
        "--refresh-retry-window",
        "30s",
    ]));
    let bases: Vec<String> = (0..2).map(|n| cluster.base(n).to_owned()).collect();
    // Five chains: one user's sixth approval of a client would revoke the first (the limit).
    let mut chains = Vec::new();
    for n in 0..5 {
        let tokens = client.login(&bases[n % 2]).await;
        chains.push(tokens);
    }
    let until = Instant::now() + Duration::from_secs(8);
    let tasks: Vec<_> = chains
        .into_iter()
        .enumerate()
        .map(|(n, tokens)| {
            let (client, bases) = (Arc::clone(&client), bases.clone());
            tokio::spawn(async move {
                let mut refresh_token = field(&tokens, "refresh_token");
                let mut access_token = field(&tokens, "access_token");
                let mut done = 0;
                let mut step = n;
                while Instant::now() < until {
                    step += 1;
                    let base = &bases[step % 2];
                    let api = client.api(base, &access_token).await;
                    assert_eq!(api.status, 200, "API call on {base}: {}", api.body);
                    let next = client.refresh(&bases[(step + 1) % 2], &refresh_token).await;
                    assert_eq!(
                        next.status, 200,
                        "chain {n} broke after {done}: {}",
                        next.body
                    );
                    refresh_token = field(&next.body, "refresh_token");
                    access_token = field(&next.body, "access_token");
                    done += 1;
                }
                done
            })
        })
        .collect();
    let mut total = 0;
    for task in tasks {
        total += task.await.unwrap();
    }
    assert!(total > 50, "only {total} rotations in 8 s");
    eprintln!("mixed load: {total} rotations and as many API calls over two nodes");
}

/// Calls `ask` every 200 ms until its status is not `while_status`, failing after `within`;
/// returns the first other reply.
async fn first_reply_other_than<F, Fut>(while_status: u16, within: Duration, ask: F) -> Reply
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Reply>,
{
    let deadline = Instant::now() + within;
    loop {
        let reply = ask().await;
        if reply.status != while_status {
            return reply;
        }
        assert!(
            Instant::now() < deadline,
            "still {while_status} after {within:?}: {}",
            reply.body
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_cut_off_from_the_database_answers_503_never_a_token_revoked_elsewhere() {
    let _lane = common::lane(common::lanes::NODES);
    let Some(admin_url) = postgres().await else {
        return;
    };
    let mut cluster = Cluster::start(&admin_url, 1).await;
    // Node B reaches PostgreSQL through a proxy that cuts it alone off; A keeps its connections.
    let proxy = TcpProxy::start(tcp_proxy::address_of(&cluster.db.url)).await;
    let b = cluster.add_node_at(
        &proxy.url_through(&cluster.db.url),
        &[("TESSERA_CHANGE_FEED_MAX_STALENESS", "2s")],
    );
    let client = cluster.user_and_client(&[]);
    let (a, b) = (cluster.base(0).to_owned(), cluster.base(b).to_owned());
    let access = field(&client.login(&a).await, "access_token");
    assert_eq!(client.api(&b, &access).await.status, 200);

    proxy.cut();
    assert_eq!(client.revoke(&a, &access).await, 200);
    assert_eq!(client.api(&a, &access).await.status, 401);
    // B cannot learn of the revocation. Within the bound it answers as it knew; past it, 503.
    let stale =
        first_reply_other_than(200, Duration::from_secs(30), || client.api(&b, &access)).await;
    assert_eq!(stale.status, 503, "{}", stale.body);
    assert!(stale.retry_after.is_some(), "Retry-After");
    let http = reqwest::Client::new();
    let ready = |base: String| {
        let http = http.clone();
        async move {
            let response = http.get(format!("{base}/readyz")).send().await.unwrap();
            reply(response).await
        }
    };
    assert_eq!(ready(b.clone()).await.status, 503);
    assert_eq!(ready(a.clone()).await.status, 200, "A is not affected");

    // Reconnected, B reads the feed, and with it the revocation: never a 200 on the way.
    proxy.restore();
    let recovered =
        first_reply_other_than(503, Duration::from_secs(30), || client.api(&b, &access)).await;
    assert_eq!(recovered.status, 401, "{}", recovered.body);
    let ready_again =
        first_reply_other_than(503, Duration::from_secs(30), || ready(b.clone())).await;
    assert_eq!(ready_again.status, 200, "{}", ready_again.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_old_token_presented_to_a_node_that_cached_it_as_current_revokes_the_family() {
    let _lane = common::lane(common::lanes::NODES);
    let Some(admin_url) = postgres().await else {
        return;
    };
    let cluster = Cluster::start(&admin_url, 2).await;
    let client =
        cluster.user_and_client(&["--rotate-refresh-tokens", "--refresh-retry-window", "0s"]);
    let (a, b) = (cluster.base(0), cluster.base(1));
    let first = client.login(a).await;
    // B rotates rt1, and caches the family with rt2 current.
    let rt2 = field(
        &client
            .refresh(b, &field(&first, "refresh_token"))
            .await
            .body,
        "refresh_token",
    );
    // A rotates twice: rt2 is two generations old, though B's cache says it is current.
    let rt3 = field(&client.refresh(a, &rt2).await.body, "refresh_token");
    let fourth = client.refresh(a, &rt3).await.body;
    let reuse = client.refresh(b, &rt2).await;
    assert_eq!(
        (reuse.status, reuse.body["error"].as_str()),
        (400, Some("invalid_grant")),
        "{}",
        reuse.body
    );
    // Reuse: the whole family is revoked, on both nodes.
    client.assert_revoked_on(&[a, b], &fourth).await;
}

/// The JWKS cache lifetime of the rotation test, `C`: short, so that a rotation's dates fall
/// within the test. A node keeps its copy of the keys as long (the minute is longer).
const ROTATION_JWKS_CACHE_LIFETIME: Duration = Duration::from_secs(3);

/// A JWKS as fetched from one node: when the request left, when the answer came.
struct JwksSnapshot {
    node: usize,
    sent: Instant,
    received: Instant,
    keys: jsonwebtoken::jwk::JwkSet,
}

/// An ID token as it arrived from one node's refresh.
struct ArrivedIdToken {
    arrived: Instant,
    token: String,
    kid: String,
}

impl JwksSnapshot {
    /// Whether a relying party holding this JWKS when `token` arrived may still use it: it
    /// had it by then, and fetched it less than `C` before.
    fn held_when(&self, token: &ArrivedIdToken) -> bool {
        self.received <= token.arrived && self.sent + ROTATION_JWKS_CACHE_LIFETIME >= token.arrived
    }

    fn kids(&self) -> Vec<&str> {
        self.keys
            .keys
            .iter()
            .filter_map(|k| k.common.key_id.as_deref())
            .collect()
    }

    /// `token` verifies under this JWKS (RS256, the JWK its kid names, for `audience`);
    /// else why not.
    fn verify(&self, token: &ArrivedIdToken, audience: &str) -> Result<(), String> {
        let key =
            jsonwebtoken::DecodingKey::from_jwk(self.jwk_of(token)?).map_err(|e| e.to_string())?;
        let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
        validation.set_audience(&[audience]);
        jsonwebtoken::decode::<Value>(&token.token, &key, &validation)
            .map(|_| ())
            .map_err(|e| format!("{} under node {}'s JWKS: {e}", token.kid, self.node))
    }

    /// The JWK `token`'s kid names here.
    fn jwk_of(&self, token: &ArrivedIdToken) -> Result<&jsonwebtoken::jwk::Jwk, String> {
        self.keys
            .find(&token.kid)
            .ok_or_else(|| format!("node {} did not publish {}", self.node, token.kid))
    }
}

/// The RS256 kids `base` publishes.
async fn published_rs256_kids(http: &reqwest::Client, base: &str) -> Vec<String> {
    let jwks: Value = http
        .get(format!("{base}/id/keys"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| k["alg"] == "RS256")
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_rotation_under_load_on_two_nodes_signs_nothing_a_cached_jwks_cannot_verify() {
    let _lane = common::lane(common::lanes::NODES);
    let Some(admin_url) = postgres().await else {
        return;
    };
    let c = ROTATION_JWKS_CACHE_LIFETIME;
    // The same settings on both nodes and the admin command, whose rotation dates the new key.
    // Housekeeping runs once, at start (it makes the first keys), and not again: it would date
    // the old key's retirement before the test retires it by hand.
    let settings = [
        ("TESSERA_JWKS_CACHE_LIFETIME", "3s"),
        ("TESSERA_HOUSEKEEPING_INTERVAL", "1h"),
    ];
    let mut cluster = Cluster::start(&admin_url, 0).await;
    let http = reqwest::Client::new();
    // The second node starts once the first has made the first keys: started together, each
    // might make one (both are published, the newer signs; a race this test is not about).
    cluster.add_node(&settings);
    let first_made = Instant::now() + Duration::from_secs(10);
    while published_rs256_kids(&http, cluster.base(0))
        .await
        .is_empty()
    {
        assert!(Instant::now() < first_made, "no first key");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    cluster.add_node(&settings);
    let client = Arc::new(cluster.user_and_client(&[
        "--scopes",
        "api openid refresh_token",
        "--rotate-refresh-tokens",
        "--refresh-retry-window",
        "30s",
    ]));
    let bases: Vec<String> = (0..2).map(|n| cluster.base(n).to_owned()).collect();

    // Both nodes publish the same single RS256 key before the load starts.
    let old = {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let (a, b) = (
                published_rs256_kids(&http, &bases[0]).await,
                published_rs256_kids(&http, &bases[1]).await,
            );
            if !a.is_empty() && a == b {
                assert_eq!(a.len(), 1, "one first key: {a:?}");
                break a[0].clone();
            }
            assert!(
                Instant::now() < deadline,
                "the nodes publish {a:?} and {b:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    let rs256_keys = |listed: &Value| -> Vec<(String, String)> {
        listed
            .as_array()
            .unwrap()
            .iter()
            .filter(|k| k["alg"] == "RS256")
            .map(|k| (field(k, "kid"), field(k, "state")))
            .collect()
    };
    assert_eq!(
        rs256_keys(&cluster.admin_with(&["keys", "list"], None, &settings)),
        [(old.clone(), "signing".to_owned())],
        "the store holds that one key"
    );
    // Four chains (one user's sixth approval of a client would revoke the first).
    let mut chains = Vec::new();
    for n in 0..4 {
        let tokens = client
            .login_for(&bases[n % 2], "api openid refresh_token")
            .await;
        assert!(tokens["id_token"].is_string(), "{tokens}");
        chains.push(field(&tokens, "refresh_token"));
    }

    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stopped =
        |stop: &Arc<std::sync::atomic::AtomicBool>| stop.load(std::sync::atomic::Ordering::Relaxed);
    let workers: Vec<_> = chains
        .into_iter()
        .enumerate()
        .map(|(n, mut refresh_token)| {
            let (client, bases, stop) = (Arc::clone(&client), bases.clone(), Arc::clone(&stop));
            tokio::spawn(async move {
                let mut arrived = Vec::new();
                let mut step = n;
                while !stopped(&stop) {
                    step += 1;
                    let base = &bases[step % 2];
                    let next = client.refresh(base, &refresh_token).await;
                    assert_eq!(next.status, 200, "chain {n} on {base}: {}", next.body);
                    let token = field(&next.body, "id_token");
                    let kid = jsonwebtoken::decode_header(&token).unwrap().kid.unwrap();
                    arrived.push(ArrivedIdToken {
                        arrived: Instant::now(),
                        token,
                        kid,
                    });
                    refresh_token = field(&next.body, "refresh_token");
                }
                arrived
            })
        })
        .collect();
    let poller = {
        let (http, bases, stop) = (http.clone(), bases.clone(), Arc::clone(&stop));
        tokio::spawn(async move {
            let mut snapshots = Vec::new();
            while !stopped(&stop) {
                for (node, base) in bases.iter().enumerate() {
                    let sent = Instant::now();
                    let response = http.get(format!("{base}/id/keys")).send().await.unwrap();
                    assert_eq!(response.status(), 200, "JWKS of node {node}");
                    let keys = response.json().await.unwrap();
                    snapshots.push(JwksSnapshot {
                        node,
                        sent,
                        received: Instant::now(),
                        keys,
                    });
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            snapshots
        })
    };

    tokio::time::sleep(Duration::from_secs(1)).await;
    let rotation_started = Instant::now();
    let rotated = cluster.admin_with(&["keys", "rotate"], None, &settings);
    let rotation_done = Instant::now();
    let new = field(&rotated, "kid");
    // The admin command dates it as the servers would: C, then the node cache (C as well, as
    // the minute is longer).
    let publish_before_sign_ms = 2 * c.as_millis() as i64;
    assert_eq!(
        rotated["sign_from"].as_i64().unwrap() - rotated["publish_at"].as_i64().unwrap(),
        publish_before_sign_ms,
        "{rotated}"
    );
    // Well past the switch (R + C + N), the old key retired by hand: the new key signs.
    tokio::time::sleep((rotation_done + 2 * c + Duration::from_secs(1)) - Instant::now()).await;
    let retired = cluster.admin_with(&["keys", "retire", &old], None, &settings);
    assert!(retired["retire_at"].is_number(), "{retired}");
    let retirement_done = Instant::now();
    // Every node has read the retirement (a node cache, C): the load goes on a little past it.
    tokio::time::sleep(c + Duration::from_millis(500)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut tokens = Vec::new();
    for worker in workers {
        tokens.extend(worker.await.unwrap());
    }
    let snapshots = poller.await.unwrap();

    // Every ID token verifies against every JWKS a relying party could hold when it arrived,
    // whichever node that JWKS came from.
    // A signature is checked once per token: under every other JWKS, the JWK its kid names
    // must be the very one it verified under.
    let mut held = 0;
    for token in &tokens {
        let mut verified_under: Option<&jsonwebtoken::jwk::Jwk> = None;
        for snapshot in snapshots.iter().filter(|s| s.held_when(token)) {
            held += 1;
            let checked = match verified_under {
                Some(jwk) => snapshot.jwk_of(token).and_then(|here| {
                    (here == jwk)
                        .then_some(())
                        .ok_or_else(|| format!("another JWK for {}", token.kid))
                }),
                None => snapshot.verify(token, &client.id).and_then(|()| {
                    verified_under = Some(snapshot.jwk_of(token)?);
                    Ok(())
                }),
            };
            if let Err(why) = checked {
                panic!(
                    "an ID token that arrived {:?} after the rotation began fails against a \
                     JWKS fetched {:?} before it: {why}",
                    token.arrived.saturating_duration_since(rotation_started),
                    token.arrived.saturating_duration_since(snapshot.sent),
                );
            }
        }
    }
    let signed_by = |kid: &str| tokens.iter().filter(|t| t.kid == kid).count();
    eprintln!(
        "rotation under load: {} ID tokens ({} by the old key, {} by the new), {} JWKS \
         snapshots, {held} checks",
        tokens.len(),
        signed_by(&old),
        signed_by(&new),
        snapshots.len()
    );
    assert!(held > tokens.len(), "tokens were checked against snapshots");
    // The rotation happened: the new key signed, never before its date, and signs at the end.
    assert!(signed_by(&new) > 0, "no token signed by the new key");
    let switch = rotation_started + 2 * c;
    for token in tokens.iter().filter(|t| t.kid == new) {
        assert!(
            token.arrived >= switch,
            "the new key signed before its sign_from"
        );
    }
    for token in tokens.iter().filter(|t| t.arrived > retirement_done + c) {
        assert_eq!(token.kid, new, "a retired key signed after the node cache");
    }

    // Publish before sign: a JWKS fetched before the rotation verifies every token that arrived
    // while it may be cached, after the rotation too.
    for node in 0..2 {
        let before = snapshots
            .iter()
            .rfind(|s| s.node == node && s.received <= rotation_started)
            .expect("a JWKS fetched before the rotation");
        assert!(!before.kids().contains(&new.as_str()));
        let after_rotation: Vec<&ArrivedIdToken> = tokens
            .iter()
            .filter(|t| t.arrived >= rotation_done && before.held_when(t))
            .collect();
        assert!(
            !after_rotation.is_empty(),
            "tokens issued after the rotation"
        );
        for token in after_rotation {
            before.verify(token, &client.id).unwrap();
        }
    }

    // The old key's tokens still verify against a JWKS fetched from either node after the
    // switch, before and after its retirement: it stays published for them.
    let last_by_old = tokens
        .iter()
        .filter(|t| t.kid == old)
        .max_by_key(|t| t.arrived)
        .expect("tokens signed by the old key");
    for node in 0..2 {
        let after_switch: Vec<&JwksSnapshot> = snapshots
            .iter()
            .filter(|s| s.node == node && s.sent >= switch)
            .collect();
        assert!(after_switch.iter().any(|s| s.sent >= retirement_done + c));
        for snapshot in after_switch {
            snapshot.verify(last_by_old, &client.id).unwrap();
        }
    }
    assert_eq!(
        rs256_keys(&cluster.admin_with(&["keys", "list"], None, &settings)),
        [
            (old.clone(), "retiring".to_owned()),
            (new.clone(), "signing".to_owned())
        ]
    );
}

/// DPoP's replay check across nodes: a proof spent on one node is refused by the other, because
/// the nodes of a cluster remember seen proofs in their shared database (an `UNLOGGED` table),
/// not each in its own memory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dpop_proof_spent_on_one_node_is_refused_as_a_replay_on_the_other() {
    let _lane = common::lane(common::lanes::NODES);
    let Some(admin_url) = postgres().await else {
        return;
    };
    // Behind one public URL, as a cluster is: a proof names the URL it was made for.
    let issuer = "http://tessera.test";
    let mut cluster = Cluster::start(&admin_url, 0).await;
    for _ in 0..2 {
        cluster.add_node(&[("TESSERA_ISSUER", issuer)]);
    }
    let client = cluster.user_and_client(&["--dpop", "allowed", "--rotate-refresh-tokens"]);
    let (a, b) = (cluster.base(0), cluster.base(1));
    let key = tessera_client::DpopKey::generate().unwrap();
    let tokens = client.login(a).await;
    let now = tessera_core::time::Clock::now(&tessera_core::time::SystemClock).seconds();
    let proof = key
        .proof(
            "POST",
            &format!("{issuer}/services/oauth2/token"),
            None,
            None,
            now,
        )
        .unwrap();
    let refresh = |base: &str, token: String| {
        let request = client
            .http
            .post(format!("{base}/services/oauth2/token"))
            .header("DPoP", proof.clone())
            .form(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", token.as_str()),
                ("client_id", client.id.as_str()),
                ("client_secret", client.secret.as_str()),
            ]);
        async move { reply(request.send().await.unwrap()).await }
    };
    let first = refresh(a, field(&tokens, "refresh_token")).await;
    assert_eq!(first.status, 200, "{}", first.body);
    assert_eq!(first.body["token_type"], "DPoP");
    let replayed = refresh(b, field(&first.body, "refresh_token")).await;
    assert_eq!(replayed.status, 400, "{}", replayed.body);
    assert_eq!(
        replayed.body["error"], "invalid_dpop_proof",
        "{}",
        replayed.body
    );
}
