//! Consent-aware recommendations: training from order lines (or events), per-person factors
//! only for people who allow `personalization` (sealed with their key), serving that falls
//! back to unpersonalized models with the same shape, explanations from the model's own
//! arithmetic, each personalized list stored as a decision, and offline evaluation.

use std::collections::{BTreeMap, HashMap, HashSet};

use candor_crypto::sha256_hex;
use candor_ml::recs::{
    Als, AlsParams, Csr, Exposure, ItemKnn, RankingMetrics, exposure, popularity, ranking_metrics,
    top_k, train_als,
};
use candor_ml::table::RawTable;
use candor_store::{AuditDraft, DecisionRow, NewModel, Store};
use candor_types::{EventId, SubjectId, TenantId, Timestamp};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::{App, AppError, AppResult, ErrorKind};

/// How long serving trusts what it read of the serving model and stock. Changes made through
/// this process apply at once; changes made by another process (`candor recs train`, another
/// server) within this time.
pub const SERVING_TTL: std::time::Duration = std::time::Duration::from_secs(2);

/// What every recommendation request reads, kept per tenant for [`SERVING_TTL`].
#[derive(Debug)]
pub struct Serving {
    pub(crate) read_at: std::time::Instant,
    version: i64,
    art: std::sync::Arc<RecsArtifact>,
    /// Items not recommended now: excluded categories and out of stock.
    out: Vec<bool>,
}

impl Serving {
    fn is_out(&self, i: u32) -> bool {
        self.out.get(i as usize).is_some_and(|&o| o)
    }
}

/// The model name of recommendation models in the registry.
pub const RECS_MODEL: &str = "recommendations";
/// Trending: interactions in the last 7 days before the training cut-off.
const TRENDING_DAYS: u32 = 7;
/// Neighbours kept per item.
const NEIGHBOURS: usize = 50;
/// The largest list served.
pub const MAX_K: usize = 100;

/// Where the columns of an order-lines file are (defaults: UCI Online Retail).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct OrderColumns {
    pub user: String,
    pub item: String,
    pub name: Option<String>,
    pub category: Option<String>,
    pub time: String,
    pub quantity: Option<String>,
    /// Rows whose value here starts with `C` are cancellations and skipped.
    pub invoice: Option<String>,
    /// Customer segment for evaluation (e.g. country).
    pub segment: Option<String>,
}

impl Default for OrderColumns {
    fn default() -> Self {
        OrderColumns {
            user: "CustomerID".into(),
            item: "StockCode".into(),
            name: Some("Description".into()),
            category: None,
            time: "InvoiceDate".into(),
            quantity: Some("Quantity".into()),
            invoice: Some("InvoiceNo".into()),
            segment: Some("Country".into()),
        }
    }
}

/// One purchase line, parsed.
#[derive(Clone, Debug)]
pub struct Line {
    /// The store's user id (order lines) or Candor's subject id (events).
    pub user: String,
    pub item: String,
    pub name: String,
    pub category: String,
    pub at: Timestamp,
    pub segment: String,
    /// Interaction strength (1 per order line; by event kind and age for events).
    pub weight: f32,
}

/// A time as order files write it: RFC 3339, or `YYYY-MM-DD HH:MM:SS` in UTC.
pub(crate) fn parse_time(s: &str) -> Option<Timestamp> {
    let s = s.trim();
    if let Some(t) = Timestamp::parse_rfc3339(s) {
        return Some(t);
    }
    let dt: jiff::civil::DateTime = s.replace(' ', "T").parse().ok()?;
    let z = dt.to_zoned(jiff::tz::TimeZone::UTC).ok()?;
    Some(Timestamp(z.timestamp().as_millisecond()))
}

/// The purchase lines of a table: rows without a user, cancelled or with a quantity ≤ 0 are
/// skipped (counted).
pub fn order_lines(table: &RawTable, cols: &OrderColumns) -> AppResult<(Vec<Line>, usize)> {
    let col = |name: &str| {
        table.column(name).ok_or_else(|| {
            AppError::bad_request(
                "column_invalid",
                format!("column {name:?} is not in the file"),
            )
        })
    };
    let opt = |name: &Option<String>| name.as_deref().map(col).transpose();
    let (u, i, t) = (col(&cols.user)?, col(&cols.item)?, col(&cols.time)?);
    let (n, c, q, inv, seg) = (
        opt(&cols.name)?,
        opt(&cols.category)?,
        opt(&cols.quantity)?,
        opt(&cols.invoice)?,
        opt(&cols.segment)?,
    );
    let mut out = Vec::with_capacity(table.rows.len());
    let mut skipped = 0;
    for (r, row) in table.rows.iter().enumerate() {
        let user = row[u].trim();
        let user = user.strip_suffix(".0").unwrap_or(user);
        if user.is_empty()
            || inv.is_some_and(|k| row[k].starts_with('C'))
            || q.is_some_and(|k| row[k].trim().parse::<f64>().map_or(true, |v| v <= 0.0))
        {
            skipped += 1;
            continue;
        }
        let at = parse_time(&row[t]).ok_or_else(|| {
            AppError::bad_request(
                "time_invalid",
                format!("row {}: {:?} is not a time", r + 2, row[t]),
            )
        })?;
        out.push(Line {
            user: user.to_string(),
            item: row[i].trim().to_string(),
            name: n.map(|k| row[k].trim().to_string()).unwrap_or_default(),
            category: c.map(|k| row[k].trim().to_lowercase()).unwrap_or_default(),
            at,
            segment: seg.map(|k| row[k].trim().to_string()).unwrap_or_default(),
            weight: 1.0,
        });
    }
    Ok((out, skipped))
}

/// An item of the catalog as the model knows it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ItemInfo {
    pub id: String,
    pub name: String,
    pub category: String,
}

/// The stored recommendation model: item side only. Per-person factors live in `rec_factors`,
/// sealed with each person's key.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RecsArtifact {
    pub items: Vec<ItemInfo>,
    pub factors: usize,
    pub regularization: f32,
    pub alpha: f32,
    pub item_factors: Vec<f32>,
    pub knn: ItemKnn,
    pub popularity: Vec<f32>,
    pub trending: Vec<f32>,
    pub until: Timestamp,
    /// Item categories never personalized.
    pub sensitive: Vec<String>,
    /// The model, `YᵀY + λI` and the item index, prepared once per loaded artifact.
    #[serde(skip)]
    prepared: std::sync::OnceLock<Prepared>,
}

