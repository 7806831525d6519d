//! The OpenAI adapter against a scripted Responses API stub and a fake Airlock gateway.

mod common;

use airlock_agents::{run_openai, AgentError, Gateway, OpenAiConfig, Provider};
use common::{start_fake_airlock, start_stub, tiny_png_base64, TOKEN};
use serde_json::{json, Value};

const TASK: &str = "Save the document.";

fn config(base: &str) -> OpenAiConfig {
    let mut cfg = OpenAiConfig::new("sk-openai-test");
    cfg.base_url = format!("{base}/v1");
    cfg.sandbox = Some("sbx-9".into());
    cfg
}

fn response(id: &str, output: Value) -> (u16, Value) {
    (
        200,
        json!({
            "id": id, "object": "response", "created_at": 1741476542, "status": "completed",
            "model": "computer-use-preview-2025-03-11", "output": output, "error": null,
            "truncation": "auto", "previous_response_id": null,
        }),
    )
}

#[tokio::test]
async fn a_scripted_conversation_drives_the_gateway() {
    let fake = start_fake_airlock(true).await;
    let gateway = Gateway::connect(&fake.url, TOKEN).await.unwrap();
    let click = json!({ "type": "click", "button": "left", "x": 156, "y": 50 });
    let keypress = json!({ "type": "keypress", "keys": ["CTRL", "S"] });
    let checks = json!([{ "id": "cu_sc_1", "code": "malicious_instructions", "message": "Check the page." }]);
    let stub = start_stub(vec![
        response(
            "resp_1",
            json!([
                { "type": "reasoning", "id": "rs_1", "summary": [{ "type": "summary_text", "text": "Clicking File." }] },
                { "type": "computer_call", "id": "cu_1", "call_id": "call_1", "action": click,
                  "pending_safety_checks": [], "status": "completed" },
            ]),
        ),
        response(
            "resp_2",
            json!([{ "type": "computer_call", "id": "cu_2", "call_id": "call_2", "action": keypress,
                     "pending_safety_checks": checks, "status": "completed" }]),
        ),
        response(
            "resp_3",
            json!([{ "type": "message", "id": "msg_1", "role": "assistant", "status": "completed",
                     "content": [{ "type": "output_text", "text": "The document is saved.", "annotations": [] }] }]),
        ),
    ])
    .await;

    let report = run_openai(&gateway, &config(&stub.base), TASK).await.unwrap();
    assert_eq!(report.turns, 3);
    assert_eq!(report.stop_reason.as_deref(), Some("completed"));
    assert_eq!(report.assistant_texts, vec!["The document is saved."]);
    assert_eq!(report.actions.len(), 2);
    assert_eq!(
        report.actions[1].acknowledged_safety_checks,
        checks.as_array().unwrap().clone()
    );

    // Each action verbatim to `computer_openai`, each followed by a screenshot through `computer`.
    assert_eq!(
        fake.calls_to("computer_openai"),
        vec![
            json!({ "action": click, "sandbox": "sbx-9" }),
            json!({ "action": keypress, "sandbox": "sbx-9" })
        ]
    );
    let names: Vec<String> = fake.calls().into_iter().map(|(tool, _)| tool).collect();
    assert_eq!(
        names,
        ["computer_openai", "computer", "computer_openai", "computer"]
    );
    assert_eq!(
        fake.calls_to("computer")[0],
        json!({ "action": "screenshot", "sandbox": "sbx-9" })
    );

    let requests = stub.requests();
    assert_eq!(requests.len(), 3);
    let tools = json!([{ "type": "computer_use_preview", "display_width": 1280, "display_height": 800, "environment": "linux" }]);
    for request in &requests {
        assert_eq!(request.path, "/v1/responses");
        assert_eq!(request.header("authorization"), Some("Bearer sk-openai-test"));
        assert_eq!(request.body["model"], "computer-use-preview");
        assert_eq!(request.body["tools"], tools);
        assert_eq!(request.body["truncation"], "auto");
    }
    assert_eq!(
        requests[0].body["input"],
        json!([{ "role": "user", "content": TASK }])
    );
    assert!(requests[0].body.get("previous_response_id").is_none());

    let image_url = format!("data:image/png;base64,{}", tiny_png_base64());
    assert_eq!(requests[1].body["previous_response_id"], "resp_1");
    assert_eq!(
        requests[1].body["input"],
        json!([{
            "type": "computer_call_output", "call_id": "call_1",
            "output": { "type": "computer_screenshot", "image_url": image_url },
        }])
    );
    assert_eq!(requests[2].body["previous_response_id"], "resp_2");
    assert_eq!(
        requests[2].body["input"],
        json!([{
            "type": "computer_call_output", "call_id": "call_2",
            "output": { "type": "computer_screenshot", "image_url": image_url },
            "acknowledged_safety_checks": checks,
        }])
    );
}

