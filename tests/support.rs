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

    /// Events to `/batch/` as an SDK sends them, with the project API token.
    pub async fn capture_batch(&self, batch: &[Value]) -> Reply {
        let body = serde_json::json!({"api_key": self.project_api_token, "batch": batch});
        self.send("POST", "/batch/", None, Some(&body)).await
    }

    /// `/flags/?v=4` for `distinct_id` as an SDK asks it: no properties, the stored ones decide.
    pub async fn flags_for(&self, distinct_id: &str) -> Reply {
        let body =
            serde_json::json!({"api_key": self.project_api_token, "distinct_id": distinct_id});
        self.send("POST", "/flags/?v=4", None, Some(&body)).await
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

/// The Chromium the browser drivers (tests/browser/*.py) launch; `make setup` installs it.
pub const CHROMIUM: &str = "/usr/bin/chromium";

/// The workspace root: where `.venv/` and `tests/browser/` are.
pub fn checkout() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// Runs the Playwright driver `tests/browser/<script>` on `spec` with the checkout's Python;
/// returns the JSON it wrote. Panics with the driver's output when it fails.
pub fn run_browser_driver(script: &str, spec: &Value) -> Value {
    let root = checkout();
    assert!(
        std::path::Path::new(CHROMIUM).is_file(),
        "{CHROMIUM} is missing: run `make setup` (it installs Debian's chromium)"
    );
    let python = root.join(".venv/bin/python");
    let dir = std::env::temp_dir().join(unique_key("browser-run"));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let (spec_path, out_path) = (dir.join("spec.json"), dir.join("out.json"));
    std::fs::write(&spec_path, spec.to_string()).expect("spec written");
    let output = std::process::Command::new(&python)
        .arg(root.join("tests/browser").join(script))
        .arg(&spec_path)
        .arg(&out_path)
        .output()
        .unwrap_or_else(|e| panic!("running {} (run `make setup`): {e}", python.display()));
    assert!(
        output.status.success(),
        "the browser driver {script} failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let text = std::fs::read_to_string(&out_path).expect("driver output");
    let _ = std::fs::remove_dir_all(&dir);
    serde_json::from_str(&text).expect("driver output is JSON")
}
