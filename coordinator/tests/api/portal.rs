//! The portal over loopback: login and its cookie, redirects, the
//! dashboard's rows, image previews (job outputs only, with the cookie
//! only), the new-worker form and revocation.

use base64::Engine as _;
use pictor_protocol::Sha256Digest;
use pictor_protocol::api::{self, WorkerList};
use reqwest::header::{CONTENT_TYPE, COOKIE, LOCATION, ORIGIN, SET_COOKIE};
use reqwest::{Client, Method, Response, StatusCode};
use serde_json::{Value, json};

use crate::support::{BTC_ADDRESS, Farm, TestResult, key, signed};

/// A PNG signature and an IHDR chunk start: enough bytes to stand for an image.
const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR fake image";

/// A client that shows redirects instead of following them.
fn browser() -> Client {
    Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// `application/x-www-form-urlencoded` of `pairs`.
fn form(pairs: &[(&str, &str)]) -> String {
    let encode = |text: &str| {
        text.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                    (b as char).to_string()
                }
                b' ' => "+".into(),
                _ => format!("%{b:02X}"),
            })
            .collect::<String>()
    };
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

struct Portal<'a> {
    farm: &'a Farm,
    http: Client,
    cookie: Option<String>,
}

impl<'a> Portal<'a> {
    fn new(farm: &'a Farm) -> Self {
        Portal {
            farm,
            http: browser(),
            cookie: None,
        }
    }

    async fn get(&self, path: &str) -> Response {
        let mut request = self.http.get(format!("{}{path}", self.farm.url));
        if let Some(cookie) = &self.cookie {
            request = request.header(COOKIE, cookie);
        }
        request.send().await.unwrap()
    }

    async fn post(&self, path: &str, pairs: &[(&str, &str)]) -> Response {
        let mut request = self
            .http
            .post(format!("{}{path}", self.farm.url))
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(ORIGIN, &self.farm.url)
            .body(form(pairs));
        if let Some(cookie) = &self.cookie {
            request = request.header(COOKIE, cookie);
        }
        request.send().await.unwrap()
    }

    async fn login(&mut self) {
        let token = self.farm.creator.clone();
        let response = self.post("/portal/login", &[("token", &token)]).await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
        let set = response
            .headers()
            .get(SET_COOKIE)
            .unwrap()
            .to_str()
            .unwrap()
            .to_string();
        self.cookie = Some(set.split(';').next().unwrap().to_string());
    }

    async fn page(&self, path: &str) -> String {
        let response = self.get(path).await;
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        response.text().await.unwrap()
    }
}

