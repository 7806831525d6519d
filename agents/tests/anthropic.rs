//! The Anthropic adapter against a scripted Messages API stub and a fake Airlock gateway.

mod common;

use airlock_agents::{
    run_anthropic, run_anthropic_observed, ActionReport, AgentError, AnthropicConfig, Gateway, Provider,
};
use common::{start_fake_airlock, start_stub, tiny_png_base64, TOKEN};
use serde_json::{json, Value};

const TASK: &str = "Open the terminal and save the file.";

fn config(base: &str) -> AnthropicConfig {
    let mut cfg = AnthropicConfig::new("sk-ant-test");
    cfg.base_url = base.to_owned();
    cfg.sandbox = Some("sbx-9".into());
    cfg
}

fn message(id: &str, content: Value, stop_reason: &str) -> (u16, Value) {
    (
        200,
        json!({
            "id": id, "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
            "content": content, "stop_reason": stop_reason, "stop_sequence": null,
            "usage": { "input_tokens": 100, "output_tokens": 20 },
        }),
    )
}

#[tokio::test]
async fn a_scripted_conversation_drives_the_gateway() {
    let fake = start_fake_airlock(true).await;
    let gateway = Gateway::connect(&fake.url, TOKEN).await.unwrap();
    let turn1 = json!([
        { "type": "text", "text": "Let me look at the screen first." },
        { "type": "tool_use", "id": "toolu_01", "name": "computer", "input": { "action": "screenshot" } },
    ]);
    let click = json!({ "action": "left_click", "coordinate": [640, 400], "text": "shift" });
    let turn2 = json!([
        { "type": "tool_use", "id": "toolu_02", "name": "computer", "input": click },
        { "type": "tool_use", "id": "toolu_03", "name": "computer", "input": { "action": "type", "text": "rm -rf / --no-preserve-root" } },
    ]);
    let stub = start_stub(vec![
        message("msg_01", turn1.clone(), "tool_use"),
        message("msg_02", turn2.clone(), "tool_use"),
        message(
            "msg_03",
            json!([{ "type": "text", "text": "Done: the file is saved." }]),
            "end_turn",
        ),
    ])
    .await;

    let mut seen = Vec::new();
    let report = run_anthropic_observed(&gateway, &config(&stub.base), TASK, &mut |a: &ActionReport| {
        seen.push(a.clone())
    })
    .await
    .unwrap();

    // The report.
    assert_eq!(report.turns, 3);
    assert_eq!(report.stop_reason.as_deref(), Some("end_turn"));
    assert_eq!(
        report.assistant_texts,
        vec!["Let me look at the screen first.", "Done: the file is saved."]
    );
    assert_eq!(seen, report.actions);
    let ids: Vec<&str> = report.actions.iter().map(|a| a.call_id.as_str()).collect();
    assert_eq!(ids, ["toolu_01", "toolu_02", "toolu_03"]);
    assert!(report.actions[0].image_bytes > 0);
    assert_eq!(
        report.actions.iter().map(|a| a.is_error).collect::<Vec<_>>(),
        [false, false, true]
    );

    // The gateway got each `input` verbatim, plus the sandbox id.
    let mut click_with_sandbox = click.clone();
    click_with_sandbox["sandbox"] = json!("sbx-9");
    assert_eq!(
        fake.calls_to("computer"),
        vec![
            json!({ "action": "screenshot", "sandbox": "sbx-9" }),
            click_with_sandbox,
            json!({ "action": "type", "text": "rm -rf / --no-preserve-root", "sandbox": "sbx-9" }),
        ]
    );

    // Every request: endpoint, headers, model, tools.
    let requests = stub.requests();
    assert_eq!(requests.len(), 3);
    for request in &requests {
        assert_eq!(request.path, "/v1/messages");
        assert_eq!(request.header("x-api-key"), Some("sk-ant-test"));
        assert_eq!(request.header("anthropic-version"), Some("2023-06-01"));
        assert_eq!(request.header("anthropic-beta"), Some("computer-use-2025-01-24"));
        assert_eq!(request.header("content-type"), Some("application/json"));
        assert_eq!(request.body["model"], "claude-sonnet-4-5");
        assert_eq!(request.body["max_tokens"], 4096);
        assert_eq!(
            request.body["tools"],
            json!([{
                "type": "computer_20250124", "name": "computer",
                "display_width_px": 1280, "display_height_px": 800, "display_number": 1,
            }])
        );
    }
    assert_eq!(
        requests[0].body["messages"],
        json!([{ "role": "user", "content": TASK }])
    );

    // The second request: the assistant turn echoed, then a tool_result with the screenshot.
    let messages = requests[1].body["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 3);
    assert_eq!(messages[1], json!({ "role": "assistant", "content": turn1 }));
    assert_eq!(messages[2]["role"], "user");
    let result = &messages[2]["content"][0];
    assert_eq!(result["type"], "tool_result");
    assert_eq!(result["tool_use_id"], "toolu_01");
    assert!(result.get("is_error").is_none());
    let image = result["content"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "image")
        .unwrap();
    assert_eq!(
        image["source"],
        json!({ "type": "base64", "media_type": "image/png", "data": tiny_png_base64() })
    );
    assert!(result["content"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["type"] == "text"));

    // The third: both tool_use blocks answered in one user message, the refusal marked as an error.
    let messages = requests[2].body["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 5);
    assert_eq!(messages[3], json!({ "role": "assistant", "content": turn2 }));
    let results = messages[4]["content"].as_array().unwrap();
    assert_eq!(results.len(), 2);
    assert_eq!(results[0]["tool_use_id"], "toolu_02");
    assert!(results[0]["content"][0]["text"]
        .as_str()
        .unwrap()
        .contains("\"decision\":\"allow\""));
    assert_eq!(results[1]["tool_use_id"], "toolu_03");
    assert_eq!(results[1]["is_error"], true);
    assert!(results[1]["content"][0]["text"]
        .as_str()
        .unwrap()
        .contains("denied"));
}

#[tokio::test]
async fn api_errors_are_typed() {
    let fake = start_fake_airlock(true).await;
    let gateway = Gateway::connect(&fake.url, TOKEN).await.unwrap();

    let stub = start_stub(vec![(
        400,
        json!({ "type": "error", "error": { "type": "invalid_request_error", "message": "max_tokens: Field required" } }),
    )])
    .await;
    let error = run_anthropic(&gateway, &config(&stub.base), TASK)
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            AgentError::Api { provider: Provider::Anthropic, status: 400, ref kind, ref message }
                if kind == "invalid_request_error" && message == "max_tokens: Field required"
        ),
        "{error:?}"
    );
    assert_eq!(
        error.to_string(),
        "the Anthropic API answered HTTP 400 (invalid_request_error): max_tokens: Field required"
    );

    let stub = start_stub(vec![(
        529,
        json!({ "type": "error", "error": { "type": "overloaded_error", "message": "Overloaded" } }),
    )])
    .await;
    let error = run_anthropic(&gateway, &config(&stub.base), TASK)
        .await
        .unwrap_err();
    assert!(matches!(error, AgentError::Api { status: 529, .. }), "{error:?}");

    let stub = start_stub(vec![(200, json!({ "id": "msg_x", "type": "message" }))]).await;
    let error = run_anthropic(&gateway, &config(&stub.base), TASK)
        .await
        .unwrap_err();
    assert!(matches!(error, AgentError::ApiResponse { .. }), "{error:?}");

    let looping = json!([{ "type": "tool_use", "id": "toolu_1", "name": "computer", "input": { "action": "screenshot" } }]);
    let stub = start_stub(vec![
        message("m1", looping.clone(), "tool_use"),
        message("m2", looping, "tool_use"),
    ])
    .await;
    let mut cfg = config(&stub.base);
    cfg.max_steps = 2;
    let error = run_anthropic(&gateway, &cfg, TASK).await.unwrap_err();
    assert!(
        matches!(error, AgentError::MaxSteps { max_steps: 2, .. }),
        "{error:?}"
    );

    // Nothing reached the gateway but the two screenshots of the looping model.
    assert_eq!(fake.calls_to("computer").len(), 2);
}
