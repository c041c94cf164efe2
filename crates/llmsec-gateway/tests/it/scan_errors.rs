//! `on_scan_error` over real HTTP: texts the engine cannot scan (here,
//! larger than its `max_input_bytes`) are refused under `fail_closed` (the
//! default) and go through unscanned, recorded, under `fail_open`; per
//! route, for prompts, completions and streams.

use llmsec_server::config::{RouteSettings, ScanErrors};
use serde_json::{Value, json};

use crate::common::{self, Gw};

/// A gateway whose engine refuses texts over 200 bytes; `fail_open` on
/// chat completions when asked, `fail_closed` everywhere else.
async fn start(chat_fails_open: bool) -> Gw {
    let engine = common::temp_dir().join("engine.toml");
    std::fs::write(&engine, "max_input_bytes = 200\n").unwrap();
    common::start_server_with(
        |c| c.engine_config = Some(engine),
        |g| {
            if chat_fails_open {
                g.routes.chat_completions =
                    Some(RouteSettings { on_scan_error: Some(ScanErrors::FailOpen), ..RouteSettings::default() });
            }
        },
    )
    .await
}

fn long(word: &str) -> String {
    format!("{} end.", word.repeat(60))
}

fn chat(prompt: &str) -> Value {
    json!({"model": "gpt-4o-mini", "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": prompt}]})
}

#[tokio::test]
async fn fail_closed_refuses_what_cannot_be_scanned_and_names_it() {
    let gw = start(false).await;
    let r = gw.post("/v1/chat/completions", &chat(&long("tell me "))).await;
    assert_eq!(r.status, 413, "{}", r.text);
    assert_eq!(r.body["error"]["code"], "scan_failed");
    assert_eq!(r.body["error"]["param"], "messages[1].content");
    assert_eq!(gw.mock.calls(), 0, "nothing unscanned goes upstream");

    let mut body = chat("Write a long answer.");
    body["x_reply"] = json!(long("words "));
    let r = gw.post("/v1/chat/completions", &body).await;
    assert_eq!((r.status, r.body["error"]["code"].as_str()), (413, Some("scan_failed")), "{}", r.text);
    assert!(!r.text.contains("words words"), "{}", r.text);

    body["stream"] = json!(true);
    body["x_chunks"] = json!(["Short start. ", long("words "), " tail"]);
    let r = gw.post("/v1/chat/completions", &body).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(!r.text.contains("words words") && !r.text.contains("tail"), "{}", r.text);
    let datas = common::sse_data(&r.text);
    assert!(datas.iter().any(|d| d.contains("\"scan_failed\"")), "{datas:?}");
    assert!(datas.iter().any(|d| d.contains("content_filter")), "{datas:?}");
    let events = gw.telemetry(3).await;
    assert!(events.iter().all(|e| e["data"]["status"] == "error" && e["data"]["error"] == "scan_failed"), "{events:?}");
}

#[tokio::test]
async fn fail_open_forwards_unscanned_text_and_records_why() {
    let gw = start(true).await;
    let prompt = long("tell me ");
    let r = gw.post("/v1/chat/completions", &chat(&prompt)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(gw.mock.last()["messages"][1]["content"], prompt.as_str(), "forwarded as it was");

    let mut body = chat("Write a long answer.");
    let reply = long("words ");
    body["x_reply"] = json!(reply);
    let r = gw.post("/v1/chat/completions", &body).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["choices"][0]["message"]["content"], reply.as_str());

    body["stream"] = json!(true);
    body["x_chunks"] = json!(["Short start. ", reply, " tail"]);
    let r = gw.post("/v1/chat/completions", &body).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let datas = common::sse_data(&r.text);
    assert_eq!(common::streamed_content(&datas), format!("Short start. {reply} tail"), "every byte, in order");
    assert!(!datas.iter().any(|d| d.contains("scan_failed")), "{datas:?}");

    let events = gw.telemetry(3).await;
    for e in &events {
        assert_eq!(e["data"]["status"], "success", "{e}");
        assert_eq!(e["metadata"]["failed_open"], true, "{e}");
        let why = e["metadata"]["scan_errors"][0].as_str().unwrap();
        assert!(why.contains("200"), "the cause is recorded: {why}");
    }

    // Other routes keep the section's default, fail_closed.
    let r = gw.post("/v1/completions", &json!({"model": "gpt-4o-mini", "prompt": prompt})).await;
    assert_eq!((r.status, r.body["error"]["code"].as_str()), (413, Some("scan_failed")), "{}", r.text);
}
