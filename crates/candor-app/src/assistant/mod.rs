//! The shopping assistant. It says it is an AI in the first reply of every conversation,
//! answers only from what it retrieved (the catalog, the help articles, the person's own
//! orders when the store's backend vouched for them, the consent-aware recommender), and hands
//! the conversation to a person on request, on a sensitive topic or when it keeps failing to
//! understand.
//!
//! The rules:
//! - Every customer message is redacted ([`redact`]) before anything else reads it; only the
//!   redacted text is searched, stored, or sent to a language model. Names come from the
//!   person's profile, read through the `service` purpose.
//! - The language model (`[assistant.llm]`) sees the redacted conversation and what was
//!   retrieved for this turn; recommendations only under the person's `personalization`
//!   grant; never orders or profile values. Its reply is shown only if it echoes no personal
//!   data and does not claim to be a person; otherwise, or when it fails or times out, the
//!   embedded answer is shown with a note saying so. Each call is an audit entry with counts
//!   of what was redacted, never the values.
//! - A turn (the customer's message, the reply, a hand-off ticket, the decision and audit
//!   entries) is committed before it is answered, by a group commit of turns.
//! - A conversation that names a person stores its messages sealed with the person's data key;
//!   it is exported with them and erased with them.

pub mod intent;
pub mod llm;
pub mod redact;
pub mod search;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, OnceLock, RwLock};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sha2::Digest as _;
use tokio::sync::{mpsc, oneshot};

use candor_crypto::DataKey;
use candor_crypto::IdentifierKind;
use candor_store::{
    AssistantStore as _, AuditDraft, ConversationRow, DecisionRow, MessageRow, ProductRow,
    Store as _, StoreError, SubjectRow, TicketRow, TurnWrite,
};
use candor_types::{Scope, SubjectId, TenantId, Timestamp};

use crate::{App, AppError, AppResult, ErrorKind, Principal};
use intent::Intent;
use redact::{Redacted, claims_human, redact};
use search::{Doc, Hit, Index, terms};

/// The longest customer or staff message, in characters.
pub const MAX_MESSAGE: usize = 2000;
/// How long a tenant's catalog index is trusted before its stamp is read again.
pub const CATALOG_TTL: Duration = Duration::from_secs(2);
/// Products shown in one reply.
const SHOWN: usize = 3;

/// The assistant's caches and writer.
#[derive(Default)]
pub(crate) struct AssistantState {
    catalogs: RwLock<HashMap<TenantId, CatalogEntry>>,
    help: RwLock<Option<Arc<Help>>>,
    turns: OnceLock<mpsc::Sender<TurnJob>>,
    tls: OnceLock<tokio_rustls::TlsConnector>,
}

/// A tenant's products and their index.
pub struct Catalog {
    pub products: Vec<ProductRow>,
    index: Index,
    /// Product id → position in `products`.
    by_id: HashMap<String, usize>,
}

impl Catalog {
    fn new(products: Vec<ProductRow>) -> Self {
        Self {
            index: Index::build(&catalog_docs(&products)),
            by_id: products
                .iter()
                .enumerate()
                .map(|(i, p)| (p.product_id.clone(), i))
                .collect(),
            products,
        }
    }

    fn product(&self, id: &str) -> Option<&ProductRow> {
        self.by_id.get(id).map(|&i| &self.products[i])
    }
}

/// A cached catalog with the stamp it was built at and when that stamp was last confirmed.
struct CatalogEntry {
    stamp: (i64, i64),
    checked: Instant,
    catalog: Arc<Catalog>,
}

/// One section of a help article.
#[derive(Clone, Debug, PartialEq)]
pub struct HelpSection {
    /// `<file>#<anchor>`.
    pub id: String,
    pub article: String,
    pub title: String,
    pub text: String,
}

struct Help {
    sections: Vec<HelpSection>,
    index: Index,
}

/// Splits a markdown article into its `##` sections (the `#` title names the article).
pub fn help_sections(path: &str, markdown: &str) -> Vec<HelpSection> {
    let mut article = path.rsplit('/').next().unwrap_or(path).to_owned();
    let mut out: Vec<HelpSection> = Vec::new();
    let mut current: Option<HelpSection> = None;
    for line in markdown.lines() {
        if let Some(t) = line.strip_prefix("# ") {
            article = t.trim().to_owned();
        } else if let Some(t) = line.strip_prefix("## ") {
            out.extend(current.take());
            let anchor: String = t
                .trim()
                .to_lowercase()
                .chars()
                .map(|c| if c.is_alphanumeric() { c } else { '-' })
                .collect();
            current = Some(HelpSection {
                id: format!("{path}#{}", anchor.trim_matches('-')),
                article: article.clone(),
                title: t.trim().to_owned(),
                text: String::new(),
            });
        } else if let Some(s) = current.as_mut() {
            let l = line.trim();
            if !l.is_empty() {
                if !s.text.is_empty() {
                    s.text.push(' ');
                }
                s.text.push_str(l.trim_start_matches(['-', '*', ' ']));
            }
        } else if !line.trim().is_empty() {
            current = Some(HelpSection {
                id: path.to_owned(),
                article: article.clone(),
                title: article.clone(),
                text: line.trim().to_owned(),
            });
        }
    }
    out.extend(current);
    out.retain(|s| !s.text.is_empty());
    out
}

struct TurnJob {
    write: TurnWrite,
    done: oneshot::Sender<Result<(), StoreError>>,
}

/// The group commit of turns: whatever is queued when the previous commit ends goes into the
/// next transaction; each turn learns its own outcome.
async fn turn_batches(store: candor_store::AnyStore, mut rx: mpsc::Receiver<TurnJob>) {
    while let Some(first) = rx.recv().await {
        let mut jobs = vec![first];
        while jobs.len() < 256 {
            match rx.try_recv() {
                Ok(j) => jobs.push(j),
                Err(_) => break,
            }
        }
        let writes: Vec<TurnWrite> = jobs.iter().map(|j| j.write.clone()).collect();
        match store.write_turns(&writes).await {
            Ok(results) => {
                for (j, r) in jobs.into_iter().zip(results) {
                    let _ = j.done.send(r);
                }
            }
            // One turn may have poisoned the batch: each is tried alone (as ingest does).
            Err(e) if jobs.len() > 1 => {
                tracing::warn!(error = %e, turns = jobs.len(), "turn batch failed; retrying turns one by one");
                for (j, w) in jobs.into_iter().zip(writes) {
                    let r = match store.write_turns(std::slice::from_ref(&w)).await {
                        Ok(mut r) => r.pop().unwrap_or(Ok(())),
                        Err(e) => Err(StoreError::Corrupt(e.to_string())),
                    };
                    let _ = j.done.send(r);
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "assistant turn not written");
                for j in jobs {
                    let _ = j.done.send(Err(StoreError::Corrupt(e.to_string())));
                }
            }
        }
    }
}

/// How a conversation starts.
#[derive(Clone, Debug, Default)]
pub struct StartInput {
    pub user_id: Option<String>,
    pub anonymous_id: Option<String>,
    pub message: Option<String>,
}

