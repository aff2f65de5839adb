//! A person at the authorization pages of a running server, over HTTP with a cookie jar.

use crate::pages::hidden_value;

/// What a person does in a browser with an authorization URL of `base`: opens it, logs in,
/// allows (unless the client was approved before, when consent is skipped). Returns where the
/// server redirects to: the client's redirect URI with the code.
pub async fn authorize_in_browser(base: &str, url: &str, username: &str, password: &str) -> String {
    let browser = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let hidden = |html: &str, name: &str| {
        hidden_value(html, name).unwrap_or_else(|| panic!("no {name} field on the page"))
    };
    let page = browser.get(url).send().await.unwrap().text().await.unwrap();
    let form = [
        ("request", hidden(&page, "request")),
        ("csrf_token", hidden(&page, "csrf_token")),
        ("username", username.to_owned()),
        ("password", password.to_owned()),
    ];
    let after = browser
        .post(format!("{base}/services/oauth2/authorize/login"))
        .form(&form)
        .send()
        .await
        .unwrap();
    if after.status() == 302 {
        return after.headers()["location"].to_str().unwrap().to_owned();
    }
    assert_eq!(after.status(), 303, "login");
    let consent_url = format!("{base}{}", after.headers()["location"].to_str().unwrap());
    let consent = browser
        .get(consent_url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let form = [
        ("request", hidden(&consent, "request")),
        ("csrf_token", hidden(&consent, "csrf_token")),
        ("decision", "allow".to_owned()),
    ];
    let allowed = browser
        .post(format!("{base}/services/oauth2/authorize/consent"))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(allowed.status(), 302, "consent");
    allowed.headers()["location"].to_str().unwrap().to_owned()
}