/// What serving derives from an artifact once.
#[derive(Clone, Debug)]
struct Prepared {
    als: Als,
    gram: Vec<f64>,
    index: HashMap<String, u32>,
    /// Per item: of a sensitive category (never personalized).
    sensitive: Vec<bool>,
}

impl RecsArtifact {
    fn prepared(&self) -> &Prepared {
        self.prepared.get_or_init(|| {
            let als = Als {
                factors: self.factors,
                regularization: self.regularization,
                alpha: self.alpha,
                users: 0,
                items: self.items.len(),
                user_factors: Vec::new(),
                item_factors: self.item_factors.clone(),
            };
            Prepared {
                gram: als.item_gram(),
                als,
                index: self
                    .items
                    .iter()
                    .enumerate()
                    .map(|(i, it)| (it.id.clone(), i as u32))
                    .collect(),
                sensitive: self
                    .items
                    .iter()
                    .map(|it| self.sensitive.contains(&it.category))
                    .collect(),
            }
        })
    }

    /// Whether item `i` is of a sensitive category.
    fn is_sensitive(&self, i: u32) -> bool {
        self.prepared()
            .sensitive
            .get(i as usize)
            .copied()
            .unwrap_or(false)
    }

    fn als(&self) -> &Als {
        &self.prepared().als
    }

    fn item(&self, id: &str) -> Option<u32> {
        self.prepared().index.get(id).copied()
    }

    /// A person's top-k (already bought, sensitive and `is_out` items left out), each explained
    /// by the purchase that contributes most: the person's system is factored once, each item
    /// is one solve.
    fn personal_items(
        &self,
        pf: &PersonFactors,
        k: usize,
        is_out: &(dyn Fn(u32) -> bool + Sync),
    ) -> Vec<RecItem> {
        let als = self.als();
        let mut scores = als.scores(&pf.factors);
        for (i, s) in scores.iter_mut().enumerate() {
            if is_out(i as u32) || self.is_sensitive(i as u32) {
                *s = f32::NEG_INFINITY;
            }
        }
        let seen: Vec<u32> = pf.history.iter().map(|h| h.0).collect();
        let (hist_items, hist_vals): (Vec<u32>, Vec<f32>) = pf.history.iter().copied().unzip();
        let system = als.user_system_with(&self.prepared().gram, &hist_items, &hist_vals);
        top_k(&scores, k, &seen)
            .into_iter()
            .map(|(i, score)| {
                let parts = match &system {
                    Some(l) => als.explain_with(l, &hist_items, &hist_vals, i as usize).1,
                    None => Vec::new(),
                };
                let reason = match parts.first() {
                    Some(&(j, c)) if c > 0.0 => format!(
                        "because you bought {}",
                        display_name(&self.items[j as usize])
                    ),
                    _ => "matches what you bought".to_string(),
                };
                RecItem {
                    item: self.items[i as usize].id.clone(),
                    name: self.items[i as usize].name.clone(),
                    score,
                    reason,
                }
            })
            .collect()
    }
}

/// What one person's sealed row holds.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PersonFactors {
    pub factors: Vec<f32>,
    /// (item index, interaction strength), by item index.
    pub history: Vec<(u32, f32)>,
}

/// How a recommendation model was trained.
#[derive(Clone, Debug, Serialize)]
pub struct TrainedRecs {
    pub version: i64,
    pub items: usize,
    pub lines: usize,
    pub skipped_lines: usize,
    pub people: usize,
    /// People with factors (they allow personalization).
    pub personalized: usize,
    /// People whose lines count only in aggregate popularity (no personalization grant).
    pub without_consent: usize,
    pub sensitive_items: usize,
}

/// One recommended item with its reason.
#[derive(Clone, Debug, Serialize)]
pub struct RecItem {
    pub item: String,
    pub name: String,
    pub score: f32,
    pub reason: String,
}

/// A served list.
#[derive(Clone, Debug, Serialize)]
pub struct RecList {
    #[serde(rename = "userId")]
    pub user_id: Option<String>,
    pub personalized: bool,
    /// `als`, `item_knn`, `popularity` or `trending`.
    pub model: String,
    #[serde(rename = "modelVersion")]
    pub model_version: i64,
    /// Why the list is not personalized, when it is not.
    pub basis: String,
    pub items: Vec<RecItem>,
    #[serde(rename = "decisionId")]
    pub decision_id: Option<String>,
}

fn ml(e: impl std::fmt::Display) -> AppError {
    AppError::internal("recs", &e)
}