impl StartInput {
    pub fn from_json(v: &Value) -> AppResult<Self> {
        let o = v
            .as_object()
            .ok_or_else(|| AppError::bad_request("not_an_object", "the body is a JSON object"))?;
        for k in o.keys() {
            if !["userId", "anonymousId", "message"].contains(&k.as_str()) {
                return Err(AppError::bad_request(
                    "invalid_request",
                    format!("unknown field `{k}` (userId, anonymousId, message)"),
                ));
            }
        }
        let id = |k: &str| -> AppResult<Option<String>> {
            match o.get(k) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) if !s.trim().is_empty() && s.len() <= 200 => {
                    Ok(Some(s.trim().to_owned()))
                }
                Some(_) => Err(AppError::bad_request(
                    "subject_invalid",
                    format!("`{k}` is a string of 1 to 200 characters"),
                )),
            }
        };
        let message = match o.get("message") {
            None | Some(Value::Null) => None,
            Some(m) => Some(message_text(Some(m))?),
        };
        Ok(Self {
            user_id: id("userId")?,
            anonymous_id: id("anonymousId")?,
            message,
        })
    }
}

/// A message's text from a JSON value: 1 to [`MAX_MESSAGE`] characters.
pub fn message_text(v: Option<&Value>) -> AppResult<String> {
    match v {
        Some(Value::String(s)) if !s.trim().is_empty() && s.chars().count() <= MAX_MESSAGE => {
            Ok(s.trim().to_owned())
        }
        _ => Err(AppError::bad_request(
            "message_invalid",
            format!("`message` is text of 1 to {MAX_MESSAGE} characters"),
        )),
    }
}

/// Products of a catalog import: `{"products": [{"productId", "name", "description",
/// "category", "price", "currency", "url"}]}`; any invalid product refuses the whole import.
pub fn products_from_json(v: &Value, now: Timestamp) -> AppResult<Vec<ProductRow>> {
    let list = v
        .get("products")
        .and_then(Value::as_array)
        .filter(|_| v.as_object().is_some_and(|o| o.len() == 1))
        .ok_or_else(|| {
            AppError::bad_request(
                "invalid_request",
                "the body is {\"products\": [...]} with up to 100,000 products",
            )
        })?;
    if list.len() > 100_000 {
        return Err(AppError::bad_request(
            "batch_size",
            "at most 100,000 products per import",
        ));
    }
    let bad = |i: usize, m: &str| {
        AppError::bad_request("products_invalid", format!("products[{i}]: {m}"))
    };
    let mut out = Vec::with_capacity(list.len());
    for (i, p) in list.iter().enumerate() {
        let o = p.as_object().ok_or_else(|| bad(i, "not an object"))?;
        for k in o.keys() {
            if ![
                "productId",
                "name",
                "description",
                "category",
                "price",
                "currency",
                "url",
            ]
            .contains(&k.as_str())
            {
                return Err(bad(i, &format!("unknown field `{k}`")));
            }
        }
        let text = |k: &str, max: usize| -> AppResult<Option<String>> {
            match o.get(k) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) if s.trim().len() <= max => {
                    Ok(Some(s.trim().to_owned()).filter(|s| !s.is_empty()))
                }
                Some(Value::Number(n)) if k == "productId" => Ok(Some(n.to_string())),
                _ => Err(bad(
                    i,
                    &format!("`{k}` is text of at most {max} characters"),
                )),
            }
        };
        let product_id =
            text("productId", 200)?.ok_or_else(|| bad(i, "`productId` is required"))?;
        let name = text("name", 500)?.ok_or_else(|| bad(i, "`name` is required"))?;
        let currency = match text("currency", 3)? {
            Some(c) => Some(
                candor_types::Currency::parse(&c)
                    .map_err(|_| bad(i, "`currency` is an ISO 4217 code"))?,
            ),
            None => None,
        };
        let price = match (o.get("price"), currency) {
            (None | Some(Value::Null), _) => None,
            (Some(v), Some(c)) => Some(
                candor_types::Currency::amount_text(v)
                    .and_then(|t| c.parse_rounded(&t).ok())
                    .filter(|p| *p >= 0)
                    .ok_or_else(|| bad(i, "`price` is a non-negative amount"))?,
            ),
            (Some(_), None) => return Err(bad(i, "a `price` needs its `currency`")),
        };
        let url = text("url", 2000)?;
        if url
            .as_ref()
            .is_some_and(|u| !u.starts_with("https://") && !u.starts_with("http://"))
        {
            return Err(bad(i, "`url` is an http(s) URL"));
        }
        out.push(ProductRow {
            product_id,
            name,
            description: text("description", 5000)?.unwrap_or_default(),
            category: text("category", 200)?,
            price,
            currency: currency.map(|c| c.code().to_owned()),
            url,
            source: "import".into(),
            updated_at: now,
        });
    }
    Ok(out)
}

/// A catalog from order lines as stores export them (Online Retail's columns by default):
/// one product per product id, named by its most frequent non-empty name among lines with a
/// positive quantity and price (ties: the first seen), priced at its most frequent price.
pub fn catalog_from_lines(
    table: &candor_ml::table::RawTable,
    product: &str,
    name: &str,
    price: Option<&str>,
    quantity: Option<&str>,
    currency: Option<candor_types::Currency>,
    now: Timestamp,
) -> AppResult<Vec<ProductRow>> {
    let col = |c: &str| {
        table.column(c).ok_or_else(|| {
            AppError::bad_request("column_invalid", format!("the file has no column `{c}`"))
        })
    };
    let (pc, nc) = (col(product)?, col(name)?);
    let pr = price.map(col).transpose()?;
    let qc = quantity.map(col).transpose()?;
    // product → (first seen, name → (count, first seen), price → count)
    type Tally = (
        usize,
        HashMap<String, (u64, usize)>,
        HashMap<String, (u64, usize)>,
    );
    let mut by: HashMap<String, Tally> = HashMap::new();
    for (i, row) in table.rows.iter().enumerate() {
        let cell = |c: usize| row.get(c).map_or("", |s| s.trim());
        let id = cell(pc);
        let n = cell(nc);
        if id.is_empty() || n.is_empty() {
            continue;
        }
        let positive =
            |c: Option<usize>| c.is_none_or(|c| cell(c).parse::<f64>().is_ok_and(|x| x > 0.0));
        if !positive(qc) || !positive(pr) {
            continue;
        }
        let e = by
            .entry(id.to_owned())
            .or_insert_with(|| (i, HashMap::new(), HashMap::new()));
        let ne = e.1.entry(n.to_owned()).or_insert((0, i));
        ne.0 += 1;
        if let Some(c) = pr {
            let pe = e.2.entry(cell(c).to_owned()).or_insert((0, i));
            pe.0 += 1;
        }
    }
    let mode = |m: &HashMap<String, (u64, usize)>| -> Option<String> {
        m.iter()
            .max_by(|a, b| a.1.0.cmp(&b.1.0).then(b.1.1.cmp(&a.1.1)))
            .map(|(k, _)| k.clone())
    };
    let mut out: Vec<(usize, ProductRow)> = by
        .into_iter()
        .filter_map(|(id, (first, names, prices))| {
            let name = mode(&names)?;
            let price = currency.and_then(|c| c.parse_rounded(&mode(&prices)?).ok());
            Some((
                first,
                ProductRow {
                    product_id: id,
                    name,
                    description: String::new(),
                    category: None,
                    price,
                    currency: price.and(currency).map(|c| c.code().to_owned()),
                    url: None,
                    source: "import".into(),
                    updated_at: now,
                },
            ))
        })
        .collect();
    out.sort_by_key(|(first, _)| *first);
    Ok(out.into_iter().map(|(_, p)| p).collect())
}

/// What one reply is made of before it is recorded.
#[derive(Default)]
struct Composed {
    text: String,
    intent: &'static str,
    confidence: f64,
    understood: bool,
    sources: Vec<Value>,
    personal_data_used: bool,
    /// The purpose whose grant let personal data in.
    purpose: Option<String>,
    handoff: Option<String>,
    /// Whether a language model may phrase this reply (product, help, recommendations).
    llm_allowed: bool,
    /// Context for the language model: what was retrieved.
    context: Vec<String>,
}

