use std::collections::BTreeSet;

use ConsentAction::{Granted, Withdrawn};
use candor_types::{
    Category, ConsentAction, ConsentRecord, ConsentSource, ConsentState, EventKind, Purpose,
    SubjectId, TenantId, Timestamp,
};
use proptest::prelude::*;

use crate::{Basis, DEFAULT_POLICY, Denial, Grant, Policy, Regime};

/// A minimal valid policy; the tests below edit it. Line numbers matter.
const MIN: &str = r#"version = 1
default_jurisdiction = "eu"

[jurisdictions.eu]
regime = "opt_in"

[categories.behavioural]
retention_days = 30

[purposes.analytics]
basis = "consent"
categories = ["behavioural"]

[events]
default = "behavioural"
"#;

fn default_policy() -> Policy {
    Policy::parse("candor.toml", DEFAULT_POLICY).expect("the default policy is valid")
}

/// The errors of `text` as `line:column: message`.
fn errors(text: &str) -> Vec<String> {
    match Policy::parse("t.toml", text) {
        Ok(_) => Vec::new(),
        Err(e) => {
            assert!(e.0.iter().all(|e| e.file == "t.toml"));
            e.0.iter()
                .map(|e| format!("{}:{}: {}", e.line, e.column, e.message))
                .collect()
        }
    }
}

/// Asserts `text` has exactly one error, at `at` (`line:column`), whose message contains `msg`.
fn one_error(text: &str, at: &str, msg: &str) {
    let errs = errors(text);
    assert_eq!(errs.len(), 1, "{errs:#?}");
    assert!(
        errs[0].starts_with(&format!("{at}: ")) && errs[0].contains(msg),
        "expected {at}: …{msg}…, got {errs:#?}"
    );
}

fn cat(s: &str) -> Category {
    s.parse().expect("valid category")
}

fn purpose(s: &str) -> Purpose {
    s.parse().expect("valid purpose")
}

fn rec(p: &str, action: ConsentAction, at: i64, jurisdiction: Option<&str>) -> ConsentRecord {
    ConsentRecord {
        purpose: purpose(p),
        action,
        source: ConsentSource::Banner,
        notice_version: Some("2026-05".into()),
        notice_hash: None,
        jurisdiction: jurisdiction.map(str::to_owned),
        at: Timestamp(at),
    }
}

fn decide(policy: &Policy, p: &str, ledger: &[ConsentRecord]) -> Result<Grant, Denial> {
    let state = ConsentState::from_ledger(ledger);
    policy.decide(TenantId::new(), SubjectId::new(), &purpose(p), &state)
}

fn denial_code(r: Result<Grant, Denial>) -> &'static str {
    r.expect_err("must be denied").code
}

// ---- parsing -------------------------------------------------------------------------------

#[test]
fn default_policy_parses_with_its_eight_purposes() {
    let p = default_policy();
    let names: Vec<&str> = p.purposes().map(|d| d.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "analytics",
            "personalization",
            "marketing_email",
            "profiling",
            "sale_sharing",
            "advertising",
            "fairness_audit",
            "service"
        ]
    );
    let cats: Vec<&str> = p.categories().map(|d| d.name.as_str()).collect();
    assert_eq!(
        cats,
        [
            "contact",
            "behavioural",
            "transactional",
            "demographic",
            "protected"
        ]
    );
    let protected = p.category(&cat("protected")).expect("defined");
    assert!(protected.protected && protected.sealed && protected.retention_days == 365);
    assert_eq!(
        p.category(&cat("transactional")).map(|d| d.retention_days),
        Some(2555)
    );
    assert_eq!(p.default_jurisdiction(), "eu");
    assert!(p.has_jurisdiction("us_ca") && !p.has_jurisdiction("mars"));
    assert_eq!(
        p.jurisdiction("us_ca").map(|j| j.regime),
        Some(Regime::OptOut)
    );
    let audit = p.purpose(&purpose("fairness_audit")).expect("defined");
    assert!(audit.audit && audit.basis == Basis::LegitimateInterest);
    assert_eq!(Basis::LegitimateInterest.to_string(), "legitimate_interest");
    assert_eq!(p.source_hash().len(), 64);
    assert_ne!(
        p.source_hash(),
        Policy::parse("x", MIN).expect("valid").source_hash()
    );
}