impl App {
    /// Trains a recommendation model from purchase lines up to `until` and registers it (a
    /// draft until activated like any model). Only people who allow personalization get
    /// factors; items of sensitive categories never enter a person's model.
    #[allow(clippy::too_many_arguments)]
    pub async fn train_recs(
        &self,
        tenant: TenantId,
        actor: &str,
        lines: &[Line],
        skipped: usize,
        until: Option<Timestamp>,
        params: &AlsParams,
        source: &str,
    ) -> AppResult<TrainedRecs> {
        let until = until.unwrap_or(Timestamp(i64::MAX));
        let lines: Vec<&Line> = lines.iter().filter(|l| l.at < until).collect();
        if lines.is_empty() {
            return Err(AppError::bad_request(
                "no_lines",
                "no purchase line before the cut-off",
            ));
        }
        let sensitive: Vec<String> = self
            .policy()
            .sensitive_categories()
            .map(str::to_string)
            .collect();
        // The catalog: every item seen, first name and category kept.
        let mut items: Vec<ItemInfo> = Vec::new();
        let mut index: HashMap<String, u32> = HashMap::new();
        for l in &lines {
            index.entry(l.item.clone()).or_insert_with(|| {
                items.push(ItemInfo {
                    id: l.item.clone(),
                    name: l.name.clone(),
                    category: l.category.clone(),
                });
                (items.len() - 1) as u32
            });
        }
        let latest = lines.iter().map(|l| l.at).max().unwrap_or(Timestamp(0));
        let recent = latest.minus_days(TRENDING_DAYS);
        let mut pop = vec![0f32; items.len()];
        let mut trend = vec![0f32; items.len()];
        for l in &lines {
            let i = index[&l.item] as usize;
            pop[i] += l.weight;
            if l.at >= recent {
                trend[i] += l.weight;
            }
        }
        // Who may be personalized.
        let purpose = self.purpose(candor_store::RECS_PURPOSE)?;
        let people: Vec<&str> = {
            let mut seen = HashSet::new();
            lines
                .iter()
                .map(|l| l.user.as_str())
                .filter(|u| seen.insert(*u))
                .collect()
        };
        let mut allowed: HashMap<&str, (SubjectId, usize)> = HashMap::new();
        for &u in &people {
            // Lines from events carry Candor's subject id; order lines the store's user id.
            let found = match u.parse::<SubjectId>() {
                Ok(id) => self.store().subject(tenant, id).await?,
                Err(_) => self.resolve_subject(tenant, u).await.ok(),
            };
            let Some(s) = found else { continue };
            if s.wrapped_key.is_some() && self.grant(tenant, s.id, &purpose).await.is_ok() {
                let n = allowed.len();
                allowed.insert(u, (s.id, n));
            }
        }
        let is_sensitive = |i: u32| sensitive.contains(&items[i as usize].category);
        let triplets: Vec<(u32, u32, f32)> = lines
            .iter()
            .filter_map(|l| {
                let (_, row) = allowed.get(l.user.as_str())?;
                let i = index[&l.item];
                (!is_sensitive(i)).then_some((*row as u32, i, l.weight))
            })
            .collect();
        let m = Csr::from_triplets(allowed.len(), items.len(), &triplets);
        let (als, knn) = tokio::task::block_in_place(|| {
            (
                train_als(&m, params, &mut |_| {}),
                ItemKnn::train(&m, NEIGHBOURS),
            )
        });
        let artifact = RecsArtifact {
            items: items.clone(),
            factors: als.factors,
            regularization: als.regularization,
            alpha: als.alpha,
            item_factors: als.item_factors.clone(),
            knn,
            popularity: pop,
            trending: trend,
            until: if until.0 == i64::MAX { latest } else { until },
            sensitive: sensitive.clone(),
            prepared: std::sync::OnceLock::new(),
        };
        let bytes = serde_json::to_vec(&artifact).map_err(ml)?;
        let digest = sha256_hex(&bytes);
        let trained = TrainedRecs {
            version: 0,
            items: items.len(),
            lines: lines.len(),
            skipped_lines: skipped,
            people: people.len(),
            personalized: allowed.len(),
            without_consent: people.len() - allowed.len(),
            sensitive_items: (0..items.len() as u32).filter(|&i| is_sensitive(i)).count(),
        };
        let card = json!({
            "kind": RECS_MODEL, "source": source, "until": artifact.until.to_rfc3339(),
            "parameters": params, "training": trained, "neighbours": NEIGHBOURS,
            "intended_use": "Product recommendations in the store: personalized only for people who allow personalization; everyone else gets the same quality of unpersonalized lists.",
            "limitations": ["Sensitive categories (policy) are never personalized.", "People who joined after the cut-off are folded in from their own history at serving time only if they have factors; otherwise they get popular items."],
        });
        let version = self
            .store()
            .insert_model(
                tenant,
                &NewModel { name: RECS_MODEL.into(), kind: "als".into(), digest: digest.clone(), artifact: bytes, card },
                self.clock().now(),
                AuditDraft {
                    tenant: Some(tenant),
                    actor: actor.to_string(),
                    action: "model.registered".into(),
                    target: None,
                    details: json!({ "name": RECS_MODEL, "digest": digest, "personalized": allowed.len() }),
                },
            )
            .await?;
        // Per-person factors and history, sealed with each person's key.
        let tk = self.tenant_key(tenant).await?;
        let mut rows = Vec::with_capacity(allowed.len());
        for (&u, &(sid, row)) in &allowed {
            let Some(s) = self.store().subject(tenant, sid).await? else {
                continue;
            };
            let Some(w) = &s.wrapped_key else { continue };
            let key = tk.unwrap_data_key(sid, w)?;
            let (idx, val) = m.row(row);
            let pf = PersonFactors {
                factors: als.user(row).to_vec(),
                history: idx.iter().copied().zip(val.iter().copied()).collect(),
            };
            let _ = u;
            rows.push((
                sid,
                key.seal(
                    &format!("recs:{version}"),
                    &serde_json::to_vec(&pf).map_err(ml)?,
                )?,
            ));
        }
        for chunk in rows.chunks(1000) {
            self.store()
                .insert_rec_factors(tenant, version, chunk)
                .await?;
        }
        self.cache_serving(tenant, None);
        Ok(TrainedRecs { version, ..trained })
    }

    /// What serving needs: the model (the active one, or the newest if none is active; its
    /// artifact parsed once per digest) and the items it may not recommend now; read from the
    /// store at most every [`SERVING_TTL`].
    async fn serving(&self, tenant: TenantId) -> AppResult<std::sync::Arc<Serving>> {
        if let Some(s) = self.cached_serving(tenant) {
            return Ok(s);
        }
        let read_at = std::time::Instant::now();
        let (version, digest) = self
            .store()
            .serving_model(tenant, RECS_MODEL)
            .await?
            .ok_or_else(|| {
                AppError::new(
                    ErrorKind::Conflict,
                    "no_recs_model",
                    "no recommendation model is trained yet (candor recs train)",
                )
            })?;
        let art = match self.cached_recs(&digest) {
            Some(a) => a,
            None => self.recs_artifact(tenant, version).await?,
        };
        let out = self.unavailable(tenant, &art).await?;
        let s = std::sync::Arc::new(Serving {
            read_at,
            version,
            art,
            out,
        });
        self.cache_serving(tenant, Some(s.clone()));
        Ok(s)
    }

