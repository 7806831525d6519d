//! The MCP gateway client against a fake Airlock server over real HTTP.

mod common;

use airlock_agents::{AgentError, Gateway};
use common::{start_fake_airlock, tiny_png, TOKEN};
use serde_json::json;

#[tokio::test]
async fn lists_tools_and_calls_them() {
    let fake = start_fake_airlock(true).await;
    let gateway = Gateway::connect(&fake.url, TOKEN).await.unwrap();

    let names: Vec<String> = gateway
        .list_tools()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.name)
        .collect();
    for tool in [
        "computer",
        "computer_openai",
        "exec",
        "sandbox_create",
        "sandbox_destroy",
    ] {
        assert!(names.iter().any(|n| n == tool), "{tool} missing from {names:?}");
    }

    let shot = gateway
        .call("computer", json!({ "action": "screenshot", "sandbox": "s1" }))
        .await
        .unwrap();
    assert!(!shot.is_error);
    assert_eq!(shot.images.len(), 1);
    assert_eq!(shot.images[0].mime_type, "image/png");
    assert_eq!(shot.images[0].decode("computer").unwrap(), tiny_png());
    assert_eq!(shot.image_bytes("computer").unwrap(), tiny_png().len());
    assert_eq!(shot.json().unwrap()["sandbox"], "s1");

    let refused = gateway
        .call("exec", json!({ "argv": ["rm", "-rf", "/"] }))
        .await
        .unwrap();
    assert!(refused.is_error);
    assert!(refused.text().contains("denied"), "{refused:?}");

    let id = gateway
        .create_sandbox(Some("auto"), Some("desktop"))
        .await
        .unwrap();
    assert_eq!(id, "sbx-1");
    gateway.destroy_sandbox(&id).await.unwrap();
    assert_eq!(
        fake.calls_to("sandbox_create"),
        vec![json!({ "backend": "auto", "profile": "desktop" })]
    );
    assert_eq!(fake.state.lock().unwrap().destroyed, vec!["sbx-1".to_owned()]);

    // A JSON-RPC error is a failed call for `call`, a refusal for `call_or_refusal`.
    let error = gateway.call("computer", json!({})).await.unwrap_err();
    assert!(
        matches!(error, AgentError::Call { ref tool, .. } if tool == "computer"),
        "{error:?}"
    );
    let refusal = gateway.call_or_refusal("computer", json!({})).await.unwrap();
    assert!(
        refusal.is_error && refusal.text().contains("`action` is required"),
        "{refusal:?}"
    );

    let not_object = gateway.call("exec", json!(["ls"])).await.unwrap_err();
    assert_eq!(
        not_object.to_string(),
        "the arguments for the tool `exec` are not a JSON object"
    );
    gateway.close().await;
}

#[tokio::test]
async fn a_wrong_token_is_a_clear_error() {
    for challenge in [true, false] {
        let fake = start_fake_airlock(challenge).await;
        let error = Gateway::connect(&fake.url, "wrong").await.unwrap_err();
        assert!(
            matches!(error, AgentError::Unauthorized { status: 401, .. }),
            "challenge={challenge}: {error:?}"
        );
        assert_eq!(
            error.to_string(),
            format!(
                "the Airlock MCP server at {} refused the bearer token (HTTP 401); check --token",
                fake.url
            )
        );
        assert!(fake.calls().is_empty());
    }
}

#[tokio::test]
async fn an_unreachable_gateway_is_a_connect_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/mcp", listener.local_addr().unwrap());
    drop(listener);
    let error = Gateway::connect(&url, TOKEN).await.unwrap_err();
    assert!(matches!(error, AgentError::Connect { .. }), "{error:?}");
    assert!(error.to_string().contains(&url));
}