#[test]
fn purpose_lookups() {
    let p = default_policy();
    assert_eq!(p.parse_purpose("analytics"), Some(purpose("analytics")));
    assert_eq!(p.parse_purpose("astrology"), None);
    assert_eq!(p.parse_purpose("Analytics"), None);
    assert_eq!(
        p.purposes_for_segment_category("functional"),
        [&purpose("personalization")]
    );
    assert_eq!(
        p.purposes_for_segment_category("EMAIL"),
        [&purpose("marketing_email")]
    );
    assert!(p.purposes_for_segment_category("Astrology").is_empty());
    assert_eq!(
        p.gpc_purposes(),
        [&purpose("sale_sharing"), &purpose("advertising")]
    );
}

#[test]
fn events_and_fields_map_to_categories() {
    let p = default_policy();
    let order = p.event_category(EventKind::Track, Some("Order Completed"));
    assert_eq!(order, &cat("transactional"));
    let viewed = p.event_category(EventKind::Track, Some("Product Viewed"));
    assert_eq!(viewed, &cat("behavioural"));
    assert_eq!(p.event_category(EventKind::Identify, None), &cat("contact"));
    assert_eq!(
        p.event_category(EventKind::Page, Some("Home")),
        &cat("behavioural")
    );

    assert_eq!(p.field_category(viewed, "traits.email"), &cat("contact"));
    assert_eq!(
        p.field_category(viewed, "traits.favourite_colour"),
        &cat("contact")
    );
    assert_eq!(
        p.field_category(order, "properties.price"),
        &cat("transactional")
    );
    assert_eq!(
        p.field_category(viewed, "properties.price"),
        &cat("behavioural")
    );
    assert_eq!(p.field_category(order, "properties.email"), &cat("contact"));
    assert_eq!(
        p.field_category(order, "context.page.url"),
        &cat("behavioural")
    );
    assert_eq!(p.field_category(viewed, "context.ip"), &cat("contact"));
    assert_eq!(p.field_category(viewed, "traits.age"), &cat("protected"));

    assert!(p.is_protected_path("traits.gender"));
    assert!(!p.is_protected_path("traits.email"));
    assert!(!p.is_protected_path("properties.gender"));
    assert_eq!(p.protected_attributes().count(), 4);
}

#[test]
fn nested_wildcards_and_dotted_keys_in_fields() {
    let text = format!(
        "{MIN}[categories.contact]\nretention_days = 1\n\n[fields]\n\
         \"context.*\" = \"behavioural\"\n\"context.page.*\" = \"contact\"\ntraits.email = \"contact\"\n"
    );
    let p = Policy::parse("t.toml", &text).expect("valid");
    let b = cat("behavioural");
    assert_eq!(p.field_category(&b, "context.page.url"), &cat("contact"));
    assert_eq!(p.field_category(&b, "context.locale"), &b);
    assert_eq!(p.field_category(&b, "traits.email"), &cat("contact"));
    assert_eq!(p.field_category(&b, "traits.name"), &b);
}

#[test]
fn syntax_errors_are_located() {
    one_error(
        "version = 1\ndefault_jurisdiction = eu\n",
        "2:24",
        "string values must be quoted",
    );
}

#[test]
fn unknown_top_level_tables_are_ignored_but_section_keys_are_strict() {
    assert!(errors(&format!("{MIN}\n[integrations]\nurl = \"https://x\"\n")).is_empty());
    one_error(
        &MIN.replace(
            "basis = \"consent\"",
            "basis = \"consent\"\nowner = \"dpo\"",
        ),
        "12:1",
        "unknown key `owner` in [purposes.analytics]",
    );
    one_error(
        &MIN.replace("retention_days = 30", "retention_days = 30\nretention = 3"),
        "9:1",
        "unknown key `retention` in [categories.behavioural]",
    );
    one_error(
        &MIN.replace("regime = \"opt_in\"", "regime = \"opt_in\"\nregme = 1"),
        "6:1",
        "unknown key `regme` in [jurisdictions.eu]",
    );
}

#[test]
fn version_must_be_one() {
    one_error(
        &MIN.replace("version = 1", "version = 2"),
        "1:11",
        "reads version 1",
    );
}

#[test]
fn missing_sections_are_reported() {
    let errs = errors("version = 1\n");
    assert_eq!(errs.len(), 5, "{errs:#?}");
    assert!(errs.iter().all(|e| e.starts_with("1:1: ")));
    for what in [
        "default_jurisdiction",
        "no categories",
        "no purposes",
        "no jurisdictions",
        "[events]",
    ] {
        assert!(errs.iter().any(|e| e.contains(what)), "{what}: {errs:#?}");
    }
}