fn money(price: Option<i64>, currency: Option<&str>) -> Option<String> {
    let c = candor_types::money::Currency::parse(currency?).ok()?;
    Some(format!("{} {}", c.format(price?), c.code()))
}

fn product_source(p: &ProductRow) -> Value {
    json!({
        "type": "product",
        "id": p.product_id,
        "name": p.name,
        "price": money(p.price, p.currency.as_deref()),
        "url": p.url,
    })
}

fn sha256_hex(b: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(b))
}

impl App {
    fn assistant_state(&self) -> &AssistantState {
        &self.inner.assistant
    }

    /// The help articles the assistant answers from: (path, markdown) pairs, read by the
    /// caller from the files `[assistant] help` names.
    pub fn set_help_articles(&self, articles: &[(String, String)]) {
        let sections: Vec<HelpSection> = articles
            .iter()
            .flat_map(|(p, text)| help_sections(p, text))
            .collect();
        let docs: Vec<Doc> = sections
            .iter()
            .map(|s| Doc {
                fields: vec![
                    (s.title.clone(), 3.0),
                    (s.article.clone(), 1.0),
                    (s.text.clone(), 1.0),
                ],
            })
            .collect();
        let help = Help {
            index: Index::build(&docs),
            sections,
        };
        if let Ok(mut h) = self.assistant_state().help.write() {
            *h = Some(Arc::new(help));
        }
    }

    fn help(&self) -> Option<Arc<Help>> {
        self.assistant_state().help.read().ok()?.clone()
    }

    /// The tenant's catalog and its index, rebuilt when the catalog changed (checked at most
    /// every [`CATALOG_TTL`]; at once after this process imported).
    pub async fn catalog(&self, tenant: TenantId) -> AppResult<Arc<Catalog>> {
        let cached = self.assistant_state().catalogs.read().ok().and_then(|c| {
            c.get(&tenant)
                .map(|e| (e.stamp, e.checked, e.catalog.clone()))
        });
        if let Some((_, checked, catalog)) = &cached
            && checked.elapsed() < CATALOG_TTL
        {
            return Ok(catalog.clone());
        }
        let stamp = self.store().catalog_stamp(tenant).await?;
        let catalog = match cached {
            // Unchanged: the index stays, only the check is renewed.
            Some((built, _, catalog)) if built == stamp => catalog,
            _ => Arc::new(Catalog::new(self.store().products(tenant).await?)),
        };
        if let Ok(mut c) = self.assistant_state().catalogs.write() {
            c.insert(
                tenant,
                CatalogEntry {
                    stamp,
                    checked: Instant::now(),
                    catalog: catalog.clone(),
                },
            );
        }
        Ok(catalog)
    }

    fn forget_catalog(&self, tenant: TenantId) {
        if let Ok(mut c) = self.assistant_state().catalogs.write() {
            c.remove(&tenant);
        }
    }

    /// The best `k` products for a question, with their scores.
    pub async fn search_products(
        &self,
        tenant: TenantId,
        question: &str,
        k: usize,
    ) -> AppResult<Vec<(ProductRow, Hit)>> {
        let catalog = self.catalog(tenant).await?;
        Ok(catalog
            .index
            .search(&terms(question), k)
            .into_iter()
            .map(|h| (catalog.products[h.doc as usize].clone(), h))
            .collect())
    }

    /// The products a product question's reply shows (its sources), best first.
    pub async fn product_answer(
        &self,
        tenant: TenantId,
        question: &str,
    ) -> AppResult<Vec<ProductRow>> {
        let hits = self.search_products(tenant, question, 5).await?;
        let min = self.policy().assistant().min_confidence;
        Ok(shown_products(&hits, min).into_iter().cloned().collect())
    }

    /// Imports products (admin or server key), replacing what events said of them.
    pub async fn import_products(
        &self,
        principal: &Principal,
        rows: Vec<ProductRow>,
    ) -> AppResult<u64> {
        principal.require(Scope::Server)?;
        self.import_products_as(principal.tenant, &principal.actor(), rows)
            .await
    }

    /// [`App::import_products`] for a caller that is already trusted (the CLI).
    pub async fn import_products_as(
        &self,
        tenant: TenantId,
        actor: &str,
        rows: Vec<ProductRow>,
    ) -> AppResult<u64> {
        let n = self
            .store()
            .upsert_products(
                tenant,
                &rows,
                vec![AuditDraft {
                    tenant: Some(tenant),
                    actor: actor.to_owned(),
                    action: "catalog.import".into(),
                    target: None,
                    details: json!({ "products": rows.len() }),
                }],
            )
            .await?;
        self.forget_catalog(tenant);
        Ok(n)
    }

    fn turn_queue(&self) -> &mpsc::Sender<TurnJob> {
        self.assistant_state().turns.get_or_init(|| {
            let (tx, rx) = mpsc::channel(4096);
            tokio::spawn(turn_batches(self.store().clone(), rx));
            tx
        })
    }

    fn llm_tls(&self) -> AppResult<&tokio_rustls::TlsConnector> {
        if let Some(t) = self.assistant_state().tls.get() {
            return Ok(t);
        }
        let tls = crate::smtp::tls_client(&[]).map_err(|e| AppError::internal("llm tls", &e))?;
        Ok(self.assistant_state().tls.get_or_init(|| tls))
    }

    /// Starts a conversation (write or server key). With a server key, `userId` is the
    /// store's word for who this is (order status may be told); with a write key the person
    /// is linked but not verified. The reply carries the AI disclosure.
    pub async fn start_conversation(
        &self,
        principal: &Principal,
        input: StartInput,
    ) -> AppResult<Value> {
        principal.require(Scope::Write)?;
        let tenant = principal.tenant;
        let now = self.clock().now();
        let external = input.user_id.as_deref().or(input.anonymous_id.as_deref());
        let subject = match external {
            Some(ext) => {
                self.conversation_subject(tenant, ext, input.user_id.is_some())
                    .await?
            }
            None => None,
        };
        let verified =
            subject.is_some() && input.user_id.is_some() && principal.scope.allows(Scope::Server);
        let conv = ConversationRow {
            id: uuid::Uuid::new_v4().to_string(),
            subject: subject.as_ref().map(|s| s.id),
            verified,
            status: "open".into(),
            misunderstandings: 0,
            next_seq: 0,
            disclosure_version: self.policy().assistant().disclosure_version.clone(),
            created_at: now,
            updated_at: now,
        };
        self.turn(principal, conv, subject, None, input.message.as_deref())
            .await
    }

    /// The person a conversation is about: found by their id, or created (with a data key)
    /// when Candor has not seen them yet. An erased person's id names nobody.
    async fn conversation_subject(
        &self,
        tenant: TenantId,
        external: &str,
        is_user_id: bool,
    ) -> AppResult<Option<SubjectRow>> {
        match self.resolve_subject(tenant, external).await {
            Ok(s) => Ok(s.wrapped_key.is_some().then_some(s)),
            Err(e) if e.kind == ErrorKind::NotFound => {
                let tk = self.tenant_key(tenant).await?;
                let kind = if is_user_id {
                    IdentifierKind::UserId
                } else {
                    IdentifierKind::AnonymousId
                };
                let alias = candor_store::Alias {
                    kind,
                    blind: tk.blind_index(kind, external),
                };
                let made = self
                    .create_subjects(tenant, &tk, [(SubjectId::new(), vec![alias])])
                    .await?;
                Ok(made
                    .get(&alias)
                    .cloned()
                    .filter(|s| s.wrapped_key.is_some()))
            }
            Err(e) => Err(e),
        }
    }

