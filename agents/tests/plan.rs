//! Plans: parsing (YAML, JSON, errors that name the field or step) and running them through a fake
//! Airlock gateway over real HTTP.

mod common;

use std::path::Path;

use airlock_agents::{
    run_plan, AgentError, Backend, Expect, Gateway, Plan, PlanFormat, Profile, SandboxSpec, StepAction,
    StepReport,
};
use common::{start_fake_airlock, tiny_png, TOKEN};
use serde_json::json;

const YAML: &str = r#"
name: demo
sandbox: {create: {backend: auto, profile: desktop}}
destroy_at_end: true
steps:
  - note: "look at the screen"
    computer: {action: screenshot}
  - computer: {action: left_click, coordinate: [640, 400]}
    expect: any
    expect_text: "allow"
  - exec: {argv: ["sh", "-c", "echo hi > /tmp/x"], timeout_ms: 5000}
  - pause_ms: 300
"#;

const JSON: &str = r#"{
  "name": "demo",
  "sandbox": {"id": "abc123"},
  "steps": [
    {"computer_openai": {"type": "keypress", "keys": ["CTRL", "S"]}},
    {"exec": {"argv": ["rm", "-rf", "/"]}, "expect": "error", "expect_text": "denied"}
  ]
}"#;

#[test]
fn yaml_and_json_plans_parse() {
    let plan = Plan::parse(YAML, PlanFormat::Yaml).unwrap();
    assert_eq!(plan.name, "demo");
    assert!(plan.destroy_at_end);
    let Some(SandboxSpec::Create(create)) = &plan.sandbox else {
        panic!("{:?}", plan.sandbox)
    };
    assert_eq!(
        (create.backend, create.profile),
        (Some(Backend::Auto), Some(Profile::Desktop))
    );
    assert_eq!(plan.steps.len(), 4);
    assert_eq!(plan.steps[0].note.as_deref(), Some("look at the screen"));
    assert_eq!(
        plan.steps[0].action,
        StepAction::Computer(json!({ "action": "screenshot" }))
    );
    assert_eq!(plan.steps[1].expect, Expect::Any);
    assert_eq!(plan.steps[2].action.arguments().unwrap()["timeout_ms"], 5000);
    assert_eq!(
        plan.steps[3].action,
        StepAction::Pause(std::time::Duration::from_millis(300))
    );

    let plan = Plan::parse(JSON, PlanFormat::Json).unwrap();
    assert_eq!(plan.sandbox, Some(SandboxSpec::Id("abc123".into())));
    assert!(!plan.destroy_at_end);
    assert_eq!(plan.steps[1].expect, Expect::Error);
    assert_eq!(plan.steps[1].expect_text.as_deref(), Some("denied"));
}

#[test]
fn files_load_by_extension() {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in [("p.yaml", YAML), ("p.yml", YAML), ("p.json", JSON)] {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        assert_eq!(Plan::load(&path).unwrap().name, "demo", "{name}");
    }
    // JSON is YAML too, but a .json file must be JSON.
    let path = dir.path().join("yaml-in-disguise.json");
    std::fs::write(&path, YAML).unwrap();
    let error = Plan::load(&path).unwrap_err();
    assert!(
        error
            .to_string()
            .contains("yaml-in-disguise.json is invalid: not valid JSON"),
        "{error}"
    );

    let path = dir.path().join("p.txt");
    std::fs::write(&path, YAML).unwrap();
    let error = Plan::load(&path).unwrap_err();
    assert!(matches!(error, AgentError::PlanFormat { .. }), "{error:?}");

    let error = Plan::load(&dir.path().join("missing.yaml")).unwrap_err();
    assert!(
        error.to_string().starts_with("could not read the plan file"),
        "{error}"
    );
}

#[test]
fn the_shipped_demo_plan_parses() {
    let plan = Plan::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("plans/demo.yaml")).unwrap();
    assert_eq!(plan.name, "demo");
    assert!(plan.steps.iter().any(|s| s.expect == Expect::Error));
}

#[test]
fn unknown_fields_are_errors_naming_the_field_and_step() {
    let error = Plan::parse("name: p\nstepz: []\n", PlanFormat::Yaml).unwrap_err();
    assert!(error.to_string().contains("unknown field `stepz`"), "{error}");

    let yaml =
        "name: p\nsteps:\n  - computer: {action: screenshot}\n  - exec: {argv: [ls]}\n    expekt: error\n";
    let error = Plan::parse(yaml, PlanFormat::Yaml).unwrap_err();
    let message = error.to_string();
    assert!(message.contains("step 2: unknown field `expekt`"), "{message}");
    assert!(
        message.starts_with("the plan file <inline> is invalid"),
        "{message}"
    );

    let json = r#"{"name":"p","steps":[{"exec":{"argv":["ls"],"cwd":"/"}}]}"#;
    let error = Plan::parse(json, PlanFormat::Json).unwrap_err();
    assert!(
        error.to_string().contains("step 1: unknown field `cwd`"),
        "{error}"
    );

    let error = Plan::parse(
        "name: p\nsandbox: {create: {profile: huge}}\nsteps: []\n",
        PlanFormat::Yaml,
    )
    .unwrap_err();
    assert!(error.to_string().contains("unknown variant `huge`"), "{error}");

    let error = Plan::parse(
        "name: p\nsteps:\n  - {exec: {argv: [ls]}, expect: maybe}\n",
        PlanFormat::Yaml,
    )
    .unwrap_err();
    assert!(
        error.to_string().contains("step 1: unknown variant `maybe`"),
        "{error}"
    );
}