#[test]
fn unknown_references_are_located() {
    one_error(
        &MIN.replace("\"eu\"\n\n", "\"mars\"\n\n"),
        "2:24",
        "unknown jurisdiction `mars`",
    );
    one_error(
        &MIN.replace(
            "regime = \"opt_in\"",
            "regime = \"opt_out\"\nopt_in_purposes = [\"profiling\"]",
        ),
        "6:20",
        "unknown purpose `profiling`",
    );
    one_error(
        &MIN.replace("[\"behavioural\"]", "[\"behavioural\", \"contact\"]"),
        "12:30",
        "unknown category `contact`",
    );
    one_error(
        &format!("{MIN}\"Order Completed\" = \"transactional\"\n"),
        "16:21",
        "unknown category `transactional`",
    );
    one_error(
        &format!("{MIN}\n[fields]\n\"traits.email\" = \"contact\"\n"),
        "18:18",
        "unknown category `contact`",
    );
}

#[test]
fn bad_names_and_values_are_located() {
    one_error(
        &MIN.replace("[purposes.analytics]", "[purposes.Analytics]"),
        "10:11",
        "`Analytics` is not a valid name",
    );
    one_error(
        &MIN.replace("\"opt_in\"", "\"opt-in\""),
        "5:10",
        "unknown regime `opt-in`",
    );
    one_error(
        &MIN.replace("\"consent\"", "\"consentt\""),
        "11:9",
        "unknown basis `consentt`",
    );
    one_error(
        &MIN.replace("[\"behavioural\"]", "[\"behavioural\", \"9lives\"]"),
        "12:30",
        "`9lives` is not a valid name",
    );
    one_error(
        &format!("{MIN}\n[fields]\n\"email\" = \"behavioural\"\n"),
        "18:1",
        "`email` is not a field path",
    );
}

#[test]
fn categories_need_a_retention_period() {
    let msg = "category `behavioural` has no retention period (retention_days)";
    one_error(&MIN.replace("retention_days = 30\n", ""), "7:13", msg);
    one_error(&MIN.replace("= 30", "= 0"), "8:18", msg);
}

#[test]
fn protected_categories_are_for_audit_purposes_only() {
    let text = format!("{MIN}\n[categories.protected]\nretention_days = 365\nprotected = true\n")
        .replace("[\"behavioural\"]", "[\"behavioural\", \"protected\"]");
    one_error(
        &text,
        "12:30",
        "purpose `analytics` may not read protected category `protected`",
    );
    let audited = text.replace("basis = \"consent\"", "basis = \"consent\"\naudit = true");
    assert!(errors(&audited).is_empty());
}

#[test]
fn protected_attributes_must_map_to_protected_categories() {
    let text = format!(
        "{}\n[fields]\n\"traits.age\" = \"behavioural\"\n",
        MIN.replace(
            "\"eu\"\n\n",
            "\"eu\"\nprotected_attributes = [\"traits.age\"]\n\n"
        )
    );
    let errs = errors(&text);
    assert_eq!(errs.len(), 2, "{errs:#?}");
    assert!(errs[0].starts_with("3:25: protected attribute `traits.age` maps to category `behavioural`, which is not `protected = true`"));
    // The category is protected now, so the purpose reading it is refused too.
    assert!(
        errs[1].starts_with(
            "13:15: purpose `analytics` may not read protected category `behavioural`"
        )
    );
    let unmapped = MIN.replace(
        "\"eu\"\n\n",
        "\"eu\"\nprotected_attributes = [\"traits.age\"]\n\n",
    );
    one_error(&unmapped, "3:25", "has no category: map it in [fields]");
}

#[test]
fn all_errors_are_collected_in_file_order() {
    let text = MIN
        .replace("version = 1", "version = 3")
        .replace("\"opt_in\"", "\"never\"")
        .replace("= 30", "= -1")
        .replace("\"consent\"", "true");
    let errs = errors(&text);
    let at: Vec<&str> = errs.iter().filter_map(|e| e.split(": ").next()).collect();
    assert_eq!(at, ["1:11", "5:10", "8:18", "11:9"], "{errs:#?}");
}