    /// The customer's next message in a conversation (write or server key).
    pub async fn post_message(
        &self,
        principal: &Principal,
        conversation: &str,
        message: &str,
    ) -> AppResult<Value> {
        principal.require(Scope::Write)?;
        let conv = self
            .store()
            .conversation(principal.tenant, conversation)
            .await?
            .ok_or_else(|| AppError::not_found("conversation"))?;
        if conv.status == "closed" {
            return Err(AppError::new(
                ErrorKind::Conflict,
                "conversation_closed",
                "this conversation is closed; start a new one",
            ));
        }
        let subject = match conv.subject {
            Some(s) => {
                let row = self.resolve_subject(principal.tenant, s).await.ok();
                if row.as_ref().is_none_or(|r| r.wrapped_key.is_none()) {
                    return Err(AppError::not_found("conversation"));
                }
                row
            }
            None => None,
        };
        let expect = Some(conv.next_seq);
        self.turn(principal, conv, subject, expect, Some(message))
            .await
    }

    /// The person's names, for redaction: read through the `service` purpose (nothing is
    /// read without its grant).
    async fn known_names(&self, tenant: TenantId, s: &SubjectRow, key: &DataKey) -> Vec<String> {
        let Ok(purpose) = self.purpose(&self.policy().assistant().service_purpose) else {
            return Vec::new();
        };
        let Ok(grant) = self.grant(tenant, s.id, &purpose).await else {
            return Vec::new();
        };
        let Ok(fields) = self.store().fields_for(&grant).await else {
            return Vec::new();
        };
        let mut names = Vec::new();
        for f in fields {
            let leaf = f.path.rsplit('.').next().unwrap_or("");
            if !matches!(
                leaf,
                "name" | "first_name" | "firstName" | "last_name" | "lastName" | "full_name"
            ) {
                continue;
            }
            if let Ok(bytes) = key.open(&f.path, &f.sealed)
                && let Ok(Value::String(n)) = serde_json::from_slice::<Value>(&bytes)
            {
                names.push(n);
            }
        }
        names
    }

    #[allow(clippy::too_many_lines)]
    async fn turn(
        &self,
        principal: &Principal,
        mut conv: ConversationRow,
        subject: Option<SubjectRow>,
        expect_seq: Option<i64>,
        message: Option<&str>,
    ) -> AppResult<Value> {
        let tenant = principal.tenant;
        let policy = self.policy().assistant();
        let now = self.clock().now();
        let key = match &subject {
            Some(s) => self.data_key(tenant, s).await?,
            None => None,
        };
        let names = match (&subject, &key) {
            (Some(s), Some(k)) => self.known_names(tenant, s, k).await,
            _ => Vec::new(),
        };
        let customer = message.map(|m| redact(m, &names));
        let first = expect_seq.is_none();
        let mut composed = match &customer {
            None => Composed {
                text: "Hello! I can help you find products, answer questions about delivery, returns and orders, or put you in touch with a person.".into(),
                intent: "greeting",
                confidence: 1.0,
                understood: true,
                ..Composed::default()
            },
            Some(r) if conv.status == "handoff" => Composed {
                text: "Thank you, I have added your message to the conversation our team is looking at. A person will reply here.".into(),
                intent: "handoff_pending",
                confidence: 1.0,
                understood: true,
                ..Composed::default()
            },
            Some(r) => {
                self.compose(principal, &conv, subject.as_ref(), r)
                    .await?
            }
        };
        // Repeated failures to understand go to a person.
        if composed.handoff.is_none() && !composed.understood {
            conv.misunderstandings += 1;
            if conv.misunderstandings >= i64::from(policy.max_misunderstandings) {
                composed.handoff = Some("misunderstood".into());
            }
        } else if composed.understood {
            conv.misunderstandings = 0;
        }
        // The language model phrases what was retrieved, when there is one.
        let mut backend = "embedded";
        let mut notice: Option<&str> = None;
        let mut audit = Vec::new();
        if let (Some(llm), Some(r)) = (&policy.llm, &customer)
            && composed.llm_allowed
            && composed.handoff.is_none()
        {
            let history = self
                .history_for_llm(tenant, &conv, key.as_ref(), expect_seq)
                .await?;
            let mut msgs: Vec<(&str, String)> = vec![("system", system_prompt(&composed))];
            msgs.extend(history);
            msgs.push(("user", r.text.clone()));
            let body = llm::request_body(llm, &msgs);
            let api_key = llm
                .api_key_env
                .as_deref()
                .and_then(|k| std::env::var(k).ok());
            let started = Instant::now();
            let answer = llm::complete(llm, api_key.as_deref(), &body, self.llm_tls()?).await;
            let ms = started.elapsed().as_millis() as u64;
            let outcome = match answer {
                Ok(text) => {
                    let checked = redact(&text, &names);
                    if checked.total() > 0 {
                        "refused_personal_data"
                    } else if claims_human(&text) {
                        "refused_human_claim"
                    } else if text.trim().is_empty() {
                        "empty"
                    } else {
                        composed.text = text.trim().to_owned();
                        backend = "llm";
                        "ok"
                    }
                }
                Err(e) => e.code(),
            };
            if backend != "llm" {
                notice = Some(
                    "Our AI language model could not answer just now, so this reply comes from the shop's built-in assistant.",
                );
            }
            audit.push(AuditDraft {
                tenant: Some(tenant),
                actor: principal.actor(),
                action: "assistant.llm_call".into(),
                target: Some(conv.id.clone()),
                details: json!({
                    "model": llm.model,
                    "outcome": outcome,
                    "ms": ms,
                    "request_bytes": body.len(),
                    "redacted": r.found,
                    "context_items": composed.context.len(),
                    "personal_data": composed.personal_data_used,
                }),
            });
        }
        let mut ticket = None;
        if let Some(reason) = &composed.handoff {
            conv.status = "handoff".into();
            let t = TicketRow {
                id: uuid::Uuid::now_v7().to_string(),
                conversation_id: conv.id.clone(),
                subject: conv.subject,
                reason: reason.clone(),
                status: "open".into(),
                created_at: now,
                answered_at: None,
                answered_by: None,
            };
            if composed.intent != "handoff_pending" {
                composed.text = if composed.text.is_empty() {
                    policy.handoff_message.clone()
                } else {
                    format!("{} {}", composed.text, policy.handoff_message)
                };
            }
            audit.push(AuditDraft {
                tenant: Some(tenant),
                actor: principal.actor(),
                action: "assistant.handoff".into(),
                target: Some(conv.id.clone()),
                details: json!({ "ticket": t.id, "reason": reason }),
            });
            ticket = Some(t);
        }
        if let Some(n) = notice {
            composed.text = format!("{} ({n})", composed.text);
        }
        let disclosure = first
            .then(|| json!({ "text": policy.disclosure, "version": policy.disclosure_version }));
        let text = if first {
            format!("{}\n\n{}", policy.disclosure, composed.text)
        } else {
            composed.text.clone()
        };
        // The reply is stored redacted like every message (what it quotes from a help page
        // or an order could look like personal data); a person's is sealed with their key.
        let stored_reply = redact(&text, &names).text;
        if first {
            audit.push(AuditDraft {
                tenant: Some(tenant),
                actor: principal.actor(),
                action: "assistant.disclosed".into(),
                target: Some(conv.id.clone()),
                details: json!({ "disclosure_version": policy.disclosure_version }),
            });
        }
        let decision_id = uuid::Uuid::now_v7().to_string();
        let reply_id = uuid::Uuid::now_v7().to_string();
        let meta = json!({
            "intent": composed.intent,
            "confidence": (composed.confidence * 1000.0).round() / 1000.0,
            "sources": composed.sources,
            "personalDataUsed": composed.personal_data_used,
            "decisionId": decision_id,
            "backend": backend,
            "disclosureVersion": first.then_some(&policy.disclosure_version),
            "handoff": ticket.as_ref().map(|t| json!({ "ticketId": t.id, "reason": t.reason })),
        });
        let mut messages = Vec::new();
        let mut seq = conv.next_seq;
        if let Some(r) = &customer {
            let m = json!({ "redacted": r.found });
            messages.push(self.message_row(
                &conv,
                key.as_ref(),
                seq,
                uuid::Uuid::now_v7().to_string(),
                "customer",
                &r.text,
                m,
                now,
            )?);
            seq += 1;
        }
        messages.push(self.message_row(
            &conv,
            key.as_ref(),
            seq,
            reply_id.clone(),
            "assistant",
            &stored_reply,
            meta.clone(),
            now,
        )?);
        conv.next_seq = seq + 1;
        conv.updated_at = now;
        let mut decisions = Vec::new();
        if let (Some(s), Some(k)) = (&subject, &key) {
            let outcome = json!({
                "kind": "assistant_reply",
                "conversation": conv.id,
                "reply": reply_id,
                "intent": composed.intent,
                "confidence": composed.confidence,
                "sources": composed.sources,
                "personal_data_used": composed.personal_data_used,
                "backend": backend,
                "handoff": composed.handoff,
            });
            decisions.push(DecisionRow {
                id: decision_id.clone(),
                subject: s.id,
                purpose: composed
                    .purpose
                    .clone()
                    .unwrap_or_else(|| policy.purpose.clone()),
                kind: "assistant_reply".into(),
                model_version: None,
                inputs_digest: sha256_hex(
                    customer.as_ref().map_or(&b""[..], |c| c.text.as_bytes()),
                ),
                sealed: k.seal(
                    &format!("decision:{decision_id}"),
                    &serde_json::to_vec(&outcome)
                        .map_err(|e| AppError::internal("assistant", &e))?,
                )?,
                created_at: now,
            });
        }
        let write = TurnWrite {
            tenant,
            conversation: conv.clone(),
            expect_seq,
            messages,
            ticket: ticket.clone(),
            decisions,
            audit,
        };
        let (done, wait) = oneshot::channel();
        self.turn_queue()
            .send(TurnJob { write, done })
            .await
            .map_err(|_| AppError::internal("assistant", &"the turn writer stopped"))?;
        match wait.await {
            Ok(Ok(())) => {}
            Ok(Err(StoreError::Conflict(_))) => {
                return Err(AppError::new(
                    ErrorKind::Conflict,
                    "conversation_busy",
                    "another message of this conversation was being answered; send it again",
                ));
            }
            Ok(Err(StoreError::NotFound)) => return Err(AppError::not_found("conversation")),
            Ok(Err(e)) => return Err(AppError::internal("assistant", &e)),
            Err(_) => return Err(AppError::internal("assistant", &"the turn writer stopped")),
        }
        self.metrics().assistant_reply(composed.intent, backend);
        Ok(json!({
            "conversationId": conv.id,
            "status": conv.status,
            "reply": {
                "id": reply_id,
                "text": text,
                "disclosure": disclosure,
                "intent": composed.intent,
                "confidence": meta["confidence"],
                "sources": composed.sources,
                "personalDataUsed": composed.personal_data_used,
                "decisionId": decision_id,
                "backend": backend,
                "handoff": meta["handoff"],
            },
            "redacted": customer.as_ref().map(|c| json!(c.found)),
        }))
    }