    /// A recommendation model's artifact, checked against its digest and parsed once.
    async fn recs_artifact(
        &self,
        tenant: TenantId,
        version: i64,
    ) -> AppResult<std::sync::Arc<RecsArtifact>> {
        let full = self
            .store()
            .model(tenant, version)
            .await?
            .filter(|m| m.name == RECS_MODEL)
            .ok_or_else(|| AppError::not_found("model"))?;
        if let Some(a) = self.cached_recs(&full.digest) {
            return Ok(a);
        }
        if sha256_hex(&full.artifact) != full.digest {
            return Err(AppError::internal("recs", &"artifact digest mismatch"));
        }
        let art: RecsArtifact = serde_json::from_slice(&full.artifact).map_err(ml)?;
        let art = std::sync::Arc::new(art);
        self.cache_recs(&full.digest, art.clone());
        Ok(art)
    }

    /// Items never recommended now, as a mask over the model's items: the policy's excluded
    /// categories and items out of stock.
    async fn unavailable(&self, tenant: TenantId, art: &RecsArtifact) -> AppResult<Vec<bool>> {
        let excluded: HashSet<&str> = self.policy().excluded_categories().collect();
        let mut out: Vec<bool> = art
            .items
            .iter()
            .map(|it| excluded.contains(it.category.as_str()))
            .collect();
        for id in self.store().out_of_stock(tenant).await? {
            if let Some(i) = art.item(&id) {
                out[i as usize] = true;
            }
        }
        Ok(out)
    }

