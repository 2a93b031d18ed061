//! The web client's routes, through warp's test requests, against a mock cluster.

mod support;

use std::time::Duration;

use client::net::{Client, ClientConfig};
use client::web::{routes, WebSettings};
use serde_json::{json, Value};
use support::{dead_addr, MockCluster};
use warp::http::StatusCode;

const CIRCLES: &str = "x,y,class\n0.1,0.2,0\n2.9,0.3,1\n-1.0,0.1,0\n0.2,-3.1,1\n";
const BOUNDARY: &str = "----client-web-test-boundary";

fn client_for(addrs: Vec<String>) -> Client {
    let config = ClientConfig {
        initial_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(20),
        max_attempts: 3,
        ..ClientConfig::with_nodes(addrs)
    };
    Client::new(config).unwrap()
}

/// Builds a multipart body; each field is (name, file name if a file, content).
fn multipart(fields: &[(&str, Option<&str>, &[u8])]) -> Vec<u8> {
    let mut body = Vec::new();
    for (name, file_name, content) in fields {
        body.extend_from_slice(format!("--{BOUNDARY}\r\n").as_bytes());
        let disposition = match file_name {
            Some(file) => format!("Content-Disposition: form-data; name=\"{name}\"; filename=\"{file}\"\r\nContent-Type: text/csv\r\n"),
            None => format!("Content-Disposition: form-data; name=\"{name}\"\r\n"),
        };
        body.extend_from_slice(disposition.as_bytes());
        body.extend_from_slice(b"\r\n");
        body.extend_from_slice(content);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    body
}

async fn post_train(client: Client, settings: WebSettings, fields: &[(&str, Option<&str>, &[u8])]) -> (StatusCode, Value) {
    let response = warp::test::request()
        .method("POST")
        .path("/train")
        .header("content-type", format!("multipart/form-data; boundary={BOUNDARY}"))
        .body(multipart(fields))
        .reply(&routes(client, settings))
        .await;
    (response.status(), serde_json::from_slice(response.body()).expect("JSON body"))
}

async fn post_predict(client: Client, body: Value) -> (StatusCode, Value) {
    let response = warp::test::request()
        .method("POST")
        .path("/predict")
        .json(&body)
        .reply(&routes(client, WebSettings::default()))
        .await;
    (response.status(), serde_json::from_slice(response.body()).expect("JSON body"))
}

#[tokio::test]
async fn train_form_trains_model() {
    let cluster = MockCluster::start(3).await;
    let client = client_for(cluster.addrs.clone());

    let fields = [("model_name", None, b"m1".as_slice()), ("epochs", None, b"5"), ("file", Some("c.csv"), CIRCLES.as_bytes())];
    let (status, body) = post_train(client, WebSettings::default(), &fields).await;

    assert_eq!(status, StatusCode::OK, "body {body}");
    assert_eq!(body["success"], true);
    assert_eq!(body["modelId"], "m1");
    assert!(cluster.has_model("m1"));
}

#[tokio::test]
async fn train_rejects_invalid_csv() {
    let cluster = MockCluster::start(1).await;
    let fields = [("model_name", None, b"bad".as_slice()), ("file", Some("notes.txt"), b"hello there\nthis is not, a csv\n")];

    let (status, body) = post_train(client_for(cluster.addrs.clone()), WebSettings::default(), &fields).await;

    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["success"], false);
    assert_eq!(body["code"], "INVALID_CSV");
    assert!(body["error"].as_str().unwrap().contains("line 2"), "error {}", body["error"]);
}

