// Generated from the Rust API types by supervisor/tests/api_types.rs (ts-rs). Do not edit:
// AIRLOCK_WRITE_TYPES=1 cargo test -p airlock-supervisor --test api_types

/**
 * Who may do what: view links and refusals for a role.
 */
export type AccessRecord = { "event": "link_created", 
/**
 * The link.
 */
link: ViewLink, } | { "event": "link_used", 
/**
 * The link's id.
 */
link: string, } | { "event": "link_revoked", 
/**
 * The link as it was then.
 */
link: ViewLink, } | { "event": "link_refused", 
/**
 * The link's id.
 */
link: string, 
/**
 * Why it was refused.
 */
reason: string, } | { "event": "refused", 
/**
 * What was asked (`POST /api/sandboxes/ID/lease`, `viewer takeover`).
 */
request: string, 
/**
 * Why it was refused.
 */
forbidden: Forbidden, };

/**
 * What an agent asks to do.
 */
export type Action = { "kind": "key", 
/**
 * The combination.
 */
combo: string, } | { "kind": "type", 
/**
 * The text.
 */
text: string, } | { "kind": "mouse_move", 
/**
 * Where to.
 */
to: Point, } | { "kind": "click", 
/**
 * Where; `None` clicks where the pointer is.
 */
at: Point | null, 
/**
 * Which button.
 */
button: MouseButton, 
/**
 * 1, 2 or 3.
 */
count: number, 
/**
 * Keys held during the click (`shift`, `ctrl+shift`).
 */
hold: string | null, } | { "kind": "mouse_down", 
/**
 * Which button.
 */
button: MouseButton, } | { "kind": "mouse_up", 
/**
 * Which button.
 */
button: MouseButton, } | { "kind": "drag", 
/**
 * Two or more points.
 */
path: Array<Point>, 
/**
 * Which button.
 */
button: MouseButton, } | { "kind": "scroll", 
/**
 * Where; `None` scrolls where the pointer is.
 */
at: Point | null, 
/**
 * Horizontal clicks.
 */
dx: number, 
/**
 * Vertical clicks.
 */
dy: number, 
/**
 * Keys held while scrolling.
 */
hold: string | null, } | { "kind": "hold_key", 
/**
 * The combination.
 */
combo: string, 
/**
 * How long.
 */
duration_ms: number, } | { "kind": "wait", 
/**
 * How long.
 */
duration_ms: number, } | { "kind": "screenshot" } | { "kind": "cursor_position" } | { "kind": "zoom", 
/**
 * Which part.
 */
region: Region, } | { "kind": "exec", 
/**
 * Program and arguments.
 */
argv: Array<string>, 
/**
 * Text for its stdin.
 */
stdin: string, 
/**
 * Kill it after this long.
 */
timeout_ms: number, } | { "kind": "read_file", 
/**
 * Absolute, normalised path.
 */
path: string, 
/**
 * Its size, as the gateway found it before judging (0 when it could not tell).
 */
size: number, } | { "kind": "write_file", 
/**
 * Absolute, normalised path.
 */
path: string, 
/**
 * Bytes.
 */
size: number, 
/**
 * SHA-256 of the bytes, hex (the bytes themselves are not recorded).
 */
sha256: string, } | { "kind": "list_files", 
/**
 * Absolute, normalised path.
 */
path: string, };

/**
 * Policy decided on an agent's action.
 */
export type ActionDecided = { 
/**
 * The action as judged (after an operator's edit, the edited one).
 */
action: Action, 
/**
 * The policy's evaluation.
 */
evaluation: Evaluation, 
/**
 * What the gate decided (in shadow mode a denial lets the action through: see `shadow_denied`).
 */
decision: Decision, 
/**
 * Shadow mode let through what the policy denies.
 */
shadow_denied: boolean, 
/**
 * What the keystrokes submit or paste in a terminal, when they land in one.
 */
terminal: TerminalInput | null, };

/**
 * An agent's action was carried out, or failed in the sandbox.
 */
export type ActionExecuted = { 
/**
 * The action.
 */
action: Action, 
/**
 * What it returned.
 */
result: ActionOutcome, };

/**
 * The kind of an action: what policies, grants and the ledger name it by.
 */
export type ActionKind = "key" | "type" | "mouse_move" | "click" | "mouse_down" | "mouse_up" | "drag" | "scroll" | "hold_key" | "wait" | "screenshot" | "cursor_position" | "zoom" | "exec" | "terminal_command" | "read_file" | "write_file" | "list_files";

/**
 * What an executed action returned, as recorded: images by hash only, command output as text.
 */
export type ActionOutcome = Failed | Done | ImageResult | CursorResult | ExecRecord | HandbackResult | FileMoved | Listed;

/**
 * An agent's action was refused.
 */
export type ActionRefused = { 
/**
 * The action.
 */
action: Action, 
/**
 * Why, in a sentence (what the agent was told).
 */
reason: string, 
/**
 * An operator's approval became void because the screen changed before it ran.
 */
void?: boolean, 
/**
 * Control had just come back to the agent: it gets a fresh screenshot instead.
 */
handback?: HandbackSummary, };

/**
 * Who caused an entry: the agent, the principal it acts for, the human operator.
 */
export type Actor = { 
/**
 * The agent (model or harness) name.
 */
agent: string | null, 
/**
 * The user or service the agent acts for.
 */
principal: string | null, 
/**
 * The human operator at the console.
 */
operator: string | null, };

/**
 * One ask.
 */
export type Approval = { 
/**
 * Unique within the supervisor.
 */
id: number, 
/**
 * The sandbox.
 */
sandbox: string, 
/**
 * What the agent asked to do.
 */
action: Action, 
/**
 * Content hash of the frame shown to the operator — the hash the approval is bound to (SHA-256
 * over the RGBA pixels, the same hash the streaming mirror gives its frames).
 */
frame: string, 
/**
 * The ledger blob holding that frame as PNG (what an operator's console displays).
 */
frame_png: string, 
/**
 * The policy's reasons for asking (the `@id`s of the rules that asked).
 */
reasons: Array<string>, 
/**
 * The policy's sentence for why it asks, for the operator (empty when not given).
 */
reason: string, 
/**
 * What the keystrokes do in a terminal, when they submit command lines or paste there: the
 * command lines are what the policy judged and what the operator decides on.
 */
terminal: TerminalInput | null, 
/**
 * Whether "allow similar" may grant this kind ahead (not for asks the policy marks
 * `@grant("never")`: unparsed lines, pastes, recursive deletes, another user...).
 */
grantable: boolean, 
/**
 * When it was asked.
 */
requested_ms: number, 
/**
 * When it expires.
 */
deadline_ms: number, 
/**
 * Where it stands.
 */
state: ApprovalState, };