    /// Recommendations for a person. With a `personalization` grant and factors: ALS, each item
    /// explained by the purchase that contributes most; otherwise (or with `context_item`)
    /// unpersonalized lists of the same shape, marked as such.
    pub async fn recommend<'w>(
        &self,
        tenant: TenantId,
        actor: &str,
        who: impl Into<crate::access::Who<'w>>,
        k: usize,
        context_item: Option<&str>,
    ) -> AppResult<RecList> {
        let who = who.into();
        let user_id = &who.label();
        if k == 0 || k > MAX_K {
            return Err(AppError::bad_request(
                "k_invalid",
                format!("k is between 1 and {MAX_K}"),
            ));
        }
        if let Some(ctx) = context_item {
            let serving = self.serving(tenant).await?;
            let (version, art) = (serving.version, &*serving.art);
            let is_out = |i: u32| serving.is_out(i);
            let ci = art.item(ctx).ok_or_else(|| AppError::not_found("item"))?;
            let mut list = self.similar_list(art, ci, k, &is_out);
            list.user_id = Some(user_id.to_string());
            list.model_version = version;
            return Ok(list);
        }
        // Personalization needs the person, their grant and their factors.
        let subject = match self.resolve_subject(tenant, who).await.ok() {
            Some(s) => {
                let purpose = self.purpose(candor_store::RECS_PURPOSE)?;
                let granted = self.grant(tenant, s.id, &purpose).await;
                Some((s, granted))
            }
            None => None,
        };
        self.recommend_for(tenant, actor, subject, user_id, k).await
    }

    /// Recommendations for a person found (or not) by the caller, with their
    /// `personalization` grant as decided by the caller; `user_id` names them in the list.
    /// Personalized only under that grant.
    pub(crate) async fn recommend_for(
        &self,
        tenant: TenantId,
        actor: &str,
        subject: Option<(
            candor_store::SubjectRow,
            Result<candor_policy::Grant, candor_policy::Denial>,
        )>,
        user_id: &str,
        k: usize,
    ) -> AppResult<RecList> {
        let serving = self.serving(tenant).await?;
        let (version, art) = (serving.version, &*serving.art);
        let is_out = |i: u32| serving.is_out(i);
        let mut basis = "no_subject".to_string();
        if let Some((s, granted)) = &subject {
            match granted {
                Err(d) => basis = d.code.to_string(),
                Ok(grant) => {
                    if let Some(w) = &s.wrapped_key {
                        let key = self.tenant_key(tenant).await?.unwrap_data_key(s.id, w)?;
                        let label = format!("recs:{version}");
                        let pf = match self.store().rec_factors(tenant, version, s.id).await? {
                            Some(sealed) => Some(
                                serde_json::from_slice::<PersonFactors>(
                                    &key.open(&label, &sealed)?,
                                )
                                .map_err(ml)?,
                            ),
                            // New since training (or changed): folded in from their own
                            // events against the fixed item factors, and kept.
                            None => {
                                let events = self.store().events_for(grant, 20_000).await?;
                                let mut hist: BTreeMap<u32, f32> = BTreeMap::new();
                                let now = self.clock().now();
                                for l in event_lines(
                                    &s.id.to_string(),
                                    &events,
                                    now,
                                    &EventWeights::default(),
                                ) {
                                    if let Some(i) = art.item(&l.item)
                                        && !art.is_sensitive(i)
                                    {
                                        *hist.entry(i).or_default() += l.weight;
                                    }
                                }
                                if hist.is_empty() {
                                    None
                                } else {
                                    let (hi, hv): (Vec<u32>, Vec<f32>) = hist.into_iter().unzip();
                                    let pf = PersonFactors {
                                        factors: art.als().fold_in(&hi, &hv),
                                        history: hi.into_iter().zip(hv).collect(),
                                    };
                                    let sealed =
                                        key.seal(&label, &serde_json::to_vec(&pf).map_err(ml)?)?;
                                    self.store()
                                        .insert_rec_factors(tenant, version, &[(s.id, sealed)])
                                        .await?;
                                    Some(pf)
                                }
                            }
                        };
                        if let Some(pf) = pf {
                            return self
                                .personalized(
                                    tenant, actor, s.id, user_id, version, art, &pf, &key, k,
                                    &is_out,
                                )
                                .await;
                        }
                    }
                    basis = "no_history".to_string();
                }
            }
        }
        let mut list = self.popular_list(art, k, &is_out);
        list.user_id = Some(user_id.to_string());
        list.model_version = version;
        list.basis = basis;
        Ok(list)
    }

    #[allow(clippy::too_many_arguments)]
    async fn personalized(
        &self,
        tenant: TenantId,
        actor: &str,
        subject: SubjectId,
        user_id: &str,
        version: i64,
        art: &RecsArtifact,
        pf: &PersonFactors,
        key: &candor_crypto::DataKey,
        k: usize,
        is_out: &(dyn Fn(u32) -> bool + Sync),
    ) -> AppResult<RecList> {
        let items = art.personal_items(pf, k, is_out);
        let seen: Vec<u32> = pf.history.iter().map(|h| h.0).collect();
        // The served list is a decision about the person: stored (group commit, committed
        // within one batch after the answer), sealed with their key, contestable.
        let decision_id = EventId::new().to_string();
        let outcome = json!({ "kind": "recommendations", "items": items, "model": "als" });
        self.record_decision_soon(
            tenant,
            DecisionRow {
                id: decision_id.clone(),
                subject,
                purpose: candor_store::RECS_PURPOSE.into(),
                kind: RECS_MODEL.into(),
                model_version: Some(version),
                inputs_digest: sha256_hex(&serde_json::to_vec(&seen).map_err(ml)?),
                sealed: key.seal(
                    &format!("decision:{decision_id}"),
                    &serde_json::to_vec(&outcome).map_err(ml)?,
                )?,
                created_at: self.clock().now(),
            },
            AuditDraft {
                tenant: Some(tenant),
                actor: actor.to_string(),
                action: "decision.recorded".into(),
                target: Some(subject.to_string()),
                details: json!({ "decision": decision_id, "kind": RECS_MODEL, "model_version": version, "purpose": candor_store::RECS_PURPOSE }),
            },
        )
        .await?;
        Ok(RecList {
            user_id: Some(user_id.to_string()),
            personalized: true,
            model: "als".into(),
            model_version: version,
            basis: "personalization consent".into(),
            items,
            decision_id: Some(decision_id),
        })
    }

    fn popular_list(
        &self,
        art: &RecsArtifact,
        k: usize,
        is_out: &(dyn Fn(u32) -> bool + Sync),
    ) -> RecList {
        let trending = art.trending.iter().any(|&t| t > 0.0);
        let base = if trending {
            &art.trending
        } else {
            &art.popularity
        };
        let scores: Vec<f32> = base
            .iter()
            .enumerate()
            .map(|(i, &s)| {
                if is_out(i as u32) || s <= 0.0 {
                    f32::NEG_INFINITY
                } else {
                    s
                }
            })
            .collect();
        let items = top_k(&scores, k, &[])
            .into_iter()
            .map(|(i, score)| RecItem {
                item: art.items[i as usize].id.clone(),
                name: art.items[i as usize].name.clone(),
                score,
                reason: if trending {
                    "popular this week".into()
                } else {
                    "a bestseller".into()
                },
            })
            .collect();
        RecList {
            user_id: None,
            personalized: false,
            model: if trending {
                "trending".into()
            } else {
                "popularity".into()
            },
            model_version: 0,
            basis: String::new(),
            items,
            decision_id: None,
        }
    }

    fn similar_list(
        &self,
        art: &RecsArtifact,
        item: u32,
        k: usize,
        is_out: &(dyn Fn(u32) -> bool + Sync),
    ) -> RecList {
        let mut scores = vec![f32::NEG_INFINITY; art.items.len()];
        if let Some(n) = art.knn.neighbours.get(item as usize) {
            for &(j, s) in n {
                if !is_out(j) {
                    scores[j as usize] = s;
                }
            }
        }
        let name = display_name(&art.items[item as usize]);
        let items = top_k(&scores, k, &[item])
            .into_iter()
            .map(|(i, score)| RecItem {
                item: art.items[i as usize].id.clone(),
                name: art.items[i as usize].name.clone(),
                score,
                reason: format!("often bought with {name}"),
            })
            .collect();
        RecList {
            user_id: None,
            personalized: false,
            model: "item_knn".into(),
            model_version: 0,
            basis: "context item".into(),
            items,
            decision_id: None,
        }
    }

    /// Items similar to one item (bought by the same people), for product pages.
    pub async fn similar_items(
        &self,
        tenant: TenantId,
        item: &str,
        k: usize,
    ) -> AppResult<RecList> {
        if k == 0 || k > MAX_K {
            return Err(AppError::bad_request(
                "k_invalid",
                format!("k is between 1 and {MAX_K}"),
            ));
        }
        let serving = self.serving(tenant).await?;
        let art = &serving.art;
        let i = art.item(item).ok_or_else(|| AppError::not_found("item"))?;
        let mut list = self.similar_list(art, i, k, &|j| serving.is_out(j));
        list.model_version = serving.version;
        Ok(list)
    }

    /// Lists for every person with factors in a model (batch), as (subject, list).
    pub async fn recommend_all(
        &self,
        tenant: TenantId,
        version: i64,
        k: usize,
    ) -> AppResult<Vec<(SubjectId, Vec<RecItem>)>> {
        let art = self.recs_artifact(tenant, version).await?;
        let unavailable = self.unavailable(tenant, &art).await?;
        let tk = self.tenant_key(tenant).await?;
        let mut out = Vec::new();
        let mut after = None;
        loop {
            let page = self
                .store()
                .rec_subjects(tenant, version, after, 500)
                .await?;
            let Some(last) = page.last() else { break };
            after = Some(last.0);
            for (sid, sealed) in page {
                let Some(s) = self.store().subject(tenant, sid).await? else {
                    continue;
                };
                let Some(w) = &s.wrapped_key else { continue };
                let key = tk.unwrap_data_key(sid, w)?;
                let pf: PersonFactors =
                    serde_json::from_slice(&key.open(&format!("recs:{version}"), &sealed)?)
                        .map_err(ml)?;
                let items = art
                    .personal_items(&pf, k, &|i| unavailable.get(i as usize).is_some_and(|&o| o));
                out.push((sid, items));
            }
        }
        Ok(out)
    }
}

/// How events count as interactions: by kind, halved every `half_life_days`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EventWeights {
    pub viewed: f32,
    pub added: f32,
    pub ordered: f32,
    pub half_life_days: f32,
}

impl Default for EventWeights {
    fn default() -> Self {
        EventWeights {
            viewed: 1.0,
            added: 3.0,
            ordered: 5.0,
            half_life_days: 90.0,
        }
    }
}

