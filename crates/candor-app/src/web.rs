//! The use cases behind the staff console and the customers' privacy center: staff accounts
//! and their roles, browser sessions, one-time sign-in links sent to a person's verified
//! address, the person's own consent choices and messages to a human, and the console's
//! aggregates. Transport (pages, cookies, CSRF) is `candor-http`'s.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Serialize;
use serde_json::json;

use candor_crypto::IdentifierKind;
use candor_store::{
    Alias, AuditDraft, AuditEntry, ContactRow, Overview, SessionRow, SessionSeed, StaffRow, Store,
    StoreError, WebStore,
};
use candor_types::{
    ConsentAction, ConsentRecord, ConsentSource, EventId, KeyId, Scope, SubjectId, TenantId,
    Timestamp,
};

use crate::{App, AppError, AppResult, ConsentView, ErrorKind, Principal};

/// The console's roles. What each may open is decided by [`Role::may`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Everything, including staff accounts.
    Admin,
    /// Campaigns and models' results: no personal data, no rights queues, no audit log.
    Marketer,
    /// Approves models, records fairness overrides, reviews contested decisions.
    Reviewer,
    /// Data-subject requests, contests, messages, people's records, the audit log.
    Compliance,
}

/// A part of the console.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Area {
    Overview,
    Subjects,
    Models,
    ModelDecisions,
    Fairness,
    Recs,
    Journeys,
    Requests,
    Contests,
    Messages,
    AuditLog,
    Policy,
    Staff,
}

impl Role {
    pub const ALL: [Role; 4] = [
        Role::Admin,
        Role::Marketer,
        Role::Reviewer,
        Role::Compliance,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Marketer => "marketer",
            Role::Reviewer => "reviewer",
            Role::Compliance => "compliance",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// Whether this role may open (and act in) `area`.
    pub fn may(self, area: Area) -> bool {
        use Area::*;
        match self {
            Role::Admin => true,
            Role::Marketer => matches!(
                area,
                Overview | Models | Fairness | Recs | Journeys | Policy
            ),
            Role::Reviewer => matches!(
                area,
                Overview | Models | ModelDecisions | Fairness | Recs | Journeys | Contests | Policy
            ),
            Role::Compliance => matches!(
                area,
                Overview
                    | Subjects
                    | Models
                    | Fairness
                    | Journeys
                    | Requests
                    | Contests
                    | Messages
                    | AuditLog
                    | Policy
            ),
        }
    }
}

/// How long a console session lasts.
pub const STAFF_SESSION_MS: i64 = 8 * 3_600_000;
/// How long a privacy-center session lasts.
pub const CUSTOMER_SESSION_MS: i64 = 3_600_000;
/// How long a sign-in link is valid.
pub const LINK_MS: i64 = 15 * 60_000;
/// Sign-in links per person per hour.
pub const LINKS_PER_HOUR: i64 = 3;
/// Minimum length of a staff password.
pub const MIN_PASSWORD: usize = 12;
/// Days within which a person's message to a human is due an answer.
const CONTACT_SLA_DAYS: u32 = 3;

/// A signed-in browser: the session and, for staff, their account.
#[derive(Clone, Debug)]
pub struct WebSession {
    pub row: SessionRow,
    pub staff: Option<(StaffRow, Role)>,
}

impl WebSession {
    /// The principal a staff session acts as (`None` for a customer).
    pub fn principal(&self) -> Option<Principal> {
        let (staff, _) = self.staff.as_ref()?;
        Some(Principal {
            tenant: staff.tenant,
            scope: Scope::Admin,
            key_id: staff.id.parse::<KeyId>().ok()?,
            staff: true,
        })
    }

    pub fn customer(&self) -> Option<(TenantId, SubjectId)> {
        (self.row.kind == "customer")
            .then_some(self.row.subject.map(|s| (self.row.tenant, s)))
            .flatten()
    }
}

/// What became of a request for a sign-in link (`Sent`: the link is being made and sent).
/// The page says the same in every case, so that it cannot be used to learn whether an
/// address is known.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkOutcome {
    Sent,
    UnknownAddress,
    RateLimited,
}

