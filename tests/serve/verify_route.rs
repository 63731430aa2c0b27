//! `POST /recheck/v1/verify`: answers a client already has, verified by the server as
//! `recheck verify` verifies them, each a stored `verify` run.

use recheck::{
    orchestrator::JudgeChoice,
    server::ServeConfig,
    trace::{run_kind, RunStatus},
    AskOptions,
};
use serde_json::{json, Value};

use super::{json_of, start_with};

async fn post_verify(url: &str, body: &Value, key: Option<&str>) -> reqwest::Response {
    let mut request = reqwest::Client::new().post(format!("{url}/recheck/v1/verify")).json(body);
    if let Some(k) = key {
        request = request.bearer_auth(k);
    }
    request.send().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_posted_to_the_server_are_verified_and_stored() {
    let model = recheck::open_model(&"sim:seed=1".parse().unwrap(), &Default::default()).unwrap();
    let options = AskOptions::builtin().unwrap().judge(JudgeChoice::Lexical);
    let config = ServeConfig { api_key: Some("k".into()), ..ServeConfig::default() };
    let running = start_with(model, options, config, None).await;
    let record = json!({"id": "one", "answer": "William Herschel discovered Uranus in 1781.",
        "contexts": ["Uranus was discovered by William Herschel in 1781."]});
    assert_eq!(post_verify(&running.url, &record, None).await.status(), 401, "the key is required");
    let row = json_of(post_verify(&running.url, &record, Some("k")).await).await;
    assert_eq!(
        (row["id"].clone(), row["verified"].clone(), row["faithfulness"].clone()),
        (json!("one"), json!(true), json!(1.0))
    );
    assert!(row["claims"][0]["quotes"][0]["quote"].as_str().unwrap().contains("Herschel"), "{row}");
    // A list gets a list, in order; a record that is not one is a 400 naming it.
    let two = json!([record, {"id": "two", "answer": "Uranus is a planet.", "contexts": [{"id": "c", "text": "Uranus is the seventh planet."}]}]);
    let rows = json_of(post_verify(&running.url, &two, Some("k")).await).await;
    assert_eq!(
        rows.as_array().unwrap().iter().map(|r| r["id"].clone()).collect::<Vec<_>>(),
        [json!("one"), json!("two")]
    );
    let bad = post_verify(&running.url, &json!([record, {"question": "no answer"}]), Some("k")).await;
    assert_eq!(bad.status(), 400);
    let error = json_of(bad).await;
    assert_eq!(error["error"]["param"], "[1]", "{error}");
    assert!(error["error"]["message"].as_str().unwrap().contains("`answer`"), "{error}");
    let store = running.shutdown().await;
    let runs = store.list_runs().unwrap();
    let verified: Vec<_> = runs.iter().filter(|r| r.kind == run_kind::VERIFY).collect();
    assert_eq!(verified.len(), 3);
    assert!(verified.iter().all(|r| r.status == RunStatus::Completed));
}
