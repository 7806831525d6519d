//! The deterministic policy gate: Cedar rules decide **allow**, **ask** or **deny** for every agent
//! action, outside any model.
//!
//! Semantics, on top of Cedar's: a matching `forbid` denies (deny wins); a matching `permit`
//! annotated `@ask("why")` asks an operator; any other matching `permit` allows; a `permit`
//! annotated `@fallback` counts only when no other rule matches (a default for the actions it
//! names, such as asking about any destination no rule names); when nothing matches, the
//! configured default applies (ask unless configured otherwise). Policies are checked
//! against [`SCHEMA`] when loaded, and a rule that fails to evaluate denies (fail closed).
//! Every rule carries an `@id`, and decisions name the rules that made them. A connection a
//! sandbox asks the egress gateway for is the `connect` action ([`Policy::evaluate_connect`]),
//! judged by its destination's name before resolution and again by the address it resolved to.
//!
//! ```
//! use airlock_domain::{Action, Screen};
//! use airlock_policy::{Decision, Focus, Policy, Subject};
//! let policy = Policy::default_policy()?;
//! let screen = Screen { width: 1280, height: 800 };
//! let rm = Action::exec(vec!["rm".into(), "-rf".into(), "/".into()], String::new(), None)?;
//! let who = Subject { agent: "bot", principal: "alice", sandbox: "sb1" };
//! assert_eq!(policy.evaluate(&who, &rm, Focus::NONE).decision, Decision::Deny);
//! let click = Action::from_anthropic(&serde_json::json!({"action": "left_click", "coordinate": [5, 5]}), screen)?;
//! assert_eq!(policy.evaluate(&who, &click, Focus::NONE).decision, Decision::Allow);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::str::FromStr;