/**
 * An operator was asked to approve an action.
 */
export type ApprovalRequested = { 
/**
 * The approval's id.
 */
approval: number, 
/**
 * What the agent asked to do.
 */
action: Action, 
/**
 * The `@id`s of the rules that asked.
 */
reasons: Array<string>, 
/**
 * When it expires (Unix ms).
 */
deadline_ms: number, 
/**
 * The content hash of the frame the approval is bound to.
 */
bound_to_frame: string, };

/**
 * An approval was answered or expired.
 */
export type ApprovalResolved = { 
/**
 * The approval's id.
 */
approval: number, 
/**
 * How it ended.
 */
state: ApprovalState, 
/**
 * What an expired approval counts as (a denial).
 */
counts_as?: Decision, };

/**
 * Where an approval stands.
 */
export type ApprovalState = { "state": "pending" } | { "state": "approved", 
/**
 * The operator.
 */
by: string, } | { "state": "edited", 
/**
 * The operator.
 */
by: string, 
/**
 * What will run instead.
 */
action: Action, } | { "state": "denied", 
/**
 * The operator.
 */
by: string, 
/**
 * Their reason, if they gave one.
 */
reason: string | null, } | { "state": "expired" };

/**
 * Backend the user asked for.
 */
export type BackendChoice = "auto" | "microvm" | "gvisor";

/**
 * The first entry that failed verification.
 */
export type Broken = { 
/**
 * The entry's sequence number (for a gap: the first missing one).
 */
seq: number, 
/**
 * What is wrong, in a sentence.
 */
reason: string, };

/**
 * Who carried out an action: on the wire `agent` or `operator:NAME`.
 */
export type By = "agent" | `operator:${string}`;

/**
 * A text message from a viewer.
 */
export type ClientMessage = { "type": "hello", 
/**
 * How it wants video.
 */
transport: TransportKind, 
/**
 * Codecs it decodes, preferred first.
 */
codecs: Array<Codec>, 
/**
 * Whether its window has the focus.
 */
focused: boolean, 
/**
 * A WebRTC viewer that can also decode video sent on this socket (WebCodecs): the server
 * may move its video here while it controls the sandbox on a short, clean network.
 */
socket_video: boolean, } | { "type": "focus", 
/**
 * Whether it has it now.
 */
focused: boolean, } | { "type": "ack", 
/**
 * Mirror frame number.
 */
frame: number, } | { "type": "keyframe" } | { "type": "offer", 
/**
 * Session description.
 */
sdp: string, } | { "type": "takeover" } | { "type": "handback", 
/**
 * What the operator did, for the agent.
 */
note: string | null, } | { "type": "stats", 
/**
 * Round-trip time, milliseconds.
 */
rtt_ms: number | null, 
/**
 * Fraction of packets lost, 0 to 1.
 */
loss: number | null, 
/**
 * Estimated available bandwidth, kbit/s.
 */
bandwidth_kbps: number | null, 
/**
 * Frames decoded so far.
 */
frames_decoded: number | null, };

/**
 * A video codec.
 */
export type Codec = "h264" | "vp8";

/**
 * Where the making of a sandbox stands.
 */
export type CreateOutcome = { "state": "working" } | { "state": "failed" } | { "state": "running", 
/**
 * Its id.
 */
sandbox: string, };

/**
 * Make a sandbox.
 */
export type CreateRequest = { 
/**
 * `auto` (default), `microvm` or `gvisor`.
 */
backend: BackendChoice | null, 
/**
 * `desktop` (default) or `minimal`.
 */
profile: Profile | null, 
/**
 * vCPUs (1–8; default: the supervisor's setting).
 */
vcpus: number | null, 
/**
 * Memory, MiB (256–16384; default: the supervisor's setting).
 */
memory_mib: number | null, 
/**
 * A name the caller picks to follow progress (`create_progress` events carry it).
 */
job: string | null, 
/**
 * Host folders shared in, read-only unless `writable` (checked against the host's rules when
 * the sandbox is made: never `/`, a home itself, `~/.ssh` or Airlock's state).
 */
shares?: Array<Share>, };

/**
 * A link as made: the token is shown once, here, and never again.
 */
export type CreatedLink = { 
/**
 * The link.
 */
link: ViewLink, 
/**
 * Its bearer token.
 */
token: string, 
/**
 * Where it opens: the console on that sandbox alone (a path on the server that answered;
 * the desktop app gives the whole URL of its server).
 */
path: string, };

/**
 * The pointer position.
 */
export type CursorResult = { 
/**
 * Column.
 */
x: number, 
/**
 * Row.
 */
y: number, };

/**
 * What the gate decides.
 */
export type Decision = "allow" | "ask" | "deny";

/**
 * A host and port, the host normalised (lower case, no trailing dot; an address literal as text).
 */
export type Destination = { 
/**
 * The host.
 */
host: string, 
/**
 * The port.
 */
port: number, };

/**
 * One destination as the console's Network panel shows it.
 */
export type DestinationView = { 
/**
 * Where to.
 */
destination: Destination, 
/**
 * The last attempt's outcome.
 */
outcome: EgressOutcome, 
/**
 * The rules that decided it.
 */
rules: Array<string>, 
/**
 * Connections made or attempted.
 */
connections: number, 
/**
 * Connections open now.
 */
open: number, 
/**
 * Bytes up, all connections.
 */
bytes_up: number, 
/**
 * Bytes down, all connections.
 */
bytes_down: number, 
/**
 * Last attempt (Unix ms).
 */
last_seen_ms: number, };

/**
 * A SHA-256 digest: an entry hash, a chain link or a blob's content address.
 *
 * Displays, parses and (de)serializes as 64 lowercase hex characters.
 */
export type Digest = string;

/**
 * Which way a file moved.
 */
export type Direction = "in" | "out";

/**
 * Refused DNS lookups of names under one domain.
 */
export type DnsGroup = { 
/**
 * The last two labels of the names (`exfil.test`).
 */
group: string, 
/**
 * Lookups.
 */
count: number, 
/**
 * Up to three names asked.
 */
examples: Array<string>, };

