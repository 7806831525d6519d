//! The deterministic policy gate: Cedar rules decide **allow**, **ask** or **deny** for every agent
//! action, outside any model.
//!
//! Semantics, on top of Cedar's: a matching `forbid` denies (deny wins); a matching `permit`
//! annotated `@ask("why")` asks an operator; any other matching `permit` allows; when nothing
//! matches, the configured default applies (ask unless configured otherwise). Policies are checked
//! against [`SCHEMA`] when loaded, and a rule that fails to evaluate denies (fail closed).
//! Every rule carries an `@id`, and decisions name the rules that made them.
//!
//! ```
//! use airlock_domain::{Action, Screen};
//! use airlock_policy::{Decision, Policy, Subject};
//! let policy = Policy::default_policy()?;
//! let screen = Screen { width: 1280, height: 800 };
//! let rm = Action::exec(vec!["rm".into(), "-rf".into(), "/".into()], String::new(), None)?;
//! let who = Subject { agent: "bot", principal: "alice", sandbox: "sb1" };
//! assert_eq!(policy.evaluate(&who, &rm, "").decision, Decision::Deny);
//! let click = Action::from_anthropic(&serde_json::json!({"action": "left_click", "coordinate": [5, 5]}), screen)?;
//! assert_eq!(policy.evaluate(&who, &click, "").decision, Decision::Allow);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::str::FromStr;

use airlock_domain::Action;
use cedar_policy::{
    Authorizer, Context, Entities, Entity, EntityId, EntityTypeName, EntityUid, PolicySet, Request,
    RestrictedExpression, Schema, ValidationMode, Validator,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The vocabulary policies are written in (Cedar schema format).
pub const SCHEMA: &str = include_str!("../schema.cedarschema");
/// The policy Airlock ships with.
pub const DEFAULT_POLICY: &str = include_str!("../default.cedar");

/// What the gate decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ts_rs::TS)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// Run it.
    Allow,
    /// Ask an operator first.
    Ask,
    /// Refuse it.
    Deny,
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Decision::Allow => "allow",
            Decision::Ask => "ask",
            Decision::Deny => "deny",
        })
    }
}

impl FromStr for Decision {
    type Err = PolicyError;

    fn from_str(s: &str) -> Result<Decision, PolicyError> {
        match s {
            "allow" => Ok(Decision::Allow),
            "ask" => Ok(Decision::Ask),
            "deny" => Ok(Decision::Deny),
            other => Err(PolicyError::Decision(other.to_string())),
        }
    }
}

/// Whether denials are enforced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Denials refuse the action.
    Enforce,
    /// Denials are recorded as "would deny" and the action proceeds as if allowed.
    Shadow,
}

/// Who proposes an action, and where.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    /// The agent's identity.
    pub agent: &'a str,
    /// The principal the agent acts for.
    pub principal: &'a str,
    /// The sandbox.
    pub sandbox: &'a str,
}

/// A decision with its reasons.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Evaluation {
    /// The decision.
    pub decision: Decision,
    /// `@id`s of the rules that decided (empty when the default applied).
    pub rules: Vec<String>,
    /// A sentence for the agent, the operator and the ledger.
    pub reason: String,
    /// Whether no rule matched and the default applied.
    pub defaulted: bool,
}

/// Why a policy could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// The policy text does not parse.
    #[error("the policy does not parse: {0}")]
    Parse(String),
    /// The policy does not fit the schema (misspelt action or attribute, wrong type).
    #[error("the policy does not fit Airlock's schema: {0}")]
    Invalid(String),
    /// A rule has no `@id`.
    #[error("every rule needs an @id(\"...\") annotation; rule {0} has none")]
    MissingId(String),
    /// Two rules share an `@id`.
    #[error("two rules share the @id {0:?}")]
    DuplicateId(String),
    /// `@ask` on a forbid rule.
    #[error("rule {0:?} is a forbid: @ask only applies to permit rules")]
    AskOnForbid(String),
    /// Not a decision name.
    #[error("{0:?} is not a decision; use allow, ask or deny")]
    Decision(String),
    /// The built-in schema failed to load (a bug).
    #[error("the built-in schema is invalid: {0}")]
    Schema(String),
}