    #[allow(clippy::too_many_arguments)]
    fn message_row(
        &self,
        conv: &ConversationRow,
        key: Option<&DataKey>,
        seq: i64,
        id: String,
        role: &str,
        text: &str,
        meta: Value,
        at: Timestamp,
    ) -> AppResult<MessageRow> {
        let (body, sealed, meta) = match key {
            Some(k) => {
                let inner = json!({ "text": text, "meta": meta });
                let s = k.seal(
                    &format!("assistant:{}:{seq}", conv.id),
                    &serde_json::to_vec(&inner).map_err(|e| AppError::internal("assistant", &e))?,
                )?;
                (s.as_bytes().to_vec(), true, "{}".to_owned())
            }
            None => (text.as_bytes().to_vec(), false, meta.to_string()),
        };
        Ok(MessageRow {
            conversation_id: conv.id.clone(),
            seq,
            id,
            subject: conv.subject,
            role: role.to_owned(),
            body,
            sealed,
            meta,
            created_at: at,
        })
    }

    /// A stored message's text and meta (opened with the person's key when sealed).
    fn open_message(&self, m: &MessageRow, key: Option<&DataKey>) -> AppResult<(String, Value)> {
        if m.sealed {
            let Some(k) = key else {
                return Ok((String::new(), json!({ "erased": true })));
            };
            let bytes = k.open(
                &format!("assistant:{}:{}", m.conversation_id, m.seq),
                &candor_crypto::Sealed::from_stored(m.body.clone()),
            )?;
            let v: Value =
                serde_json::from_slice(&bytes).map_err(|e| AppError::internal("assistant", &e))?;
            Ok((
                v["text"].as_str().unwrap_or("").to_owned(),
                v["meta"].clone(),
            ))
        } else {
            Ok((
                String::from_utf8_lossy(&m.body).into_owned(),
                serde_json::from_str(&m.meta).unwrap_or(Value::Null),
            ))
        }
    }

    /// The last messages of a conversation as the model sees them (already redacted).
    async fn history_for_llm(
        &self,
        tenant: TenantId,
        conv: &ConversationRow,
        key: Option<&DataKey>,
        expect_seq: Option<i64>,
    ) -> AppResult<Vec<(&'static str, String)>> {
        if expect_seq.is_none() {
            return Ok(Vec::new());
        }
        let rows = self.store().messages(tenant, &conv.id).await?;
        let mut out = Vec::new();
        for m in rows.iter().rev().take(10).rev() {
            let (text, meta) = self.open_message(m, key)?;
            // Order details are the person's own and never go to the model.
            if meta["intent"] == "order_status" {
                continue;
            }
            out.push((
                if m.role == "customer" {
                    "user"
                } else {
                    "assistant"
                },
                text,
            ));
        }
        Ok(out)
    }