/**
 * An action that returns nothing was done.
 */
export type Done = { 
/**
 * Always `true`.
 */
done: boolean, };

/**
 * What a caller appends. The ledger adds `seq`, `prev` and `hash`.
 *
 * Every field is part of the hashed body; `None` is encoded as `null`.
 */
export type Draft = { 
/**
 * When it happened, unix milliseconds, supplied by the caller (the ledger never reads the clock
 * for entry content). At most `i64::MAX`.
 */
ts_ms: number, 
/**
 * The sandbox it happened in, if any.
 */
sandbox: string | null, 
/**
 * What kind of event this is.
 */
kind: EntryKind, 
/**
 * Who caused it.
 */
actor: Actor, 
/**
 * The control-lease epoch in force.
 */
epoch: number | null, 
/**
 * Hex hash of the policy version in force.
 */
policy_hash: string | null, 
/**
 * Screenshot before the action: a blob that must already be in the blob store.
 */
frame_before: Digest | null, 
/**
 * Screenshot after the action: a blob that must already be in the blob store.
 */
frame_after: Digest | null, 
/**
 * The action, decision, result…: free-form JSON. Numbers are kept as serde_json prints them.
 */
what: JsonValue, };

/**
 * An operator is asked whether a sandbox may reach destinations.
 */
export type EgressAsk = { 
/**
 * Unique within the supervisor (shared with action approvals' ids).
 */
id: number, 
/**
 * The sandbox.
 */
sandbox: string, 
/**
 * The agent working in the sandbox (the last one that acted), or `""` when none has.
 */
agent: string, 
/**
 * Where to. One for a held connection; several when an agent asks ahead.
 */
destinations: Array<Destination>, 
/**
 * How the held connections reached the gateway (`None` when asked ahead).
 */
protocol: EgressProtocol | null, 
/**
 * Connections held until the decision (attempts to the same destination merge here).
 */
waiting: number, 
/**
 * The agent's reason, when it asked ahead.
 */
agent_reason: string | null, 
/**
 * The ledger blob of the screen when it was asked (what the agent was doing), if taken.
 */
frame_png: string | null, 
/**
 * The policy's rules that asked.
 */
rules: Array<string>, 
/**
 * The policy's sentence.
 */
reason: string, 
/**
 * The Cedar rule "add to policy" would add.
 */
policy_rule: string, 
/**
 * Whether it may be allowed beyond once.
 */
grantable: boolean, 
/**
 * When it was asked.
 */
requested_ms: number, 
/**
 * When it expires.
 */
deadline_ms: number, 
/**
 * Set when a connection went over its upload budget and is paused: what it sent and its
 * budget (an "allow" lets it go on; the new budget, if any, counts from here).
 */
over_budget: OverBudget | null, 
/**
 * Where it stands.
 */
state: EgressAskState, };

/**
 * Where an egress ask stands.
 */
export type EgressAskState = { "state": "pending" } | { "state": "allowed", 
/**
 * The operator.
 */
by: string, 
/**
 * How far.
 */
scope: EgressScope, 
/**
 * Bytes each connection may send before it is asked about again.
 */
upload_budget: number | null, } | { "state": "denied", 
/**
 * The operator.
 */
by: string, 
/**
 * Their reason.
 */
reason: string | null, } | { "state": "expired" };

/**
 * A standing permission to reach one destination from one sandbox.
 */
export type EgressGrant = { 
/**
 * The destination.
 */
destination: Destination, 
/**
 * Who granted it.
 */
by: string, 
/**
 * When.
 */
from_ms: number, 
/**
 * When it lapses; `None` for the sandbox's life.
 */
until_ms: number | null, 
/**
 * Bytes each connection it lets through may send before it is paused and asked about.
 */
upload_budget: number | null, };

/**
 * How a connection attempt was decided.
 */
export type EgressOutcome = "allowed" | "granted" | "approved" | "denied" | "refused" | "failed";

/**
 * How a program in the sandbox reached the egress gateway.
 */
export type EgressProtocol = "http" | "connect" | "socks5";

/**
 * What the ledger records about egress: typed, one record per event, no bodies, no secrets.
 */
export type EgressRecord = { "event": "decided", 
/**
 * The gateway's number for the connection (unique per sandbox session).
 */
connection: number, 
/**
 * Where to.
 */
destination: Destination, 
/**
 * How.
 */
protocol: EgressProtocol, 
/**
 * The agent working in the sandbox, or `""`.
 */
agent: string, 
/**
 * What was decided.
 */
outcome: EgressOutcome, 
/**
 * The policy rules that decided (or the grant's destination rule).
 */
rules: Array<string>, 
/**
 * The operator who decided an ask, or granted ahead.
 */
approver: string | null, 
/**
 * Why, in a sentence.
 */
reason: string, 
/**
 * Shadow mode let through what the policy denies (the outcome is what happened).
 */
shadow_denied: boolean, } | { "event": "closed", 
/**
 * The gateway's number for the connection.
 */
connection: number, 
/**
 * Where to.
 */
destination: Destination, 
/**
 * The address dialled, when one was.
 */
address: string | null, 
/**
 * Bytes from the sandbox to the upstream.
 */
bytes_up: number, 
/**
 * Bytes from the upstream to the sandbox.
 */
bytes_down: number, 
/**
 * From the proxy request to the close, milliseconds.
 */
duration_ms: number, 
/**
 * What went wrong, if it ended badly.
 */
error: string | null, } | { "event": "dns_refused", 
/**
 * Groups, most asked first.
 */
groups: Array<DnsGroup>, 
/**
 * Lookups not listed (too many distinct names).
 */
unlisted: number, } | { "event": "requested", 
/**
 * The ask's id.
 */
ask: number, 
/**
 * The agent.
 */
agent: string, 
/**
 * Where to.
 */
destinations: Array<Destination>, 
/**
 * The agent's reason.
 */
reason: string, } | { "event": "ask_resolved", 
/**
 * The ask in its final state.
 */
ask: EgressAsk, };

/**
 * An operator's answer to an egress ask.
 */
export type EgressResolution = { "decision": "allow", 
/**
 * How far.
 */
scope: EgressScope, 
/**
 * Bytes each connection may send upstream before it is paused and asked about again
 * (`None`: no budget).
 */
upload_budget: number | null, } | { "decision": "deny", 
/**
 * Why (shown to the program in the refusal).
 */
reason: string | null, };

