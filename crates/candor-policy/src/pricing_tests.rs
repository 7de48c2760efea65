//! The price guard's rules at their edges, and `[pricing]` validation.

use std::collections::BTreeSet;

use proptest::prelude::*;

use crate::pricing::{
    PricePoint, PriceProposal, PriceVerdict, Signal, SignalClass, check_discount, prior_lowest,
};
use crate::{DEFAULT_POLICY, Denial, Policy};

fn default_policy() -> Policy {
    Policy::parse("candor.toml", DEFAULT_POLICY).expect("the default policy is valid")
}

/// The default policy with `[pricing]` keys replaced or added; tables in `extra` (from the
/// first `[` line) go at the end of the file.
fn with_pricing(extra: &str) -> Policy {
    let (keys, tables) = match (extra.starts_with('[')).then_some(0).or(extra.find("\n[")) {
        Some(i) => extra.split_at(i),
        None => (extra, ""),
    };
    let mut text = DEFAULT_POLICY.to_string();
    for line in keys.lines().filter(|l| !l.trim().is_empty()) {
        let key = line.split_once('=').map_or(line, |(k, _)| k).trim();
        let section = text.find("[pricing]\n").expect("a [pricing] section");
        match text[section..]
            .lines()
            .position(|l| l.split_once('=').is_some_and(|(k, _)| k.trim() == key))
        {
            Some(n) => {
                let old = text[section..]
                    .lines()
                    .nth(n)
                    .unwrap_or_default()
                    .to_string();
                text = text.replacen(&old, line, 1);
            }
            None => text = text.replacen("[pricing]\n", &format!("[pricing]\n{line}\n"), 1),
        }
    }
    text.push_str(tables);
    text.push('\n');
    Policy::parse("t.toml", &text).unwrap_or_else(|e| panic!("{e:?}"))
}

fn eur() -> candor_types::Currency {
    candor_types::Currency::parse("EUR").expect("EUR")
}

fn sig(name: &str) -> Signal {
    Signal {
        name: name.into(),
        source: None,
    }
}

fn proposal<'a>(
    list: i64,
    proposed: i64,
    signals: &'a [Signal],
    flagged: &'a BTreeSet<String>,
) -> PriceProposal<'a> {
    PriceProposal {
        currency: eur(),
        category: None,
        list,
        proposed,
        unpersonalized: None,
        signals,
        subject: None,
        segment_price: None,
        flagged_proxies: flagged,
    }
}

#[test]
fn default_pricing_refuses_personal_data() {
    let p = default_policy();
    assert!(!p.pricing().personal_pricing);
    assert_eq!(p.pricing().purpose, "profiling");
    let none = BTreeSet::new();
    let signals = [sig("demand"), sig("loyalty_tier")];
    let o = p.check_price(&proposal(1000, 1050, &signals, &none));
    assert_eq!(o.verdict, PriceVerdict::Refuse);
    assert_eq!(o.price, 1000, "the unpersonalized price is shown");
    assert!(!o.personalized);
    assert_eq!(o.disclosure, None);
    assert_eq!(o.reasons[0].code, "personal_pricing_off");
    assert!(o.reasons[0].message.contains("loyalty_tier"));
    assert_eq!(
        o.signals,
        vec![
            ("demand".into(), SignalClass::Market),
            ("loyalty_tier".into(), SignalClass::Personal)
        ]
    );
    // Market signals alone are fine.
    let o = p.check_price(&proposal(1000, 1050, &signals[..1], &none));
    assert_eq!(o.verdict, PriceVerdict::Allow);
    assert_eq!(o.price, 1050);
}

#[test]
fn protected_attributes_and_their_names_are_refused() {
    let p = with_pricing("personal_pricing = true");
    let none = BTreeSet::new();
    for (s, source) in [
        ("age", None),
        ("age_band", None),
        ("Gender-Guess", None),
        ("traits.marital", None),
        ("is_pregnant", None),
        ("spend_tier", Some("traits.birthday")),
        ("spend_tier", Some("traits.age")),
    ] {
        let signals = [Signal {
            name: s.into(),
            source: source.map(str::to_string),
        }];
        let mut prop = proposal(1000, 900, &signals, &none);
        prop.subject = Some(Ok(()));
        let o = p.check_price(&prop);
        assert_eq!(o.verdict, PriceVerdict::Refuse, "{s} {source:?}");
        assert_eq!(o.reasons[0].code, "protected_signal", "{s}");
        assert_eq!(o.price, 1000);
        assert!(!o.personalized);
        assert_eq!(o.disclosure, None);
    }
    // Words that merely contain a protected name are not it.
    let signals = [sig("page_views")];
    let mut prop = proposal(1000, 900, &signals, &none);
    prop.subject = Some(Ok(()));
    assert_eq!(p.check_price(&prop).verdict, PriceVerdict::Allow);
}