/// One kind of data held about a person, with the purposes that may use it.
#[derive(Clone, Debug, Serialize)]
pub struct HeldCategory {
    pub category: String,
    pub description: String,
    pub retention_days: u32,
    pub profile_fields: Vec<String>,
    pub events: usize,
    /// (purpose, its description, whether it may use this data now).
    pub purposes: Vec<(String, String, bool)>,
}

/// A person's message to a human, opened.
#[derive(Clone, Debug, Serialize)]
pub struct ContactView {
    pub id: String,
    pub subject: SubjectId,
    pub message: Option<String>,
    pub status: String,
    pub created_at: Timestamp,
    pub due_at: Timestamp,
    pub overdue: bool,
    pub closed_by: Option<String>,
}

fn conflict(code: &'static str) -> impl Fn(StoreError) -> AppError {
    move |e| match e {
        StoreError::Conflict(m) => AppError::new(ErrorKind::Conflict, code, m),
        StoreError::NotFound => AppError::not_found("subject"),
        other => other.into(),
    }
}

impl App {
    /// Where sign-in emails go when no `[smtp]` relay is configured (the demo): one `.eml`
    /// file per message, readable only by the owner.
    pub fn set_outbox(&self, dir: PathBuf) {
        let _ = self.inner.outbox.set(dir);
    }

    /// A directory of HTML reports of past campaigns (the demo's Hillstrom analysis), listed
    /// on the console's journeys page.
    pub fn set_reports_dir(&self, dir: PathBuf) {
        let _ = self.inner.reports.set(dir);
    }

    pub fn reports_dir(&self) -> Option<&std::path::Path> {
        self.inner.reports.get().map(PathBuf::as_path)
    }

    // ------------------------------------------------------------------------------------
    // Staff
    // ------------------------------------------------------------------------------------