/**
 * How far an operator's "allow" reaches.
 */
export type EgressScope = { "kind": "once" } | { "kind": "minutes", 
/**
 * 1 to [`MAX_GRANT_MINUTES`].
 */
minutes: number, } | { "kind": "sandbox" } | { "kind": "policy" };

/**
 * One committed entry.
 */
export type Entry = { 
/**
 * Position in the chain, from 1, without gaps.
 */
seq: number, 
/**
 * The hash of entry `seq - 1` ([`Digest::ZERO`] for the first entry).
 */
prev: Digest, 
/**
 * `SHA-256("airlock-ledger/v1\n" || seq (u64 big-endian) || prev || canonical body)`.
 */
hash: Digest, 
/**
 * The appended fields.
 */
body: Draft, };

/**
 * What an entry records. Serialized (and displayed) as its snake_case name.
 */
export type EntryKind = "action_decided" | "action_executed" | "action_refused" | "approval_requested" | "approval_resolved" | "grant_issued" | "lease_changed" | "human_input" | "lifecycle" | "egress" | "policy_changed" | "access" | "human_request" | "file_transfer";

/**
 * A refused request: a stable code and a sentence for the operator.
 */
export type ErrorBody = { 
/**
 * Machine-readable: `unknown_sandbox`, `invalid_request`, `lease`, `unknown_approval`,
 * `approval`, `sandbox`, `guest`, `ledger`, `session_gone`, `unknown_blob`, `forbidden_origin`
 * (MCP, a foreign web origin).
 */
code: string, 
/**
 * What went wrong, in a sentence.
 */
message: string, };

/**
 * A decision with its reasons.
 */
export type Evaluation = { 
/**
 * The decision.
 */
decision: Decision, 
/**
 * `@id`s of the rules that decided (empty when the default applied).
 */
rules: Array<string>, 
/**
 * A sentence for the agent, the operator and the ledger.
 */
reason: string, 
/**
 * Whether no rule matched and the default applied.
 */
defaulted: boolean, 
/**
 * What shadow mode does instead of a denial: the decision of the permit rules alone (allow,
 * or ask when an `@ask` rule matched); equal to `decision` when it is not a denial.
 */
shadow: Decision, 
/**
 * Whether an operator's "allow similar" grant may cover this ask later: not when an asking
 * rule is annotated `@grant("never")`.
 */
grantable: boolean, };

/**
 * Something that happened.
 */
export type Event = { "type": "action_decided", 
/**
 * The sandbox.
 */
sandbox: string, 
/**
 * The agent.
 */
agent: string, 
/**
 * What it asked.
 */
action: Action, 
/**
 * allow / ask / deny (after shadow mode).
 */
decision: Decision, 
/**
 * Why.
 */
reason: string, 
/**
 * Whether shadow mode let a denial through.
 */
shadow_denied: boolean, 
/**
 * When (Unix ms).
 */
at_ms: number, } | { "type": "action_executed", 
/**
 * The sandbox.
 */
sandbox: string, 
/**
 * `agent` or `operator:<id>`.
 */
by: By, 
/**
 * What ran.
 */
action: Action, 
/**
 * Whether it succeeded.
 */
ok: boolean, 
/**
 * Error message when it failed.
 */
error: string | null, 
/**
 * The screen afterwards (blob hash).
 */
frame_after: string | null, 
/**
 * When (Unix ms).
 */
at_ms: number, } | { "type": "action_refused", 
/**
 * The sandbox.
 */
sandbox: string, 
/**
 * The agent.
 */
agent: string, 
/**
 * Why.
 */
reason: string, 
/**
 * When (Unix ms).
 */
at_ms: number, } | { "type": "approval_requested", 
/**
 * The approval (includes the frame hash shown).
 */
approval: Approval, } | { "type": "approval_resolved", 
/**
 * The approval in its final state.
 */
approval: Approval, } | { "type": "egress_asked", 
/**
 * The ask.
 */
ask: EgressAsk, } | { "type": "egress_resolved", 
/**
 * The ask in its final state.
 */
ask: EgressAsk, } | { "type": "egress", 
/**
 * The sandbox.
 */
sandbox: string, 
/**
 * The ledger record.
 */
record: EgressRecord, } | { "type": "grant_issued", 
/**
 * The grant.
 */
grant: Grant, } | { "type": "lease_changed", 
/**
 * The sandbox.
 */
sandbox: string, 
/**
 * Previous holder.
 */
from: Holder, 
/**
 * New holder.
 */
to: Holder, 
/**
 * New epoch.
 */
epoch: number, 
/**
 * When (Unix ms).
 */
at_ms: number, 
/**
 * A hand-back's summary (with the operator's note), as the agent will be given it.
 */
handback?: HandbackSummary, } | { "type": "human_requested", 
/**
 * The request.
 */
request: HumanRequest, } | { "type": "human_request_ended", 
/**
 * The sandbox.
 */
sandbox: string, 
/**
 * The request.
 */
request: number, 
/**
 * How.
 */
outcome: HumanRequestOutcome, } | { "type": "sandbox_state", 
/**
 * The sandbox.
 */
sandbox: string, 
/**
 * Where it stands now.
 */
state: SandboxState, 
/**
 * Details.
 */
detail: string | null, 
/**
 * When (Unix ms).
 */
at_ms: number, } | { "type": "create_progress", 
/**
 * The caller's name for the creation.
 */
job: string, 
/**
 * What is happening, in a phrase (for `failed`: why).
 */
step: string, 
/**
 * Still working, failed, or done.
 */
outcome: CreateOutcome, 
/**
 * When (Unix ms).
 */
at_ms: number, } | { "type": "policy_mode", 
/**
 * The new mode.
 */
mode: Mode, 
/**
 * By whom.
 */
by: string, 
/**
 * When (Unix ms).
 */
at_ms: number, };

/**
 * One event as the console receives it: on the events socket, or on a desktop-app channel.
 */
export type EventMessage = { 
/**
 * The namespaced topic (`sandbox://{id}/approval`, `policy://mode`, …).
 */
topic: string, 
/**
 * The event.
 */
event: Event, };

/**
 * A command's result (output as text, invalid UTF-8 replaced).
 */
