//! Client for the end-to-end suite: the server `make test` started (`E2E_API_URL`) and the
//! credentials it seeded (`E2E_CREDENTIALS`, the same shape as `.local/dev-credentials.json`).

use serde_json::Value;

pub struct Server {
    pub url: String,
    pub project_id: i64,
    pub personal_api_key: String,
    pub project_api_token: String,
    pub project_secret_key: String,
    pub http: reqwest::Client,
}

pub struct Reply {
    pub status: u16,
    /// Raw text, so empty bodies can be asserted as such.
    pub text: String,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.text))
    }
}

impl Server {
    /// Panics with instructions when the suite is run outside `make test`.
    pub fn from_env() -> Self {
        let url = std::env::var("E2E_API_URL")
            .expect("E2E_API_URL is not set: run the end-to-end suite with `make test`, which starts the server");
        let path = std::env::var("E2E_CREDENTIALS")
            .expect("E2E_CREDENTIALS is not set: run with `make test`");
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {path}: {e}"));
        let creds: Value = serde_json::from_str(&text).expect("credentials file is JSON");
        let field = |k: &str| {
            creds[k]
                .as_str()
                .unwrap_or_else(|| panic!("credentials lack {k}"))
                .to_string()
        };
        Server {
            url: url.trim_end_matches('/').to_string(),
            project_id: creds["project_id"].as_i64().expect("project_id"),
            personal_api_key: field("personal_api_key"),
            project_api_token: field("project_api_token"),
            project_secret_key: field("project_secret_key"),
            http: reqwest::Client::new(),
        }
    }

    pub fn flags_path(&self, rest: &str) -> String {
        format!("/api/projects/{}/feature_flags/{rest}", self.project_id)
    }

    pub async fn send(
        &self,
        method: &str,
        path: &str,
        key: Option<&str>,
        body: Option<&Value>,
    ) -> Reply {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut req = self.http.request(method, format!("{}{path}", self.url));
        if let Some(key) = key {
            req = req.bearer_auth(key);
        }
        if let Some(body) = body {
            req = req.json(body);
        }
        let resp = req.send().await.expect("request reaches the server");
        Reply {
            status: resp.status().as_u16(),
            text: resp.text().await.expect("body"),
        }
    }

    /// As the seeded `*` personal API key.
    pub async fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Reply {
        self.send(method, path, Some(&self.personal_api_key), body)
            .await
    }
}

/// A key no other test run uses, so the suite can run against a long-lived dev server.
pub fn unique_key(stem: &str) -> String {
    format!(
        "{stem}-{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
    )
}