#[tokio::test]
async fn a_screenshot_action_uses_its_own_image_and_refusals_reach_the_model() {
    let fake = start_fake_airlock(true).await;
    let gateway = Gateway::connect(&fake.url, TOKEN).await.unwrap();
    let stub = start_stub(vec![
        response(
            "resp_1",
            json!([{ "type": "computer_call", "id": "cu_1", "call_id": "call_1",
                     "action": { "type": "screenshot" }, "pending_safety_checks": [], "status": "completed" }]),
        ),
        response(
            "resp_2",
            // No `type` in the action: the gateway rejects the arguments, the model hears why.
            json!([{ "type": "computer_call", "id": "cu_2", "call_id": "call_2",
                     "action": { "x": 1 }, "pending_safety_checks": [], "status": "completed" }]),
        ),
        response("resp_3", json!([])),
    ])
    .await;
    let report = run_openai(&gateway, &config(&stub.base), TASK).await.unwrap();
    assert_eq!(report.turns, 3);
    assert!(!report.actions[0].is_error && report.actions[1].is_error);
    let names: Vec<String> = fake.calls().into_iter().map(|(tool, _)| tool).collect();
    assert_eq!(names, ["computer_openai", "computer_openai", "computer"]);
    let input = &stub.requests()[2].body["input"];
    assert_eq!(input[0]["call_id"], "call_2");
    assert_eq!(input[1]["role"], "user");
    assert!(
        input[1]["content"].as_str().unwrap().contains("refused"),
        "{input}"
    );
}

#[tokio::test]
async fn api_errors_are_typed() {
    let fake = start_fake_airlock(true).await;
    let gateway = Gateway::connect(&fake.url, TOKEN).await.unwrap();

    let stub = start_stub(vec![(
        401,
        json!({ "error": { "message": "Incorrect API key provided: sk-open***test.", "type": "invalid_request_error",
                           "param": null, "code": "invalid_api_key" } }),
    )])
    .await;
    let error = run_openai(&gateway, &config(&stub.base), TASK).await.unwrap_err();
    assert!(
        matches!(
            error,
            AgentError::Api { provider: Provider::OpenAi, status: 401, ref kind, ref message }
                if kind == "invalid_request_error" && message.starts_with("Incorrect API key")
        ),
        "{error:?}"
    );

    let (status, mut failed) = response("resp_f", json!([]));
    failed["status"] = json!("failed");
    failed["error"] = json!({ "code": "server_error", "message": "The model failed." });
    let stub = start_stub(vec![(status, failed)]).await;
    let error = run_openai(&gateway, &config(&stub.base), TASK).await.unwrap_err();
    assert_eq!(
        error.to_string(),
        "the OpenAI API answered HTTP 200 (server_error): The model failed."
    );

    let mut cfg = config(&start_stub(vec![response(
        "resp_1",
        json!([{ "type": "computer_call", "id": "cu_1", "call_id": "call_1", "action": { "type": "wait" },
                 "pending_safety_checks": [{ "id": "sc", "code": "sensitive_domain", "message": "Bank." }] }]),
    )])
    .await
    .base);
    cfg.acknowledge_safety_checks = false;
    let error = run_openai(&gateway, &cfg, TASK).await.unwrap_err();
    assert!(error.to_string().contains("sensitive_domain: Bank."), "{error}");
    assert!(
        fake.calls().is_empty(),
        "an unacknowledged check stops the action before the gateway"
    );
}