export type ExecRecord = { 
/**
 * Exit status, when it exited.
 */
exit_code: number | null, 
/**
 * The signal that ended it, when one did.
 */
signal: number | null, 
/**
 * Whether it was killed at its deadline.
 */
timed_out: boolean, 
/**
 * Standard output.
 */
stdout: string, 
/**
 * Standard error.
 */
stderr: string, 
/**
 * Whether standard output was cut.
 */
stdout_truncated: boolean, 
/**
 * Whether standard error was cut.
 */
stderr_truncated: boolean, 
/**
 * How long it ran.
 */
duration_ms: number, };

/**
 * The sandbox could not carry out an action.
 */
export type Failed = { 
/**
 * Why, in a sentence.
 */
error: string, };

/**
 * One entry of a sandbox directory.
 */
export type FileEntry = { 
/**
 * Its name (a name that is not UTF-8 shows U+FFFD for each bad byte).
 */
name: string, 
/**
 * What it is.
 */
kind: FileKind, 
/**
 * Bytes.
 */
size: number, 
/**
 * Permission bits.
 */
mode: number, 
/**
 * Modified, seconds since the epoch.
 */
mtime_s: number, };

/**
 * What a directory entry is.
 */
export type FileKind = "file" | "dir" | "symlink" | "other";

/**
 * A sandbox directory's entries.
 */
export type FileListing = { 
/**
 * The directory.
 */
path: string, 
/**
 * Its entries, by name.
 */
entries: Array<FileEntry>, 
/**
 * It holds more than were listed.
 */
truncated: boolean, };

/**
 * A file an agent read or wrote: the bytes are not recorded, their size and hash are.
 */
export type FileMoved = { 
/**
 * The sandbox path.
 */
path: string, 
/**
 * Bytes.
 */
size: number, 
/**
 * SHA-256, hex.
 */
sha256: string, };

/**
 * A file or folder moved into or out of a sandbox, or a transfer that failed.
 */
export type FileTransfer = { 
/**
 * In or out.
 */
direction: Direction, 
/**
 * The path in the sandbox.
 */
path: string, 
/**
 * A file or a folder archive.
 */
content: TransferContent, 
/**
 * Bytes moved (what was moved so far, when it failed).
 */
size: number, 
/**
 * SHA-256 of those bytes, hex (`None` when it failed before the end).
 */
sha256: string | null, 
/**
 * Uploads: the file as kept among the ledger's blobs (by its hash).
 */
blob?: string, 
/**
 * How it was asked for: `api`, `cli`, `console`, `agent`.
 */
via: string, 
/**
 * Why it failed, if it did (nothing is left half-written in the sandbox).
 */
error?: string, };

/**
 * A file written into a sandbox.
 */
export type FileWritten = { 
/**
 * The sandbox.
 */
sandbox: string, 
/**
 * Where it went.
 */
path: string, 
/**
 * Bytes.
 */
size: number, 
/**
 * SHA-256, hex (the guest's own hash of what it wrote, equal to the host's).
 */
sha256: string, };

/**
 * Why a principal may not do something.
 */
export type Forbidden = { "why": "role", 
/**
 * Who asked.
 */
who: string, 
/**
 * Their role.
 */
role: Role, 
/**
 * What was needed.
 */
permission: Permission, } | { "why": "scope", 
/**
 * Who asked.
 */
who: string, 
/**
 * The sandbox the link is for.
 */
allowed: string, 
/**
 * The sandbox asked for, if the request named one.
 */
asked: string | null, };

/**
 * A time-boxed permission for one kind of action in one sandbox.
 */
export type Grant = { 
/**
 * The sandbox.
 */
sandbox: string, 
/**
 * The kind it covers.
 */
kind: ActionKind, 
/**
 * Who granted it.
 */
by: string, 
/**
 * When it was granted.
 */
from_ms: number, 
/**
 * When it lapses.
 */
until_ms: number, };

/**
 * An operator granted a kind of action ahead.
 */
export type GrantIssued = { 
/**
 * The grant.
 */
grant: Grant, 
/**
 * For how long.
 */
minutes: number, 
/**
 * The approval it was given with.
 */
approval: number, };

/**
 * Control came back to the agent: the summary and the fresh screenshot it was given.
 */
export type HandbackResult = { 
/**
 * What the operator did while they held control.
 */
handback: HandbackSummary, 
/**
 * The PNG blob's hash.
 */
frame: string, };

/**
 * What a human did while holding control, told to the agent at its next observation.
 */
export type HandbackSummary = { 
/**
 * The operator.
 */
operator: string, 
/**
 * Actions they performed.
 */
actions: number, 
/**
 * How long they held control.
 */
duration_ms: number, 
/**
 * The operator's note to the agent, if they left one.
 */
note?: string | null, };

/**
 * What kind of help an agent asks for.
 */
export type HelpKind = "login" | "captcha" | "confirm" | "other";

/**
 * Who holds control.
 */
export type Holder = { "holder": "agent" } | { "holder": "human", 
/**
 * The operator.
 */
operator: string, } | { "holder": "paused", 
/**
 * Who or what paused it (an operator id, or `approval-expiry`).
 */
by: string, };

/**
 * An operator's action as recorded: typing becomes a hash and a length.
 */
export type HumanAction = TypedText | Action;

/**
 * An operator drove the sandbox: one action through the API, or what they did through the live
 * view (a summary, recorded when they hand back, leave, or every few seconds). Typed text is kept
 * only as a hash and a length or count.
 */
export type HumanInput = { 
/**
 * The live-view connection the input came through (`None`: the API).
 */
viewer?: number, 
/**
 * How that viewer received video.
 */
transport?: TransportKind, 
/**
 * The control epoch the input was admitted under.
 */
epoch?: number, 
/**
 * The action, through the API.
 */
action?: HumanAction, 
/**
 * What the live view's input did.
 */
summary?: InputSummary, 
/**
 * Whether it was carried out.
 */
ok: boolean, 
/**
 * Why not.
 */
error?: string, 
/**
 * The note the operator left for the agent when handing control back (written by versions
 * that recorded it here; the hand-back's `lease_changed` entry carries it now).
 */
handback_note?: string, };

/**
 * A request for a human, as operators see it while it waits.
 */
export type HumanRequest = { 
/**
 * Its id (per supervisor).
 */
request: number, 
/**
 * The sandbox.
 */
sandbox: string, 
/**
 * The agent asking.
 */
agent: string, 
/**
 * What it needs, in its words.
 */
reason: string, 
/**
 * The kind of help.
 */
kind: HelpKind, 
/**
 * When it asked (Unix ms).
 */
asked_ms: number, 
/**
 * When it stops waiting (Unix ms).
 */
deadline_ms: number, 
/**
 * The PNG blob of the screen when it asked.
 */
frame: string, };