use airlock_domain::{Action, ActionKind};
use cedar_policy::{
    AuthorizationError, Authorizer, Context, Entities, Entity, EntityId, EntityTypeName, EntityUid,
    PolicySet, Request, RestrictedExpression, Schema, ValidationMode, Validator,
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
pub struct Evaluation {
    /// The decision.
    pub decision: Decision,
    /// `@id`s of the rules that decided (empty when the default applied).
    pub rules: Vec<String>,
    /// A sentence for the agent, the operator and the ledger.
    pub reason: String,
    /// Whether no rule matched and the default applied.
    pub defaulted: bool,
    /// What shadow mode does instead of a denial: the decision of the permit rules alone (allow,
    /// or ask when an `@ask` rule matched); equal to `decision` when it is not a denial.
    pub shadow: Decision,
    /// Whether an operator's "allow similar" grant may cover this ask later: not when an asking
    /// rule is annotated `@grant("never")`.
    pub grantable: bool,
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
    /// `@fallback` on a forbid rule.
    #[error("rule {0:?} is a forbid: @fallback only applies to permit rules")]
    FallbackOnForbid(String),
    /// Not a decision name.
    #[error("{0:?} is not a decision; use allow, ask or deny")]
    Decision(String),
    /// The built-in schema failed to load (a bug).
    #[error("the built-in schema is invalid: {0}")]
    Schema(String),
}

/// Why a request could not be judged (the caller denies it).
#[derive(Debug, thiserror::Error)]
enum EvaluateError {
    /// An entity type name does not parse (a bug: the names are Airlock's own).
    #[error("the entity type {name:?} does not parse")]
    EntityType {
        /// The name.
        name: String,
        /// Cedar's parse errors.
        #[source]
        source: Box<cedar_policy::ParseErrors>,
    },
    /// The request's entities do not fit the schema.
    #[error("the request's principal, agent and sandbox do not fit the schema")]
    Entities(#[source] Box<cedar_policy::entities_errors::EntitiesError>),
    /// The facts do not make a context.
    #[error("the request's facts do not make a Cedar context")]
    Context(#[source] Box<cedar_policy::ContextCreationError>),
    /// The request does not fit the schema.
    #[error("the {action} request does not fit the schema")]
    Request {
        /// The action asked for.
        action: String,
        /// Cedar's validation error.
        #[source]
        source: Box<cedar_policy::RequestValidationError>,
    },
    /// Rules failed to evaluate.
    #[error("rules failed to evaluate for the {action} action")]
    Rules {
        /// The action asked for.
        action: String,
        /// Every rule's error.
        #[source]
        source: RuleErrors,
    },
}

/// The errors of every rule that failed to evaluate, joined with "; ".
#[derive(Debug)]
struct RuleErrors(Vec<AuthorizationError>);

impl fmt::Display for RuleErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for RuleErrors {}

/// A loaded, validated policy.
#[derive(Debug, Clone)]
pub struct Policy {
    set: PolicySet,
    /// The permit rules alone (what shadow mode decides by).
    permits: PolicySet,
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
            if p.annotation("fallback").is_some() && p.effect() == cedar_policy::Effect::Forbid {
                return Err(PolicyError::FallbackOnForbid(id));
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
        let mut permits = PolicySet::new();
        for p in set
            .policies()
            .filter(|p| p.effect() == cedar_policy::Effect::Permit)
        {
            permits
                .add(p.clone())
                .map_err(|e| PolicyError::Parse(cedar_message(&e)))?;
        }
        Ok(Policy {
            set,
            permits,
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

    /// Decides on `action` proposed by `who`, typed into `focus` (for `type` and `key`; [`Focus::NONE`]
    /// otherwise). An exec is judged by every program its argv starts (shell wrappers unwrapped,
    /// flags normalised): the strictest decision wins, and an argv that cannot be parsed is judged
    /// with `context.parsed == false`.
    pub fn evaluate(&self, who: &Subject<'_>, action: &Action, focus: Focus<'_>) -> Evaluation {
        if let Some(facts) = file_facts(action) {
            let path = action.file_path().unwrap_or_default();
            let e = self.judge(who, action.kind().as_str(), facts);
            return about(e, &format!("`{path}`"), false, "");
        }
        let base = action_facts(action, focus);
        let Action::Exec { argv, .. } = action else {
            return self.judge(who, action.kind().as_str(), base);
        };
        let what = format!("`{}`", action.command_line().unwrap_or_default());
        match airlock_shell::parse_argv(argv) {
            Ok(commands) if commands.is_empty() => {
                let path = argv.first().map(String::as_str).unwrap_or_default();
                let cmd = CommandFacts {
                    program: program_name(path, &base_name(path)),
                    argv: argv.iter().skip(1).cloned().collect(),
                    ..CommandFacts::default()
                };
                self.judge(who, ActionKind::Exec.as_str(), with_command(base, &cmd))
            }
            Ok(commands) => strictest(commands.iter().map(|c| {
                let e = self.judge(
                    who,
                    ActionKind::Exec.as_str(),
                    with_command(base.clone(), &CommandFacts::of(c)),
                );
                about(e, &what, commands.len() > 1, &c.program)
            }))
            .unwrap_or_else(|| self.judge(who, ActionKind::Exec.as_str(), base.clone())),
            Err(error) => about(
                self.judge(
                    who,
                    ActionKind::Exec.as_str(),
                    with_command(base, &CommandFacts::unparsed()),
                ),
                &format!("{what} cannot be parsed ({error}):"),
                false,
                "",
            ),
        }
    }

    /// Decides on a command line submitted to a terminal in `focus`, as the `terminal_command`
    /// action with the same context as an exec: every program the line starts is judged, the
    /// strictest decision wins. A line that cannot be parsed, or that the gateway could not see
    /// whole, is judged with `context.parsed == false`. `None` when the line runs nothing (empty,
    /// only a comment or assignments).
    pub fn evaluate_terminal(
        &self,
        who: &Subject<'_>,
        line: TerminalCommand<'_>,
        focus: Focus<'_>,
    ) -> Option<Evaluation> {
        let (text, unknown) = match line {
            TerminalCommand::Known(text) => (text, None),
            TerminalCommand::Unknown { known, why } => (known, Some(why)),
        };
        let mut base = focus_facts(focus);
        base.insert("command", s(text));
        let what = format!("the terminal command `{}`", one_line(text));
        if let Some(why) = unknown {
            let e = self.judge(
                who,
                ActionKind::TerminalCommand.as_str(),
                with_command(base, &CommandFacts::unparsed()),
            );
            return Some(about(
                e,
                &format!("{what} is not known whole ({why}):"),
                false,
                "",
            ));
        }
        match airlock_shell::parse_interactive(text) {
            Ok(commands) => strictest(commands.iter().map(|c| {
                let e = self.judge(
                    who,
                    ActionKind::TerminalCommand.as_str(),
                    with_command(base.clone(), &CommandFacts::of(c)),
                );
                about(e, &what, commands.len() > 1, &c.program)
            })),
            Err(error) => Some(about(
                self.judge(
                    who,
                    ActionKind::TerminalCommand.as_str(),
                    with_command(base, &CommandFacts::unparsed()),
                ),
                &format!("{what} cannot be parsed ({error}):"),
                false,
                "",
            )),
        }
    }

    /// Decides on a connection a program in `who`'s sandbox asks the egress gateway for, as the
    /// `connect` action (context: the schema's `Connection`). The gateway asks twice: with
    /// `resolved: None` before it resolves the host (an ask there goes to an operator), then with
    /// the address the host resolved to; it refuses the connection when either evaluation
    /// denies. The semantics are [`Policy::evaluate`]'s: a forbid wins, `@ask` permits ask,
    /// `@grant("never")` makes an ask not grantable, and a request that cannot be built denies.
    ///
    /// ```
    /// use airlock_policy::{connect_rule, Connect, Decision, Policy, Resolved, Subject};
    /// let who = Subject { agent: "bot", principal: "alice", sandbox: "sb1" };
    /// let docs = Connect { host: "docs.example.org", port: 443, protocol: "connect", ip_literal: false, resolved: None };
    /// let policy = Policy::default_policy()?;
    /// assert_eq!(policy.evaluate_connect(&who, &docs).decision, Decision::Ask);
    /// let policy = policy.with_rule(&connect_rule("docs.example.org", 443))?;
    /// assert_eq!(policy.evaluate_connect(&who, &docs).decision, Decision::Allow);
    /// let local = Resolved { address: "127.0.0.1", class: "loopback" };
    /// let second = Connect { resolved: Some(local), ..docs };
    /// assert_eq!(policy.evaluate_connect(&who, &second).decision, Decision::Deny);
    /// # Ok::<(), airlock_policy::PolicyError>(())
    /// ```
    pub fn evaluate_connect(&self, who: &Subject<'_>, c: &Connect<'_>) -> Evaluation {
        let e = self.judge(who, CONNECT, connect_facts(c));
        about(e, &format!("the connection to {}", c.destination()), false, "")
    }

    /// A new policy: this one's text with `text` appended and the same default decision, parsed
    /// and validated anew (a rule whose `@id` is taken is [`PolicyError::DuplicateId`]). This
    /// policy is unchanged.
    pub fn with_rule(&self, text: &str) -> Result<Policy, PolicyError> {
        let separator = match (self.text.is_empty(), self.text.ends_with('\n')) {
            (true, _) => "",
            (false, true) => "\n",
            (false, false) => "\n\n",
        };
        Policy::new(&format!("{}{separator}{text}", self.text), self.default)
    }

    /// Runs the Cedar request for the action named `action` with `facts`; a request that cannot
    /// be built, or a rule that fails to evaluate, denies.
    fn judge(&self, who: &Subject<'_>, action: &str, facts: Facts) -> Evaluation {
        match self.try_evaluate(who, action, facts) {
            Ok(e) => e,
            Err(e) => Evaluation {
                decision: Decision::Deny,
                rules: Vec::new(),
                reason: format!(
                    "denied because the policy could not be evaluated: {}",
                    cedar_message(&e)
                ),
                defaulted: false,
                shadow: Decision::Deny,
                grantable: false,
            },
        }
    }

    fn try_evaluate(
        &self,
        who: &Subject<'_>,
        action: &str,
        facts: Facts,
    ) -> Result<Evaluation, EvaluateError> {
        let uid = |ty: &str, id: &str| -> Result<EntityUid, EvaluateError> {
            let parsed = EntityTypeName::from_str(ty).map_err(|source| EvaluateError::EntityType {
                name: ty.to_owned(),
                source: Box::new(source),
            })?;
            Ok(EntityUid::from_type_name_and_id(parsed, EntityId::new(id)))
        };
        let principal_uid = uid("Principal", who.principal)?;
        let agent_uid = uid("Agent", who.agent)?;
        let sandbox_uid = uid("Sandbox", who.sandbox)?;
        let action_uid = uid("Action", action)?;
        let entities = Entities::from_entities(
            [
                Entity::new_no_attrs(principal_uid.clone(), HashSet::new()),
                Entity::new_no_attrs(agent_uid.clone(), HashSet::from([principal_uid])),
                Entity::new_no_attrs(sandbox_uid.clone(), HashSet::new()),
            ],
            Some(&self.schema),
        )
        .map_err(|e| EvaluateError::Entities(Box::new(e)))?;
        let context = Context::from_pairs(facts.into_iter().map(|(k, v)| (k.to_string(), v)))
            .map_err(|e| EvaluateError::Context(Box::new(e)))?;
        let request = Request::new(agent_uid, action_uid, sandbox_uid, context, Some(&self.schema)).map_err(
            |source| EvaluateError::Request {
                action: action.to_owned(),
                source: Box::new(source),
            },
        )?;
        let e = self.decide(action, &request, &entities, &self.set)?;
        if e.decision != Decision::Deny || e.defaulted {
            return Ok(Evaluation {
                shadow: allow_denied(e.decision),
                ..e
            });
        }
        // What shadow mode does with a forbidden action: what the permits alone decide (an ask
        // stays an ask), so a forbid rule matched on purpose cannot turn an ask into an allow.
        let permits = self.decide(action, &request, &entities, &self.permits)?;
        Ok(Evaluation {
            shadow: allow_denied(permits.decision),
            ..e
        })
    }

    fn decide(
        &self,
        action: &str,
        request: &Request,
        entities: &Entities,
        set: &PolicySet,
    ) -> Result<Evaluation, EvaluateError> {
        let response = Authorizer::new().is_authorized(request, set, entities);
        let errors: Vec<AuthorizationError> = response.diagnostics().errors().cloned().collect();
        if !errors.is_empty() {
            return Err(EvaluateError::Rules {
                action: action.to_owned(),
                source: RuleErrors(errors),
            });
        }
        struct Matched {
            id: String,
            ask: Option<String>,
            never_granted: bool,
            fallback: bool,
        }
        let mut matched: Vec<Matched> = response
            .diagnostics()
            .reason()
            .map(|id| Matched {
                id: set.annotation(id, "id").unwrap_or(id.as_ref()).to_string(),
                ask: set.annotation(id, "ask").map(str::to_string),
                never_granted: set.annotation(id, "grant") == Some("never"),
                fallback: set.annotation(id, "fallback").is_some(),
            })
            .collect();
        // A `@fallback` permit decides only when no other rule matched.
        if matched.iter().any(|m| !m.fallback) {
            matched.retain(|m| !m.fallback);
        }
        let rules: Vec<String> = matched.iter().map(|m| m.id.clone()).collect();
        let evaluation = |decision, reason, rules, defaulted| Evaluation {
            decision,
            rules,
            reason,
            defaulted,
            shadow: decision,
            grantable: true,
        };
        Ok(match response.decision() {
            cedar_policy::Decision::Deny if matched.is_empty() => evaluation(
                self.default,
                format!(
                    "no rule covers this {action} action; the default is {}",
                    self.default
                ),
                rules,
                true,
            ),
            cedar_policy::Decision::Deny => evaluation(
                Decision::Deny,
                format!("denied by rule {}", rules.join(", ")),
                rules,
                false,
            ),
            cedar_policy::Decision::Allow => {
                let asks: Vec<&Matched> = matched.iter().filter(|m| m.ask.is_some()).collect();
                if asks.is_empty() {
                    evaluation(
                        Decision::Allow,
                        format!("allowed by rule {}", rules.join(", ")),
                        rules,
                        false,
                    )
                } else {
                    let why: Vec<String> = asks
                        .iter()
                        .map(|m| format!("{} (rule {})", m.ask.as_deref().unwrap_or(""), m.id))
                        .collect();
                    Evaluation {
                        grantable: asks.iter().all(|m| !m.never_granted),
                        ..evaluation(
                            Decision::Ask,
                            format!("needs an operator's approval: {}", why.join("; ")),
                            asks.iter().map(|m| m.id.clone()).collect(),
                            false,
                        )
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

/// Applies the enforcement mode: in shadow mode a denial is recorded and the action proceeds as
/// the policy's permits alone decide — allowed, or asked when an `@ask` rule matched too.
pub fn enforce(evaluation: &Evaluation, mode: Mode) -> Verdict {
    match (evaluation.decision, mode) {
        (Decision::Deny, Mode::Shadow) => Verdict {
            decision: evaluation.shadow,
            shadow_denied: true,
        },
        (d @ (Decision::Allow | Decision::Ask | Decision::Deny), Mode::Enforce | Mode::Shadow) => Verdict {
            decision: d,
            shadow_denied: false,
        },
    }
}

/// The window keystrokes go to; empty strings when unknown or not applicable.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Focus<'a> {
    /// Its title.
    pub title: &'a str,
    /// The class part of its `WM_CLASS` (`XTerm`).
    pub class: &'a str,
}

impl Focus<'static> {
    /// No window (actions that are not keystrokes).
    pub const NONE: Focus<'static> = Focus { title: "", class: "" };
}

/// A line submitted to a terminal, as the gateway saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TerminalCommand<'a> {
    /// The gateway followed every keystroke: this is the line.
    Known(&'a str),
    /// The gateway could not follow the line (history recall, completion, a human's typing).
    Unknown {
        /// What it did see.
        known: &'a str,
        /// Why it cannot know the rest.
        why: &'a str,
    },
}

/// A connection a program in a sandbox asks the egress gateway for, as the policy sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Connect<'a> {
    /// The destination host, normalised: a lower-case DNS name without a trailing dot, or the
    /// address text of an IP literal (`203.0.113.7`, `[2001:db8::1]`).
    pub host: &'a str,
    /// The destination port.
    pub port: u16,
    /// How the program asked: `http` (a forwarded absolute-URI request), `connect` (an HTTP
    /// CONNECT tunnel) or `socks5`.
    pub protocol: &'a str,
    /// Whether `host` is an IP literal.
    pub ip_literal: bool,
    /// Where the host resolved to: `None` in the first evaluation, before resolution.
    pub resolved: Option<Resolved<'a>>,
}

impl Connect<'_> {
    /// `host:port`, and the address when resolved, for reasons.
    fn destination(&self) -> String {
        match self.resolved {
            None => format!("{}:{}", self.host, self.port),
            Some(r) => format!(
                "{}:{} (resolved to {}, {})",
                self.host, self.port, r.address, r.class
            ),
        }
    }
}

/// The address a connection's host resolved to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resolved<'a> {
    /// The address as text (`127.0.0.1`, `2001:db8::1`).
    pub address: &'a str,
    /// Its class, one string per `airlock_egress::AddressClass` variant: `public`, `loopback`,
    /// `private`, `shared_nat`, `link_local`, `metadata`, `unspecified`, `multicast`, `reserved`.
    /// Anything but `public` is refused by the default policy unless a rule makes an exception.
    pub class: &'a str,
}

/// The Cedar text of a rule that allows connections to exactly `host` on `port`: what an
/// operator adds to stop being asked about that destination. Its `@id` is
/// `allow-connect-{host}-{port}`, so adding it twice is a [`PolicyError::DuplicateId`]; forbids
/// (IP literals, exfiltration helpers, special addresses in the default policy) still win over
/// it. Quotes, backslashes and control characters in `host` are escaped.
pub fn connect_rule(host: &str, port: u16) -> String {
    let host = cedar_escape(host);
    format!(
        "// Added by an operator: allow connections to {host} port {port}.\n\
         @id(\"allow-connect-{host}-{port}\")\n\
         permit (principal, action == Action::\"connect\", resource)\n\
         when {{ context.host == \"{host}\" && context.port == {port} }};\n"
    )
}

/// The strictest of several evaluations (deny, then ask, then allow), with the rules and reasons
/// of every evaluation that reached it; `None` when there are none.
pub fn strictest(evaluations: impl IntoIterator<Item = Evaluation>) -> Option<Evaluation> {
    let all: Vec<Evaluation> = evaluations.into_iter().collect();
    let decision = all.iter().map(|e| e.decision).max_by_key(|d| severity(*d))?;
    let deciding: Vec<&Evaluation> = all.iter().filter(|e| e.decision == decision).collect();
    let mut rules: Vec<String> = Vec::new();
    let mut reasons: Vec<&str> = Vec::new();
    for e in &deciding {
        for r in &e.rules {
            if !rules.contains(r) {
                rules.push(r.clone());
            }
        }
        if !reasons.contains(&e.reason.as_str()) {
            reasons.push(&e.reason);
        }
    }
    Some(Evaluation {
        decision,
        rules,
        reason: reasons.join("; "),
        defaulted: deciding.iter().all(|e| e.defaulted),
        shadow: all
            .iter()
            .map(|e| e.shadow)
            .max_by_key(|d| severity(*d))
            .unwrap_or(decision),
        grantable: deciding.iter().all(|e| e.grantable),
    })
}

/// Shadow mode never refuses: what would be denied is allowed.
fn allow_denied(d: Decision) -> Decision {
    match d {
        Decision::Deny => Decision::Allow,
        d @ (Decision::Allow | Decision::Ask) => d,
    }
}

fn severity(d: Decision) -> u8 {
    match d {
        Decision::Allow => 0,
        Decision::Ask => 1,
        Decision::Deny => 2,
    }
}

/// Prefixes an evaluation's reason with what it is about (and which program, when a line starts
/// several).
fn about(mut e: Evaluation, what: &str, name_program: bool, program: &str) -> Evaluation {
    let program = if name_program && !program.is_empty() {
        format!(" (its {program})")
    } else {
        String::new()
    };
    e.reason = format!("{what}{program} {}", e.reason);
    e
}

/// The context of one Cedar request, by attribute name.
type Facts = HashMap<&'static str, RestrictedExpression>;

/// What one program a command line starts looks like to rules.
#[derive(Debug, Clone, Default)]
struct CommandFacts {
    program: String,
    argv: Vec<String>,
    flags: Vec<String>,
    wrappers: Vec<String>,
    redirects: Vec<String>,
    unparsed: bool,
}

/// Directories a program named by path may be judged by its base name from: anything else (a
/// copy in /tmp, `./ls`) is judged as the path itself, which no allowlist names.
const SYSTEM_BIN_DIRS: &[&str] = &[
    "/bin",
    "/sbin",
    "/usr/bin",
    "/usr/sbin",
    "/usr/local/bin",
    "/usr/local/sbin",
];

/// Redirect targets that write no file.
const NO_FILE: &[&str] = &["/dev/null", "/dev/stdout", "/dev/stderr", "/dev/tty"];

impl CommandFacts {
    fn of(c: &airlock_shell::SimpleCommand) -> CommandFacts {
        // find's primaries decide what it does: spelled through a variable, or handed over by
        // xargs from its input, they are not seen.
        let unseen_find_args = c.program == "find"
            && (c.wrappers.iter().any(|w| w == "xargs")
                || c.argv.iter().any(|a| a.contains('$') || a.contains('`')));
        CommandFacts {
            program: program_name(&c.path, &c.program),
            argv: with_normal_paths(&c.argv),
            flags: c.flags.iter().cloned().collect(),
            wrappers: c
                .wrappers
                .iter()
                .zip(c.wrapper_paths.iter().chain(std::iter::repeat(&String::new())))
                .map(|(base, path)| program_name(path, base))
                .collect(),
            redirects: c.redirects.clone(),
            unparsed: unseen_find_args,
        }
    }

    fn unparsed() -> CommandFacts {
        CommandFacts {
            unparsed: true,
            ..CommandFacts::default()
        }
    }

    /// Where output redirections write: the top directory of each absolute target (`/tmp`,
    /// `/usr`), `~` for the home directory, `.` for a path relative to an unknown directory;
    /// `/dev/null` and the standard streams write nothing.
    fn write_roots(&self) -> Vec<String> {
        let mut roots: Vec<String> = Vec::new();
        for target in &self.redirects {
            let root = if target.starts_with("/dev/fd/") || NO_FILE.contains(&target.as_str()) {
                continue;
            } else if let Some(abs) = normal_path(target) {
                abs.split('/')
                    .nth(1)
                    .map(|t| format!("/{t}"))
                    .unwrap_or_else(|| "/".into())
            } else if target == "~" || target.starts_with("~/") || target.starts_with('$') {
                "~".to_string()
            } else {
                ".".to_string()
            };
            if !roots.contains(&root) {
                roots.push(root);
            }
        }
        roots
    }
}

/// The name rules see for a program: its base name when it is named bare or from a system bin
/// directory, else the path as written.
fn program_name(path: &str, base: &str) -> String {
    if !path.contains('/') {
        return base.to_string();
    }
    match normal_path(path) {
        Some(p)
            if SYSTEM_BIN_DIRS
                .iter()
                .any(|d| p.rsplit_once('/').is_some_and(|(dir, _)| dir == *d)) =>
        {
            base.to_string()
        }
        Some(_) | None => path.to_string(),
    }
}

/// An absolute path with `.`, `..` and repeated or trailing slashes resolved lexically.
fn normal_path(path: &str) -> Option<String> {
    if !path.starts_with('/') {
        return None;
    }
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    Some(format!("/{}", parts.join("/")))
}

/// The arguments, plus the normal form of each absolute path among them (`/usr/` also as `/usr`,
/// `/tmp/../etc` also as `/etc`), so rules that name paths match every spelling.
fn with_normal_paths(argv: &[String]) -> Vec<String> {
    let mut out = argv.to_vec();
    for a in argv {
        let normal = match a.strip_suffix("/*") {
            Some(base) => normal_path(if base.is_empty() { "/" } else { base }).map(|b| {
                if b == "/" {
                    "/*".to_string()
                } else {
                    format!("{b}/*")
                }
            }),
            None => normal_path(a),
        };
        if let Some(n) = normal {
            if !out.contains(&n) {
                out.push(n);
            }
        }
    }
    out
}

fn s(v: &str) -> RestrictedExpression {
    RestrictedExpression::new_string(v.to_string())
}

fn set(v: &[String]) -> RestrictedExpression {
    RestrictedExpression::new_set(v.iter().map(|x| s(x)))
}

fn base_name(p: &str) -> String {
    p.rsplit('/').next().unwrap_or(p).to_string()
}

fn one_line(text: &str) -> String {
    text.replace('\n', "⏎")
}

fn with_command(mut facts: Facts, c: &CommandFacts) -> Facts {
    facts.insert("program", s(&c.program));
    facts.insert("argv", set(&c.argv));
    facts.insert("flags", set(&c.flags));
    facts.insert("wrappers", set(&c.wrappers));
    facts.insert("redirects", set(&c.redirects));
    facts.insert("write_roots", set(&c.write_roots()));
    facts.insert("parsed", RestrictedExpression::new_bool(!c.unparsed));
    facts
}

/// Every attribute, with "" / 0 / false / empty sets where it does not apply.
fn focus_facts(focus: Focus<'_>) -> Facts {
    let n = RestrictedExpression::new_long;
    let f: Facts = HashMap::from([
        ("has_point", RestrictedExpression::new_bool(false)),
        ("x", n(0)),
        ("y", n(0)),
        ("button", s("")),
        ("clicks", n(0)),
        ("text", s("")),
        ("text_len", n(0)),
        ("key_combo", s("")),
        ("command", s("")),
        ("window_title", s(focus.title)),
        ("window_class", s(focus.class)),
    ]);
    with_command(f, &CommandFacts::default())
}

fn action_facts(action: &Action, focus: Focus<'_>) -> Facts {
    let n = RestrictedExpression::new_long;
    let point = action.point();
    let (button, clicks) = match action {
        Action::Click { button, count, .. } => (button.as_str(), i64::from(*count)),
        Action::MouseDown { button } | Action::MouseUp { button } | Action::Drag { button, .. } => {
            (button.as_str(), 0)
        }
        _ => ("", 0),
    };
    let text = action.text().unwrap_or("");
    let mut f = focus_facts(focus);
    f.insert("has_point", RestrictedExpression::new_bool(point.is_some()));
    f.insert("x", n(point.map_or(0, |p| i64::from(p.x))));
    f.insert("y", n(point.map_or(0, |p| i64::from(p.y))));
    f.insert("button", s(button));
    f.insert("clicks", n(clicks));
    f.insert("text", s(text));
    f.insert("text_len", n(text.len() as i64));
    f.insert("key_combo", s(&action.key_combo().unwrap_or_default()));
    f.insert("command", s(&action.command_line().unwrap_or_default()));
    // An exec's program facts come from parsing its argv (`Policy::evaluate`).
    f
}

/// The name of the action a connection is judged as.
const CONNECT: &str = "connect";

/// A connection's context: every attribute of the schema's `Connection`, with "" for the address
/// and its class before resolution.
/// The context of a file action (the schema's `FileOp`); `None` for other actions.
fn file_facts(action: &Action) -> Option<Facts> {
    let (direction, size) = match action {
        Action::ReadFile { size, .. } => ("out", *size),
        Action::WriteFile { size, .. } => ("in", *size),
        Action::ListFiles { .. } => ("out", 0),
        _ => return None,
    };
    let path = action.file_path().unwrap_or_default();
    Some(HashMap::from([
        ("path", s(path)),
        (
            "size",
            RestrictedExpression::new_long(i64::try_from(size).unwrap_or(i64::MAX)),
        ),
        ("direction", s(direction)),
    ]))
}

fn connect_facts(c: &Connect<'_>) -> Facts {
    let (address, class) = c.resolved.map_or(("", ""), |r| (r.address, r.class));
    HashMap::from([
        ("host", s(c.host)),
        ("port", RestrictedExpression::new_long(i64::from(c.port))),
        ("protocol", s(c.protocol)),
        ("ip_literal", RestrictedExpression::new_bool(c.ip_literal)),
        ("resolved", RestrictedExpression::new_bool(c.resolved.is_some())),
        ("address", s(address)),
        ("address_class", s(class)),
    ])
}

/// `text` as the inside of a Cedar string literal: quotes, backslashes and control characters
/// escaped, so it can neither end the string nor a `//` comment's line.
fn cedar_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for ch in text.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{{{:x}}}", u32::from(c))),
            c => out.push(c),
        }
    }
    out
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
        p.evaluate(&WHO, a, Focus { title, class: "" }).decision
    }

    #[test]
    fn the_default_policy_lets_an_agent_move_files_at_home_asks_elsewhere_and_denies_system_trees() {
        let p = Policy::default_policy().unwrap();
        let write = |path: &str| Action::write_file(path, b"hello".to_vec()).unwrap();
        assert_eq!(decide(&p, &write("/root/notes.txt"), ""), Decision::Allow);
        assert_eq!(decide(&p, &write("/etc/passwd"), ""), Decision::Ask);
        assert_eq!(
            decide(&p, &write("/rootkit/x"), ""),
            Decision::Ask,
            "/root is not a prefix match"
        );
        assert_eq!(
            decide(&p, &write("/root/.bashrc"), ""),
            Decision::Ask,
            "start-up files run commands"
        );
        assert_eq!(
            decide(&p, &write("/root/.config/autostart/x.desktop"), ""),
            Decision::Ask
        );
        assert_eq!(
            decide(&p, &Action::read_file("/root/.ssh/id_ed25519", 400).unwrap(), ""),
            Decision::Ask
        );
        assert_eq!(
            decide(&p, &Action::list_files("/root/.config").unwrap(), ""),
            Decision::Allow
        );
        assert_eq!(
            decide(&p, &Action::list_files("/root").unwrap(), ""),
            Decision::Allow
        );
        assert_eq!(
            decide(&p, &Action::read_file("/proc/1/environ", 0).unwrap(), ""),
            Decision::Deny
        );
        assert_eq!(
            decide(&p, &Action::list_files("/sys").unwrap(), ""),
            Decision::Deny
        );
        assert_eq!(
            decide(&p, &Action::read_file("/dev/sda", 0).unwrap(), ""),
            Decision::Deny
        );
    }

    #[test]
    fn a_large_read_asks_even_at_home_and_names_the_rule() {
        let p = Policy::default_policy().unwrap();
        let unknown = p.evaluate(
            &WHO,
            &Action::read_file("/root/a.bin", u64::MAX).unwrap(),
            Focus::NONE,
        );
        assert_eq!(
            unknown.decision,
            Decision::Ask,
            "a read whose size the gateway could not tell asks"
        );
        assert_eq!(
            decide(&p, &Action::read_file("/root/a.bin", 4 << 20).unwrap(), ""),
            Decision::Allow
        );
        let big = p.evaluate(
            &WHO,
            &Action::read_file("/root/a.bin", (4 << 20) + 1).unwrap(),
            Focus::NONE,
        );
        assert_eq!(big.decision, Decision::Ask);
        assert!(big.rules.iter().any(|r| r == "large-read"), "{:?}", big.rules);
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
            Focus {
                title: "Password required",
                class: "Dialog",
            },
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
        assert_eq!(decide(&p, &exec(&["sh", "-c", "touch x"]), ""), Decision::Ask);
        assert_eq!(decide(&p, &exec(&["rm", "-rf", "/tmp/x"]), ""), Decision::Ask);
        for argv in [
            &["rm", "-rf", "/"][..],
            &["rm", "-fr", "/"],
            &["sh", "-c", "rm -rf / --no-preserve-root"],
            &["rm", "-rf", "/*"],
            &["mkfs.ext4", "/dev/vda"],
        ] {
            let e = p.evaluate(&WHO, &exec(argv), Focus::NONE);
            assert_eq!(e.decision, Decision::Deny, "{argv:?}");
            assert_eq!(e.rules, vec!["wipe-the-system"]);
        }
        // Typed into a terminal, the line submitted is the command judged (the gateway knows
        // which window is a terminal); as text alone, typing is typing.
        assert_eq!(typed(&p, "sudo rm -rf /").decision, Decision::Deny);
        assert_eq!(
            decide(
                &p,
                &anthropic(json!({"action": "type", "text": "sudo rm -rf /\n"})),
                "notes.txt"
            ),
            Decision::Allow
        );
    }

    fn rules_of(e: &Evaluation) -> Vec<&str> {
        e.rules.iter().map(String::as_str).collect()
    }

    fn typed(p: &Policy, line: &str) -> Evaluation {
        p.evaluate_terminal(&WHO, TerminalCommand::Known(line), Focus::NONE)
            .expect("the line runs something")
    }

    #[test]
    fn every_spelling_of_a_recursive_delete_asks() {
        let p = Policy::default_policy().unwrap();
        for argv in [
            &["rm", "-rf", "x"][..],
            &["rm", "-r", "-f", "x"],
            &["rm", "-fR", "x"],
            &["rm", "--recursive", "--force", "x"],
            &["rm", "-R", "x"],
            &["/bin/rm", "--force", "-r", "x"],
        ] {
            let e = p.evaluate(&WHO, &exec(argv), Focus::NONE);
            assert_eq!(e.decision, Decision::Ask, "{argv:?}");
            assert!(rules_of(&e).contains(&"recursive-delete"), "{argv:?}: {e:?}");
        }
        for line in [
            "rm -r -f ~/scratch",
            "rm -fR ~/scratch",
            "rm --recursive --force ~/scratch",
            r"r\m -rf x",
        ] {
            let e = typed(&p, line);
            assert!(rules_of(&e).contains(&"recursive-delete"), "{line}: {e:?}");
        }
    }

    #[test]
    fn every_spelling_of_wiping_the_system_is_denied() {
        let p = Policy::default_policy().unwrap();
        for line in [
            "rm -r -f /",
            "rm -fR /",
            "rm --recursive --force --no-preserve-root /",
            "sudo rm -rf /*",
            "echo bye; rm -rf /usr",
            "sh -c 'rm -rf /'",
            "mkfs.ext4 /dev/vda",
            "dd if=/dev/zero of=/dev/sda",
            ":(){ :|:& };:",
        ] {
            let e = typed(&p, line);
            assert_eq!(e.decision, Decision::Deny, "{line}: {e:?}");
            assert_eq!(rules_of(&e), ["wipe-the-system"], "{line}");
        }
    }

    #[test]
    fn wrappers_are_judged_by_what_they_run() {
        let p = Policy::default_policy().unwrap();
        assert_eq!(decide(&p, &exec(&["sh", "-c", "echo hi"]), ""), Decision::Allow);
        assert_eq!(
            decide(&p, &exec(&["timeout", "5", "cat", "/etc/hostname"]), ""),
            Decision::Allow
        );
        for argv in [
            &["env", "-i", "touch", "x"][..],
            &["nohup", "touch", "x"],
            &["xargs", "touch"],
            &["bash", "-lc", "ls; touch x"],
            &["timeout", "-s", "KILL", "5", "touch", "x"],
        ] {
            let e = p.evaluate(&WHO, &exec(argv), Focus::NONE);
            assert_eq!(e.decision, Decision::Ask, "{argv:?}");
            assert!(rules_of(&e).contains(&"exec-other"), "{argv:?}: {e:?}");
            assert!(
                e.reason.contains("touch"),
                "the reason names the program: {}",
                e.reason
            );
        }
        let e = p.evaluate(&WHO, &exec(&["sudo", "ls"]), Focus::NONE);
        assert_eq!(rules_of(&e), ["another-user"]);
    }

    #[test]
    fn programs_that_run_programs_or_send_input_ask() {
        let p = Policy::default_policy().unwrap();
        let e = p.evaluate(&WHO, &exec(&["xdotool", "type", "rm -rf ~\n"]), Focus::NONE);
        assert_eq!(e.decision, Decision::Ask);
        assert!(rules_of(&e).contains(&"input-injection"), "{e:?}");
        for argv in [
            &["find", ".", "-exec", "cat", "{}", ";"][..],
            &["find", ".", "-execdir", "cat", "{}", "+"],
            &["find", ".", "-ok", "cat", "{}", ";"],
            &["find", "/tmp", "-delete"],
            &["find", "/", "-fprint", "/tmp/list"],
        ] {
            let e = p.evaluate(&WHO, &exec(argv), Focus::NONE);
            assert_eq!(e.decision, Decision::Ask, "{argv:?}");
            assert!(rules_of(&e).contains(&"find-runs-or-deletes"), "{argv:?}: {e:?}");
        }
        let e = p.evaluate(
            &WHO,
            &exec(&["find", ".", "-exec", "sh", "-c", "rm -rf /", ";"]),
            Focus::NONE,
        );
        assert_eq!(e.decision, Decision::Deny, "what find runs is judged too");
        assert_eq!(
            decide(&p, &exec(&["find", "/tmp", "-name", "*.txt"]), ""),
            Decision::Allow
        );
    }

    #[test]
    fn command_lines_that_cannot_be_parsed_or_seen_whole_ask() {
        let p = Policy::default_policy().unwrap();
        for line in ["echo 'unbalanced", "cat <<EOF", "case x in y) ls;; esac", "ls \\"] {
            let e = typed(&p, line);
            assert_eq!(e.decision, Decision::Ask, "{line}: {e:?}");
            assert!(rules_of(&e).contains(&"unparsed-command"), "{line}: {e:?}");
            assert!(e.reason.contains("cannot be parsed"), "{}", e.reason);
        }
        let e = p
            .evaluate_terminal(
                &WHO,
                TerminalCommand::Unknown {
                    known: "ls",
                    why: "after Up (history recall)",
                },
                Focus::NONE,
            )
            .expect("an unknown line is judged");
        assert_eq!(e.decision, Decision::Ask);
        assert!(e.reason.contains("history recall"), "{}", e.reason);
        assert_eq!(
            p.evaluate(&WHO, &exec(&["sh", "-c", "echo 'x"]), Focus::NONE)
                .decision,
            Decision::Ask
        );
    }

    #[test]
    fn harmless_typed_commands_are_allowed_and_empty_lines_run_nothing() {
        let p = Policy::default_policy().unwrap();
        for line in [
            "ls -la ~",
            "echo 'hello' > /tmp/x.txt",
            "cat /etc/hostname | wc -l",
            "cd /tmp && pwd",
        ] {
            assert_eq!(typed(&p, line).decision, Decision::Allow, "{line}");
        }
        for line in ["", "   ", "# only a comment", "X=1"] {
            assert!(
                p.evaluate_terminal(&WHO, TerminalCommand::Known(line), Focus::NONE)
                    .is_none(),
                "{line:?} runs nothing"
            );
        }
    }

    #[test]
    fn the_strictest_evaluation_wins_with_every_deciding_rule() {
        let ev = |d, r: &str| Evaluation {
            decision: d,
            rules: vec![r.to_string()],
            reason: format!("because {r}"),
            defaulted: false,
            shadow: d,
            grantable: true,
        };
        let e = strictest([
            ev(Decision::Allow, "a"),
            ev(Decision::Ask, "b"),
            ev(Decision::Ask, "c"),
        ])
        .unwrap();
        assert_eq!((e.decision, rules_of(&e)), (Decision::Ask, vec!["b", "c"]));
        assert_eq!(e.reason, "because b; because c");
        let e = strictest([ev(Decision::Ask, "b"), ev(Decision::Deny, "d")]).unwrap();
        assert_eq!((e.decision, rules_of(&e)), (Decision::Deny, vec!["d"]));
        assert!(strictest([]).is_none());
    }

    #[test]
    fn rules_see_the_window_class() {
        let p = Policy::new(
            r#"@id("no-typing-in-browsers") forbid(principal, action == Action::"type", resource)
                 when { context.window_class == "firefox-esr" };
               @id("rest") permit(principal, action, resource);"#,
            Decision::Ask,
        )
        .unwrap();
        let t = anthropic(json!({"action": "type", "text": "hi"}));
        let firefox = Focus {
            title: "Mozilla Firefox",
            class: "firefox-esr",
        };
        assert_eq!(p.evaluate(&WHO, &t, firefox).decision, Decision::Deny);
        assert_eq!(p.evaluate(&WHO, &t, Focus::NONE).decision, Decision::Allow);
    }

    #[test]
    fn in_shadow_mode_a_forbidden_spelling_cannot_turn_an_ask_into_an_allow() {
        let p = Policy::default_policy().unwrap();
        for line in ["touch /tmp/x #:(){", "touch /tmp/x; mkfsx", "rm -rf /"] {
            let e = typed(&p, line);
            assert_eq!(e.decision, Decision::Deny, "{line}");
            assert_eq!(enforce(&e, Mode::Shadow).decision, Decision::Ask, "{line}: {e:?}");
        }
    }

    #[test]
    fn writing_a_file_outside_tmp_asks() {
        let p = Policy::default_policy().unwrap();
        for line in [
            "echo 'touch /tmp/x' >> ~/.bashrc",
            "cat /bin/sh > /usr/bin/id",
            "echo x > notes.txt",
            "echo x > /tmp/../etc/profile",
            "printf x 2> /root/.inputrc",
        ] {
            let e = typed(&p, line);
            assert_eq!(e.decision, Decision::Ask, "{line}: {e:?}");
            assert!(rules_of(&e).contains(&"writes-outside-tmp"), "{line}: {e:?}");
        }
        for line in ["echo x > /tmp/y.txt", "ls > /dev/null 2>&1", "echo x >> /tmp/a/b"] {
            assert_eq!(typed(&p, line).decision, Decision::Allow, "{line}");
        }
    }

    #[test]
    fn a_program_named_by_a_path_outside_the_system_bin_directories_is_not_its_base_name() {
        let p = Policy::default_policy().unwrap();
        assert_eq!(decide(&p, &exec(&["/tmp/x/ls"]), ""), Decision::Ask);
        assert_eq!(decide(&p, &exec(&["/usr/bin/ls"]), ""), Decision::Allow);
        assert_eq!(decide(&p, &exec(&["/usr/bin/../../tmp/ls"]), ""), Decision::Ask);
        assert_eq!(typed(&p, "./ls").decision, Decision::Ask);
        assert_eq!(typed(&p, "/bin/ls -la").decision, Decision::Allow);
    }

    #[test]
    fn programs_that_write_files_or_run_programs_are_off_the_allowlist() {
        let p = Policy::default_policy().unwrap();
        for argv in [
            &["sort", "-S", "1K", "--compress-program=sh", "f"][..],
            &["uniq", "a", "b"],
        ] {
            assert_eq!(decide(&p, &exec(argv), ""), Decision::Ask, "{argv:?}");
        }
        for line in ["E=-exec; find . $E touch x \\;", "echo -delete | xargs find ~"] {
            let e = typed(&p, line);
            assert!(rules_of(&e).contains(&"unparsed-command"), "{line}: {e:?}");
        }
        let e = typed(&p, "pkexec ls");
        assert!(rules_of(&e).contains(&"another-user"), "{e:?}");
    }

    #[test]
    fn paths_spelled_differently_are_the_same_path_to_the_wipe_rule() {
        let p = Policy::default_policy().unwrap();
        for line in ["rm -rf /usr/", "rm -rf //", "rm -rf /tmp/../etc", "rm -rf /./*"] {
            assert_eq!(typed(&p, line).decision, Decision::Deny, "{line}");
        }
    }

    #[test]
    fn asks_the_policy_marks_never_granted_are_not_grantable() {
        let p = Policy::default_policy().unwrap();
        assert!(!typed(&p, "rm -r x").grantable);
        assert!(!typed(&p, "echo 'x").grantable);
        assert!(typed(&p, "df -h").grantable);
    }

    #[test]
    fn the_default_decision_applies_when_nothing_matches() {
        let p = Policy::new(
            r#"@id("observe") permit(principal, action == Action::"screenshot", resource);"#,
            Decision::Ask,
        )
        .unwrap();
        let e = p.evaluate(&WHO, &exec(&["ls"]), Focus::NONE);
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
        assert_eq!(p.evaluate(&bob, &click(5), Focus::NONE).decision, Decision::Deny);
        let rogue = Subject {
            agent: "rogue",
            ..WHO
        };
        assert_eq!(
            p.evaluate(&rogue, &click(5), Focus::NONE).decision,
            Decision::Deny
        );
        let prod = Subject {
            sandbox: "prod",
            ..WHO
        };
        assert_eq!(p.evaluate(&prod, &click(5), Focus::NONE).decision, Decision::Ask);
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
        let p = Policy::new(
            r#"@id("all") permit(principal, action, resource);
               @id("no-touch") forbid(principal, action == Action::"exec", resource) when { context.program == "touch" };"#,
            Decision::Ask,
        )
        .unwrap();
        let e = p.evaluate(&WHO, &exec(&["touch", "x"]), Focus::NONE);
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
        let p = Policy::default_policy().unwrap();
        let ask = p.evaluate(&WHO, &exec(&["touch", "x"]), Focus::NONE);
        assert_eq!(enforce(&ask, Mode::Shadow).decision, Decision::Ask);
    }

    fn connect(host: &str, port: u16) -> Connect<'_> {
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        Connect {
            host,
            port,
            protocol: "connect",
            ip_literal: bare.parse::<std::net::IpAddr>().is_ok(),
            resolved: None,
        }
    }

    fn resolved<'a>(host: &'a str, port: u16, address: &'a str, class: &'a str) -> Connect<'a> {
        Connect {
            resolved: Some(Resolved { address, class }),
            ..connect(host, port)
        }
    }

    /// The default policy with an operator's rule for docs.example.org:443.
    fn docs_allowed() -> Policy {
        Policy::default_policy()
            .unwrap()
            .with_rule(&connect_rule("docs.example.org", 443))
            .unwrap()
    }

    #[test]
    fn a_connection_to_a_destination_no_rule_names_asks_and_is_grantable() {
        let p = Policy::default_policy().unwrap();
        let e = p.evaluate_connect(&WHO, &connect("docs.example.org", 443));
        assert_eq!(e.decision, Decision::Ask);
        assert_eq!(rules_of(&e), ["new-destination"]);
        assert!(e.grantable);
        assert!(!e.defaulted);
        assert!(e.reason.contains("docs.example.org:443"), "{}", e.reason);
    }

    #[test]
    fn a_connection_to_an_ip_literal_is_denied() {
        let p = Policy::default_policy().unwrap();
        for host in ["203.0.113.7", "[2001:db8::1]"] {
            let e = p.evaluate_connect(&WHO, &connect(host, 443));
            assert_eq!(e.decision, Decision::Deny, "{host}");
            assert_eq!(rules_of(&e), ["ip-literal"], "{host}");
        }
    }

    #[test]
    fn a_paste_site_and_its_subdomains_are_denied() {
        let p = Policy::default_policy().unwrap();
        for host in [
            "pastebin.com",
            "eu.pastebin.com",
            "x.y.ngrok-free.app",
            "0x0.st",
            "dnslog.cn",
        ] {
            let e = p.evaluate_connect(&WHO, &connect(host, 443));
            assert_eq!(e.decision, Decision::Deny, "{host}");
            assert_eq!(rules_of(&e), ["exfiltration-helpers"], "{host}");
        }
    }

    #[test]
    fn a_name_that_merely_ends_like_a_paste_site_is_not_one() {
        let p = Policy::default_policy().unwrap();
        for host in ["notpastebin.com", "pastebin.com.example.org"] {
            let e = p.evaluate_connect(&WHO, &connect(host, 443));
            assert_eq!(rules_of(&e), ["new-destination"], "{host}");
        }
    }

    #[test]
    fn an_allowed_host_that_resolves_to_loopback_is_denied() {
        let e = docs_allowed()
            .evaluate_connect(&WHO, &resolved("docs.example.org", 443, "127.0.0.1", "loopback"));
        assert_eq!(e.decision, Decision::Deny);
        assert_eq!(rules_of(&e), ["special-address"]);
        assert!(e.reason.contains("127.0.0.1"), "{}", e.reason);
    }

    #[test]
    fn an_allowed_host_that_resolves_to_a_public_address_is_not_denied() {
        let e = docs_allowed()
            .evaluate_connect(&WHO, &resolved("docs.example.org", 443, "203.0.113.7", "public"));
        assert_eq!(e.decision, Decision::Allow);
    }

    #[test]
    fn every_address_class_but_public_is_denied_once_resolved() {
        let p = docs_allowed();
        for class in [
            "loopback",
            "private",
            "shared_nat",
            "link_local",
            "metadata",
            "unspecified",
            "multicast",
            "reserved",
            "",
        ] {
            let e = p.evaluate_connect(&WHO, &resolved("docs.example.org", 443, "10.0.0.1", class));
            assert_eq!(e.decision, Decision::Deny, "{class:?}");
            assert_eq!(rules_of(&e), ["special-address"], "{class:?}");
        }
    }

    #[test]
    fn an_operator_rule_allows_exactly_its_host_and_port() {
        let p = docs_allowed();
        let e = p.evaluate_connect(&WHO, &connect("docs.example.org", 443));
        assert_eq!(e.decision, Decision::Allow);
        assert_eq!(rules_of(&e), ["allow-connect-docs.example.org-443"]);
        for other in [
            connect("docs.example.org", 8443),
            connect("evil.docs.example.org", 443),
        ] {
            let e = p.evaluate_connect(&WHO, &other);
            assert_eq!(e.decision, Decision::Ask, "{other:?}");
            assert_eq!(rules_of(&e), ["new-destination"], "{other:?}");
        }
    }

    #[test]
    fn an_operator_rule_does_not_override_a_forbid() {
        let p = Policy::default_policy()
            .unwrap()
            .with_rule(&connect_rule("[2001:db8::1]", 443))
            .unwrap()
            .with_rule(&connect_rule("pastebin.com", 443))
            .unwrap();
        let e = p.evaluate_connect(&WHO, &connect("[2001:db8::1]", 443));
        assert_eq!(rules_of(&e), ["ip-literal"]);
        let e = p.evaluate_connect(&WHO, &connect("pastebin.com", 443));
        assert_eq!(rules_of(&e), ["exfiltration-helpers"]);
    }

    #[test]
    fn an_exception_to_the_special_address_rule_lets_only_its_host_reach_loopback() {
        let rule = r#"when { context.resolved && context.address_class != "public" };"#;
        assert!(DEFAULT_POLICY.contains(rule));
        let text = DEFAULT_POLICY.replace(
            rule,
            &format!(
                r#"{} unless {{ context.host == "intranet.test" }};"#,
                rule.trim_end_matches(';')
            ),
        );
        let p = Policy::new(&text, Decision::Ask).unwrap();
        let e = p.evaluate_connect(&WHO, &resolved("intranet.test", 80, "127.0.0.1", "loopback"));
        assert_ne!(e.decision, Decision::Deny, "{e:?}");
        let e = p.evaluate_connect(&WHO, &resolved("other.test", 80, "127.0.0.1", "loopback"));
        assert_eq!(rules_of(&e), ["special-address"]);
    }

    #[test]
    fn adding_a_rule_whose_id_is_taken_is_refused() {
        let rule = connect_rule("docs.example.org", 443);
        let e = docs_allowed().with_rule(&rule).unwrap_err();
        assert!(
            matches!(&e, PolicyError::DuplicateId(id) if id == "allow-connect-docs.example.org-443"),
            "{e}"
        );
    }

    #[test]
    fn adding_a_rule_keeps_the_default_decision_and_leaves_the_policy_unchanged() {
        let p = Policy::new(
            r#"@id("observe") permit(principal, action == Action::"wait", resource);"#,
            Decision::Deny,
        )
        .unwrap();
        let q = p.with_rule(&connect_rule("docs.example.org", 443)).unwrap();
        assert_eq!(q.default_decision(), Decision::Deny);
        assert!(q.text().starts_with(p.text()));
        assert_ne!(p.version(), q.version());
        let e = p.evaluate_connect(&WHO, &connect("docs.example.org", 443));
        assert_eq!((e.decision, e.defaulted), (Decision::Deny, true));
    }

    #[test]
    fn a_host_that_would_break_out_of_the_rule_is_escaped() {
        let host = "a\"b\\c\nd";
        let p = Policy::default_policy()
            .unwrap()
            .with_rule(&connect_rule(host, 80))
            .unwrap();
        assert_eq!(
            p.evaluate_connect(&WHO, &connect(host, 80)).decision,
            Decision::Allow
        );
        assert_eq!(
            p.evaluate_connect(&WHO, &connect("a", 80)).decision,
            Decision::Ask
        );
    }

    #[test]
    fn desktop_rules_never_match_a_connection() {
        let p = Policy::default_policy().unwrap();
        let network = [
            "new-destination",
            "ip-literal",
            "exfiltration-helpers",
            "special-address",
        ];
        for c in [
            connect("docs.example.org", 443),
            connect("203.0.113.7", 22),
            resolved("docs.example.org", 443, "203.0.113.7", "public"),
        ] {
            let e = p.evaluate_connect(&WHO, &c);
            assert!(
                e.rules.iter().all(|r| network.contains(&r.as_str())),
                "{c:?}: {e:?}"
            );
        }
    }

    #[test]
    fn a_rule_over_every_action_cannot_read_attributes_only_some_actions_have() {
        let e = Policy::new(
            r#"@id("x") forbid(principal, action, resource) when { context.program == "curl" };"#,
            Decision::Ask,
        )
        .unwrap_err();
        assert!(matches!(e, PolicyError::Invalid(_)), "{e}");
    }

    #[test]
    fn fallback_on_a_forbid_is_a_clear_error() {
        let e = Policy::new(
            r#"@id("x") @fallback forbid(principal, action == Action::"connect", resource);"#,
            Decision::Ask,
        )
        .unwrap_err();
        assert!(matches!(e, PolicyError::FallbackOnForbid(_)), "{e}");
    }

    #[test]
    fn a_connection_whose_context_does_not_fit_the_schema_is_denied() {
        let p = Policy::default_policy().unwrap();
        let e = p.judge(&WHO, CONNECT, focus_facts(Focus::NONE));
        assert_eq!((e.decision, e.shadow), (Decision::Deny, Decision::Deny));
        assert!(e.reason.contains("could not be evaluated"), "{}", e.reason);
    }
}