    /// Creates a staff account of `tenant`.
    pub async fn create_staff(
        &self,
        tenant: TenantId,
        actor: &str,
        login: &str,
        role: &str,
        password: &str,
    ) -> AppResult<StaffRow> {
        let login = login.trim().to_lowercase();
        if login.is_empty()
            || login.len() > 120
            || !login
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "@.-_+".contains(c))
        {
            return Err(AppError::bad_request(
                "login_invalid",
                "a login is 1-120 letters, digits or @ . - _ +",
            ));
        }
        let role = Role::parse(role).ok_or_else(|| {
            AppError::bad_request(
                "role_invalid",
                "role must be admin, marketer, reviewer or compliance",
            )
        })?;
        if password.chars().count() < MIN_PASSWORD {
            return Err(AppError::bad_request(
                "password_too_short",
                format!("a staff password has at least {MIN_PASSWORD} characters"),
            ));
        }
        let hash = candor_crypto::hash_password(password)?;
        let row = StaffRow {
            id: KeyId::new().to_string(),
            tenant,
            login: login.clone(),
            role: role.as_str().into(),
            password_hash: hash,
            created_at: self.clock().now(),
            disabled_at: None,
        };
        let audit = AuditDraft {
            tenant: Some(tenant),
            actor: actor.to_string(),
            action: "staff.created".into(),
            target: Some(row.id.clone()),
            details: json!({ "login": login, "role": role.as_str() }),
        };
        self.store()
            .insert_staff(&row, audit)
            .await
            .map_err(conflict("login_taken"))?;
        Ok(row)
    }

    /// Checks a login and password; on success opens a console session and returns the
    /// cookie's secret. Failures say nothing about which part was wrong.
    pub async fn staff_sign_in(
        &self,
        login: &str,
        password: &str,
    ) -> AppResult<(String, WebSession)> {
        let login = login.trim().to_lowercase();
        if login.len() > 120 || password.len() > 1024 {
            return Err(sign_in_failed());
        }
        let row = self.store().staff_by_login(&login).await?;
        // The same work whether or not the login exists: PBKDF2 on the blocking pool, two at
        // a time, so that sign-in attempts cannot starve the requests the runtime serves.
        static VERIFY: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(2);
        let stored = row
            .as_ref()
            .map_or(DUMMY_HASH.to_string(), |r| r.password_hash.clone());
        let password = password.to_string();
        let ok = {
            let _permit = VERIFY
                .acquire()
                .await
                .map_err(|e| AppError::internal("staff", &e))?;
            tokio::task::spawn_blocking(move || candor_crypto::verify_password(&password, &stored))
                .await
                .map_err(|e| AppError::internal("staff", &e))?
        };
        let (Some(row), true) = (row, ok) else {
            return Err(sign_in_failed());
        };
        if row.disabled_at.is_some() {
            return Err(sign_in_failed());
        }
        let role = Role::parse(&row.role)
            .ok_or_else(|| AppError::internal("staff", &"unknown role in storage"))?;
        let (secret, session) = self
            .open_session(row.tenant, "staff", Some(row.id.clone()), None)
            .await?;
        self.store()
            .append_audit(vec![AuditDraft {
                tenant: Some(row.tenant),
                actor: format!("staff:{}", row.id),
                action: "staff.signed_in".into(),
                target: Some(row.id.clone()),
                details: json!({ "role": row.role }),
            }])
            .await?;
        Ok((
            secret,
            WebSession {
                row: session,
                staff: Some((row, role)),
            },
        ))
    }

    pub async fn list_staff(&self, tenant: TenantId) -> AppResult<Vec<StaffRow>> {
        Ok(self.store().list_staff(tenant).await?)
    }

    async fn open_session(
        &self,
        tenant: TenantId,
        kind: &str,
        staff_id: Option<String>,
        subject: Option<SubjectId>,
    ) -> AppResult<(String, SessionRow)> {
        let (secret, seed) = self.new_session(kind)?;
        let row = seed.bind(tenant, staff_id, subject);
        self.store().insert_session(&row).await?;
        Ok((secret, row))
    }

    /// A new session's cookie secret and its seed (not yet bound to anyone).
    fn new_session(&self, kind: &str) -> AppResult<(String, SessionSeed)> {
        let token = self.api_keys().new_token("cs")?;
        let csrf = self.api_keys().new_token("csrf")?;
        let now = self.clock().now();
        let ttl = if kind == "staff" {
            STAFF_SESSION_MS
        } else {
            CUSTOMER_SESSION_MS
        };
        let seed = SessionSeed {
            token_hash: token.hash.to_vec(),
            kind: kind.into(),
            csrf: csrf.secret.to_string(),
            created_at: now,
            expires_at: Timestamp(now.0 + ttl),
        };
        Ok((token.secret.to_string(), seed))
    }

    /// The live session of a cookie's secret, with its staff account (`None` when unknown,
    /// expired, or the account was disabled).
    pub async fn web_session(&self, secret: &str) -> AppResult<Option<WebSession>> {
        if secret.is_empty() || secret.len() > 200 {
            return Ok(None);
        }
        let hash = self.api_keys().hash(secret);
        let Some(row) = self.store().session(&hash, self.clock().now()).await? else {
            return Ok(None);
        };
        let staff = match &row.staff_id {
            Some(id) => match self.store().staff_by_id(id).await? {
                Some(s) if s.disabled_at.is_none() && s.tenant == row.tenant => {
                    let role = Role::parse(&s.role)
                        .ok_or_else(|| AppError::internal("staff", &"unknown role in storage"))?;
                    Some((s, role))
                }
                _ => return Ok(None),
            },
            None => None,
        };
        Ok(Some(WebSession { row, staff }))
    }

    /// Ends a session (signing out).
    pub async fn end_session(&self, secret: &str) -> AppResult<()> {
        self.store()
            .delete_session(&self.api_keys().hash(secret))
            .await?;
        Ok(())
    }

    // ------------------------------------------------------------------------------------
    // Privacy center sign-in
    // ------------------------------------------------------------------------------------

    /// Emails a one-time sign-in link to `email` if it is the verified address of a person
    /// of `tenant` (the address they gave, stored as a blind index), at most
    /// [`LINKS_PER_HOUR`] an hour. `link_base` is the privacy center's URL.
    pub async fn request_signin_link(
        &self,
        tenant: TenantId,
        email: &str,
        link_base: &str,
    ) -> AppResult<LinkOutcome> {
        // A way to send is checked before anything is looked up: the answer must not depend
        // on whether the address is known.
        if self.mailer().is_err() && self.inner.outbox.get().is_none() {
            return Err(AppError::new(
                ErrorKind::Unavailable,
                "email_not_configured",
                "signing in by email is not available: the shop has no mail relay configured",
            ));
        }
        let email = email.trim();
        if !crate::mail::valid_address(email) {
            return Err(AppError::bad_request(
                "email_invalid",
                "enter the email address you gave the shop",
            ));
        }
        let Some(subject) = self.subject_by_email(tenant, email).await? else {
            return Ok(LinkOutcome::UnknownAddress);
        };
        // The link and the email are made after the answer, so that a known address is not
        // answered more slowly than an unknown one; failures are logged, without the address.
        let (app, email, base) = (self.clone(), email.to_string(), link_base.to_string());
        tokio::spawn(async move {
            match app.send_signin_link(tenant, subject, &email, &base).await {
                Ok(o) => tracing::debug!(outcome = ?o, "sign-in link"),
                Err(e) => tracing::warn!(code = e.code, "sign-in link not sent"),
            }
        });
        Ok(LinkOutcome::Sent)
    }

    /// Issues the link (within the hourly limit) and sends it.
    async fn send_signin_link(
        &self,
        tenant: TenantId,
        subject: SubjectId,
        email: &str,
        link_base: &str,
    ) -> AppResult<LinkOutcome> {
        let token = self.api_keys().new_token("pl")?;
        let now = self.clock().now();
        match self
            .store()
            .insert_signin_link(
                tenant,
                subject,
                &token.hash,
                now,
                Timestamp(now.0 + LINK_MS),
                LINKS_PER_HOUR,
            )
            .await
        {
            Ok(()) => {}
            Err(StoreError::Conflict(_)) => return Ok(LinkOutcome::RateLimited),
            Err(StoreError::NotFound) => return Ok(LinkOutcome::UnknownAddress),
            Err(e) => return Err(e.into()),
        }
        let url = format!(
            "{}/privacy/link/{}",
            link_base.trim_end_matches('/'),
            &*token.secret
        );
        let text = format!(
            "Hello,\n\n\
             someone (we hope you) asked to sign in to the shop's privacy center, where\n\
             you can see the data the shop holds about you, change your choices, and\n\
             download or delete your data.\n\n\
             Open this link within 15 minutes to sign in (it works once):\n\n{url}\n\n\
             If it was not you, ignore this email: nothing changes.\n"
        );
        let subject_line = "Your sign-in link to the privacy center";
        match (self.mailer(), self.inner.outbox.get()) {
            (Ok(m), _) => m
                .send_notice(email, subject_line, &text)
                .await
                .map_err(|_| {
                    AppError::new(
                        ErrorKind::Unavailable,
                        "email_failed",
                        "the relay did not take the sign-in email",
                    )
                })?,
            (Err(_), Some(dir)) => write_outbox(dir, email, subject_line, &text)?,
            (Err(e), None) => return Err(e),
        }
        self.store()
            .append_audit(vec![AuditDraft {
                tenant: Some(tenant),
                actor: "privacy_center".into(),
                action: "privacy.link_sent".into(),
                target: Some(subject.to_string()),
                details: json!({ "expires_in_minutes": LINK_MS / 60_000 }),
            }])
            .await?;
        Ok(LinkOutcome::Sent)
    }

    /// Redeems a sign-in link once: opens a privacy-center session for its person.
    pub async fn redeem_signin_link(&self, secret: &str) -> AppResult<(String, WebSession)> {
        let invalid = || {
            AppError::new(
                ErrorKind::NotFound,
                "link_invalid",
                "this sign-in link was already used, has expired, or is not valid: ask for a new one",
            )
        };
        if secret.is_empty() || secret.len() > 200 {
            return Err(invalid());
        }
        let hash = self.api_keys().hash(secret);
        // The store binds the session to the link's tenant and person.
        let (secret, seed) = self.new_session("customer")?;
        let row = self
            .store()
            .redeem_signin_link(&hash, self.clock().now(), seed)
            .await?
            .ok_or_else(invalid)?;
        let subject = row
            .subject
            .ok_or_else(|| AppError::internal("privacy", &"session without a person"))?;
        self.store()
            .append_audit(vec![AuditDraft {
                tenant: Some(row.tenant),
                actor: format!("subject:{subject}"),
                action: "privacy.signed_in".into(),
                target: Some(subject.to_string()),
                details: json!({}),
            }])
            .await?;
        Ok((secret, WebSession { row, staff: None }))
    }

    /// The person whose verified address is `email`, through its blind index.
    pub async fn subject_by_email(
        &self,
        tenant: TenantId,
        email: &str,
    ) -> AppResult<Option<SubjectId>> {
        let tk = self.tenant_key(tenant).await?;
        let alias = Alias {
            kind: IdentifierKind::Email,
            blind: tk.blind_index(IdentifierKind::Email, email),
        };
        let found = self.store().find_subjects(tenant, &[alias]).await?;
        Ok(found
            .get(&alias)
            .filter(|s| s.wrapped_key.is_some())
            .map(|s| s.id))
    }

    /// Staff search of a person by email address (the lookup itself is audited: it tells
    /// whether someone is a customer).
    pub async fn staff_find_by_email(
        &self,
        principal: &Principal,
        email: &str,
    ) -> AppResult<Option<SubjectId>> {
        let found = self.subject_by_email(principal.tenant, email).await?;
        self.store()
            .append_audit(vec![AuditDraft {
                tenant: Some(principal.tenant),
                actor: principal.actor(),
                action: "subject.searched".into(),
                target: found.map(|s| s.to_string()),
                details: json!({ "by": "email", "found": found.is_some() }),
            }])
            .await?;
        Ok(found)
    }

    // ------------------------------------------------------------------------------------
    // The person's own choices
    // ------------------------------------------------------------------------------------

    /// The person's consent per purpose, as the policy decides it now.
    pub async fn own_consents(
        &self,
        tenant: TenantId,
        subject: SubjectId,
    ) -> AppResult<ConsentView> {
        self.consent_view_of(tenant, subject).await
    }

    /// The person grants or withdraws a consent-based purpose in the privacy center.
    pub async fn set_own_consent(
        &self,
        tenant: TenantId,
        subject: SubjectId,
        purpose: &str,
        granted: bool,
    ) -> AppResult<()> {
        let purpose = self.purpose(purpose)?;
        let row = self.resolve_subject(tenant, subject).await?;
        if row.wrapped_key.is_none() {
            return Err(AppError::new(
                ErrorKind::Conflict,
                "subject_erased",
                "this person's data was erased",
            ));
        }
        let history = self.store().consent_ledger(tenant, subject).await?;
        let jurisdiction = history.iter().rev().find_map(|c| c.jurisdiction.clone());
        let action = if granted {
            ConsentAction::Granted
        } else {
            ConsentAction::Withdrawn
        };
        let record = ConsentRecord {
            purpose: purpose.clone(),
            action,
            source: ConsentSource::PrivacyCenter,
            notice_version: None,
            notice_hash: None,
            jurisdiction,
            at: self.clock().now(),
        };
        let audit = AuditDraft {
            tenant: Some(tenant),
            actor: format!("subject:{subject}"),
            action: format!("consent.{}", action.as_str()),
            target: Some(subject.to_string()),
            details: json!({ "purpose": purpose, "source": "privacy_center" }),
        };
        self.store()
            .append_consents(tenant, subject, vec![record], vec![audit])
            .await?;
        self.metrics()
            .consent_change(purpose.as_str(), action.as_str());
        Ok(())
    }

    /// What is held about the person, by category, with the purposes that may use it: the
    /// names of profile fields and counts of events (nothing is opened to show it).
    /// `consents` is the person's [`App::own_consents`], which says which purposes may use
    /// their data now.
    pub async fn held_data(
        &self,
        tenant: TenantId,
        subject: SubjectId,
        consents: &ConsentView,
    ) -> AppResult<Vec<HeldCategory>> {
        let held = self.store().held_summary(tenant, subject).await?;
        let mut fields: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (path, category) in held.fields {
            fields.entry(category).or_default().push(path);
        }
        let events: BTreeMap<String, i64> = held.events.into_iter().collect();
        let mut out = Vec::new();
        for c in self.policy().categories() {
            let name = c.name.as_str();
            let (f, n) = (
                fields.remove(name).unwrap_or_default(),
                events.get(name).copied().unwrap_or(0),
            );
            if f.is_empty() && n == 0 {
                continue;
            }
            let purposes = self
                .policy()
                .purposes()
                .filter(|p| p.categories.contains(&c.name))
                .map(|p| {
                    let allowed = consents
                        .purposes
                        .iter()
                        .any(|x| x.purpose == p.name.as_str() && x.allowed);
                    (p.name.to_string(), p.description.clone(), allowed)
                })
                .collect();
            out.push(HeldCategory {
                category: name.into(),
                description: c.description.clone(),
                retention_days: c.retention_days,
                profile_fields: f,
                events: n as usize,
                purposes,
            });
        }
        Ok(out)
    }

    /// The person's own address, masked (`a…@example.com`), to show whose account is open:
    /// a sign-in link to someone else's account must not pass unnoticed.
    pub async fn own_address_masked(
        &self,
        tenant: TenantId,
        subject: SubjectId,
    ) -> AppResult<Option<String>> {
        let s = self.resolve_subject(tenant, subject).await?;
        let Some(key) = self.data_key(tenant, &s).await? else {
            return Ok(None);
        };
        let grant = self.policy().rights_grant(tenant, subject, "access");
        for f in self.store().fields_for(&grant).await? {
            if f.path == "traits.email" {
                let bytes = key.open(&f.path, &f.sealed)?;
                let email: String = serde_json::from_slice(&bytes).unwrap_or_default();
                return Ok(email.split_once('@').map(|(local, domain)| {
                    let first: String = local.chars().take(1).collect();
                    format!("{first}…@{domain}")
                }));
            }
        }
        Ok(None)
    }

    /// The person's contests: (decision id, status, the reviewer's note).
    pub async fn own_contests(
        &self,
        tenant: TenantId,
        subject: SubjectId,
    ) -> AppResult<Vec<(String, String, Option<String>)>> {
        let s = self.resolve_subject(tenant, subject).await?;
        let key = self.data_key(tenant, &s).await?;
        let mut out = Vec::new();
        for c in self.store().contests_for(tenant, subject).await? {
            let note = match (&key, &c.note_sealed) {
                (Some(k), Some(n)) => Some(
                    String::from_utf8_lossy(&k.open(&format!("contest-note:{}", c.id), n)?)
                        .into_owned(),
                ),
                _ => None,
            };
            out.push((c.decision_id, c.status, note));
        }
        Ok(out)
    }

    /// The person's export as one JSON document.
    pub async fn export_bytes(
        &self,
        tenant: TenantId,
        actor: &str,
        subject: SubjectId,
    ) -> AppResult<Vec<u8>> {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<u8>>(64);
        let app = self.clone();
        let actor = actor.to_string();
        let task =
            tokio::spawn(async move { app.export_subject(tenant, &actor, subject, &tx).await });
        let mut out = Vec::new();
        while let Some(chunk) = rx.recv().await {
            out.extend_from_slice(&chunk);
        }
        task.await.map_err(|e| AppError::internal("export", &e))??;
        Ok(out)
    }

    /// "Talk to a human": the person's message joins the staff's queue.
    pub async fn contact_human(
        &self,
        tenant: TenantId,
        subject: SubjectId,
        message: &str,
    ) -> AppResult<String> {
        let message = crate::rights::own_words(
            message,
            "message_invalid",
            "write your message in up to 5000 characters",
        )?;
        let (_, key) = self.live_key(tenant, subject).await?;
        let now = self.clock().now();
        let id = EventId::new().to_string();
        let row = ContactRow {
            // Sealed as a JSON string, like every other sealed value of the export.
            sealed: key.seal(
                &format!("contact:{id}"),
                &serde_json::to_vec(message).map_err(|e| AppError::internal("contact", &e))?,
            )?,
            id: id.clone(),
            subject,
            status: "open".into(),
            created_at: now,
            due_at: now.plus_days(CONTACT_SLA_DAYS),
            closed_at: None,
            closed_by: None,
        };
        let audit = AuditDraft {
            tenant: Some(tenant),
            actor: format!("subject:{subject}"),
            action: "contact.requested".into(),
            target: Some(subject.to_string()),
            details: json!({ "contact": id }),
        };
        self.store().insert_contact(tenant, &row, audit).await?;
        Ok(id)
    }

    /// Messages to a human, opened for staff (each opening is audited).
    pub async fn contact_queue(
        &self,
        principal: &Principal,
        status: Option<&str>,
    ) -> AppResult<Vec<ContactView>> {
        let rows = self
            .store()
            .list_contacts(principal.tenant, status, 500)
            .await?;
        self.open_contacts(principal.tenant, &principal.actor(), rows)
            .await
    }

    /// The person's own messages.
    pub async fn own_contacts(
        &self,
        tenant: TenantId,
        subject: SubjectId,
    ) -> AppResult<Vec<ContactView>> {
        let rows = self.store().contacts_for(tenant, subject).await?;
        self.open_contacts(tenant, &format!("subject:{subject}"), rows)
            .await
    }

    async fn open_contacts(
        &self,
        tenant: TenantId,
        actor: &str,
        rows: Vec<ContactRow>,
    ) -> AppResult<Vec<ContactView>> {
        let now = self.clock().now();
        let mut out = Vec::with_capacity(rows.len());
        let mut audit = Vec::new();
        for r in rows {
            let s = self.store().subject(tenant, r.subject).await?;
            let message = match s {
                Some(s) => match self.data_key(tenant, &s).await? {
                    Some(k) => {
                        let b = k.open(&format!("contact:{}", r.id), &r.sealed)?;
                        Some(
                            serde_json::from_slice::<String>(&b)
                                .map_err(|e| AppError::internal("contact", &e))?,
                        )
                    }
                    None => None,
                },
                None => None,
            };
            audit.push(AuditDraft {
                tenant: Some(tenant),
                actor: actor.to_string(),
                action: "contact.viewed".into(),
                target: Some(r.subject.to_string()),
                details: json!({ "contact": r.id }),
            });
            out.push(ContactView {
                overdue: r.status == "open" && r.due_at < now,
                id: r.id,
                subject: r.subject,
                message,
                status: r.status,
                created_at: r.created_at,
                due_at: r.due_at,
                closed_by: r.closed_by,
            });
        }
        if !audit.is_empty() {
            self.store().append_audit(audit).await?;
        }
        Ok(out)
    }

    /// Staff close a message once they have answered the person.
    pub async fn close_contact(&self, principal: &Principal, id: &str) -> AppResult<()> {
        let now = self.clock().now();
        let audit = AuditDraft {
            tenant: Some(principal.tenant),
            actor: principal.actor(),
            action: "contact.closed".into(),
            target: Some(id.to_string()),
            details: json!({}),
        };
        self.store()
            .close_contact(principal.tenant, id, &principal.actor(), now, audit)
            .await
            .map_err(|e| match e {
                StoreError::NotFound => AppError::not_found("open message"),
                other => other.into(),
            })
    }

    // ------------------------------------------------------------------------------------
    // Console aggregates
    // ------------------------------------------------------------------------------------

    /// Counts for the overview: people, erasures, GPC, ingestion over the last 30 days,
    /// consent by purpose and jurisdiction.
    pub async fn overview(&self, tenant: TenantId) -> AppResult<Overview> {
        let since = Timestamp(self.clock().now().0 - 30 * Timestamp::DAY_MS);
        Ok(self.store().overview(tenant, since).await?)
    }

    /// The newest entries of the tenant's audit chain, and whether the whole log verifies.
    pub async fn audit_tail(
        &self,
        tenant: TenantId,
        limit: u32,
    ) -> AppResult<(Vec<AuditEntry>, Result<usize, String>)> {
        let chain = candor_store::chain_name(Some(tenant));
        let entries = self.store().audit_tail(&chain, limit).await?;
        // This tenant's chain only: another store's log is not this one's business.
        let verified = match self.verify_chains(Some(&chain)).await? {
            Ok(report) => Ok(report.chains.iter().map(|c| c.entries as usize).sum()),
            Err(b) => Err(b.to_string()),
        };
        Ok((entries, verified))
    }

    /// Records that a staff member opened a person's record (every view of PII is audited).
    pub async fn audit_view(
        &self,
        principal: &Principal,
        subject: SubjectId,
        what: &str,
    ) -> AppResult<()> {
        self.store()
            .append_audit(vec![AuditDraft {
                tenant: Some(principal.tenant),
                actor: principal.actor(),
                action: "subject.viewed".into(),
                target: Some(subject.to_string()),
                details: json!({ "view": what }),
            }])
            .await?;
        Ok(())
    }
}