/**
 * How a request for a human ended.
 */
export type HumanRequestOutcome = { "outcome": "answered", 
/**
 * Who.
 */
operator: string, } | { "outcome": "timed_out" } | { "outcome": "abandoned" };

/**
 * An agent asked for a human, and how it ended.
 */
export type HumanRequestRecord = { "event": "requested", 
/**
 * The request's id (per supervisor).
 */
request: number, 
/**
 * What the agent says it needs.
 */
reason: string, 
/**
 * The kind of help.
 */
kind: HelpKind, 
/**
 * When the agent stops waiting (Unix ms).
 */
deadline_ms: number, 
/**
 * The PNG blob of the screen when it asked.
 */
frame: string, } | { "event": "answered", 
/**
 * The request.
 */
request: number, 
/**
 * Who helped.
 */
operator: string, 
/**
 * What they said on hand-back.
 */
note: string | null, 
/**
 * The PNG blob of the screen the agent was given.
 */
frame: string, } | { "event": "timed_out", 
/**
 * The request.
 */
request: number, } | { "event": "abandoned", 
/**
 * The request.
 */
request: number, 
/**
 * What happened.
 */
reason: string, };

/**
 * A screenshot, by the hash of its PNG blob.
 */
export type ImageResult = { 
/**
 * The PNG blob's hash.
 */
frame: string, 
/**
 * Width in pixels.
 */
width: number, 
/**
 * Height in pixels.
 */
height: number, };

/**
 * What an operator's input through the live view did: counts and times; keys only as a hash of
 * the pressed keysyms and their count.
 */
export type InputSummary = { 
/**
 * Pointer moves.
 */
pointer_moves: number, 
/**
 * Buttons pressed.
 */
button_presses: number, 
/**
 * Wheel steps.
 */
wheel_events: number, 
/**
 * Keys pressed.
 */
key_presses: number, 
/**
 * SHA-256 over the pressed keysyms (4 bytes little-endian each), hex.
 */
keys_sha256: string, 
/**
 * Inputs refused (control not held).
 */
refused: number, 
/**
 * First input (Unix ms).
 */
first_ms: number | null, 
/**
 * Last input (Unix ms).
 */
last_ms: number, 
/**
 * From first to last.
 */
duration_ms: number | null, };

export type JsonValue = number | string | boolean | Array<JsonValue> | { [key in string]: JsonValue } | null;

/**
 * A change that happened.
 */
export type LeaseChange = { 
/**
 * Holder before.
 */
from: Holder, 
/**
 * Holder after.
 */
to: Holder, 
/**
 * The new epoch.
 */
epoch: number, 
/**
 * When.
 */
at_ms: number, };

/**
 * The control lease moved.
 */
export type LeaseChanged = { 
/**
 * What was asked.
 */
command: LeaseCommand, 
/**
 * Who held control.
 */
from: Holder, 
/**
 * Who holds it now.
 */
to: Holder, };

/**
 * A request to change the lease.
 */
export type LeaseCommand = { "command": "take", 
/**
 * The operator.
 */
operator: string, } | { "command": "hand_back", 
/**
 * The operator.
 */
operator: string, 
/**
 * A note for the agent, shown with its next observation.
 */
note: string | null, } | { "command": "pause", 
/**
 * Who pauses.
 */
by: string, } | { "command": "resume", 
/**
 * Who resumes.
 */
by: string, };

/**
 * A control change.
 */
export type LeaseRequest = { 
/**
 * What to do.
 */
command: LeaseVerb, 
/**
 * With `hand_back`: a note the agent reads with its next screenshot.
 */
note: string | null, };

/**
 * What an operator does with control of a sandbox.
 */
export type LeaseVerb = "take" | "hand_back" | "pause" | "resume";

/**
 * Which ledger entries to read.
 */
export type LedgerQuery = { 
/**
 * Only this sandbox's.
 */
sandbox: string | null, 
/**
 * Only entries after this seq.
 */
after: number | null, 
/**
 * At most this many (default and maximum 1000).
 */
limit: number | null, 
/**
 * Only these kinds (all when empty).
 */
kind: Array<EntryKind>, };

/**
 * One ledger entry's kind and body, typed.
 */
export type LedgerRecord = { "kind": "action_decided", "what": ActionDecided } | { "kind": "action_executed", "what": ActionExecuted } | { "kind": "action_refused", "what": ActionRefused } | { "kind": "approval_requested", "what": ApprovalRequested } | { "kind": "approval_resolved", "what": ApprovalResolved } | { "kind": "grant_issued", "what": GrantIssued } | { "kind": "lease_changed", "what": LeaseChanged } | { "kind": "human_input", "what": HumanInput } | { "kind": "lifecycle", "what": Lifecycle } | { "kind": "egress", "what": EgressRecord } | { "kind": "policy_changed", "what": PolicyChanged } | { "kind": "access", "what": AccessRecord } | { "kind": "human_request", "what": HumanRequestRecord } | { "kind": "file_transfer", "what": FileTransfer };

/**
 * The supervisor or a sandbox started, stopped, appeared or went away.
 */
export type Lifecycle = { "event": "supervisor_started", 
/**
 * The policy in force.
 */
policy_version: string, 
/**
 * How it is enforced.
 */
mode: Mode, } | { "event": "supervisor_stopped" } | { "event": "sandbox_created", 
/**
 * `gvisor` or `microvm`.
 */
backend: string, 
/**
 * The guest profile.
 */
profile: string, 
/**
 * Where it runs, in words.
 */
placement: string, 
/**
 * How long it took to boot.
 */
boot_ms: number | null, 
/**
 * Host folders shared into it.
 */
shares?: Array<SharedFolder>, } | { "event": "sandbox_destroyed", 
/**
 * By the CLI (or another process), not through this supervisor.
 */
outside?: boolean, } | { "event": "sandbox_adopted" } | { "event": "sandbox_lost", 
/**
 * Why, as far as is known.
 */
reason: string, };

/**
 * Make a view link.
 */
export type LinkRequest = { 
/**
 * How long it works, in seconds (default one hour, at most a week).
 */
ttl_s?: number, };

/**
 * A directory an agent listed.
 */