fn location(response: &Response) -> &str {
    response
        .headers()
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

#[tokio::test]
async fn login_sets_a_session_cookie_and_pages_need_it() -> TestResult {
    let farm = Farm::start().await;
    let mut portal = Portal::new(&farm);
    let response = portal.get("/").await;
    assert_eq!(
        (response.status(), location(&response)),
        (StatusCode::SEE_OTHER, "/portal")
    );
    for path in [
        "/portal",
        "/portal/workers/new",
        "/portal/workers/wkr-x",
        "/portal/blobs/00",
    ] {
        let response = portal.get(path).await;
        assert_eq!(
            (response.status(), location(&response)),
            (StatusCode::SEE_OTHER, "/portal/login"),
            "{path}"
        );
    }
    let login = portal.page("/portal/login").await;
    assert!(login.contains(r#"name="token" type="password""#), "{login}");

    // A wrong token: the form again, with an error, and no cookie.
    let response = portal
        .post("/portal/login", &[("token", "not-the-token")])
        .await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(response.headers().get(SET_COOKIE).is_none());
    assert!(
        response
            .text()
            .await?
            .contains(r#"<p class="error">That is not the creator token"#)
    );

    // The right one: a session cookie that is not the token.
    let response = portal
        .post("/portal/login", &[("token", &farm.creator)])
        .await;
    assert_eq!(
        (response.status(), location(&response)),
        (StatusCode::SEE_OTHER, "/portal")
    );
    let set = response.headers().get(SET_COOKIE).unwrap().to_str()?;
    assert!(set.starts_with("pictor_portal="), "{set}");
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict"),
        "{set}"
    );
    assert!(!set.contains(&farm.creator));
    portal.cookie = Some(set.split(';').next().unwrap().to_string());
    let dashboard = portal.page("/portal").await;
    assert!(dashboard.contains(r#"<meta http-equiv="refresh" content="3">"#));
    assert!(dashboard.contains(r#"<table id="workers">"#));
    assert!(dashboard.contains(r#"<table id="jobs">"#));
    assert!(dashboard.contains(r#"<a id="new-worker" href="/portal/workers/new">"#));
    let response = portal.get("/portal/login").await;
    assert_eq!(location(&response), "/portal");

    // A made-up cookie is no session.
    let forged = Portal {
        farm: &farm,
        http: browser(),
        cookie: Some(format!("pictor_portal={}", "ab".repeat(32))),
    };
    assert_eq!(forged.get("/portal").await.status(), StatusCode::SEE_OTHER);

    // Log out: the cookie is dead.
    let response = portal.post("/portal/logout", &[]).await;
    assert_eq!(location(&response), "/portal/login");
    assert_eq!(portal.get("/portal").await.status(), StatusCode::SEE_OTHER);
    Ok(())
}

#[tokio::test]
async fn the_dashboard_shows_workers_jobs_and_previews_of_image_outputs() -> TestResult {
    let farm = Farm::start().await;
    let (id, token) = farm.issue_registered("Rig <1>", &key(1), &["hello"]).await;
    farm.issue(json!({"name": "Never seen", "wallet": "farm-wallet-02"}))
        .await;
    farm.submit("job-img", "hello", json!({})).await;
    let lease: api::Lease = farm
        .as_token(&token, &api::paths::lease(&id), &json!({"wait_s": 0}))
        .await
        .json()
        .await?;
    farm.put_blob(PNG).await;
    farm.put_blob(b"plain text").await;
    let proof = signed(
        &key(1),
        &id,
        &lease,
        &[("frame.png", PNG), ("notes.txt", b"plain text")],
    );
    let response = farm
        .as_token(
            &token,
            &api::paths::complete(&lease.lease_id),
            &json!({ "proof": proof }),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    farm.submit("job-wait", "render", json!({})).await;
    let mining = json!({"coin": "btc", "pool": "pool.example:3333", "hashrate": 6.41e6, "accepted": 3, "rejected": 0});
    farm.as_token(
        &token,
        &api::paths::heartbeat(&id),
        &json!({"activity": "mining", "leases": [], "mining": mining,
                "gpus": [{"slot": 1, "state": "unhealthy", "detail": "2 GPU kernels never finished <b>"}]}),
    )
    .await;

    let mut portal = Portal::new(&farm);
    portal.login().await;
    let page = portal.page("/portal").await;
    assert!(
        page.contains(&format!(r#"<tr data-worker-id="{id}">"#)),
        "{page}"
    );
    // Escaped, not markup.
    assert!(page.contains("Rig &lt;1&gt;"));
    assert!(page.contains(r#"<td class="status online">online</td>"#));
    assert!(page.contains(r#"<td class="status offline">offline</td>"#));
    assert!(page.contains(r#"<td class="last-heartbeat">0 s ago</td>"#));
    assert!(page.contains(r#"<td class="last-heartbeat">never</td>"#));
    assert!(page.contains(r#"<td class="gpus">Test GPU (8 GiB)</td>"#));
    assert!(page.contains(r#"<td class="prices">hello 0.25 · render 1.5</td>"#));
    assert!(page.contains(r#"<td class="jobs-done">1</td>"#));
    assert!(page.contains(r#"<td class="earnings">0.25</td>"#));
    assert!(page.contains(r#"<td class="activity">mining btc · 6.41 MH/s · 3 accepted</td>"#));
    assert!(page.contains(&format!(r#"action="/portal/workers/{id}/revoke""#)));
    // Jobs, newest first, with their state on the wire's words.
    let wait_row = page.find(r#"<tr data-job-id="job-wait">"#).unwrap();
    let img_row = page.find(r#"<tr data-job-id="job-img">"#).unwrap();
    assert!(wait_row < img_row);
    assert!(page.contains(r#"<td class="state state-queued">queued</td>"#));
    assert!(page.contains(r#"<td class="state state-succeeded">succeeded</td>"#));
    assert!(page.contains(&format!(r#"<td class="worker">{id}</td>"#)));
    assert!(page.contains(r#"<span class="submitted">submitted "#));
    assert!(page.contains(r#"<span class="finished">finished "#));
    let png = Sha256Digest::of(PNG);
    assert!(page.contains(&format!(
        r#"<img class="preview" src="/portal/blobs/{png}" alt="frame.png""#
    )));
    assert!(!page.contains(&Sha256Digest::of(b"plain text").to_string()));

    // The preview is served with the cookie, as a PNG.
    let response = portal.get(&format!("/portal/blobs/{png}")).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()[CONTENT_TYPE], "image/png");
    assert_eq!(&response.bytes().await?[..], PNG);
    // Not without it; not a non-image output; not a blob that is no output.
    let stranger = Portal::new(&farm);
    assert_eq!(
        stranger.get(&format!("/portal/blobs/{png}")).await.status(),
        StatusCode::SEE_OTHER
    );
    let text = Sha256Digest::of(b"plain text");
    assert_eq!(
        portal.get(&format!("/portal/blobs/{text}")).await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        portal
            .get(&format!("/portal/blobs/{}", lease.plugin.sha256))
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        portal.get("/portal/blobs/not-a-digest").await.status(),
        StatusCode::NOT_FOUND
    );

    // One worker's page.
    let detail = portal.page(&format!("/portal/workers/{id}")).await;
    assert!(detail.contains("stratum+tcp://pool.example:3333"));
    assert!(
        detail.contains("slot 1: unhealthy")
            && detail.contains("2 GPU kernels never finished &lt;b&gt;"),
        "{detail}"
    );
    assert_eq!(
        portal.get("/portal/workers/wkr-nobody").await.status(),
        StatusCode::NOT_FOUND
    );
    Ok(())
}

#[tokio::test]
async fn the_new_worker_form_keeps_values_on_errors_and_shows_the_file_once() -> TestResult {
    let farm = Farm::start().await;
    let mut portal = Portal::new(&farm);
    portal.login().await;
    let page = portal.page("/portal/workers/new").await;
    assert!(page.contains(r#"<form id="new-worker" method="post" action="/portal/workers">"#));
    assert!(page.contains(r#"<select id="coin" name="coin">"#));
    assert!(page.contains(r#"<option value="btc" selected>"#));
    assert!(page.contains(r#"<option value="bch">"#));
    assert!(
        page.contains(r#"<button class="primary" id="create" type="submit">"#),
        "{page}"
    );
    for input in [
        "name",
        "wallet",
        "pool",
        "mining_wallet",
        "price_render",
        "price_upscale",
        "price_train",
    ] {
        assert!(page.contains(&format!(r#"name="{input}""#)), "{input}");
    }

    let mut fields = vec![
        ("name", "Garage rig"),
        ("wallet", BTC_ADDRESS),
        ("pool", "stratum+tcp://pool.example:3333"),
        ("coin", "btc"),
        ("mining_wallet", "bc1qnotanaddress"),
        ("price_render", "0.5"),
        ("price_upscale", ""),
        ("price_train", ""),
    ];
    let response = portal.post("/portal/workers", &fields).await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let page = response.text().await?;
    assert!(
        page.contains(
            r#"<p class="error">`mining.wallet` &quot;bc1qnotanaddress&quot; is not a btc address"#
        ),
        "{page}"
    );
    assert!(page.contains(r#"value="Garage rig""#));
    assert!(page.contains(r#"value="stratum+tcp://pool.example:3333""#));
    assert!(page.contains(r#"value="0.5""#));
    fields[5] = ("price_render", "cheap");
    let page = portal.post("/portal/workers", &fields).await.text().await?;
    assert!(page.contains(r#"<p class="error">`prices.render` &quot;cheap&quot; is not a number"#));

    // A post from another site is refused.
    fields[4] = ("mining_wallet", "");
    fields[5] = ("price_render", "0.5");
    let response = portal
        .http
        .post(format!("{}/portal/workers", farm.url))
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(ORIGIN, "http://evil.example")
        .header(COOKIE, portal.cookie.clone().unwrap())
        .body(form(&fields))
        .send()
        .await?;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let list: WorkerList = farm
        .as_creator(Method::GET, &api::paths::workers(), None)
        .await
        .json()
        .await?;
    assert!(list.workers.is_empty());

    let response = portal.post("/portal/workers", &fields).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let page = response.text().await?;
    let id = between(&page, r#"<span id="worker-id">"#, "<").to_string();
    assert!(id.starts_with("wkr-"), "{page}");
    assert!(page.contains("This file is shown once; keep it."));
    let shown = between(&page, r#"<pre id="worker-json">"#, "</pre>").replace("&quot;", "\"");
    let config: Value = serde_json::from_str(&shown)?;
    assert_eq!(config["worker"]["id"], id.as_str());
    assert_eq!(config["mining"]["wallet"], BTC_ADDRESS);
    assert_eq!(config["prices"], json!({"render": 0.5}));
    let href = between(
        &page,
        r#"<a id="download" download="worker.json" href="data:application/json;base64,"#,
        "\"",
    );
    let downloaded = base64::engine::general_purpose::STANDARD.decode(href)?;
    assert_eq!(String::from_utf8(downloaded)?, shown);
    // The token in it works.
    let token = config["coordinator"]["token"].as_str().unwrap();
    let response = farm
        .as_token(
            token,
            &api::paths::register(),
            &crate::support::register_body(&id, &key(3), &[]),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);

    // Revoke from the dashboard.
    let response = portal
        .post(&format!("/portal/workers/{id}/revoke"), &[])
        .await;
    assert_eq!(location(&response), "/portal");
    assert!(farm.worker_summary(&id).await.revoked);
    let page = portal.page("/portal").await;
    assert!(!page.contains(&format!(r#"action="/portal/workers/{id}/revoke""#)));
    Ok(())
}

fn between<'a>(text: &'a str, start: &str, end: &str) -> &'a str {
    let from = text.find(start).map(|i| i + start.len()).unwrap_or(0);
    let to = text[from..].find(end).map(|i| from + i).unwrap_or(from);
    &text[from..to]
}