#[test]
fn load_reports_unreadable_files_at_1_1() {
    let err = Policy::load(std::path::Path::new("/nonexistent/candor.toml")).expect_err("no file");
    assert_eq!(err.0.len(), 1);
    assert_eq!((err.0[0].line, err.0[0].column), (1, 1));
    assert!(
        err.to_string()
            .starts_with("/nonexistent/candor.toml:1:1: cannot read")
    );
}

// ---- decisions -----------------------------------------------------------------------------

#[test]
fn opt_in_without_consent_denies() {
    let p = default_policy();
    let d = decide(&p, "analytics", &[]).expect_err("denied");
    assert_eq!(d.code, "no_consent");
    assert_eq!(d.purpose, "analytics");
    assert!(d.reason.contains("`eu` requires opt-in"), "{d}");
    // A record for another purpose does not count.
    let ledger = [rec("profiling", Granted, 1, Some("uk"))];
    assert_eq!(denial_code(decide(&p, "analytics", &ledger)), "no_consent");
}

#[test]
fn consent_grants_exactly_the_purposes_categories() {
    let p = default_policy();
    let ledger = [rec("analytics", Granted, 1_700_000_000_000, Some("eu"))];
    let g = decide(&p, "analytics", &ledger).expect("granted");
    assert_eq!(g.purpose(), &purpose("analytics"));
    assert_eq!(g.basis(), Basis::Consent);
    assert_eq!(g.jurisdiction(), "eu");
    let expected: BTreeSet<Category> = [cat("behavioural"), cat("transactional")].into();
    assert_eq!(g.categories(), &expected);
    assert!(g.allows(&cat("behavioural")) && !g.allows(&cat("contact")));
    assert_eq!(
        g.reasons(),
        ["consent granted at 2023-11-14T22:13:20Z via banner"]
    );
    let json = serde_json::to_value(&g).expect("serializes");
    assert_eq!(json["purpose"], "analytics");
    assert_eq!(json["basis"], "consent");
}

#[test]
fn withdrawal_after_grant_denies() {
    let p = default_policy();
    let ledger = [
        rec("marketing_email", Granted, 1, Some("eu")),
        rec("marketing_email", Withdrawn, 2, Some("eu")),
    ];
    let d = decide(&p, "marketing_email", &ledger).expect_err("denied");
    assert_eq!(d.code, "consent_withdrawn");
    assert!(d.reason.contains("via banner"), "{d}");
}

#[test]
fn opt_out_allows_without_a_record_except_opt_in_purposes() {
    let p = default_policy();
    let ledger = [rec("marketing_email", Granted, 1, Some("us_ca"))];
    let g = decide(&p, "analytics", &ledger).expect("opt-out allows");
    assert!(g.reasons()[0].contains("`us_ca` is opt-out"));
    assert_eq!(denial_code(decide(&p, "profiling", &ledger)), "no_consent");
    let opted_out = [rec("sale_sharing", Withdrawn, 1, Some("us_ca"))];
    assert_eq!(
        denial_code(decide(&p, "sale_sharing", &opted_out)),
        "consent_withdrawn"
    );
}

#[test]
fn legitimate_interest_stops_at_an_objection() {
    let p = default_policy();
    assert_eq!(
        decide(&p, "fairness_audit", &[]).map(|g| g.basis()).ok(),
        Some(Basis::LegitimateInterest)
    );
    let ledger = [rec("fairness_audit", Withdrawn, 1, None)];
    assert_eq!(
        denial_code(decide(&p, "fairness_audit", &ledger)),
        "objected"
    );
}

#[test]
fn contract_ignores_withdrawal() {
    let p = default_policy();
    let ledger = [rec("service", Withdrawn, 1, Some("eu"))];
    let g = decide(&p, "service", &ledger).expect("contract");
    assert_eq!(g.basis(), Basis::Contract);
    assert!(g.reasons()[0].contains("contract"));
}

#[test]
fn unknown_jurisdiction_or_purpose_denies() {
    let p = default_policy();
    let ledger = [rec("analytics", Granted, 1, Some("mars"))];
    assert_eq!(
        denial_code(decide(&p, "analytics", &ledger)),
        "unknown_jurisdiction"
    );
    assert_eq!(
        denial_code(decide(&p, "service", &ledger)),
        "unknown_jurisdiction"
    );
    assert_eq!(denial_code(decide(&p, "astrology", &[])), "unknown_purpose");
}