export type Listed = { 
/**
 * The sandbox path.
 */
path: string, 
/**
 * Entries returned.
 */
entries: number, 
/**
 * There were more.
 */
truncated: boolean, };

/**
 * Who the caller is.
 */
export type Me = { 
/**
 * The operator's name, as the ledger records it (`link:ID` for a view link).
 */
operator: string, 
/**
 * What they may do.
 */
role: Role, 
/**
 * Which sandboxes they reach (a view link: one).
 */
scope: Scope, };

/**
 * Whether denials are enforced.
 */
export type Mode = "enforce" | "shadow";

/**
 * Switch shadow mode.
 */
export type ModeRequest = { 
/**
 * The new mode.
 */
mode: Mode, };

/**
 * A mouse button, as agents name them.
 */
export type MouseButton = "left" | "middle" | "right" | "back" | "forward";

/**
 * A sandbox's network, for the console.
 */
export type NetworkView = { 
/**
 * The sandbox.
 */
sandbox: string, 
/**
 * Destinations attempted, most recent first.
 */
destinations: Array<DestinationView>, 
/**
 * Asks waiting for an operator.
 */
asks: Array<EgressAsk>, 
/**
 * Grants in force.
 */
grants: Array<EgressGrant>, 
/**
 * DNS lookups refused since the sandbox started, aggregated.
 */
dns_refused: Array<DnsGroup>, 
/**
 * Refused lookups not listed.
 */
dns_unlisted: number, };

/**
 * A paused connection's upload so far.
 */
export type OverBudget = { 
/**
 * Bytes sent upstream so far.
 */
sent: number, 
/**
 * The budget it was allowed.
 */
budget: number, };

/**
 * A paste into a terminal.
 */
export type Paste = { 
/**
 * Where it comes from: `primary` (the selection) or `clipboard`.
 */
source: string, 
/**
 * What the guest's selection or clipboard holds.
 */
text: string, 
/**
 * Whether the text was cut to the read limit.
 */
truncated: boolean, 
/**
 * Why it could not be read, if it could not.
 */
error: string | null, };

/**
 * What a request needs.
 */
export type Permission = "see" | "decide" | "drive" | "manage" | "files" | "links" | "share" | "policy" | "operators";

/**
 * A point on the screen, already checked to lie inside it.
 */
export type Point = { 
/**
 * Column from the left.
 */
x: number, 
/**
 * Row from the top.
 */
y: number, };

/**
 * The policy in force, or how it is enforced, changed.
 */
export type PolicyChanged = { "event": "rule_added", 
/**
 * The rule's Cedar text.
 */
rule: string, 
/**
 * The policy version it made.
 */
policy_version: string, } | { "event": "mode_set", 
/**
 * The new mode.
 */
mode: Mode, 
/**
 * The policy in force.
 */
policy_version: string, };

/**
 * The active policy, for reading.
 */
export type PolicyView = { 
/**
 * Hash of the policy text.
 */
version: string, 
/**
 * The decision when no rule matches.
 */
default: Decision, 
/**
 * Enforce or shadow.
 */
mode: Mode, 
/**
 * The Cedar text.
 */
text: string, };

/**
 * The image profiles shipped with Airlock.
 */
export type Profile = "minimal" | "desktop";

/**
 * A rectangle of the screen, in pixels.
 */
export type Rect = { 
/**
 * Left edge.
 */
x: number, 
/**
 * Top edge.
 */
y: number, 
/**
 * Width.
 */
width: number, 
/**
 * Height.
 */
height: number, };

/**
 * A rectangle on the screen (zoom).
 */
export type Region = { 
/**
 * Top-left corner.
 */
from: Point, 
/**
 * Bottom-right corner (inclusive).
 */
to: Point, };

/**
 * A decision on a pending approval, tagged by `decision`; a field that does not go with the
 * decision is refused (an `argv` on an approve would otherwise be ignored, and the original
 * action run).
 */
export type ResolveRequest = { "decision": "approve", 
/**
 * Also allow actions of this kind for this many minutes.
 */
grant_minutes: number | null, } | { "decision": "edit", 
/**
 * The replacement in Anthropic's computer-use form…
 */
computer: JsonValue | null, 
/**
 * …or, for an exec, the replacement argv.
 */
argv: Array<string> | null, } | { "decision": "deny", 
/**
 * Why (the agent reads it).
 */
reason: string | null, };

/**
 * An operator's role.
 */
export type Role = "admin" | "operator" | "watcher";

/**
 * A sandbox as listed to agents and operators.
 */
export type SandboxInfo = { 
/**
 * Id.
 */
id: string, 
/**
 * Backend (`microvm`, `gvisor`).
 */
backend: string, 
/**
 * Image profile.
 */
profile: string, 
/**
 * Screen.
 */
screen: Screen, 
/**
 * `running`, `lost` (its keeper or VM is gone) or `external` (attached, not from the store).
 */
state: string, 
/**
 * vCPUs and memory (MiB), when known.
 */
vcpus: number | null, 
/**
 * Memory, MiB, when known.
 */
memory_mib: number | null, 
/**
 * Lease and approvals.
 */
session: SessionView, };

/**
 * Where a sandbox stands, as events report it.
 */
export type SandboxState = "running" | "destroyed" | "lost";

/**
 * Which sandboxes a principal reaches.
 */
export type Scope = { "kind": "all" } | { "kind": "sandbox", "sandbox": string };

/**
 * Screen size the coordinates are checked against.
 */
export type Screen = { 
/**
 * Width in pixels.
 */
width: number, 
/**
 * Height in pixels.
 */
height: number, };

/**
 * A text message to a viewer.
 */
export type ServerMessage = { "type": "welcome", 
/**
 * This viewer's id.
 */
viewer: number, 
/**
 * The sandbox shown.
 */
sandbox: string, 
/**
 * The operator the viewer is signed in as.
 */
operator: string, 
/**
 * Screen width.
 */
width: number, 
/**
 * Screen height.
 */
height: number, } | { "type": "mode", 
/**
 * The view.
 */
mode: ViewMode, 
/**
 * Video codec, in video mode.
 */
codec: Codec | null, 
/**
 * Target frames per second.
 */
fps: number, 
/**
 * Target bitrate.
 */
bitrate_kbps: number, 
/**
 * Why, for the operator.
 */
reason: string, } | { "type": "answer", 
/**
 * Session description.
 */
sdp: string, } | { "type": "lease", 
/**
 * `"agent"`, `"human"` or `"paused"`.
 */
holder: string, 
/**
 * The operator holding it, if a human does.
 */
operator: string | null, 
/**
 * Lease epoch, increasing with every change.
 */
epoch: number, 
/**
 * Whether this viewer's operator holds it.
 */
you_control: boolean, } | { "type": "step", 
/**
 * The step, as the supervisor describes it.
 */
step: Step, } | { "type": "input", 
/**
 * Whether it went through.
 */
accepted: boolean, 
/**
 * Why not, or empty.
 */
reason: string, } | { "type": "damage", 
/**
 * The changed regions.
 */
rects: Array<Rect>, } | { "type": "error", 
/**
 * Stable machine-readable code.
 */
code: string, 
/**
 * Sentence for the operator.
 */
message: string, };