/// Product interactions in a person's events (Segment Ecommerce v2: `Product Viewed`,
/// `Product Added`, `Order Completed` with `products`), weighted by kind and age.
pub fn event_lines(
    user: &str,
    events: &[candor_store::EventView],
    now: Timestamp,
    w: &EventWeights,
) -> Vec<Line> {
    let mut out = Vec::new();
    for e in events {
        let base = match e.name.as_deref() {
            Some("Product Viewed") => w.viewed,
            Some("Product Added") => w.added,
            Some("Order Completed") => w.ordered,
            _ => continue,
        };
        let age_days = (now.0 - e.occurred_at.0).max(0) as f32 / 86_400_000.0;
        let weight = base * 0.5f32.powf(age_days / w.half_life_days.max(1e-3));
        for props in e.plain.values().filter_map(|v| v.get("properties")) {
            let products: Vec<&Value> = match props.get("products").and_then(Value::as_array) {
                Some(list) => list.iter().collect(),
                None => vec![props],
            };
            for p in products {
                let id = match p.get("product_id").or_else(|| p.get("sku")) {
                    Some(Value::String(s)) => s.clone(),
                    Some(Value::Number(n)) => n.to_string(),
                    _ => continue,
                };
                out.push(Line {
                    user: user.to_string(),
                    item: id,
                    name: p
                        .get("name")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string(),
                    category: p
                        .get("category")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_lowercase(),
                    at: e.occurred_at,
                    segment: String::new(),
                    weight,
                });
            }
        }
    }
    out
}

impl App {
    /// Interactions from the events of everyone who allows personalization (people who do
    /// not are not read at all).
    pub async fn event_interactions(
        &self,
        tenant: TenantId,
        weights: &EventWeights,
    ) -> AppResult<Vec<Line>> {
        let purpose = self.purpose(candor_store::RECS_PURPOSE)?;
        let now = self.clock().now();
        let mut out = Vec::new();
        let mut after = None;
        loop {
            let page = self.store().list_subjects(tenant, after, 500).await?;
            let Some(last) = page.last() else { break };
            after = Some(last.id);
            for s in page {
                if s.wrapped_key.is_none() {
                    continue;
                }
                let Ok(grant) = self.grant(tenant, s.id, &purpose).await else {
                    continue;
                };
                let events = self.store().events_for(&grant, 20_000).await?;
                out.extend(event_lines(&s.id.to_string(), &events, now, weights));
            }
        }
        Ok(out)
    }
}

fn display_name(i: &ItemInfo) -> String {
    if i.name.is_empty() {
        i.id.clone()
    } else {
        i.name.clone()
    }
}

/// Offline evaluation with a temporal split: train on lines before `split`, evaluate on what
/// each customer bought after it that they had not bought before. ALS, item-kNN and popularity
/// side by side; overall and per segment and for new (no history) vs returning customers.
#[derive(Clone, Debug, Serialize)]
pub struct Evaluation {
    pub split: String,
    pub k: usize,
    pub train_lines: usize,
    pub test_customers: usize,
    pub models: BTreeMap<String, RankingMetrics>,
    /// model → segment → metrics.
    pub segments: BTreeMap<String, BTreeMap<String, RankingMetrics>>,
    /// model → how its lists spread exposure over the catalog (by popularity and category).
    pub exposure: BTreeMap<String, Exposure>,
}

pub fn evaluate(
    lines: &[Line],
    split: Timestamp,
    k: usize,
    params: &AlsParams,
) -> AppResult<Evaluation> {
    let train: Vec<&Line> = lines.iter().filter(|l| l.at < split).collect();
    let test: Vec<&Line> = lines.iter().filter(|l| l.at >= split).collect();
    if train.is_empty() || test.is_empty() {
        return Err(AppError::bad_request(
            "split_invalid",
            "the split date leaves no training or no test lines",
        ));
    }
    let mut users: HashMap<&str, u32> = HashMap::new();
    let mut items: HashMap<&str, u32> = HashMap::new();
    let mut segment: HashMap<&str, &str> = HashMap::new();
    let mut category: Vec<&str> = Vec::new();
    for l in &train {
        let n = users.len() as u32;
        users.entry(l.user.as_str()).or_insert(n);
        let n = items.len() as u32;
        items.entry(l.item.as_str()).or_insert_with(|| {
            category.push(l.category.as_str());
            n
        });
        segment.entry(l.user.as_str()).or_insert(l.segment.as_str());
    }
    let triplets: Vec<(u32, u32, f32)> = train
        .iter()
        .map(|l| (users[l.user.as_str()], items[l.item.as_str()], 1.0))
        .collect();
    let m = Csr::from_triplets(users.len(), items.len(), &triplets);
    let als = tokio::task::block_in_place(|| train_als(&m, params, &mut |_| {}));
    let knn = ItemKnn::train(&m, NEIGHBOURS);
    let pop = popularity(&m);
    // Relevant: items bought after the split that the customer had not bought before; new
    // customers (no training lines) are evaluated against popularity only.
    let mut relevant: BTreeMap<&str, Vec<u32>> = BTreeMap::new();
    for l in &test {
        let Some(&i) = items.get(l.item.as_str()) else {
            continue;
        };
        if let Some(&u) = users.get(l.user.as_str())
            && m.row(u as usize).0.binary_search(&i).is_ok()
        {
            continue;
        }
        relevant.entry(l.user.as_str()).or_default().push(i);
        segment.entry(l.user.as_str()).or_insert(l.segment.as_str());
    }
    for v in relevant.values_mut() {
        v.sort_unstable();
        v.dedup();
    }
    let customers: Vec<&str> = relevant.keys().copied().collect();
    let lists = |model: &str, who: &[&str]| -> Vec<Vec<u32>> {
        who.iter()
            .map(|c| {
                let (seen, scores): (&[u32], Vec<f32>) = match users.get(c) {
                    Some(&u) => {
                        let seen = m.row(u as usize).0;
                        let s = match model {
                            "als" => als.scores(als.user(u as usize)),
                            "item_knn" => knn.scores(seen),
                            _ => pop.clone(),
                        };
                        (seen, s)
                    }
                    None => (&[], pop.clone()),
                };
                top_k(&scores, k, seen)
                    .into_iter()
                    .map(|(i, _)| i)
                    .collect()
            })
            .collect()
    };
    let mut models = BTreeMap::new();
    let mut segments: BTreeMap<String, BTreeMap<String, RankingMetrics>> = BTreeMap::new();
    // Customer groups (new vs returning; segment), as positions in `customers`.
    let mut groups: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (at, c) in customers.iter().enumerate() {
        let status = if users.contains_key(c) {
            "returning"
        } else {
            "new"
        };
        groups
            .entry(format!("customers: {status}"))
            .or_default()
            .push(at);
        let seg = segment.get(c).copied().unwrap_or("");
        if !seg.is_empty() {
            groups
                .entry(format!("segment: {seg}"))
                .or_default()
                .push(at);
        }
    }
    let rel: Vec<Vec<u32>> = customers.iter().map(|c| relevant[c].clone()).collect();
    let mut exposures = BTreeMap::new();
    for model in ["als", "item_knn", "popularity"] {
        // Each customer's list is computed once; groups pick theirs.
        let all = lists(model, &customers);
        models.insert(
            model.to_string(),
            ranking_metrics(&all, &rel, k, items.len(), &pop),
        );
        exposures.insert(model.to_string(), exposure(&all, &pop, &category));
        let per = segments.entry(model.to_string()).or_default();
        for (g, who) in &groups {
            let pick =
                |v: &[Vec<u32>]| -> Vec<Vec<u32>> { who.iter().map(|&i| v[i].clone()).collect() };
            per.insert(
                g.clone(),
                ranking_metrics(&pick(&all), &pick(&rel), k, items.len(), &pop),
            );
        }
    }
    Ok(Evaluation {
        split: split.to_rfc3339(),
        k,
        train_lines: train.len(),
        test_customers: customers.len(),
        models,
        segments,
        exposure: exposures,
    })
}

