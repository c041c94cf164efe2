//! The tool-call allow-list, streamed and not.

use serde_json::{Value, json};

use crate::common::{self, sse_data};

fn with_tools(remove: bool) -> impl FnOnce(&mut llmsec_server::config::GatewayConfig) {
    move |g| {
        let toml_text = format!(
            r#"
allow = ["get_weather", "search"]
on_violation = "{}"
[schemas.get_weather]
type = "object"
required = ["city"]
properties = {{ city = {{ type = "string" }} }}
"#,
            if remove { "remove" } else { "block" }
        );
        g.tools = Some(toml::from_str(&toml_text).unwrap());
    }
}

fn call(id: &str, name: &str, args: &str) -> Value {
    json!({"id": id, "type": "function", "function": {"name": name, "arguments": args}})
}

fn body(extra: (&str, Value)) -> Value {
    let mut b = json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "What's the weather in Paris?"}],
        "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]});
    b[extra.0] = extra.1;
    b
}

#[tokio::test]
async fn a_call_outside_the_allow_list_blocks_the_completion() {
    let gw = common::start_with(with_tools(false)).await;
    let r = gw.post("/v1/chat/completions", &body(("x_tool_calls", json!([call("c1", "delete_files", "{}")])))).await;
    assert_eq!(r.status, 422, "{}", r.text);
    assert_eq!(r.body["error"]["code"], "tool_call_blocked");
    assert!(r.body["error"]["message"].as_str().unwrap().contains("delete_files"));
    let events = gw.telemetry(1).await;
    assert_eq!(events[0]["metadata"]["tool_calls"], json!(["delete_files"]));
    assert_eq!(events[0]["data"]["status"], "blocked");

    // Arguments that break the tool's schema block too; good ones pass.
    let r = gw
        .post("/v1/chat/completions", &body(("x_tool_calls", json!([call("c1", "get_weather", r#"{"town":1}"#)]))))
        .await;
    assert_eq!((r.status, r.body["error"]["code"].as_str()), (422, Some("tool_call_blocked")), "{}", r.text);
    let ok = json!([call("c1", "get_weather", r#"{"city":"Paris"}"#)]);
    let r = gw.post("/v1/chat/completions", &body(("x_tool_calls", ok.clone()))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["choices"][0]["message"]["tool_calls"], ok);
}

#[tokio::test]
async fn remove_drops_only_the_offending_calls() {
    let gw = common::start_with(with_tools(true)).await;
    let calls = json!([call("c1", "delete_files", "{}"), call("c2", "search", r#"{"q":"paris"}"#)]);
    let r = gw.post("/v1/chat/completions", &body(("x_tool_calls", calls))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["choices"][0]["message"]["tool_calls"], json!([call("c2", "search", r#"{"q":"paris"}"#)]));
    assert_eq!(r.body["choices"][0]["finish_reason"], "tool_calls");
    let events = gw.telemetry(1).await;
    assert!(events[0]["metadata"]["tool_violations"][0].as_str().unwrap().contains("delete_files"));
}

/// The tool calls of a streamed answer, as a client assembles them from
/// the deltas (by `index`).
fn assembled(datas: &[String]) -> Vec<(String, String)> {
    let mut calls: Vec<(String, String)> = Vec::new();
    for d in datas.iter().filter_map(|d| serde_json::from_str::<Value>(d).ok()) {
        for f in d.pointer("/choices/0/delta/tool_calls").and_then(Value::as_array).cloned().unwrap_or_default() {
            let i = f["index"].as_u64().unwrap() as usize;
            if calls.len() <= i {
                calls.resize(i + 1, (String::new(), String::new()));
            }
            calls[i].0.push_str(f.pointer("/function/name").and_then(Value::as_str).unwrap_or(""));
            calls[i].1.push_str(f.pointer("/function/arguments").and_then(Value::as_str).unwrap_or(""));
        }
    }
    calls
}

#[tokio::test]
async fn streamed_tool_calls_are_checked_whole_when_the_choice_ends() {
    let gw = common::start_with(with_tools(false)).await;
    let fragments = json!([
        [{"index": 0, "id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": ""}}],
        [{"index": 0, "function": {"arguments": "{\"ci"}}],
        [{"index": 0, "function": {"arguments": "ty\":\"Paris\"}"}}]
    ]);
    let r = gw
        .post("/v1/chat/completions", &{
            let mut b = body(("x_tool_stream", fragments));
            b["stream"] = json!(true);
            b
        })
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let datas = sse_data(&r.text);
    assert_eq!(assembled(&datas), vec![("get_weather".to_owned(), r#"{"city":"Paris"}"#.to_owned())]);
    assert_eq!(datas.last().map(String::as_str), Some("[DONE]"));

    // A disallowed tool, split the same way: content_filter and an error event.
    let fragments = json!([
        [{"index": 0, "id": "c1", "type": "function", "function": {"name": "delete_", "arguments": ""}}],
        [{"index": 0, "function": {"name": "files", "arguments": "{}"}}]
    ]);
    let r = gw
        .post("/v1/chat/completions", &{
            let mut b = body(("x_tool_stream", fragments));
            b["stream"] = json!(true);
            b
        })
        .await;
    let datas = sse_data(&r.text);
    let n = datas.len();
    assert_eq!(datas[n - 1], "[DONE]");
    let err: Value = serde_json::from_str(&datas[n - 2]).unwrap();
    assert_eq!(err["error"]["code"], "tool_call_blocked", "{}", r.text);
    let last: Value = serde_json::from_str(&datas[n - 3]).unwrap();
    assert_eq!(last["choices"][0]["finish_reason"], "content_filter");
    assert!(assembled(&datas).is_empty(), "no fragment of the refused call was sent: {}", r.text);
}

#[tokio::test]
async fn a_routes_own_allow_list_replaces_the_global_one_on_that_route_only() {
    // As an operator writes it: the global list, and a table of messages' own.
    let routes: llmsec_server::config::GatewayRoutes = toml::from_str(
        r#"
embeddings = "monitor"
[messages]
policy = "block"
[messages.tools]
allow = ["search"]
on_violation = "remove"
"#,
    )
    .unwrap();
    let gw = common::start_with(move |g| {
        with_tools(false)(g);
        g.routes = routes;
    })
    .await;
    // Chat keeps the global list: get_weather passes, anything else blocks.
    let ok = json!([call("c1", "get_weather", r#"{"city":"Paris"}"#)]);
    let r = gw.post("/v1/chat/completions", &body(("x_tool_calls", ok))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = gw.post("/v1/chat/completions", &body(("x_tool_calls", json!([call("c1", "rm", "{}")])))).await;
    assert_eq!((r.status, r.body["error"]["code"].as_str()), (422, Some("tool_call_blocked")), "{}", r.text);

    // Messages has its own: only search, and violations are removed.
    let msg = json!({"model": "claude-3-haiku", "max_tokens": 50,
    "messages": [{"role": "user", "content": "Weather in Paris, and search for hotels"}],
    "x_tool_use": [
        {"type": "tool_use", "id": "t1", "name": "get_weather", "input": {"city": "Paris"}},
        {"type": "tool_use", "id": "t2", "name": "search", "input": {"q": "hotels"}}
    ]});
    let r = gw.post("/v1/messages", &msg).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let names: Vec<&str> = r.body["content"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["type"] == "tool_use")
        .filter_map(|b| b["name"].as_str())
        .collect();
    assert_eq!(names, ["search"], "{}", r.text);
    let events = gw.telemetry(3).await;
    let removed = events.iter().find(|e| e["metadata"]["gateway_route"] == "messages").unwrap();
    assert!(removed["metadata"]["tool_violations"][0].as_str().unwrap().contains("get_weather"), "{removed}");
}

#[tokio::test]
async fn the_rego_policy_sees_the_role_model_and_offered_tools_of_a_call() {
    let dir = common::temp_dir();
    let rego = dir.join("llmsec.rego");
    std::fs::write(
        &rego,
        r#"package llmsec

default decision := {"action": "allow"}

decision := {"action": "block", "reasons": ["only admins may offer the shell tool"]} if {
    "shell" in input.request.tools
    input.request.role != "admin"
    input.request.route == "chat.completions"
    input.request.model == "gpt-4o-mini"
}
"#,
    )
    .unwrap();
    let gw = common::start_server_with(
        |c| c.policy = Some(llmsec_server::config::RegoPolicyConfig { rego: vec![rego.clone()], reload_secs: 0 }),
        |_| {},
    )
    .await;
    let body = serde_json::json!({
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": "List the files in my home directory."}],
        "tools": [{"type": "function", "function": {"name": "shell", "parameters": {"type": "object"}}}]
    });
    let guest = gw.post_with("/v1/chat/completions", &gw.key, &body, &[("x-llmsec-role", "guest")]).await;
    assert_eq!(guest.status, 400, "{}", guest.text);
    assert_eq!(guest.body["error"]["code"], "prompt_blocked", "{}", guest.text);
    let calls = gw.mock.calls();
    // The same text for an admin: not the cached refusal, and forwarded.
    let admin = gw.post_with("/v1/chat/completions", &gw.key, &body, &[("x-llmsec-role", "admin")]).await;
    assert_eq!(admin.status, 200, "{}", admin.text);
    assert_eq!(gw.mock.calls(), calls + 1);
}