/**
 * A snapshot of a session for operator clients.
 */
export type SessionView = { 
/**
 * The sandbox.
 */
sandbox: string, 
/**
 * Screen size.
 */
screen: Screen, 
/**
 * Who holds control.
 */
holder: Holder, 
/**
 * The lease epoch.
 */
epoch: number, 
/**
 * Pending approvals.
 */
pending: Array<Approval>, 
/**
 * Grants in force.
 */
grants: Array<Grant>, };

/**
 * One host folder shared into a sandbox.
 */
export type Share = { 
/**
 * The folder on the host (canonical once validated).
 */
host: string, 
/**
 * Where it appears in the sandbox (absolute).
 */
guest: string, 
/**
 * May the sandbox write to it? Read-only unless granted.
 */
writable: boolean, };

/**
 * A host folder shared into a sandbox, as recorded.
 */
export type SharedFolder = { 
/**
 * The host folder (canonical).
 */
host: string, 
/**
 * Where the sandbox sees it.
 */
guest: string, 
/**
 * Whether the sandbox may write to it.
 */
writable: boolean, };

/**
 * Everything a console needs to draw itself: sent first on every (re)connection, so a client
 * replaces its state instead of merging into it.
 */
export type Snapshot = { 
/**
 * The sandboxes under supervision.
 */
sandboxes: Array<SandboxInfo>, 
/**
 * Every pending approval, oldest first.
 */
pending: Array<Approval>, 
/**
 * Agents waiting for a human, oldest first.
 */
human_requests: Array<HumanRequest>, 
/**
 * Enforce or shadow.
 */
mode: Mode, };

/**
 * One line of the command view: what happened in the sandbox, in words.
 */
export type Step = { 
/**
 * Its number in this sandbox's command view (a step sent again with the same number replaces
 * the first).
 */
seq: number, 
/**
 * When (Unix ms).
 */
at_ms: number, 
/**
 * What kind of step.
 */
kind: StepKind, 
/**
 * The step in words.
 */
title: string, 
/**
 * Who: the agent, `agent`, `operator:NAME`, or an operator's name.
 */
actor: string | null, 
/**
 * How it was decided or how it ended.
 */
decision: StepDecision | null, 
/**
 * Why, or more detail.
 */
detail: string | null, 
/**
 * The region of the screen its still shows, when one is sent.
 */
still?: StillRegion, };

/**
 * How a [`Step`] was decided or ended.
 */
export type StepDecision = "allow" | "ask" | "deny" | "shadow_denied" | "done" | "failed" | "refused" | "approved" | "edited" | "denied" | "expired" | "pending";

/**
 * What a [`Step`] is about.
 */
export type StepKind = "decision" | "executed" | "refused" | "approval" | "approval_resolved" | "grant" | "control" | "lifecycle";

/**
 * The region a step's still shows, in screen pixels.
 */
export type StillRegion = { 
/**
 * Left edge.
 */
x: number, 
/**
 * Top edge.
 */
y: number, 
/**
 * Width.
 */
w: number, 
/**
 * Height.
 */
h: number, };

/**
 * Keystrokes into a terminal, as the gateway understood them.
 */
export type TerminalInput = { 
/**
 * The terminal window's title.
 */
window: string, 
/**
 * The lines the keystrokes submit, in order.
 */
lines: Array<TerminalLine>, 
/**
 * What a paste would insert, when the keystrokes paste.
 */
paste: Paste | null, };

/**
 * One submitted line.
 */
export type TerminalLine = { 
/**
 * The command line the shell will run (as far as the gateway knows it).
 */
text: string, 
/**
 * Why the gateway cannot know the whole line (history recall, completion, a paste, an
 * operator's typing), or `None` when it is known exactly.
 */
unknown: string | null, 
/**
 * Why it cannot be parsed as a command (unbalanced quotes, a here-document), if so.
 */
unparsed: string | null, };

/**
 * What moved: one file, or a folder as a tar archive.
 */
export type TransferContent = "file" | "folder_archive";

/**
 * How a viewer wants video delivered.
 */
export type TransportKind = "webrtc" | "webcodecs" | "none";

/**
 * The kind of a [`TypedText`].
 */
export type TypedKind = "type";

/**
 * Typed text, as a hash and a length.
 */
export type TypedText = { 
/**
 * Always `type`.
 */
kind: TypedKind, 
/**
 * SHA-256 of the text (UTF-8), hex.
 */
text_sha256: string, 
/**
 * Its length in bytes.
 */
text_len: number, };

/**
 * The outcome of a verification walk.
 */
export type VerifyReport = { 
/**
 * Entries that verified intact (all of them when `first_broken` is `None`; the walk stops at
 * the first break).
 */
entries: number, 
/**
 * Distinct blobs whose content was read and hashed.
 */
blobs_checked: number, 
/**
 * The hash of the last intact entry: anchor it elsewhere to detect a truncated tail later.
 */
head: Digest | null, 
/**
 * The first broken entry by seq, if any.
 */
first_broken: Broken | null, };

/**
 * A view link as listed (never with its token).
 */
export type ViewLink = { 
/**
 * The link's id (what the ledger names it by; not the secret).
 */
id: string, 
/**
 * The sandbox it shows.
 */
sandbox: string, 
/**
 * Who created it.
 */
created_by: string, 
/**
 * When (Unix ms).
 */
created_ms: number, 
/**
 * When it stops working (Unix ms).
 */
expires_ms: number, 
/**
 * Who revoked it, if anyone did.
 */
revoked_by: string | null, };

/**
 * What a viewer is shown.
 */
export type ViewMode = "command" | "stills" | "video";