#[test]
fn flagged_proxies_and_vulnerability_signals_are_refused() {
    let p = with_pricing("personal_pricing = true");
    let flagged: BTreeSet<String> = ["basket_mix".to_string()].into();
    for (s, code) in [
        ("basket_mix", "proxy_signal"),
        ("Zip Code", "proxy_signal"),
        ("battery_level", "vulnerability_signal"),
        ("device-type", "vulnerability_signal"),
    ] {
        let signals = [sig("demand"), sig(s)];
        let mut prop = proposal(1000, 1080, &signals, &flagged);
        prop.subject = Some(Ok(()));
        let o = p.check_price(&prop);
        assert_eq!(o.verdict, PriceVerdict::Refuse, "{s}");
        assert_eq!(o.reasons[0].code, code, "{s}");
        assert_eq!(o.price, 1000);
    }
    // Without the flag the same signal is personal data, allowed with consent.
    let none = BTreeSet::new();
    let signals = [sig("basket_mix")];
    let mut prop = proposal(1000, 1080, &signals, &none);
    prop.subject = Some(Ok(()));
    let o = p.check_price(&prop);
    assert_eq!(o.verdict, PriceVerdict::Allow);
    assert!(o.personalized);
}

#[test]
fn personal_pricing_needs_a_named_person_with_a_grant() {
    let p = with_pricing("personal_pricing = true");
    let none = BTreeSet::new();
    let signals = [sig("loyalty_tier")];
    let mut prop = proposal(1000, 950, &signals, &none);
    prop.unpersonalized = Some(990);
    let o = p.check_price(&prop);
    assert_eq!(
        (o.verdict, o.price, o.reasons[0].code),
        (PriceVerdict::Refuse, 990, "subject_required")
    );
    let objected = Denial {
        purpose: "profiling".into(),
        code: "consent_withdrawn",
        reason: "consent withdrawn at … via request".into(),
    };
    prop.subject = Some(Err(&objected));
    let o = p.check_price(&prop);
    assert_eq!(
        (o.verdict, o.price, o.reasons[0].code),
        (PriceVerdict::Refuse, 990, "consent_denied")
    );
    assert!(o.reasons[0].message.contains("withdrawn"));
    assert_eq!(o.disclosure, None);
    prop.subject = Some(Ok(()));
    let o = p.check_price(&prop);
    assert_eq!((o.verdict, o.price), (PriceVerdict::Allow, 950));
    assert!(o.personalized);
    assert_eq!(
        o.disclosure.as_deref(),
        Some("THIS PRICE WAS SET BY AN ALGORITHM USING YOUR PERSONAL DATA")
    );
}

#[test]
fn caps_hold_at_their_edges() {
    let p = default_policy(); // +10 %, −50 %
    let none = BTreeSet::new();
    let cases = [
        // (list, proposed, verdict, shown, reason)
        (1000, 1100, PriceVerdict::Allow, 1100, None),
        (1000, 1101, PriceVerdict::Adjust, 1100, Some("above_cap")),
        (1000, 500, PriceVerdict::Allow, 500, None),
        (1000, 499, PriceVerdict::Adjust, 500, Some("below_floor")),
        // 10 % of 999 is 99.9: the bound rounds toward the list price.
        (999, 1098, PriceVerdict::Allow, 1098, None),
        (999, 1099, PriceVerdict::Adjust, 1098, Some("above_cap")),
        // 50 % of 999 is 499.5: the floor is 500, never below half.
        (999, 500, PriceVerdict::Allow, 500, None),
        (999, 499, PriceVerdict::Adjust, 500, Some("below_floor")),
        (1, 1, PriceVerdict::Allow, 1, None),
        (1, 2, PriceVerdict::Adjust, 1, Some("above_cap")),
    ];
    for (list, proposed, verdict, shown, reason) in cases {
        let o = p.check_price(&proposal(list, proposed, &[], &none));
        assert_eq!((o.verdict, o.price), (verdict, shown), "{list} {proposed}");
        assert_eq!(
            o.reasons.first().map(|r| r.code),
            reason,
            "{list} {proposed}"
        );
        assert!(!o.personalized && o.disclosure.is_none());
    }
}