    /// The embedded assistant's reply to a redacted message.
    async fn compose(
        &self,
        principal: &Principal,
        conv: &ConversationRow,
        subject: Option<&SubjectRow>,
        r: &Redacted,
    ) -> AppResult<Composed> {
        let policy = self.policy().assistant();
        let tenant = principal.tenant;
        let lower = r.text.to_lowercase();
        if let Some(topic) = policy.sensitive_topic(&lower) {
            return Ok(Composed {
                text: "This is something a person should help you with.".into(),
                intent: "sensitive_topic",
                confidence: 1.0,
                understood: true,
                handoff: Some(format!("sensitive:{topic}")),
                ..Composed::default()
            });
        }
        let intent = intent::detect(&r.text);
        let mut c = match intent {
            Intent::Human => Composed {
                text: "Of course.".into(),
                intent: intent.as_str(),
                confidence: 1.0,
                understood: true,
                handoff: Some("requested".into()),
                ..Composed::default()
            },
            Intent::Greeting => Composed {
                text: "Hello! What are you looking for today? I can search the catalog, answer questions about delivery and returns, or find a person for you.".into(),
                intent: intent.as_str(),
                confidence: 1.0,
                understood: true,
                llm_allowed: true,
                ..Composed::default()
            },
            Intent::Thanks => Composed {
                text: "You're welcome. Is there anything else I can help with?".into(),
                intent: intent.as_str(),
                confidence: 1.0,
                understood: true,
                llm_allowed: true,
                ..Composed::default()
            },
            Intent::Privacy => self.privacy_reply(tenant, &r.text).await?,
            Intent::OrderStatus => self.order_reply(tenant, conv, subject).await?,
            Intent::Help => self.help_reply(&r.text, true),
            Intent::Recommend => self.recs_reply(principal, subject, &r.text).await?,
            Intent::Product => {
                let products = self.product_reply(tenant, &r.text).await?;
                let help = self.help_reply(&r.text, false);
                if !products.understood && help.understood {
                    help
                } else {
                    products
                }
            }
        };
        if !c.understood && c.handoff.is_none() {
            c.text = "I'm sorry, I did not understand that. I can search our products (try a product name or what it is for), answer questions about delivery, returns and orders, or put you in touch with a person: just say \"human\".".into();
            c.llm_allowed = true;
        }
        Ok(c)
    }

    async fn product_reply(&self, tenant: TenantId, text: &str) -> AppResult<Composed> {
        let min = self.policy().assistant().min_confidence;
        let hits = self.search_products(tenant, text, 5).await?;
        let Some((_, top)) = hits.first() else {
            return Ok(Composed {
                intent: "product_search",
                ..Composed::default()
            });
        };
        let confidence = f64::from(top.coverage);
        if confidence < min {
            return Ok(Composed {
                intent: "product_search",
                confidence,
                ..Composed::default()
            });
        }
        let shown = shown_products(&hits, min);
        let asks_price = {
            let j = intent::joined(text);
            [" how much ", " price ", " cost ", " costs "]
                .iter()
                .any(|w| j.contains(w))
        };
        let line = |p: &ProductRow| match money(p.price, p.currency.as_deref()) {
            Some(m) => format!("{} ({m}, item {})", p.name, p.product_id),
            None => format!("{} (item {})", p.name, p.product_id),
        };
        let text = if shown.len() == 1 || (asks_price && confidence > 0.99) {
            let p = shown[0];
            match (asks_price, money(p.price, p.currency.as_deref())) {
                (true, Some(m)) => format!("{} costs {m} (item {}).", p.name, p.product_id),
                _ => format!("Yes, we have {}.", line(p)),
            }
        } else {
            let list: Vec<String> = shown
                .iter()
                .enumerate()
                .map(|(i, p)| format!("{}. {}", i + 1, line(p)))
                .collect();
            format!("Here is what I found: {}", list.join("; "))
        };
        let context = hits
            .iter()
            .map(|(p, _)| {
                format!(
                    "Product {}: {}{}{}",
                    p.product_id,
                    p.name,
                    money(p.price, p.currency.as_deref())
                        .map_or(String::new(), |m| format!(", {m}")),
                    if p.description.is_empty() || p.description == p.name {
                        String::new()
                    } else {
                        format!(". {}", p.description)
                    }
                )
            })
            .collect();
        Ok(Composed {
            text,
            intent: "product_search",
            confidence,
            understood: true,
            sources: shown.iter().map(|p| product_source(p)).collect(),
            llm_allowed: true,
            context,
            ..Composed::default()
        })
    }

    fn help_reply(&self, text: &str, asked: bool) -> Composed {
        let min = self.policy().assistant().min_confidence;
        let miss = Composed {
            intent: "help",
            ..Composed::default()
        };
        let Some(help) = self.help() else {
            return if asked {
                Composed {
                    text: "I have no help pages to answer that from.".into(),
                    intent: "help",
                    ..Composed::default()
                }
            } else {
                miss
            };
        };
        let hits = help.index.search(&terms(text), 2);
        let Some(top) = hits.first() else { return miss };
        let confidence = f64::from(top.coverage);
        // A question that names a help topic needs less of its words matched.
        if confidence < if asked { min * 0.5 } else { min.max(0.6) } {
            return Composed { confidence, ..miss };
        }
        let s = &help.sections[top.doc as usize];
        let mut excerpt: String = s.text.chars().take(700).collect();
        if excerpt.len() < s.text.len() {
            excerpt.push('…');
        }
        Composed {
            text: format!(
                "From our help page \"{}\" ({}): {excerpt}",
                s.article, s.title
            ),
            intent: "help",
            confidence,
            understood: true,
            sources: vec![
                json!({ "type": "help", "id": s.id, "title": format!("{}: {}", s.article, s.title) }),
            ],
            llm_allowed: true,
            context: hits
                .iter()
                .map(|h| {
                    let s = &help.sections[h.doc as usize];
                    format!("Help \"{}: {}\": {}", s.article, s.title, s.text)
                })
                .collect(),
            ..Composed::default()
        }
    }

    async fn privacy_reply(&self, tenant: TenantId, text: &str) -> AppResult<Composed> {
        let store = self
            .store()
            .tenant(tenant)
            .await?
            .map(|t| t.name)
            .unwrap_or_default();
        let url = format!(
            "{}/privacy/{}",
            self.policy().email().public_url.trim_end_matches('/'),
            if store == "default" || store.is_empty() {
                String::new()
            } else {
                format!("?store={store}")
            }
        );
        let mut sources = vec![json!({ "type": "page", "id": "privacy_center", "url": url })];
        let help = self.help_reply(text, false);
        sources.extend(help.sources);
        Ok(Composed {
            text: format!(
                "You can see the data we hold about you, download it, change your consent choices or delete your account in our privacy center: {url} (sign in with the email address you gave us). I can't make these requests from this chat, because I cannot check who you are here. If you would rather have a person help you, say \"human\"."
            ),
            intent: "privacy_request",
            confidence: 1.0,
            understood: true,
            sources,
            ..Composed::default()
        })
    }

