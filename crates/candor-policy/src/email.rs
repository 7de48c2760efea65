//! `[smtp]`, `[email]` and `[[journeys]]`: how Candor sends marketing email, the limits it keeps
//! for every person (frequency cap, quiet hours), and the journeys that send it.

use serde::Serialize;

/// How the SMTP connection is secured.
#[derive(Clone, Copy, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    /// Plain SMTP (a relay on the same host or network).
    None,
    /// Plain connection upgraded with STARTTLS (refused if the server does not offer it).
    StartTls,
    /// TLS from the first byte (port 465).
    Tls,
}

/// `[smtp]`: the relay Candor hands messages to. Credentials come from the environment
/// variables named here, never from the file.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct SmtpPolicy {
    pub host: String,
    pub port: u16,
    pub tls: SmtpTls,
    /// `Shop <shop@example.org>`.
    pub from: String,
    /// The sender's postal address, printed in every marketing email.
    pub postal_address: String,
    pub username_env: Option<String>,
    pub password_env: Option<String>,
    /// Bounded send rate, messages per second.
    pub max_per_second: u32,
    /// `mailto:` target of `List-Unsubscribe` (default: `unsubscribe@` the sender's domain).
    pub unsubscribe_mailto: Option<String>,
    /// Extra trusted CA certificates (PEM) for a relay with a private certificate.
    pub ca_file: Option<String>,
}

/// `[email]`: limits kept for every person, at send time.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct EmailPolicy {
    /// The public address of Candor's web endpoints (unsubscribe, "why did I get this?").
    pub public_url: String,
    /// At most this many marketing emails per person ...
    pub max_marketing_emails: u32,
    /// ... in this many days.
    pub per_days: u32,
    /// No marketing email between these local hours (`[21, 8]`: 21:00–08:00); none if equal.
    pub quiet_hours: (u8, u8),
    /// The time zone of people whose `traits.timezone` is unknown (IANA name).
    pub time_zone: String,
    /// Journey sends count as converted when the person orders within this many days.
    pub conversion_days: u32,
    /// A directory of email templates (`NAME.subject`, `NAME.txt`, `NAME.html`) that add to or
    /// replace the built-in ones.
    pub templates: Option<String>,
    /// The shop's own address, for links in emails (default: `public_url`).
    pub shop_url: Option<String>,
}

impl Default for EmailPolicy {
    fn default() -> Self {
        EmailPolicy {
            public_url: "http://127.0.0.1:8080".into(),
            max_marketing_emails: 3,
            per_days: 7,
            quiet_hours: (21, 8),
            time_zone: "UTC".into(),
            conversion_days: 7,
            templates: None,
            shop_url: None,
        }
    }
}

/// One step of a journey, `wait_ms` after the previous step (the first: after the trigger):
/// an email, or a call of a webhook.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct JourneyStep {
    pub wait_ms: i64,
    /// The email template's name (empty for a webhook step).
    pub email: String,
    /// The `[webhooks.NAME]` this step calls instead of sending an email.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhook: Option<String>,
}

impl JourneyStep {
    /// What the step does, as stored with it: the template name, or `webhook:NAME`.
    pub fn action(&self) -> String {
        match &self.webhook {
            Some(w) => format!("webhook:{w}"),
            None => self.email.clone(),
        }
    }
}

/// `[webhooks.NAME]`: an HTTP endpoint a journey step calls (a CRM, an SMS tool). It receives
/// only the fields listed, and only those the purpose may read for that person at call time.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct WebhookPolicy {
    pub name: String,
    pub url: String,
    /// The purpose the call needs a grant for (default `marketing_email`).
    pub purpose: String,
    /// Field paths sent (e.g. `traits.email`).
    pub fields: Vec<String>,
    /// Environment variable holding the HMAC-SHA256 key of the `X-Candor-Signature` header.
    pub secret_env: Option<String>,
}

/// A journey: who enters (an event), what they get and when, what takes them out.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct JourneyDef {
    pub name: String,
    pub trigger: String,
    pub steps: Vec<JourneyStep>,
    /// Any of these events after the trigger ends the journey for the person.
    pub exit_on: Vec<String>,
    /// Share of entrants randomly never emailed, to measure uplift.
    pub holdout: f64,
}

const HOUR: i64 = 3_600_000;
const DAY: i64 = 24 * HOUR;

/// The built-in journeys by name.
pub const BUILT_IN_JOURNEYS: &[&str] = &[
    "abandoned_cart",
    "browse_abandonment",
    "welcome",
    "win_back",
];

/// A built-in journey, with its defaults.
pub fn built_in_journey(name: &str) -> Option<JourneyDef> {
    let def = |trigger: &str, steps: &[(i64, &str)], exit_on: &[&str]| JourneyDef {
        name: name.to_string(),
        trigger: trigger.to_string(),
        steps: steps
            .iter()
            .map(|(w, e)| JourneyStep {
                wait_ms: *w,
                email: (*e).to_string(),
                webhook: None,
            })
            .collect(),
        exit_on: exit_on.iter().map(|s| (*s).to_string()).collect(),
        holdout: 0.0,
    };
    Some(match name {
        "abandoned_cart" => def(
            "Checkout Started",
            &[(4 * HOUR, "abandoned_cart")],
            &["Order Completed"],
        ),
        "browse_abandonment" => def(
            "Product Viewed",
            &[(DAY, "browse_abandonment")],
            &["Product Added", "Checkout Started", "Order Completed"],
        ),
        "welcome" => def(
            "Signed Up",
            &[(0, "welcome"), (3 * DAY, "welcome_followup")],
            &[],
        ),
        // Every order restarts it: the email goes 90 days after the last order.
        "win_back" => def(
            "Order Completed",
            &[(90 * DAY, "win_back")],
            &["Order Completed"],
        ),
        _ => return None,
    })
}

/// `4h`, `90d`, `1s`, `30m`, `2w`, `250ms` as milliseconds.
pub fn parse_duration(s: &str) -> Option<i64> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit())?;
    let (n, unit) = s.split_at(split);
    let n: i64 = n.parse().ok()?;
    let ms = match unit {
        "ms" => 1,
        "s" => 1000,
        "m" => 60_000,
        "h" => HOUR,
        "d" => DAY,
        "w" => 7 * DAY,
        _ => return None,
    };
    n.checked_mul(ms)
}