#[tokio::test]
async fn train_needs_model_name_and_file() {
    let cluster = MockCluster::start(1).await;
    let client = client_for(cluster.addrs.clone());

    let (status, body) = post_train(client.clone(), WebSettings::default(), &[("file", Some("c.csv"), CIRCLES.as_bytes())]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["error"].as_str().unwrap().contains("model_name"));

    let (status, body) = post_train(client.clone(), WebSettings::default(), &[("model_name", None, b"m1")]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["error"].as_str().unwrap().contains("file"));

    let fields = [("model_name", None, b"../x".as_slice()), ("file", Some("c.csv"), CIRCLES.as_bytes())];
    let (status, body) = post_train(client, WebSettings::default(), &fields).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["code"], "INVALID_INPUT");
    assert!(cluster.received().is_empty(), "nothing invalid should reach the cluster");
}

#[tokio::test]
async fn train_rejects_file_over_limit() {
    let cluster = MockCluster::start(1).await;
    let settings = WebSettings { max_upload_bytes: 1024 };
    let big = CIRCLES.repeat(100);
    let fields = [("model_name", None, b"m1".as_slice()), ("file", Some("big.csv"), big.as_bytes())];

    let (status, body) = post_train(client_for(cluster.addrs.clone()), settings, &fields).await;

    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(body["success"], false);
    assert_eq!(body["code"], "FILE_TOO_LARGE");
    assert!(cluster.received().is_empty());
}

#[tokio::test]
async fn predict_returns_prediction() {
    let cluster = MockCluster::start(3).await;
    let client = client_for(cluster.addrs.clone());
    client.train("m1", CIRCLES.as_bytes(), &Default::default()).await.unwrap();

    let (status, body) = post_predict(client.clone(), json!({"model_id": "m1", "input_vector": [0.5, 0.1]})).await;
    assert_eq!(status, StatusCode::OK, "body {body}");
    assert_eq!(body["success"], true);
    assert_eq!(body["prediction"].as_array().unwrap().len(), 1);
    assert_eq!(body["label"], "1");

    let (status, body) = post_predict(client, json!({"model_id": "m1", "input_vector": "0.5, 0.1"})).await;
    assert_eq!(status, StatusCode::OK, "string vectors are accepted too: {body}");
}