#[tokio::test]
async fn the_demo_plan_runs_against_a_fake_gateway() {
    let fake = start_fake_airlock(true).await;
    let gateway = Gateway::connect(&fake.url, TOKEN).await.unwrap();
    let plan = Plan::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("plans/demo.yaml")).unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<StepReport>();
    let mut observer = tx;
    let report = run_plan(&gateway, &plan, &mut observer).await.unwrap();
    drop(observer);

    assert_eq!(report.plan, "demo");
    assert_eq!(report.sandbox.as_deref(), Some("sbx-1"));
    assert!(report.destroyed);
    assert_eq!(report.steps.len(), plan.steps.len());
    assert!(report.steps.iter().all(|s| s.ok), "{:#?}", report.steps);
    let mut seen = Vec::new();
    while let Some(step) = rx.recv().await {
        seen.push(step);
    }
    assert_eq!(seen, report.steps, "the observer sees every step, in order");
    assert_eq!(
        seen.iter().map(|s| s.index).collect::<Vec<_>>(),
        (1..=plan.steps.len()).collect::<Vec<_>>()
    );

    let first_shot = report.steps.iter().find(|s| s.tool == "computer").unwrap();
    assert_eq!((first_shot.images, first_shot.image_bytes), (1, tiny_png().len()));
    let denied = report.steps.iter().find(|s| s.is_error).unwrap();
    assert!(denied.texts.join(" ").contains("denied"));

    // Every call carried the created sandbox's id; the typed command wrote the file `cat` read.
    let state = fake.state.lock().unwrap();
    assert_eq!(state.created, vec!["sbx-1".to_owned()]);
    assert_eq!(state.destroyed, vec!["sbx-1".to_owned()]);
    for (tool, args) in state.calls.iter().filter(|(tool, _)| tool != "sandbox_create") {
        assert_eq!(args["sandbox"], "sbx-1", "{tool} {args}");
    }
    assert!(state.calls.contains(&(
        "computer".into(),
        json!({ "action": "type", "text": "echo airlock-demo > /tmp/demo.txt", "sandbox": "sbx-1" })
    )));
    assert_eq!(
        state.files.get("/tmp/demo.txt").map(String::as_str),
        Some("airlock-demo\n")
    );
    assert!(state.files.contains_key("/tmp/approved"));
}

#[tokio::test]
async fn a_step_that_should_be_refused_but_succeeds_fails_the_run() {
    let fake = start_fake_airlock(true).await;
    let gateway = Gateway::connect(&fake.url, TOKEN).await.unwrap();
    let plan = Plan::parse(
        r#"
name: strict
sandbox: {create: {}}
destroy_at_end: true
steps:
  - exec: {argv: [ls]}
  - note: "ls must be refused"
    exec: {argv: [ls, /]}
    expect: error
  - computer: {action: screenshot}
"#,
        PlanFormat::Yaml,
    )
    .unwrap();
    let mut seen = Vec::new();
    let error = run_plan(&gateway, &plan, &mut |s: &StepReport| seen.push(s.clone()))
        .await
        .unwrap_err();
    let AgentError::StepFailed {
        ref plan,
        index,
        ref tool,
        ref note,
        ..
    } = error
    else {
        panic!("{error:?}")
    };
    assert_eq!((plan.as_str(), index, tool.as_str()), ("strict", 2, "exec"));
    assert_eq!(note.as_deref(), Some("ls must be refused"));
    assert!(
        error.to_string().starts_with(
            "step 2 (exec, \"ls must be refused\") of plan `strict` failed: \
             expected the action to be refused, but it succeeded"
        ),
        "{error}"
    );
    // The observer saw the failing step; the step after it never ran; the sandbox was destroyed anyway.
    assert_eq!(seen.len(), 2);
    assert!(seen[0].ok && !seen[1].ok);
    assert!(fake.calls_to("computer").is_empty());
    assert_eq!(fake.state.lock().unwrap().destroyed, vec!["sbx-1".to_owned()]);
}

#[tokio::test]
async fn expect_text_and_retries() {
    let fake = start_fake_airlock(true).await;
    let gateway = Gateway::connect(&fake.url, TOKEN).await.unwrap();
    let plan = Plan::parse(
        r#"{"name":"t","steps":[
            {"exec":{"argv":["cat","/nope"]},"expect_exit_code":0,"retry_for_ms":1200}
        ]}"#,
        PlanFormat::Json,
    )
    .unwrap();
    let mut seen = Vec::new();
    let error = run_plan(&gateway, &plan, &mut |s: &StepReport| seen.push(s.clone()))
        .await
        .unwrap_err();
    assert!(error.to_string().contains("expected exit code 0"), "{error}");
    assert!(seen[0].attempts >= 2, "{seen:?}");
    assert_eq!(fake.calls_to("exec").len() as u32, seen[0].attempts);

    // No sandbox in the plan: nothing is injected, nothing created or destroyed.
    let plan = Plan::parse(
        "name: t\nsteps:\n  - {exec: {argv: [echo, hello]}, expect_text: HELLO}\n  - {call: {tool: sandbox_list}}\n",
        PlanFormat::Yaml,
    )
    .unwrap();
    let report = run_plan(&gateway, &plan, &mut |_: &StepReport| {}).await.unwrap();
    assert_eq!(report.sandbox, None);
    assert_eq!(
        fake.calls().last().unwrap(),
        &("sandbox_list".to_owned(), json!({}))
    );
    assert!(fake.state.lock().unwrap().created.is_empty());
}