/// The evaluation as a page: metrics per model, a bar chart of recall and NDCG, segments.
pub fn evaluation_html(e: &Evaluation) -> String {
    use crate::card::esc;
    let row = |name: &str, m: &RankingMetrics| {
        format!(
            "<tr><td>{}</td><td>{}</td><td>{:.4}</td><td>{:.4}</td><td>{:.4}</td><td>{:.4}</td><td>{:.3}</td><td>{:.5}</td></tr>",
            esc(name),
            m.users,
            m.precision,
            m.recall,
            m.ndcg,
            m.map,
            m.coverage,
            m.mean_popularity
        )
    };
    let head = "<tr><th>model / group</th><th>customers</th><th>precision@k</th><th>recall@k</th><th>NDCG@k</th><th>MAP@k</th><th>catalog coverage</th><th>mean popularity</th></tr>";
    let overall: String = e.models.iter().map(|(n, m)| row(n, m)).collect();
    let bars: Vec<crate::audit_html::Bar> = e
        .models
        .iter()
        .flat_map(|(n, m)| {
            [
                (format!("{n} recall"), m.recall, None, false),
                (format!("{n} NDCG"), m.ndcg, None, false),
            ]
        })
        .collect();
    let chart = crate::audit_html::rate_bars_svg("Recall and NDCG by model", &bars, None);
    let mut segs = String::new();
    for (model, groups) in &e.segments {
        segs.push_str(&format!(
            "<h3>{}</h3><table><thead>{head}</thead><tbody>",
            esc(model)
        ));
        for (g, m) in groups.iter().filter(|(_, m)| m.users >= 20) {
            segs.push_str(&row(g, m));
        }
        segs.push_str("</tbody></table>");
    }
    page(
        "Recommendation evaluation",
        &format!(
            r#"<p>Temporal split at {split}: trained on {train} purchase lines before it; {test} customers evaluated on what they bought after it that they had not bought before (top {k}). New customers (no history) get popularity from every model.</p>
<figure>{chart}</figure>
<h2>Overall</h2><table><thead>{head}</thead><tbody>{overall}</tbody></table>
<h2>By segment (groups of at least 20 customers)</h2>{segs}
{exposure}"#,
            split = esc(&e.split),
            train = e.train_lines,
            test = e.test_customers,
            k = e.k,
            exposure = exposure_section(&e.exposure),
        ),
    )
}

/// A report page of this module: title, plain styles, body.
pub(crate) fn page(title: &str, body: &str) -> String {
    format!(
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>body {{ font: 15px/1.5 system-ui, sans-serif; max-width: 70rem; margin: 2rem auto; padding: 0 1rem; }}
table {{ border-collapse: collapse; margin: .5rem 0; font-size: 14px; }} th, td {{ border: 1px solid #ccc; padding: .2rem .45rem; text-align: left; }}</style></head><body>
<h1>{title}</h1>
{body}
</body></html>
"#
    )
}

/// Exposure per model (or per audience) as HTML: a table, a chart of how much exposure the
/// most popular fifth of the catalog takes against its share of demand, and categories.
pub fn exposure_section(by: &BTreeMap<String, Exposure>) -> String {
    use crate::card::esc;
    let pct = |x: f64| format!("{:.1}%", 100.0 * x);
    let mut rows = String::new();
    let mut bars: Vec<crate::audit_html::Bar> = Vec::new();
    for (name, e) in by {
        rows.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{:.3}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(name),
            e.lists,
            pct(e.coverage),
            e.gini,
            pct(e.head_catalog_share),
            pct(e.head_demand_share),
            pct(e.head_exposure_share),
        ));
        bars.push((
            format!("{name}: head exposure"),
            e.head_exposure_share,
            None,
            false,
        ));
    }
    let demand = by.values().next().map(|e| e.head_demand_share);
    let chart = crate::audit_html::rate_bars_svg(
        "Share of exposure on the most popular 20% of items",
        &bars,
        demand.map(|d| (d, "their share of demand")),
    );
    let mut cats = String::new();
    for (name, e) in by.iter().filter(|(_, e)| !e.groups.is_empty()) {
        cats.push_str(&format!(
            "<h3>{}</h3><table><thead><tr><th>category</th><th>items</th><th>catalog</th><th>demand</th><th>exposure</th><th>exposure ÷ demand</th></tr></thead><tbody>",
            esc(name)
        ));
        for (g, x) in &e.groups {
            cats.push_str(&format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(g),
                x.items,
                pct(x.catalog_share),
                pct(x.demand_share),
                pct(x.exposure_share),
                x.exposure_to_demand
                    .map_or_else(|| "–".to_string(), |r| format!("{r:.2}")),
            ));
        }
        cats.push_str("</tbody></table>");
    }
    format!(
        r#"<h2>Exposure</h2>
<p>Who gets seen. Slots are weighted by position (1 / log2(rank + 2)). Gini 0 means every catalog item is shown equally; near 1, a few items take all exposure. The head is the most popular 20% of items; when its share of exposure exceeds its share of demand, the lists amplify popularity.</p>
<figure>{chart}</figure>
<table><thead><tr><th>model / audience</th><th>lists</th><th>catalog shown</th><th>Gini</th><th>head: catalog</th><th>head: demand</th><th>head: exposure</th></tr></thead><tbody>{rows}</tbody></table>
{cats}"#
    )
}