#[tokio::test]
async fn predict_reports_cluster_errors() {
    let cluster = MockCluster::start(1).await;
    let client = client_for(cluster.addrs.clone());
    client.train("m1", CIRCLES.as_bytes(), &Default::default()).await.unwrap();

    let (status, body) = post_predict(client.clone(), json!({"model_id": "m1", "input_vector": [1, 2, 3]})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["code"], "DIMENSION_MISMATCH");

    let (status, body) = post_predict(client.clone(), json!({"model_id": "nope", "input_vector": [1, 2]})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["code"], "MODEL_NOT_FOUND");

    let (status, body) = post_predict(client, json!({"model_id": "m1", "input_vector": "1,x"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["success"], false);
}

#[tokio::test]
async fn predict_rejects_invalid_json() {
    let cluster = MockCluster::start(1).await;
    let response = warp::test::request()
        .method("POST")
        .path("/predict")
        .body("{not json")
        .reply(&routes(client_for(cluster.addrs.clone()), WebSettings::default()))
        .await;
    let body: Value = serde_json::from_slice(response.body()).unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(body["code"], "INVALID_JSON");
}

#[tokio::test]
async fn models_lists_trained_models() {
    let cluster = MockCluster::start(3).await;
    let client = client_for(cluster.addrs.clone());
    client.train("b-model", CIRCLES.as_bytes(), &Default::default()).await.unwrap();
    client.train("a-model", CIRCLES.as_bytes(), &Default::default()).await.unwrap();

    let response = warp::test::request().path("/models").reply(&routes(client, WebSettings::default())).await;
    let body: Value = serde_json::from_slice(response.body()).unwrap();

    assert_eq!(body["success"], true);
    let ids: Vec<&str> = body["models"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap()).collect();
    assert_eq!(ids, vec!["a-model", "b-model"]);
}

#[tokio::test]
async fn unreachable_cluster_is_json_error() {
    let client = client_for(vec![dead_addr().await]);

    let response = warp::test::request().path("/models").reply(&routes(client, WebSettings::default())).await;
    let body: Value = serde_json::from_slice(response.body()).unwrap();

    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["success"], false);
    assert_eq!(body["code"], "UNREACHABLE");
}

#[tokio::test]
async fn cluster_route_reports_each_node() {
    let cluster = MockCluster::start(2).await;
    let nodes = vec![cluster.addrs[0].clone(), dead_addr().await];

    let response = warp::test::request().path("/cluster").reply(&routes(client_for(nodes), WebSettings::default())).await;
    let body: Value = serde_json::from_slice(response.body()).unwrap();

    assert_eq!(body["success"], true);
    assert_eq!(body["nodes"][0]["reachable"], true);
    assert_eq!(body["nodes"][0]["status"]["isLeader"], true);
    assert_eq!(body["nodes"][1]["reachable"], false);
}

async fn page(query: &str, headers: &[(&str, &str)]) -> (String, Option<String>) {
    let cluster = MockCluster::start(1).await;
    let mut request = warp::test::request().path(&format!("/{query}"));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.reply(&routes(client_for(cluster.addrs.clone()), WebSettings::default())).await;
    assert_eq!(response.status(), StatusCode::OK);
    let cookie = response.headers().get("set-cookie").map(|v| v.to_str().unwrap().to_string());
    (String::from_utf8(response.body().to_vec()).unwrap(), cookie)
}

#[tokio::test]
async fn page_follows_accept_language() {
    let (html, cookie) = page("", &[("accept-language", "es-ES,es;q=0.9,en;q=0.8")]).await;
    assert!(html.contains(r#"<html lang="es">"#));
    assert!(html.contains("Entrenamiento"));
    assert!(cookie.is_none(), "only an explicit choice sets the cookie");

    let (html, _) = page("", &[("accept-language", "en-US,en;q=0.9")]).await;
    assert!(html.contains(r#"<html lang="en">"#));
    assert!(html.contains("Training"));
}

#[tokio::test]
async fn page_language_switch_persists() {
    let (html, cookie) = page("?lang=es", &[("accept-language", "en")]).await;
    assert!(html.contains(r#"<html lang="es">"#));
    let cookie = cookie.expect("the switch sets a cookie");
    assert!(cookie.starts_with("lang=es;"), "cookie {cookie}");

    let (html, _) = page("", &[("accept-language", "en"), ("cookie", "lang=es")]).await;
    assert!(html.contains(r#"<html lang="es">"#), "the cookie outranks Accept-Language");
}

#[tokio::test]
async fn page_has_stable_ids_and_no_external_links() {
    let (html, _) = page("", &[]).await;
    for id in [
        "tab-train", "tab-predict", "tab-models", "train-form", "model-name", "csv-file", "train-submit", "train-result",
        "predict-model", "predict-vector", "predict-submit", "predict-result", "models-table", "lang-es", "lang-en", "log",
    ] {
        assert!(html.contains(&format!(r#"id="{id}""#)), "missing #{id}");
    }
    assert!(!html.contains("http://"), "the page must work offline");
    assert!(!html.contains("https://"), "the page must work offline");
}

#[tokio::test]
async fn static_assets_served() {
    let cluster = MockCluster::start(1).await;
    let filter = routes(client_for(cluster.addrs.clone()), WebSettings::default());

    let css = warp::test::request().path("/static/app.css").reply(&filter).await;
    assert_eq!(css.status(), StatusCode::OK);
    assert_eq!(css.headers()["content-type"], "text/css; charset=utf-8");

    let js = warp::test::request().path("/static/app.js").reply(&filter).await;
    assert_eq!(js.status(), StatusCode::OK);
    assert!(String::from_utf8_lossy(js.body()).contains("train-form"));

    let missing = warp::test::request().path("/nope").reply(&filter).await;
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    let body: Value = serde_json::from_slice(missing.body()).unwrap();
    assert_eq!(body["success"], false);
}
