//! What a customer's message asks for, from its words alone (no model): the topics the
//! assistant can act on, in order of precedence. Product questions are whatever is left when
//! no other topic is named; retrieval then decides how sure the assistant is.

/// What a message asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Intent {
    /// "agent", "human", "talk to a person".
    Human,
    /// Their data: access, deletion, consent, unsubscribing.
    Privacy,
    /// Where their order is.
    OrderStatus,
    /// Delivery and returns, payment, gift wrap: answered from the help articles.
    Help,
    /// "what would you recommend?"
    Recommend,
    Greeting,
    Thanks,
    /// Anything else: a product search, or not understood.
    Product,
}

impl Intent {
    pub fn as_str(self) -> &'static str {
        match self {
            Intent::Human => "human",
            Intent::Privacy => "privacy_request",
            Intent::OrderStatus => "order_status",
            Intent::Help => "help",
            Intent::Recommend => "recommendation",
            Intent::Greeting => "greeting",
            Intent::Thanks => "thanks",
            Intent::Product => "product_search",
        }
    }
}

fn has_any(joined: &str, phrases: &[&str]) -> bool {
    phrases.iter().any(|p| joined.contains(&format!(" {p} ")))
}

/// The message's words, lower case, joined by single spaces and padded (` a b c `).
pub fn joined(text: &str) -> String {
    let t = text.to_lowercase().replace(['’', '\''], "");
    let words: Vec<&str> = t
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect();
    format!(" {} ", words.join(" "))
}

pub fn detect(text: &str) -> Intent {
    let j = joined(text);
    if has_any(
        &j,
        &[
            "human",
            "agent",
            "person",
            "real person",
            "someone",
            "somebody",
            "operator",
            "representative",
            "staff",
            "customer service",
            "customer services",
            "advisor",
            "adviser",
            "speak to",
            "talk to",
            "call me",
            "live chat",
        ],
    ) && !has_any(
        &j,
        &["gift for", "present for", "for a person", "for someone"],
    ) {
        return Intent::Human;
    }
    if has_any(
        &j,
        &[
            "my data",
            "my personal data",
            "personal data",
            "my information",
            "privacy",
            "gdpr",
            "ccpa",
            "delete my account",
            "delete my data",
            "erase",
            "erasure",
            "forget me",
            "unsubscribe",
            "opt out",
            "optout",
            "consent",
            "what do you know about me",
            "data you hold",
            "subject access",
            "stop emailing",
            "stop sending",
        ],
    ) {
        return Intent::Privacy;
    }
    if has_any(
        &j,
        &[
            "my order",
            "my orders",
            "order status",
            "where is my",
            "wheres my",
            "track",
            "tracking",
            "my parcel",
            "my package",
            "my delivery",
            "has my",
            "not arrived",
            "hasnt arrived",
            "havent received",
            "not received",
            "when will my",
            "dispatched yet",
        ],
    ) {
        return Intent::OrderStatus;
    }
    if has_any(
        &j,
        &[
            "shipping",
            "delivery",
            "deliver",
            "delivered",
            "postage",
            "dispatch",
            "courier",
            "return",
            "returns",
            "refund",
            "refunds",
            "exchange",
            "send back",
            "send it back",
            "damaged",
            "broken",
            "faulty",
            "payment",
            "pay",
            "paypal",
            "invoice",
            "vat",
            "gift wrap",
            "gift wrapping",
            "wrapping",
            "wholesale",
            "bulk order",
            "cancel",
            "cancellation",
            "change my order",
            "voucher",
            "discount code",
            "opening hours",
            "contact you",
            "abroad",
            "overseas",
            "international",
            "customs",
        ],
    ) {
        return Intent::Help;
    }
    if has_any(
        &j,
        &[
            "recommend",
            "recommendation",
            "recommendations",
            "suggest",
            "suggestion",
            "suggestions",
            "ideas",
            "inspiration",
            "what should i buy",
            "bestseller",
            "bestsellers",
            "best seller",
            "best sellers",
            "popular",
            "for me",
        ],
    ) {
        return Intent::Recommend;
    }
    let words = j.split_whitespace().count();
    if words <= 4
        && has_any(
            &j,
            &[
                "thanks",
                "thank you",
                "thank",
                "cheers",
                "bye",
                "goodbye",
                "ta",
                "great thanks",
            ],
        )
    {
        return Intent::Thanks;
    }
    if words <= 4
        && has_any(
            &j,
            &[
                "hi",
                "hello",
                "hey",
                "good morning",
                "good afternoon",
                "good evening",
                "hiya",
                "yo",
            ],
        )
    {
        return Intent::Greeting;
    }
    Intent::Product
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intents() {
        for (text, want) in [
            ("I want to talk to a human", Intent::Human),
            ("agent please", Intent::Human),
            ("Please delete my data", Intent::Privacy),
            ("where is my order?", Intent::OrderStatus),
            ("how long does delivery to France take", Intent::Help),
            ("Can I return a broken mug?", Intent::Help),
            ("any gift ideas for me?", Intent::Recommend),
            ("hello!", Intent::Greeting),
            ("thanks, bye", Intent::Thanks),
            ("do you have a red retrospot cake stand?", Intent::Product),
            ("a gift for someone who loves tea", Intent::Product),
        ] {
            assert_eq!(detect(text), want, "{text}");
        }
    }
}