/// A served list without the person's id, for logs and tests.
pub fn items_json(l: &RecList) -> Value {
    json!(l.items)
}

impl App {
    /// Marks an item in or out of stock: out-of-stock items are never recommended.
    pub async fn set_item_stock(
        &self,
        tenant: TenantId,
        actor: &str,
        item: &str,
        in_stock: bool,
    ) -> AppResult<()> {
        let item = item.trim();
        if item.is_empty() || item.len() > 200 {
            return Err(AppError::bad_request(
                "item_invalid",
                "an item id is 1 to 200 bytes",
            ));
        }
        self.store()
            .set_item_stock(
                tenant,
                item,
                in_stock,
                self.clock().now(),
                AuditDraft {
                    tenant: Some(tenant),
                    actor: actor.to_string(),
                    action: "catalog.stock".into(),
                    target: Some(format!("item:{item}")),
                    details: json!({ "in_stock": in_stock }),
                },
            )
            .await?;
        self.cache_serving(tenant, None);
        Ok(())
    }
}

/// An exposure audit of the personalized lists served in a period, beside the unpersonalized
/// list that people without a `personalization` grant see.
#[derive(Clone, Debug, Serialize)]
pub struct ServedExposure {
    pub model_version: i64,
    pub from: Timestamp,
    pub to: Timestamp,
    /// Lists read and audited.
    pub lists: u64,
    /// Lists of another model version (not audited here).
    pub other_models: u64,
    /// Lists of people erased since (their lists are unreadable, as they should be).
    pub erased: u64,
    /// Lists of people whose data the `fairness_audit` purpose may not read (objection).
    pub unreadable: u64,
    /// `personalized` (the served lists) and `unpersonalized` (the popularity list, as if
    /// served once per audited list).
    pub exposure: BTreeMap<String, Exposure>,
}

impl App {
    /// Audits who gets seen: reads the personalized lists served by the serving model in
    /// `[from, to)` (each a stored decision, opened with its person's key under the
    /// `fairness_audit` purpose) and measures how exposure spreads over the catalog, by
    /// popularity and by category, beside the unpersonalized list. The audit is logged.
    pub async fn recs_exposure(
        &self,
        tenant: TenantId,
        actor: &str,
        from: Timestamp,
        to: Timestamp,
    ) -> AppResult<ServedExposure> {
        if from.0 >= to.0 {
            return Err(AppError::bad_request(
                "period_invalid",
                "`from` must be before `to`",
            ));
        }
        self.flush_decisions().await?;
        self.cache_serving(tenant, None);
        let serving = self.serving(tenant).await?;
        let (version, art) = (serving.version, &*serving.art);
        let mut lists: Vec<Vec<u32>> = Vec::new();
        let mut longest = 0usize;
        let mut reader = self
            .audited_decisions(tenant, RECS_MODEL, version, from, to)
            .await?;
        while let Some(page) = reader.next_page(|_| false).await? {
            for d in page {
                let list: Vec<u32> = d.outcome["items"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|it| it["item"].as_str().and_then(|id| art.item(id)))
                            .collect()
                    })
                    .unwrap_or_default();
                longest = longest.max(list.len());
                lists.push(list);
            }
        }
        let category: Vec<&str> = art.items.iter().map(|i| i.category.as_str()).collect();
        let mut exposure_by = BTreeMap::new();
        exposure_by.insert(
            "personalized".to_string(),
            exposure(&lists, &art.popularity, &category),
        );
        let popular = self.popular_list(art, longest.max(1), &|i| serving.is_out(i));
        let plist: Vec<u32> = popular
            .items
            .iter()
            .filter_map(|it| art.item(&it.item))
            .collect();
        let unpersonalized = vec![plist; lists.len()];
        exposure_by.insert(
            "unpersonalized".to_string(),
            exposure(&unpersonalized, &art.popularity, &category),
        );
        let report = ServedExposure {
            model_version: version,
            from,
            to,
            lists: lists.len() as u64,
            other_models: reader.other_models,
            erased: reader.erased,
            unreadable: reader.unreadable,
            exposure: exposure_by,
        };
        self.store()
            .append_audit(vec![AuditDraft {
                tenant: Some(tenant),
                actor: actor.to_string(),
                action: "recs.exposure_audited".into(),
                target: Some(format!("model:{version}")),
                details: json!({
                    "from": from.to_rfc3339(), "to": to.to_rfc3339(), "lists": report.lists,
                    "gini": report.exposure["personalized"].gini,
                    "head_exposure_share": report.exposure["personalized"].head_exposure_share,
                }),
            }])
            .await?;
        Ok(report)
    }
}

/// The served exposure audit as a page.
pub fn served_exposure_html(r: &ServedExposure) -> String {
    use crate::card::esc;
    page(
        "Recommendation exposure audit",
        &format!(
            r#"<p>Model version {v}; personalized lists served from {from} to {to}: {n} audited, {other} of other model versions, {erased} of people erased since, {unreadable} not readable for audit (objection). The unpersonalized row is the list people without personalization consent see, counted once per audited list.</p>
{section}"#,
            v = r.model_version,
            from = esc(&r.from.to_rfc3339()),
            to = esc(&r.to.to_rfc3339()),
            n = r.lists,
            other = r.other_models,
            erased = r.erased,
            unreadable = r.unreadable,
            section = exposure_section(&r.exposure),
        ),
    )
}