/// A PBKDF2 hash of a random password, checked when a login does not exist so that an
/// unknown login costs what a wrong password does.
const DUMMY_HASH: &str =
    "pbkdf2-sha256$600000$c2FsdHNhbHRzYWx0c2FsdA==$3q2+7w3q2+7w3q2+7w3q2+7w3q2+7w3q2+7w3q2+7w0=";

fn sign_in_failed() -> AppError {
    AppError::new(
        ErrorKind::Unauthorized,
        "sign_in_failed",
        "the login or password is wrong",
    )
}

/// Writes a message to the outbox directory (mode 0600 on Unix).
fn write_outbox(dir: &std::path::Path, to: &str, subject: &str, text: &str) -> AppResult<()> {
    std::fs::create_dir_all(dir).map_err(|e| AppError::internal("outbox", &e))?;
    let message = crate::mail::build_notice(
        "privacy-center@localhost",
        to,
        &format!("<{}@localhost>", EventId::new()),
        jiff::Timestamp::now(),
        subject,
        text,
    );
    let path = dir.join(format!("{}.eml", EventId::new()));
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    use std::io::Write;
    let mut f = opts
        .open(&path)
        .map_err(|e| AppError::internal("outbox", &e))?;
    f.write_all(&message)
        .map_err(|e| AppError::internal("outbox", &e))?;
    Ok(())
}