#[test]
fn essential_categories_never_surge_and_categories_have_their_caps() {
    let p = with_pricing(
        "[pricing.categories.electronics]\nmax_increase = 0.05\nmax_decrease = 0.2\n[pricing.categories.water]\nessential = true",
    );
    let none = BTreeSet::new();
    let mut prop = proposal(1000, 1001, &[], &none);
    for cat in ["Groceries", "baby", "water"] {
        prop.category = Some(cat);
        prop.proposed = 1001;
        let o = p.check_price(&prop);
        assert_eq!((o.verdict, o.price), (PriceVerdict::Adjust, 1000), "{cat}");
        assert_eq!(o.reasons[0].code, "essential_no_surge");
        prop.proposed = 1000;
        assert_eq!(p.check_price(&prop).verdict, PriceVerdict::Allow);
        prop.proposed = 600;
        assert_eq!(
            p.check_price(&prop).verdict,
            PriceVerdict::Allow,
            "discounts are fine"
        );
    }
    prop.category = Some("electronics");
    for (proposed, verdict, shown) in [
        (1050, PriceVerdict::Allow, 1050),
        (1051, PriceVerdict::Adjust, 1050),
        (800, PriceVerdict::Allow, 800),
        (799, PriceVerdict::Adjust, 800),
    ] {
        prop.proposed = proposed;
        let o = p.check_price(&prop);
        assert_eq!((o.verdict, o.price), (verdict, shown), "{proposed}");
    }
}

#[test]
fn segment_prices_bind_unpersonalized_prices_only() {
    let p = with_pricing("personal_pricing = true");
    let none = BTreeSet::new();
    let mut prop = proposal(1000, 1040, &[], &none);
    prop.segment_price = Some(1020);
    let o = p.check_price(&prop);
    assert_eq!((o.verdict, o.price), (PriceVerdict::Adjust, 1020));
    assert_eq!(o.reasons[0].code, "segment_price");
    assert!(o.segment_bound);
    prop.proposed = 1020;
    assert_eq!(p.check_price(&prop).verdict, PriceVerdict::Allow);
    // A pinned price outside today's caps gives way to the caps.
    prop.segment_price = Some(1200);
    assert_eq!(p.check_price(&prop).price, 1100);
    // A personal price is not a segment price.
    let signals = [sig("loyalty_tier")];
    let mut prop = proposal(1000, 1040, &signals, &none);
    prop.subject = Some(Ok(()));
    prop.segment_price = Some(1020);
    let o = p.check_price(&prop);
    assert_eq!((o.verdict, o.price), (PriceVerdict::Allow, 1040));
    assert!(!o.segment_bound);
}

#[test]
fn discounts_are_announced_against_the_prior_lowest() {
    let d = check_discount(eur(), 800, Some(1000), None, 30);
    assert!(d.allowed);
    assert_eq!((d.reference, d.percent_off), (Some(1000), Some(20)));
    // 1 − 667/1000 is 33.3 %: never rounded up.
    assert_eq!(
        check_discount(eur(), 667, Some(1000), None, 30).percent_off,
        Some(33)
    );
    let d = check_discount(eur(), 1000, Some(1000), Some(1200), 30);
    assert!(!d.allowed);
    let codes: Vec<&str> = d.reasons.iter().map(|r| r.code).collect();
    assert_eq!(codes, ["reference_not_prior_lowest", "not_a_reduction"]);
    let d = check_discount(eur(), 800, None, Some(1000), 30);
    assert!(!d.allowed);
    assert_eq!(d.reasons[0].code, "no_prior_price");
}

#[test]
fn prior_lowest_carries_the_price_in_effect_into_the_window() {
    let p = |at, price| PricePoint { at, price };
    assert_eq!(prior_lowest(&[], None), None);
    assert_eq!(prior_lowest(&[], Some(p(1, 500))), Some(p(1, 500)));
    assert_eq!(
        prior_lowest(&[p(10, 700), p(20, 650)], Some(p(1, 900))),
        Some(p(20, 650))
    );
    assert_eq!(
        prior_lowest(&[p(10, 700)], Some(p(1, 600))),
        Some(p(1, 600))
    );
    // The same lowest twice: the latest is reported.
    assert_eq!(
        prior_lowest(&[p(10, 600), p(20, 600)], None),
        Some(p(20, 600))
    );
}