/// A loaded, validated policy.
#[derive(Debug, Clone)]
pub struct Policy {
    set: PolicySet,
    schema: Schema,
    text: String,
    default: Decision,
    version: String,
}

impl Policy {
    /// The shipped policy with the default decision `ask`.
    pub fn default_policy() -> Result<Policy, PolicyError> {
        Policy::new(DEFAULT_POLICY, Decision::Ask)
    }

    /// Parses and validates `text`; `default` applies when no rule matches.
    pub fn new(text: &str, default: Decision) -> Result<Policy, PolicyError> {
        let (schema, _warnings) =
            Schema::from_cedarschema_str(SCHEMA).map_err(|e| PolicyError::Schema(e.to_string()))?;
        let set = PolicySet::from_str(text).map_err(|e| PolicyError::Parse(cedar_message(&e)))?;
        let result = Validator::new(schema.clone()).validate(&set, ValidationMode::default());
        if !result.validation_passed() {
            let msgs: Vec<String> = result.validation_errors().map(|e| e.to_string()).collect();
            return Err(PolicyError::Invalid(msgs.join("; ")));
        }
        let mut ids = HashSet::new();
        for p in set.policies() {
            let id = p
                .annotation("id")
                .ok_or_else(|| PolicyError::MissingId(p.id().to_string()))?
                .to_string();
            if p.annotation("ask").is_some() && p.effect() == cedar_policy::Effect::Forbid {
                return Err(PolicyError::AskOnForbid(id));
            }
            if !ids.insert(id.clone()) {
                return Err(PolicyError::DuplicateId(id));
            }
        }
        let mut h = Sha256::new();
        h.update(b"airlock-policy/v1\n");
        h.update(default.to_string().as_bytes());
        h.update(b"\n");
        h.update(text.as_bytes());
        let version = hex::encode(h.finalize());
        Ok(Policy {
            set,
            schema,
            text: text.to_string(),
            default,
            version,
        })
    }

    /// SHA-256 of the policy text and default: recorded with every decision.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The policy text.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The decision when no rule matches.
    pub fn default_decision(&self) -> Decision {
        self.default
    }

    /// Decides on `action` proposed by `who`; `window_title` is the focused window's title ("" if
    /// unknown).
    pub fn evaluate(&self, who: &Subject<'_>, action: &Action, window_title: &str) -> Evaluation {
        match self.try_evaluate(who, action, window_title) {
            Ok(e) => e,
            Err(message) => Evaluation {
                decision: Decision::Deny,
                rules: Vec::new(),
                reason: format!("denied because the policy could not be evaluated: {message}"),
                defaulted: false,
            },
        }
    }

