//! `/connections/{name}/jit/preview`: a dry run of Just-in-Time
//! provisioning. It maps the given IdP claims as the connection would, reads
//! what the store knows (read-only), and says what a sign-in with those
//! claims would do — without writing anything, not even an audit event.

use axum::Json;
use axum::extract::{Path, State};
use axum::response::IntoResponse;
use jit_domain::attribute::{AttributeName, Attributes};
use jit_domain::membership::{MembershipKind, MembershipPlan, plan_memberships};
use jit_domain::ports::MembershipStore;
use jit_domain::provisioning::{Decision, MatchedRule, Refusal};
use jit_domain::service::{Plan, identity_and_dropped_claims, plan};
use jit_domain::sync::AttributeUpdate;
use jit_domain::user::{LocalUser, UserId, Username};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::connections;
use super::error::{ApiError, ErrorBody};
use super::extract::ApiJson;
use crate::AppState;

/// The routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::default().routes(routes!(preview))
}

/// Claims to try.
#[derive(Debug, Deserialize, ToSchema)]
pub struct PreviewRequest {
    /// The IdP's claims (ID token and userinfo merged), a JSON object with
    /// at least `sub`.
    #[schema(value_type = Object)]
    pub claims: Value,
    /// Overrides the `email_verified` claim.
    #[serde(default)]
    pub email_verified: Option<bool>,
}

/// What a decision is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DecisionKind {
    /// JIT is off: no local account; the mapped attributes go to the
    /// application as they are.
    PassThrough,
    /// The identity is associated with an account: sign in and sync.
    SignIn,
    /// A linking rule matched an account: associate it, then sync.
    Link,
    /// Create an account.
    Create,
    /// Refuse the sign-in.
    Refuse,
}

/// A refusal and its message.
#[derive(Debug, Serialize, ToSchema)]
pub struct RefusalView {
    /// The reason (`reason`) and its details.
    #[serde(flatten)]
    pub refusal: Refusal,
    /// What the user's sign-in page would say.
    pub message: String,
}

/// A user, briefly.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserRef {
    /// The user's id.
    pub id: UserId,
    /// The user's login name.
    pub username: Username,
}

impl From<&LocalUser> for UserRef {
    fn from(user: &LocalUser) -> Self {
        Self { id: user.id, username: user.username.clone() }
    }
}

/// The users found for one lookup.
#[derive(Debug, Serialize, ToSchema)]
pub struct Candidate {
    /// The local attribute looked up.
    pub attribute: AttributeName,
    /// The value looked up, in comparable (normalised) form.
    pub value: String,
    /// The users holding it.
    pub users: Vec<UserRef>,
}

/// The claims after mapping.
#[derive(Debug, Serialize, ToSchema)]
pub struct MappedView {
    /// The local attributes the claims map to.
    pub attributes: Attributes,
    /// Whether the email counts as verified.
    pub email_verified: bool,
    /// The IdP's claims that no mapping takes (protocol claims aside):
    /// a sign-in drops them.
    pub dropped_claims: Vec<String>,
}

/// What a sign-in with the claims would do.
#[derive(Debug, Serialize, ToSchema)]
pub struct PreviewResponse {
    /// The decision.
    pub decision: DecisionKind,
    /// The linking rule that matched (`link`).
    pub matched_rule: Option<MatchedRule>,
    /// Why the sign-in would be refused (`refuse`).
    pub refusal: Option<RefusalView>,
    /// The users found per lookup (linking rule values, received unique
    /// values, the fallback username).
    pub candidates: Vec<Candidate>,
    /// The account's attributes afterwards and the names that change
    /// (`sign_in`, `link`, and `create`, where every name is new).
    pub changes: Option<AttributeUpdate>,
    /// The new account's username (`create`).
    pub username: Option<Username>,
    /// The account signed in as or linked to (`sign_in`, `link`).
    pub user: Option<UserRef>,
    /// Whether the account's email is verified afterwards (`sign_in`,
    /// `link`, `create`): only a verified email holds its address and can
    /// be linked on.
    pub email_verified: Option<bool>,
    /// The claims after the connection's mapping.
    pub mapped: MappedView,
    /// What the sign-in would do to the account's groups and roles (for
    /// each kind the connection maps), as the audit trail would record it.
    pub memberships: Vec<MembershipChanges>,
}

/// Changes to one kind of membership.
#[derive(Debug, Serialize, ToSchema)]
pub struct MembershipChanges {
    /// Groups or roles.
    pub kind: MembershipKind,
    /// The plan: added, removed, created, unknown.
    #[serde(flatten)]
    #[schema(value_type = Object)]
    pub plan: MembershipPlan,
}