#[test]
fn only_the_fairness_audit_may_read_protected_data() {
    let p = default_policy();
    let protected = cat("protected");
    for def in p.purposes() {
        let ledger = [rec(def.name.as_str(), Granted, 1, Some("eu"))];
        let g = decide(&p, def.name.as_str(), &ledger).expect("granted");
        assert_eq!(
            g.allows(&protected),
            def.name.as_str() == "fairness_audit",
            "{}",
            def.name
        );
    }
}

fn arb_record() -> impl Strategy<Value = ConsentRecord> {
    let purposes = [
        "analytics",
        "personalization",
        "marketing_email",
        "profiling",
        "sale_sharing",
        "advertising",
        "fairness_audit",
        "service",
    ];
    (
        prop::sample::select(purposes.to_vec()),
        any::<bool>(),
        0i64..50,
        prop::option::of(prop::sample::select(vec!["eu", "uk", "us_ca", "us"])),
    )
        .prop_map(|(p, granted, at, j)| rec(p, if granted { Granted } else { Withdrawn }, at, j))
}

proptest! {
    #[test]
    fn latest_withdrawal_always_denies(ledger in prop::collection::vec(arb_record(), 0..20)) {
        let p = default_policy();
        let state = ConsentState::from_ledger(&ledger);
        for def in p.purposes() {
            let result = p.decide(TenantId::new(), SubjectId::new(), &def.name, &state);
            if state.answer(&def.name) == Some(false) && def.basis != Basis::Contract {
                prop_assert!(result.is_err(), "{} allowed after withdrawal", def.name);
            }
            if let Ok(g) = result {
                prop_assert_eq!(g.categories(), &def.categories);
                prop_assert!(def.audit || !g.allows(&cat("protected")));
            }
        }
    }
}

#[test]
fn fairness_limits_have_defaults_and_are_validated() {
    let d = Policy::parse("t.toml", MIN).expect("valid");
    assert_eq!(d.fairness(), &crate::FairnessPolicy::default());
    assert_eq!(
        default_policy().fairness().min_selection_rate_ratio,
        Some(0.8)
    );
    let p = Policy::parse(
        "t.toml",
        &format!("{MIN}[fairness]\nmin_selection_rate_ratio = 0.9\nmin_group_size = 50\nage_bands = [25, 40.5]\nmax_proxy_cramers_v = 1\n"),
    )
    .expect("valid");
    let f = p.fairness();
    assert_eq!(
        (
            f.min_selection_rate_ratio,
            f.min_group_size,
            f.max_proxy_cramers_v
        ),
        (Some(0.9), 50, Some(1.0))
    );
    assert_eq!(f.age_bands, vec![25.0, 40.5]);
    assert_eq!(f.max_equalized_odds_difference, Some(0.1));
    let line = MIN.lines().count() + 2;
    one_error(
        &format!("{MIN}[fairness]\nmin_selection_rate_ratio = 1.5\n"),
        &format!("{line}:28"),
        "between 0 and 1",
    );
    one_error(
        &format!("{MIN}[fairness]\nmin_group_size = 0.5\n"),
        &format!("{line}:18"),
        "whole number",
    );
    one_error(
        &format!("{MIN}[fairness]\nage_bands = [40, 30]\n"),
        &format!("{line}:18"),
        "must increase",
    );
    one_error(
        &format!("{MIN}[fairness]\nmax_equalized_odds_difference = \"low\"\n"),
        &format!("{line}:33"),
        "must be a number",
    );
    one_error(
        &format!("{MIN}[fairness]\nmin_ratio = 0.8\n"),
        &format!("{line}:1"),
        "unknown key `min_ratio` in [fairness]",
    );
}