#[test]
fn pricing_section_is_validated() {
    let base = DEFAULT_POLICY;
    let bad = [
        (
            "max_increase = 0.10",
            "max_increase = -0.1",
            "share of the list price",
        ),
        (
            "max_decrease = 0.50",
            "max_decrease = 1.5",
            "share of the list price",
        ),
        (
            "max_increase = 0.10",
            "max_increase = 0.123456",
            "four decimals",
        ),
        (
            "purpose = \"profiling\"",
            "purpose = \"nope\"",
            "does not define",
        ),
        (
            "purpose = \"profiling\"",
            "purpose = \"fairness_audit\"",
            "audit purpose",
        ),
        (
            "segment_window = \"1h\"",
            "segment_window = \"soon\"",
            "segment_window",
        ),
        ("history_days = 400", "history_days = 20", "longer than"),
        (
            "max_dispersion_ratio = 1.25",
            "max_dispersion_ratio = 0.9",
            "above 1",
        ),
        (
            "personal_pricing = false",
            "personal_pricing = \"no\"",
            "true or false",
        ),
        (
            "market_signals = [\"demand\"",
            "market_signals = [\"battery_level\", \"demand\"",
            "one class",
        ),
        (
            "min_group_lines = 5",
            "min_group_lines = 5\ncolour = 1",
            "unknown key",
        ),
    ];
    for (from, to, msg) in bad {
        assert!(base.contains(from), "{from}");
        let text = base.replacen(from, to, 1);
        let err = Policy::parse("t.toml", &text).expect_err(to);
        assert!(
            err.0.iter().any(|e| e.message.contains(msg)),
            "{to}: {:?}",
            err.0
        );
        // Located at the offending line.
        let line = text
            .lines()
            .position(|l| l.contains(to.lines().last().unwrap_or(to)))
            .unwrap_or(0)
            + 1;
        assert!(
            err.0
                .iter()
                .any(|e| e.line == line || e.message.contains("[pricing]")),
            "{to}: {:?} (line {line})",
            err.0
        );
    }
    let p = with_pricing("protected_signals = [\"caste\"]\nsegment_window = \"15m\"");
    assert!(p.pricing().protected_signals.contains("caste"));
    assert!(
        p.pricing().protected_signals.contains("age"),
        "added to, not replaced"
    );
    assert_eq!(p.pricing().segment_window_ms, 15 * 60_000);
}

fn arb_signal() -> impl Strategy<Value = Signal> {
    prop_oneof![
        Just("demand"),
        Just("age_band"),
        Just("loyalty_tier"),
        Just("battery_level"),
        Just("postcode"),
        Just("cart_value"),
        Just("season"),
    ]
    .prop_map(sig)
}

proptest! {
    /// Whatever is proposed, the price shown stays within the caps, and the disclosure is
    /// there exactly when personal data shaped it.
    #[test]
    fn shown_prices_respect_the_caps(
        list in 1i64..1_000_000,
        proposed in 1i64..2_000_000,
        unpersonalized in 1i64..2_000_000,
        signals in prop::collection::vec(arb_signal(), 0..4),
        personal in any::<bool>(),
        granted in any::<bool>(),
        essential in any::<bool>(),
    ) {
        let p = if personal { with_pricing("personal_pricing = true") } else { default_policy() };
        let none = BTreeSet::new();
        let denial = Denial { purpose: "profiling".into(), code: "no_consent", reason: "none".into() };
        let prop = PriceProposal {
            currency: eur(),
            category: essential.then_some("groceries"),
            list,
            proposed,
            unpersonalized: Some(unpersonalized),
            signals: &signals,
            subject: Some(if granted { Ok(()) } else { Err(&denial) }),
            segment_price: None,
            flagged_proxies: &none,
        };
        let o = p.check_price(&prop);
        prop_assert!(o.price >= o.bounds.0 && o.price <= o.bounds.1);
        prop_assert!(!essential || o.price <= list);
        prop_assert_eq!(o.disclosure.is_some(), o.personalized);
        let uses_personal = signals.iter().any(|s| s.name == "loyalty_tier" || s.name == "cart_value")
            || proposed != unpersonalized;
        let refused_class = signals.iter().any(|s| ["age_band", "battery_level", "postcode"].contains(&s.name.as_str()));
        prop_assert_eq!(o.personalized, personal && granted && uses_personal && !refused_class);
        if o.verdict == PriceVerdict::Refuse {
            prop_assert_eq!(o.price, unpersonalized.clamp(o.bounds.0, o.bounds.1));
        } else if o.verdict == PriceVerdict::Allow {
            prop_assert_eq!(o.price, proposed);
        }
    }
}