/// Dry-runs JIT provisioning for the given claims: the decision, the rule
/// that matched, the refusal and its message, the candidate accounts and
/// the attribute changes. Writes nothing.
#[utoipa::path(
    post,
    path = "/connections/{name}/jit/preview",
    tag = "connections",
    params(("name" = String, Path, description = "The connection's name")),
    request_body = PreviewRequest,
    responses(
        (status = 200, description = "What a sign-in with these claims would do", body = PreviewResponse),
        (status = 400, description = "Claims that are not an object, lack sub, or cannot be mapped", body = ErrorBody),
        (status = 401, description = "No or wrong admin token", body = ErrorBody),
        (status = 404, description = "No such connection", body = ErrorBody),
    )
)]
async fn preview(
    State(state): State<AppState>,
    Path(name): Path<String>,
    ApiJson(request): ApiJson<PreviewRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let connection = connections::load(&state, &name).await?;
    Ok(Json(dry_run(&state, &connection, request).await?))
}

/// What a sign-in through `connection` with the request's claims would do
/// (the admin API's preview and the console's Test tab).
pub async fn dry_run(
    state: &AppState,
    connection: &jit_domain::connection::Connection,
    request: PreviewRequest,
) -> Result<PreviewResponse, ApiError> {
    let Value::Object(claims) = request.claims else {
        return Err(ApiError::bad_request("claims must be a JSON object of the IdP's claims"));
    };
    let Some(Value::String(subject)) = claims.get("sub") else {
        return Err(ApiError::bad_request("claims must include sub, the IdP's subject identifier, as a string"));
    };
    dry_run_documents(state, connection, subject, &[&claims], request.email_verified).await
}

/// [`dry_run`] on the claim documents of a real sign-in (userinfo first,
/// then the ID token), as the engine reads them.
pub async fn dry_run_documents(
    state: &AppState,
    connection: &jit_domain::connection::Connection,
    subject: &str,
    documents: &[&serde_json::Map<String, Value>],
    email_verified: Option<bool>,
) -> Result<PreviewResponse, ApiError> {
    let schema = &*state.store.schema().await?;
    let (mut identity, dropped) = identity_and_dropped_claims(connection, subject, documents, schema)?;
    if let Some(verified) = email_verified {
        identity.email_verified = verified;
    }
    // The real sign-in's pipeline, without its last move (apply).
    let Plan { keys, facts, decision } = plan(&*state.store, &connection.jit, schema, &identity).await?;
    let candidates = keys
        .iter()
        .map(|key| {
            let users = facts.lookups.get(key).iter().map(UserRef::from).collect();
            Candidate { attribute: key.attribute.clone(), value: key.normalized.clone(), users }
        })
        .collect();
    // The account a decision names is the associated one or a candidate.
    let find = |id: UserId| {
        let found = keys.iter().flat_map(|key| facts.lookups.get(key));
        facts.associated.iter().chain(found).find(|u| u.id == id).map(UserRef::from)
    };
    let mut response = PreviewResponse {
        decision: DecisionKind::PassThrough,
        matched_rule: None,
        refusal: None,
        candidates,
        changes: None,
        username: None,
        user: None,
        email_verified: None,
        memberships: Vec::new(),
        mapped: MappedView {
            attributes: identity.attributes.clone(),
            email_verified: identity.email_verified,
            dropped_claims: dropped.into_iter().collect(),
        },
    };
    // Memberships change for the account the decision names, or the one
    // it would create.
    let account = match &decision {
        Decision::SignIn { user, .. } | Decision::Link { user, .. } => Some(Some(*user)),
        Decision::Create { .. } => Some(None),
        Decision::PassThrough { .. } | Decision::Refuse(_) => None,
    };
    if let Some(account) = account {
        for received in &identity.memberships {
            let current = match account {
                Some(user) => state.store.memberships(received.kind, user).await?,
                None => Vec::new(),
            };
            let existing = state.store.collections(received.kind).await?.into_iter().map(|c| c.name).collect();
            let plan = plan_memberships(&current, &received.values, &identity.connection, &received.mapping, &existing);
            response.memberships.push(MembershipChanges { kind: received.kind, plan });
        }
    }
    match decision {
        Decision::PassThrough { .. } => {}
        Decision::SignIn { user, update, email_verified } => {
            response.decision = DecisionKind::SignIn;
            response.email_verified = Some(email_verified);
            response.user = find(user);
            response.changes = Some(update);
        }
        Decision::Link { user, matched, update, email_verified } => {
            response.decision = DecisionKind::Link;
            response.email_verified = Some(email_verified);
            response.user = find(user);
            response.matched_rule = Some(matched);
            response.changes = Some(update);
        }
        Decision::Create { username, attributes, email_verified } => {
            response.decision = DecisionKind::Create;
            response.email_verified = Some(email_verified);
            let changed = attributes.names().cloned().collect();
            response.changes = Some(AttributeUpdate { attributes, changed, diff: Default::default() });
            response.username = Some(username);
        }
        Decision::Refuse(refusal) => {
            response.decision = DecisionKind::Refuse;
            let message = refusal.to_string();
            response.refusal = Some(RefusalView { refusal, message });
        }
    }
    Ok(response)
}