    fn try_evaluate(
        &self,
        who: &Subject<'_>,
        action: &Action,
        window_title: &str,
    ) -> Result<Evaluation, String> {
        let uid = |ty: &str, id: &str| -> Result<EntityUid, String> {
            let ty = EntityTypeName::from_str(ty).map_err(|e| e.to_string())?;
            Ok(EntityUid::from_type_name_and_id(ty, EntityId::new(id)))
        };
        let principal_uid = uid("Principal", who.principal)?;
        let agent_uid = uid("Agent", who.agent)?;
        let sandbox_uid = uid("Sandbox", who.sandbox)?;
        let action_uid = uid("Action", action.kind().as_str())?;
        let entities = Entities::from_entities(
            [
                Entity::new_no_attrs(principal_uid.clone(), HashSet::new()),
                Entity::new_no_attrs(agent_uid.clone(), HashSet::from([principal_uid])),
                Entity::new_no_attrs(sandbox_uid.clone(), HashSet::new()),
            ],
            Some(&self.schema),
        )
        .map_err(|e| e.to_string())?;
        let context = Context::from_pairs(facts(action, window_title)).map_err(|e| e.to_string())?;
        let request = Request::new(agent_uid, action_uid, sandbox_uid, context, Some(&self.schema))
            .map_err(|e| e.to_string())?;
        let response = Authorizer::new().is_authorized(&request, &self.set, &entities);
        let errors: Vec<String> = response.diagnostics().errors().map(|e| e.to_string()).collect();
        if !errors.is_empty() {
            return Err(errors.join("; "));
        }
        let matched: Vec<(String, Option<String>)> = response
            .diagnostics()
            .reason()
            .map(|id| {
                let name = self.set.annotation(id, "id").unwrap_or(id.as_ref()).to_string();
                (name, self.set.annotation(id, "ask").map(str::to_string))
            })
            .collect();
        let rules: Vec<String> = matched.iter().map(|(id, _)| id.clone()).collect();
        let kind = action.kind();
        Ok(match response.decision() {
            cedar_policy::Decision::Deny if matched.is_empty() => Evaluation {
                decision: self.default,
                rules,
                reason: format!(
                    "no rule covers this {kind} action; the default is {}",
                    self.default
                ),
                defaulted: true,
            },
            cedar_policy::Decision::Deny => Evaluation {
                decision: Decision::Deny,
                reason: format!("denied by rule {}", rules.join(", ")),
                rules,
                defaulted: false,
            },
            cedar_policy::Decision::Allow => {
                let asks: Vec<&(String, Option<String>)> =
                    matched.iter().filter(|(_, ask)| ask.is_some()).collect();
                if asks.is_empty() {
                    Evaluation {
                        decision: Decision::Allow,
                        reason: format!("allowed by rule {}", rules.join(", ")),
                        rules,
                        defaulted: false,
                    }
                } else {
                    let why: Vec<String> = asks
                        .iter()
                        .map(|(id, ask)| format!("{} (rule {id})", ask.as_deref().unwrap_or("")))
                        .collect();
                    Evaluation {
                        decision: Decision::Ask,
                        reason: format!("needs an operator's approval: {}", why.join("; ")),
                        rules: asks.iter().map(|(id, _)| id.clone()).collect(),
                        defaulted: false,
                    }
                }
            }
        })
    }
}

/// What the gate finally does with an evaluation under a mode.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verdict {
    /// The enforced decision.
    pub decision: Decision,
    /// Whether shadow mode let a denial through.
    pub shadow_denied: bool,
}

/// Applies the enforcement mode: in shadow mode a denial is recorded but the action proceeds.
pub fn enforce(evaluation: &Evaluation, mode: Mode) -> Verdict {
    match (evaluation.decision, mode) {
        (Decision::Deny, Mode::Shadow) => Verdict {
            decision: Decision::Allow,
            shadow_denied: true,
        },
        (d @ (Decision::Allow | Decision::Ask | Decision::Deny), Mode::Enforce | Mode::Shadow) => Verdict {
            decision: d,
            shadow_denied: false,
        },
    }
}

fn facts(action: &Action, window_title: &str) -> Vec<(String, RestrictedExpression)> {
    let s = |v: &str| RestrictedExpression::new_string(v.to_string());
    let n = |v: i64| RestrictedExpression::new_long(v);
    let point = action.point();
    let (button, clicks) = match action {
        Action::Click { button, count, .. } => (button.as_str(), i64::from(*count)),
        Action::MouseDown { button } | Action::MouseUp { button } | Action::Drag { button, .. } => {
            (button.as_str(), 0)
        }
        _ => ("", 0),
    };
    let text = action.text().unwrap_or("");
    let program = match action {
        Action::Exec { argv, .. } => argv
            .first()
            .map(|p| p.rsplit('/').next().unwrap_or(p).to_string())
            .unwrap_or_default(),
        _ => String::new(),
    };
    let pairs: HashMap<&str, RestrictedExpression> = HashMap::from([
        ("has_point", RestrictedExpression::new_bool(point.is_some())),
        ("x", n(point.map_or(0, |p| i64::from(p.x)))),
        ("y", n(point.map_or(0, |p| i64::from(p.y)))),
        ("button", s(button)),
        ("clicks", n(clicks)),
        ("text", s(text)),
        ("text_len", n(text.len() as i64)),
        ("key_combo", s(&action.key_combo().unwrap_or_default())),
        ("program", s(&program)),
        ("command", s(&action.command_line().unwrap_or_default())),
        ("window_title", s(window_title)),
    ]);
    pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}