#[test]
fn smtp_email_and_journeys() {
    let p = default_policy();
    assert!(p.smtp().is_none() && p.journeys().is_empty());
    assert_eq!(p.email().quiet_hours, (21, 8));
    assert_eq!(p.email().max_marketing_emails, 3);
    let text = format!(
        r#"{MIN}
[smtp]
host = "127.0.0.1"
port = 2525
tls = "none"
from = "Shop <shop@example.org>"
postal_address = "1 Market Street, Springfield"

ca_file = "relay-ca.pem"

[email]
quiet_hours = [0, 0]
time_zone = "Europe/Paris"
templates = "email-templates"
shop_url = "https://shop.example.org/"

[[journeys]]
template = "abandoned_cart"
wait = "1s"
holdout = 0.25

[[journeys]]
template = "welcome"

[[journeys]]
name = "back_in_stock"
trigger = "Product Wished"
email = "browse_abandonment"
wait = "2w"
exit_on = ["Order Completed"]

[webhooks.crm]
url = "https://crm.example.org/hooks"
purpose = "analytics"
fields = ["traits.email"]
secret_env = "CRM_SECRET"

[[journeys]]
name = "vip"
trigger = "Order Completed"
steps = [{{ wait = "1h", email = "welcome" }}, {{ wait = "2d", webhook = "crm" }}]
"#
    );
    let p = Policy::parse("t.toml", &text).expect("valid");
    let smtp = p.smtp().expect("smtp");
    assert_eq!((smtp.port, smtp.tls), (2525, crate::SmtpTls::None));
    assert_eq!(p.email().time_zone, "Europe/Paris");
    assert_eq!(smtp.ca_file.as_deref(), Some("relay-ca.pem"));
    assert_eq!(p.email().templates.as_deref(), Some("email-templates"));
    assert_eq!(
        p.email().shop_url.as_deref(),
        Some("https://shop.example.org")
    );
    let j = p.journeys();
    assert_eq!(j.len(), 4);
    assert_eq!(j[3].steps.len(), 2);
    assert_eq!(j[3].steps[1].action(), "webhook:crm");
    assert_eq!(j[3].steps[1].wait_ms, 2 * 24 * 3_600_000);
    let crm = p.webhook("crm").expect("webhook");
    assert_eq!((crm.purpose.as_str(), crm.fields.len()), ("analytics", 1));
    assert_eq!(
        (
            j[0].name.as_str(),
            j[0].trigger.as_str(),
            j[0].steps[0].wait_ms,
            j[0].holdout
        ),
        ("abandoned_cart", "Checkout Started", 1000, 0.25)
    );
    assert_eq!(j[0].exit_on, ["Order Completed"]);
    assert_eq!(j[1].steps.len(), 2);
    assert_eq!(j[2].steps[0].wait_ms, 14 * 24 * 3_600_000);
    // Errors, located.
    let bad = |from: &str, to: &str| errors(&text.replacen(from, to, 1));
    let e = bad("tls = \"none\"", "tls = \"ssl\"");
    assert!(
        e.len() == 1 && e[0].contains("none, starttls or tls"),
        "{e:?}"
    );
    let e = bad("purpose = \"analytics\"", "purpose = \"sales\"");
    assert!(
        e.len() == 1 && e[0].contains("`sales` is not defined"),
        "{e:?}"
    );
    let e = bad("webhook = \"crm\"", "webhook = \"erp\"");
    assert!(e.len() == 1 && e[0].contains("[webhooks.erp]"), "{e:?}");
    let e = bad("https://crm.example.org", "http://crm.example.org");
    assert!(e.len() == 1 && e[0].contains("https://"), "{e:?}");
    let e = bad("wait = \"1s\"", "wait = \"soon\"");
    assert!(e.len() == 1 && e[0].contains("duration"), "{e:?}");
    let e = bad("template = \"welcome\"", "template = \"birthday\"");
    assert!(
        e.len() == 1 && e[0].contains("no built-in journey"),
        "{e:?}"
    );
    let e = bad("holdout = 0.25", "holdout = 1.5");
    assert!(e.len() == 1 && e[0].contains("holdout"), "{e:?}");
    let e = bad("template = \"welcome\"", "template = \"abandoned_cart\"");
    assert!(e.len() == 1 && e[0].contains("defined twice"), "{e:?}");
    let e = bad(
        "time_zone = \"Europe/Paris\"",
        "time_zone = \"Mars/Olympus\"",
    );
    assert!(e.len() == 1 && e[0].contains("IANA"), "{e:?}");
    let e = bad("from = \"Shop <shop@example.org>\"", "from = \"shop\"");
    assert!(e.len() == 1 && e[0].contains("email address"), "{e:?}");
    let no_smtp = text.replace("[smtp]", "[smtp_off]");
    let e = errors(&no_smtp);
    assert!(e.iter().any(|e| e.contains("configure [smtp]")), "{e:?}");
    assert_eq!(crate::parse_duration("250ms"), Some(250));
    assert_eq!(crate::parse_duration("4h"), Some(4 * 3_600_000));
    assert_eq!(crate::parse_duration("h"), None);
    assert_eq!(crate::parse_duration("3y"), None);
}