    async fn order_reply(
        &self,
        tenant: TenantId,
        conv: &ConversationRow,
        subject: Option<&SubjectRow>,
    ) -> AppResult<Composed> {
        let unverified = Composed {
            text: "I can only look up orders when you are signed in to the shop. Please sign in and open the chat again, or check the confirmation email we sent for your order. For anything else about an order, say \"human\" and a person will help.".into(),
            intent: "order_status",
            confidence: 1.0,
            understood: true,
            ..Composed::default()
        };
        let Some(s) = subject.filter(|_| conv.verified) else {
            return Ok(unverified);
        };
        let purpose = self.purpose(&self.policy().assistant().service_purpose)?;
        let grant = match self.grant(tenant, s.id, &purpose).await {
            Ok(g) => g,
            Err(_) => return Ok(unverified),
        };
        let mut orders: BTreeMap<String, OrderState> = BTreeMap::new();
        let mut events = self.store().events_for(&grant, 5000).await?;
        events.sort_by_key(|e| (e.occurred_at, e.received_at, e.id.to_string()));
        for e in events {
            let named = match e.name.as_deref() {
                Some("Order Completed") => "placed",
                Some("Order Updated") => "updated",
                Some("Order Shipped") | Some("Order Dispatched") => "shipped",
                Some("Order Delivered") => "delivered",
                Some("Order Cancelled") => "cancelled",
                Some("Order Refunded") => "refunded",
                _ => continue,
            };
            for props in e.plain.values().filter_map(|v| v.get("properties")) {
                // An update says what changed in `status` (shipped, delivered, ...).
                let status = match props.get("status").and_then(Value::as_str) {
                    Some(s) if named == "updated" && !s.is_empty() && s.len() <= 40 => s,
                    _ => named,
                };
                let id = match props.get("order_id") {
                    Some(Value::String(s)) => s.clone(),
                    Some(Value::Number(n)) => n.to_string(),
                    _ => continue,
                };
                let total = props
                    .get("total")
                    .or_else(|| props.get("revenue"))
                    .and_then(candor_types::money::Currency::amount_text)
                    .zip(props.get("currency").and_then(Value::as_str))
                    .map(|(t, c)| format!("{t} {c}"));
                let entry =
                    orders
                        .entry(id)
                        .or_insert((e.occurred_at, status.to_owned(), total.clone()));
                if e.occurred_at >= entry.0 {
                    entry.0 = e.occurred_at;
                    entry.1 = status.to_owned();
                    if total.is_some() {
                        entry.2 = total;
                    }
                }
            }
        }
        let mut list: Vec<(String, OrderState)> = orders.into_iter().collect();
        list.sort_by_key(|o| std::cmp::Reverse(o.1.0));
        let text = if list.is_empty() {
            "I can't find any orders for your account. If you ordered recently, the confirmation may take a few minutes to reach me; otherwise say \"human\" and a person will look into it.".to_owned()
        } else {
            let lines: Vec<String> = list
                .iter()
                .take(3)
                .map(|(id, (at, status, total))| {
                    format!(
                        "order {id}: {status} on {}{}",
                        &at.to_rfc3339()[..10],
                        total.as_ref().map_or(String::new(), |t| format!(" ({t})"))
                    )
                })
                .collect();
            format!("Your latest orders: {}.", lines.join("; "))
        };
        Ok(Composed {
            text,
            intent: "order_status",
            confidence: 1.0,
            understood: true,
            sources: vec![json!({ "type": "orders", "id": "your_orders" })],
            personal_data_used: true,
            purpose: Some(grant.purpose().to_string()),
            ..Composed::default()
        })
    }

    async fn recs_reply(
        &self,
        principal: &Principal,
        subject: Option<&SubjectRow>,
        text: &str,
    ) -> AppResult<Composed> {
        let tenant = principal.tenant;
        // A recommendation question that names a product is a search.
        let products = self.product_reply(tenant, text).await?;
        if products.understood && products.confidence > 0.5 {
            return Ok(products);
        }
        let rec_subject = match subject {
            Some(s) => {
                let purpose = self.purpose(&self.policy().assistant().purpose)?;
                let granted = self.grant(tenant, s.id, &purpose).await;
                Some((s.clone(), granted))
            }
            None => None,
        };
        let label = subject.map_or_else(|| "anonymous".to_owned(), |s| s.id.to_string());
        let list = match self
            .recommend_for(tenant, &principal.actor(), rec_subject, &label, SHOWN)
            .await
        {
            Ok(l) => l,
            Err(e) if e.kind == ErrorKind::NotFound || e.code == "no_recs_model" => {
                return Ok(Composed {
                    text: "I don't have recommendations yet. Tell me what you are looking for (a product, a colour, an occasion) and I will search the catalog.".into(),
                    intent: "recommendation",
                    confidence: 0.5,
                    understood: true,
                    ..Composed::default()
                });
            }
            Err(e) => return Err(e),
        };
        let catalog = self.catalog(tenant).await?;
        let mut names = Vec::new();
        let mut sources = Vec::new();
        for it in &list.items {
            let id = it.item.as_str();
            let product = catalog.product(id);
            let name = product.map_or(it.name.as_str(), |p| p.name.as_str());
            names.push(format!("{name} (item {id})"));
            sources.push(match product {
                Some(p) => product_source(p),
                None => json!({ "type": "product", "id": id, "name": name }),
            });
        }
        let personalized = list.personalized;
        let text = if names.is_empty() {
            "I don't have recommendations right now. Tell me what you are looking for and I will search the catalog.".to_owned()
        } else if personalized {
            format!(
                "Based on what you have bought and viewed with us (you allowed personalization), you might like: {}.",
                names.join("; ")
            )
        } else {
            format!(
                "Popular with our customers right now: {}.",
                names.join("; ")
            )
        };
        Ok(Composed {
            context: names.iter().map(|n| format!("Recommended: {n}")).collect(),
            text,
            intent: "recommendation",
            confidence: 0.8,
            understood: true,
            sources,
            personal_data_used: personalized,
            purpose: personalized.then(|| self.policy().assistant().purpose.clone()),
            llm_allowed: true,
            ..Composed::default()
        })
    }

    /// A conversation with its messages (write key: the conversation id is the capability;
    /// a server or admin key reading a person's conversation is audited).
    pub async fn conversation_view(&self, principal: &Principal, id: &str) -> AppResult<Value> {
        principal.require(Scope::Write)?;
        let tenant = principal.tenant;
        let conv = self
            .store()
            .conversation(tenant, id)
            .await?
            .ok_or_else(|| AppError::not_found("conversation"))?;
        let key = match conv.subject {
            Some(s) => match self.resolve_subject(tenant, s).await {
                Ok(row) => self.data_key(tenant, &row).await?,
                Err(_) => None,
            },
            None => None,
        };
        let mut messages = Vec::new();
        for m in self.store().messages(tenant, id).await? {
            let (text, meta) = self.open_message(&m, key.as_ref())?;
            messages.push(json!({
                "id": m.id, "seq": m.seq, "role": m.role, "text": text,
                "at": m.created_at.to_rfc3339(), "meta": meta,
            }));
        }
        if conv.subject.is_some() && principal.scope.allows(Scope::Server) {
            self.store()
                .append_audit(vec![AuditDraft {
                    tenant: Some(tenant),
                    actor: principal.actor(),
                    action: "assistant.transcript_read".into(),
                    target: Some(conv.id.clone()),
                    details: json!({ "messages": messages.len() }),
                }])
                .await?;
        }
        Ok(json!({
            "id": conv.id,
            "status": conv.status,
            "verified": conv.verified,
            "identified": conv.subject.is_some(),
            "disclosureVersion": conv.disclosure_version,
            "createdAt": conv.created_at.to_rfc3339(),
            "updatedAt": conv.updated_at.to_rfc3339(),
            "messages": messages,
        }))
    }

    /// Hand-off tickets (server or admin key; staff in the console).
    pub async fn assistant_tickets(
        &self,
        principal: &Principal,
        status: Option<&str>,
        limit: u32,
    ) -> AppResult<Vec<TicketRow>> {
        principal.require(Scope::Server)?;
        self.tickets_of(principal.tenant, status, limit).await
    }

    /// [`App::assistant_tickets`] for a caller that is already trusted (the CLI).
    pub async fn tickets_of(
        &self,
        tenant: TenantId,
        status: Option<&str>,
        limit: u32,
    ) -> AppResult<Vec<TicketRow>> {
        if let Some(s) = status
            && !["open", "answered", "closed"].contains(&s)
        {
            return Err(AppError::bad_request(
                "status_invalid",
                "status is open, answered or closed",
            ));
        }
        Ok(self
            .store()
            .tickets(tenant, status, limit.clamp(1, 500))
            .await?)
    }