fn cedar_message(e: &impl std::error::Error) -> String {
    let mut msg = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        src = s.source();
    }
    msg
}

#[cfg(test)]
mod tests {
    use airlock_domain::Screen;
    use serde_json::json;

    use super::*;

    const WHO: Subject<'static> = Subject {
        agent: "bot",
        principal: "alice",
        sandbox: "sb1",
    };
    const SCREEN: Screen = Screen {
        width: 1280,
        height: 800,
    };

    fn anthropic(v: serde_json::Value) -> Action {
        Action::from_anthropic(&v, SCREEN).unwrap()
    }

    fn exec(argv: &[&str]) -> Action {
        Action::exec(argv.iter().map(|s| s.to_string()).collect(), String::new(), None).unwrap()
    }

    fn decide(p: &Policy, a: &Action, title: &str) -> Decision {
        p.evaluate(&WHO, a, title).decision
    }

    #[test]
    fn the_default_policy_decides_as_documented() {
        let p = Policy::default_policy().unwrap();
        assert_eq!(
            decide(&p, &anthropic(json!({"action": "screenshot"})), ""),
            Decision::Allow
        );
        assert_eq!(
            decide(
                &p,
                &anthropic(json!({"action": "left_click", "coordinate": [1, 1]})),
                ""
            ),
            Decision::Allow
        );
        assert_eq!(
            decide(
                &p,
                &anthropic(json!({"action": "type", "text": "hello"})),
                "xterm"
            ),
            Decision::Allow
        );
        let e = p.evaluate(
            &WHO,
            &anthropic(json!({"action": "type", "text": "hunter2"})),
            "Password required",
        );
        assert_eq!(e.decision, Decision::Ask);
        assert_eq!(e.rules, vec!["typing-into-a-password-field"]);
        assert!(e.reason.contains("password"), "{}", e.reason);
        assert_eq!(
            decide(
                &p,
                &anthropic(json!({"action": "key", "text": "ctrl+alt+Delete"})),
                ""
            ),
            Decision::Ask
        );
        assert_eq!(
            decide(
                &p,
                &anthropic(json!({"action": "key", "text": "Control+Alt+t"})),
                ""
            ),
            Decision::Ask
        );
        assert_eq!(
            decide(&p, &anthropic(json!({"action": "key", "text": "ctrl+s"})), ""),
            Decision::Allow
        );
        assert_eq!(decide(&p, &exec(&["cat", "/etc/hostname"]), ""), Decision::Allow);
        assert_eq!(decide(&p, &exec(&["/usr/bin/ls", "-l"]), ""), Decision::Allow);
        assert_eq!(decide(&p, &exec(&["touch", "/tmp/x"]), ""), Decision::Ask);
        assert_eq!(decide(&p, &exec(&["sh", "-c", "echo hi"]), ""), Decision::Ask);
        assert_eq!(decide(&p, &exec(&["rm", "-rf", "/tmp/x"]), ""), Decision::Ask);
        for argv in [
            &["rm", "-rf", "/"][..],
            &["rm", "-fr", "/"],
            &["sh", "-c", "rm -rf / --no-preserve-root"],
            &["rm", "-rf", "/*"],
            &["mkfs.ext4", "/dev/vda"],
        ] {
            let e = p.evaluate(&WHO, &exec(argv), "");
            assert_eq!(e.decision, Decision::Deny, "{argv:?}");
            assert_eq!(e.rules, vec!["wipe-the-system"]);
        }
        assert_eq!(
            decide(
                &p,
                &anthropic(json!({"action": "type", "text": "sudo rm -rf /\n"})),
                "xterm"
            ),
            Decision::Deny
        );
    }

    #[test]
    fn the_default_decision_applies_when_nothing_matches() {
        let p = Policy::new(
            r#"@id("observe") permit(principal, action == Action::"screenshot", resource);"#,
            Decision::Ask,
        )
        .unwrap();
        let e = p.evaluate(&WHO, &exec(&["ls"]), "");
        assert_eq!((e.decision, e.defaulted), (Decision::Ask, true));
        let p = Policy::new(p.text(), Decision::Deny).unwrap();
        assert_eq!(decide(&p, &exec(&["ls"]), ""), Decision::Deny);
        assert_ne!(
            p.version(),
            Policy::new(p.text(), Decision::Ask).unwrap().version()
        );
    }

    #[test]
    fn rules_match_agent_principal_sandbox_and_region() {
        let text = r#"
            @id("base") permit(principal, action, resource);
            @id("no-bob") forbid(principal in Principal::"bob", action, resource);
            @id("rogue") forbid(principal == Agent::"rogue", action, resource);
            @id("prod") @ask("production sandbox") permit(principal, action, resource == Sandbox::"prod");
            @id("corner") forbid(principal, action == Action::"click", resource)
                when { context.has_point && context.x >= 1200 && context.y < 40 };
        "#;
        let p = Policy::new(text, Decision::Ask).unwrap();
        let click = |x: i64| anthropic(json!({"action": "left_click", "coordinate": [x, 10]}));
        assert_eq!(decide(&p, &click(5), ""), Decision::Allow);
        assert_eq!(decide(&p, &click(1250), ""), Decision::Deny);
        let bob = Subject {
            principal: "bob",
            ..WHO
        };
        assert_eq!(p.evaluate(&bob, &click(5), "").decision, Decision::Deny);
        let rogue = Subject {
            agent: "rogue",
            ..WHO
        };
        assert_eq!(p.evaluate(&rogue, &click(5), "").decision, Decision::Deny);
        let prod = Subject {
            sandbox: "prod",
            ..WHO
        };
        assert_eq!(p.evaluate(&prod, &click(5), "").decision, Decision::Ask);
    }

    #[test]
    fn bad_policies_are_clear_errors() {
        let e = Policy::new("permit(principal, action, resource", Decision::Ask).unwrap_err();
        assert!(matches!(e, PolicyError::Parse(_)), "{e}");
        let e = Policy::new(
            r#"@id("x") permit(principal, action == Action::"teleport", resource);"#,
            Decision::Ask,
        )
        .unwrap_err();
        assert!(matches!(e, PolicyError::Invalid(_)), "{e}");
        let e = Policy::new(
            r#"@id("x") permit(principal, action, resource) when { context.colour == "red" };"#,
            Decision::Ask,
        )
        .unwrap_err();
        assert!(e.to_string().contains("colour"), "{e}");
        let e = Policy::new("permit(principal, action, resource);", Decision::Ask).unwrap_err();
        assert!(matches!(e, PolicyError::MissingId(_)), "{e}");
        let e = Policy::new(
            r#"@id("x") permit(principal, action, resource); @id("x") forbid(principal, action, resource);"#,
            Decision::Ask,
        )
        .unwrap_err();
        assert!(matches!(e, PolicyError::DuplicateId(_)), "{e}");
        assert!("maybe".parse::<Decision>().is_err());
    }

    #[test]
    fn shadow_mode_lets_denials_through_and_says_so() {
        let p = Policy::default_policy().unwrap();
        let e = p.evaluate(&WHO, &exec(&["rm", "-rf", "/"]), "");
        assert_eq!(
            enforce(&e, Mode::Enforce),
            Verdict {
                decision: Decision::Deny,
                shadow_denied: false
            }
        );
        assert_eq!(
            enforce(&e, Mode::Shadow),
            Verdict {
                decision: Decision::Allow,
                shadow_denied: true
            }
        );
        let ask = p.evaluate(&WHO, &exec(&["touch", "x"]), "");
        assert_eq!(enforce(&ask, Mode::Shadow).decision, Decision::Ask);
    }
}