    /// A person's reply to a hand-off, delivered into the conversation (server or admin key,
    /// or staff). Stored redacted like every message.
    pub async fn answer_ticket(
        &self,
        principal: &Principal,
        ticket: &str,
        message: &str,
        close: bool,
    ) -> AppResult<Value> {
        principal.require(Scope::Server)?;
        let tenant = principal.tenant;
        let t = self
            .store()
            .ticket(tenant, ticket)
            .await?
            .ok_or_else(|| AppError::not_found("ticket"))?;
        let conv = self
            .store()
            .conversation(tenant, &t.conversation_id)
            .await?
            .ok_or_else(|| AppError::not_found("conversation"))?;
        let (key, names) = match conv.subject {
            Some(s) => {
                let row = self.resolve_subject(tenant, s).await?;
                let key = self.data_key(tenant, &row).await?;
                let names = match &key {
                    Some(k) => self.known_names(tenant, &row, k).await,
                    None => Vec::new(),
                };
                (key, names)
            }
            None => (None, Vec::new()),
        };
        if conv.subject.is_some() && key.is_none() {
            return Err(AppError::not_found("conversation"));
        }
        let r = redact(message, &names);
        let now = self.clock().now();
        // Sealed for the conversation's next sequence number; the store refuses it if
        // another message came first.
        let m = self.message_row(
            &conv,
            key.as_ref(),
            conv.next_seq,
            uuid::Uuid::now_v7().to_string(),
            "staff",
            &r.text,
            json!({ "ticket": t.id, "redacted": r.found }),
            now,
        )?;
        let stored = self
            .store()
            .answer_ticket(
                tenant,
                ticket,
                m,
                close,
                &principal.actor(),
                AuditDraft {
                    tenant: Some(tenant),
                    actor: principal.actor(),
                    action: "assistant.staff_reply".into(),
                    target: Some(conv.id.clone()),
                    details: json!({ "ticket": t.id, "closed": close, "redacted": r.found }),
                },
            )
            .await
            .map_err(|e| match e {
                StoreError::Conflict(_) => AppError::new(
                    ErrorKind::Conflict,
                    "conversation_busy",
                    "the conversation changed while the reply was sent; send it again",
                ),
                StoreError::NotFound => AppError::not_found("open ticket"),
                other => other.into(),
            })?;
        Ok(json!({
            "ticketId": t.id,
            "status": if close { "closed" } else { "answered" },
            "message": { "id": stored.id, "seq": stored.seq, "text": r.text, "redacted": r.found },
        }))
    }

    /// A person's conversations, messages and tickets for their export (opened).
    pub(crate) async fn assistant_export(
        &self,
        tenant: TenantId,
        subject: SubjectId,
        key: Option<&DataKey>,
    ) -> AppResult<(Vec<Value>, Vec<Value>, Vec<Value>)> {
        let convs = self
            .store()
            .conversations_for(tenant, subject)
            .await?
            .into_iter()
            .map(|c| {
                json!({ "id": c.id, "status": c.status, "verified": c.verified,
                    "disclosure_version": c.disclosure_version,
                    "created_at": c.created_at.to_rfc3339(), "updated_at": c.updated_at.to_rfc3339() })
            })
            .collect();
        let mut messages = Vec::new();
        for m in self.store().messages_for(tenant, subject).await? {
            let (text, meta) = self.open_message(&m, key)?;
            messages.push(
                json!({ "conversation": m.conversation_id, "seq": m.seq, "role": m.role,
                "text": text, "meta": meta, "at": m.created_at.to_rfc3339() }),
            );
        }
        let tickets = self
            .store()
            .tickets_for(tenant, subject)
            .await?
            .into_iter()
            .map(|t| {
                json!({ "id": t.id, "conversation": t.conversation_id, "reason": t.reason,
                    "status": t.status, "created_at": t.created_at.to_rfc3339(),
                    "answered_at": t.answered_at.map(|a| a.to_rfc3339()) })
            })
            .collect();
        Ok((convs, messages, tickets))
    }
}

/// The products an event names with their names (`Product Viewed`, `Product Added`, an
/// order's lines, ...), for the catalog. Names, categories, prices and links of products are
/// not personal data.
pub(crate) fn event_products(e: &candor_types::IncomingEvent, at: Timestamp) -> Vec<ProductRow> {
    if !matches!(
        e.name.as_deref(),
        Some(
            "Product Viewed"
                | "Product Added"
                | "Product Clicked"
                | "Product Removed"
                | "Product Added to Wishlist"
                | "Order Completed"
                | "Checkout Started"
                | "Cart Viewed"
                | "Product List Viewed"
        )
    ) {
        return Vec::new();
    }
    let currency = e
        .properties
        .get("currency")
        .and_then(Value::as_str)
        .and_then(|c| candor_types::Currency::parse(c).ok());
    let lines: Vec<&serde_json::Map<String, Value>> =
        match e.properties.get("products").and_then(Value::as_array) {
            Some(list) => list.iter().filter_map(Value::as_object).collect(),
            None => vec![&e.properties],
        };
    let text = |v: &serde_json::Map<String, Value>, k: &str, max: usize| -> Option<String> {
        v.get(k)
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty() && s.len() <= max)
            .map(str::to_owned)
    };
    lines
        .into_iter()
        .filter_map(|l| {
            let id = match l.get("product_id").or_else(|| l.get("sku")) {
                Some(Value::String(s)) if !s.is_empty() && s.len() <= 200 => s.clone(),
                Some(Value::Number(n)) => n.to_string(),
                _ => return None,
            };
            let name = text(l, "name", 500)?;
            let price = currency.and_then(|c| {
                c.parse_rounded(&candor_types::Currency::amount_text(l.get("price")?)?)
                    .ok()
                    .filter(|p| *p > 0)
            });
            Some(ProductRow {
                product_id: id,
                name,
                description: text(l, "description", 5000).unwrap_or_default(),
                category: text(l, "category", 200),
                price,
                currency: price.and(currency).map(|c| c.code().to_owned()),
                url: text(l, "url", 2000)
                    .filter(|u| u.starts_with("https://") || u.starts_with("http://")),
                source: "event".into(),
                updated_at: at,
            })
        })
        .collect()
}

/// An order as its events tell it: when it last changed, its status, its total.
type OrderState = (Timestamp, String, Option<String>);

/// What a reply shows of search results: up to three that match enough of the question.
fn shown_products(hits: &[(ProductRow, Hit)], min: f64) -> Vec<&ProductRow> {
    hits.iter()
        .filter(|(_, h)| f64::from(h.coverage) >= min)
        .take(SHOWN)
        .map(|(p, _)| p)
        .collect()
}

fn catalog_docs(products: &[ProductRow]) -> Vec<Doc> {
    products
        .iter()
        .map(|p| {
            let mut fields = vec![(p.name.clone(), 3.0)];
            if !p.description.is_empty() && p.description != p.name {
                fields.push((p.description.clone(), 1.0));
            }
            if let Some(c) = &p.category {
                fields.push((c.clone(), 1.0));
            }
            Doc { fields }
        })
        .collect()
}

fn system_prompt(c: &Composed) -> String {
    let mut s = String::from(
        "You are the shop's automated shopping assistant. You are an AI: never say or suggest that you are a human or a member of staff. \
         Answer only from the CONTEXT below and the conversation; if the answer is not there, say you do not know and offer to pass the customer to a person (they can type \"human\"). \
         Do not invent products, prices, delivery times or policies. Never ask for, repeat or guess personal data such as names, addresses, email addresses, phone numbers or payment details. \
         Keep answers short.\n\nCONTEXT:\n",
    );
    if c.context.is_empty() {
        s.push_str("(nothing was found for this message)\n");
    }
    for line in &c.context {
        s.push_str("- ");
        s.push_str(line);
        s.push('\n');
    }
    s.push_str(&format!("\nThe built-in answer would be: {}\n", c.text));
    s
}
