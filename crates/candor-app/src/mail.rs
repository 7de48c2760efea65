//! Email content: templates (minijinja, sandboxed: no file or network access from a template,
//! HTML auto-escaped) and the MIME message around them.
//!
//! A template renders only the body. The footer every marketing email must carry is Candor's,
//! not the template's, so no template can leave it out: the "Why did I get this email?" link,
//! a note when content was chosen by a model, the visible unsubscribe link and the sender's
//! postal address. Headers carry `List-Unsubscribe` (https and mailto) and
//! `List-Unsubscribe-Post: List-Unsubscribe=One-Click` (RFC 8058).

use std::collections::BTreeMap;
use std::path::Path;

use base64::Engine as _;
use serde::Serialize;

use crate::card::esc;

/// Built-in templates: (name, subject, text, html).
const BUILT_IN: &[(&str, &str, &str, &str)] = &[
    (
        "abandoned_cart",
        include_str!("../templates/email/abandoned_cart.subject"),
        include_str!("../templates/email/abandoned_cart.txt"),
        include_str!("../templates/email/abandoned_cart.html"),
    ),
    (
        "browse_abandonment",
        include_str!("../templates/email/browse_abandonment.subject"),
        include_str!("../templates/email/browse_abandonment.txt"),
        include_str!("../templates/email/browse_abandonment.html"),
    ),
    (
        "welcome",
        include_str!("../templates/email/welcome.subject"),
        include_str!("../templates/email/welcome.txt"),
        include_str!("../templates/email/welcome.html"),
    ),
    (
        "welcome_followup",
        include_str!("../templates/email/welcome_followup.subject"),
        include_str!("../templates/email/welcome_followup.txt"),
        include_str!("../templates/email/welcome_followup.html"),
    ),
    (
        "win_back",
        include_str!("../templates/email/win_back.subject"),
        include_str!("../templates/email/win_back.txt"),
        include_str!("../templates/email/win_back.html"),
    ),
];

/// The three parts of an email template.
const PARTS: [&str; 3] = ["subject", "txt", "html"];

/// The email templates: built in, plus a directory's (which win on a name clash).
pub struct Templates {
    env: minijinja::Environment<'static>,
}

impl std::fmt::Debug for Templates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Templates").finish_non_exhaustive()
    }
}

/// What a template may use.
#[derive(Clone, Debug, Default, Serialize)]
pub struct EmailContext {
    /// The person's first name, if the store sent one and `marketing_email` may read it.
    pub name: Option<String>,
    /// Products of the triggering event (the cart, the product viewed).
    pub items: Vec<Product>,
    /// Recommendations, only under `personalization` consent (else popular items or none).
    pub recommendations: Vec<Recommended>,
    pub shop_url: String,
}

#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct Product {
    pub id: String,
    pub name: String,
    pub price: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Recommended {
    pub item: String,
    pub name: String,
    pub reason: String,
}

/// A rendered body.
#[derive(Clone, Debug)]
pub struct Rendered {
    pub subject: String,
    pub text: String,
    pub html: String,
}

impl Templates {
    /// Loads the built-in templates and those in `dir` (`NAME.subject`, `NAME.txt`,
    /// `NAME.html`, all three). Every template is compiled now, so a broken one stops startup.
    pub fn load(dir: Option<&Path>) -> Result<Self, String> {
        let mut env = minijinja::Environment::new();
        env.set_auto_escape_callback(|name| {
            if name.ends_with(".html") {
                minijinja::AutoEscape::Html
            } else {
                minijinja::AutoEscape::None
            }
        });
        env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
        for (name, subject, text, html) in BUILT_IN {
            for (part, src) in PARTS.iter().zip([subject, text, html]) {
                env.add_template_owned(format!("{name}.{part}"), (*src).to_string())
                    .map_err(|e| format!("built-in template {name}.{part}: {e}"))?;
            }
        }
        if let Some(dir) = dir {
            let entries = std::fs::read_dir(dir)
                .map_err(|e| format!("email templates {}: {e}", dir.display()))?;
            let mut found: BTreeMap<String, Vec<String>> = BTreeMap::new();
            for entry in entries {
                let path = entry
                    .map_err(|e| format!("email templates {}: {e}", dir.display()))?
                    .path();
                let (Some(stem), Some(ext)) = (
                    path.file_stem().and_then(|s| s.to_str()),
                    path.extension().and_then(|s| s.to_str()),
                ) else {
                    continue;
                };
                if !PARTS.contains(&ext) {
                    continue;
                }
                let src = std::fs::read_to_string(&path)
                    .map_err(|e| format!("email template {}: {e}", path.display()))?;
                env.add_template_owned(format!("{stem}.{ext}"), src)
                    .map_err(|e| format!("email template {}: {e}", path.display()))?;
                found
                    .entry(stem.to_string())
                    .or_default()
                    .push(ext.to_string());
            }
            for (name, parts) in found {
                if parts.len() != PARTS.len() {
                    return Err(format!(
                        "email template {name:?} in {} needs {name}.subject, {name}.txt and {name}.html",
                        dir.display()
                    ));
                }
            }
        }
        Ok(Templates { env })
    }

    /// Whether a template of this name exists.
    pub fn has(&self, name: &str) -> bool {
        self.env.get_template(&format!("{name}.html")).is_ok()
    }

    pub fn render(&self, name: &str, ctx: &EmailContext) -> Result<Rendered, String> {
        let part = |p: &str| -> Result<String, String> {
            self.env
                .get_template(&format!("{name}.{p}"))
                .and_then(|t| t.render(minijinja::value::Serde(ctx)))
                .map_err(|e| format!("email template {name}.{p}: {e}"))
        };
        Ok(Rendered {
            subject: part("subject")?
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" "),
            text: part("txt")?,
            html: part("html")?,
        })
    }
}

/// Everything that goes around the body.
#[derive(Clone, Debug)]
pub struct Envelope<'a> {
    pub from: &'a str,
    pub to: &'a str,
    pub message_id: &'a str,
    pub date: jiff::Timestamp,
    /// `https://…/u/TOKEN`.
    pub unsubscribe_url: &'a str,
    /// `mailto:…`.
    pub unsubscribe_mailto: &'a str,
    /// `https://…/e/TOKEN/why`.
    pub why_url: &'a str,
    pub postal_address: &'a str,
    /// Content chosen by a model: say so.
    pub ai_note: bool,
    /// `List-Id`/`Feedback-ID` campaign name: the journey.
    pub journey: &'a str,
    /// An open-tracking pixel, only when the person allows analytics.
    pub pixel_url: Option<&'a str>,
}

const AI_NOTE: &str = "Some products in this email were chosen for you by an automated recommendation system, from your purchases, because you agreed to personalised recommendations.";

fn text_footer(e: &Envelope<'_>) -> String {
    let mut f = String::from("\n\n--\n");
    if e.ai_note {
        f.push_str(AI_NOTE);
        f.push('\n');
    }
    f.push_str(&format!("Why did I get this email? {}\n", e.why_url));
    f.push_str(&format!(
        "Unsubscribe with one click: {}\n",
        e.unsubscribe_url
    ));
    f.push_str(e.postal_address);
    f.push('\n');
    f
}

fn html_page(body: &str, e: &Envelope<'_>) -> String {
    let mut f = String::new();
    if e.ai_note {
        f.push_str(&format!("<p>{}</p>\n", esc(AI_NOTE)));
    }
    f.push_str(&format!(
        "<p><a href=\"{}\">Why did I get this email?</a> · <a href=\"{}\">Unsubscribe</a></p>\n<p>{}</p>\n",
        esc(e.why_url),
        esc(e.unsubscribe_url),
        esc(e.postal_address)
    ));
    if let Some(p) = e.pixel_url {
        f.push_str(&format!(
            "<img src=\"{}\" width=\"1\" height=\"1\" alt=\"\">\n",
            esc(p)
        ));
    }
    format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"></head>\n<body style=\"font-family:sans-serif;max-width:40em\">\n{body}\n<hr>\n<footer style=\"font-size:0.85em;color:#555\">\n{f}</footer>\n</body></html>\n"
    )
}

/// An RFC 2047 encoded word when the text is not plain ASCII.
fn header_text(s: &str) -> String {
    let clean: String = s.chars().filter(|c| *c != '\r' && *c != '\n').collect();
    if clean.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        clean
    } else {
        format!(
            "=?utf-8?b?{}?=",
            base64::engine::general_purpose::STANDARD.encode(clean.as_bytes())
        )
    }
}

/// Base64 body lines of 76 characters.
fn base64_lines(bytes: &[u8]) -> String {
    let b = base64::engine::general_purpose::STANDARD.encode(bytes);
    let mut out = String::with_capacity(b.len() + b.len() / 38);
    for chunk in b.as_bytes().chunks(76) {
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        out.push_str("\r\n");
    }
    out
}

/// The bare address of `Name <a@b>` (or `a@b`).
pub fn address_of(mailbox: &str) -> &str {
    match (mailbox.rfind('<'), mailbox.rfind('>')) {
        (Some(a), Some(b)) if a < b => mailbox[a + 1..b].trim(),
        _ => mailbox.trim(),
    }
}

/// The domain of `Name <a@b>`.
pub fn domain_of(mailbox: &str) -> &str {
    address_of(mailbox)
        .rsplit_once('@')
        .map_or("localhost", |(_, d)| d)
}

/// A plausible single address: one `@`, no spaces, controls or brackets; at most 254 bytes.
pub fn valid_address(a: &str) -> bool {
    let Some((local, domain)) = a.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && domain.contains('.')
        && !domain.contains('@')
        && a.len() <= 254
        && a.bytes()
            .all(|b| b > 0x20 && b < 0x7f && !b"<>()[],;:\\\"".contains(&b))
}

/// A transactional message (a sign-in link): one text part, no marketing headers, no footer.
pub fn build_notice(
    from: &str,
    to: &str,
    message_id: &str,
    date: jiff::Timestamp,
    subject: &str,
    text: &str,
) -> Vec<u8> {
    let date =
        jiff::fmt::rfc2822::to_string(&date.to_zoned(jiff::tz::TimeZone::UTC)).unwrap_or_default();
    let mut m = String::with_capacity(text.len() * 2 + 400);
    for (k, v) in [
        ("From", header_text(from)),
        ("To", format!("<{to}>")),
        ("Subject", header_text(subject)),
        ("Date", date),
        ("Message-ID", message_id.to_string()),
        ("Auto-Submitted", "auto-generated".to_string()),
        ("MIME-Version", "1.0".to_string()),
        ("Content-Type", "text/plain; charset=utf-8".to_string()),
    ] {
        m.push_str(&format!("{k}: {v}\r\n"));
    }
    // Plain ASCII within SMTP's line limit goes as it is (readable in an outbox file); anything else
    // as base64.
    if text.is_ascii() && text.lines().all(|l| l.len() <= 900) {
        m.push_str("Content-Transfer-Encoding: 7bit\r\n\r\n");
        m.push_str(&text.replace('\n', "\r\n"));
        if !text.ends_with('\n') {
            m.push_str("\r\n");
        }
    } else {
        m.push_str("Content-Transfer-Encoding: base64\r\n\r\n");
        m.push_str(&base64_lines(text.replace('\n', "\r\n").as_bytes()));
    }
    m.into_bytes()
}

/// The whole message (CRLF line ends): headers, `multipart/alternative` with the text and the
/// HTML part, each base64 (line length and encoding stay stable under DKIM signing).
pub fn build_message(e: &Envelope<'_>, body: &Rendered) -> Vec<u8> {
    let text = format!("{}{}", body.text.trim_end(), text_footer(e)).replace('\n', "\r\n");
    let html = html_page(&body.html, e).replace('\n', "\r\n");
    let boundary = format!(
        "=_candor_{}",
        e.message_id
            .trim_matches(['<', '>'])
            .split('@')
            .next()
            .unwrap_or("b")
    );
    let domain = domain_of(e.from);
    let date = jiff::fmt::rfc2822::to_string(&e.date.to_zoned(jiff::tz::TimeZone::UTC))
        .unwrap_or_default();
    let mut m = String::with_capacity(text.len() * 3 + html.len() * 2);
    let mut h = |k: &str, v: &str| {
        m.push_str(k);
        m.push_str(": ");
        m.push_str(v);
        m.push_str("\r\n");
    };
    h("From", &header_text(e.from));
    h("To", &format!("<{}>", e.to));
    h("Subject", &header_text(&body.subject));
    h("Date", &date);
    h("Message-ID", e.message_id);
    h(
        "List-Unsubscribe",
        &format!("<{}>,\r\n <{}>", e.unsubscribe_url, e.unsubscribe_mailto),
    );
    h("List-Unsubscribe-Post", "List-Unsubscribe=One-Click");
    h(
        "List-Id",
        &format!("<{}.{}>", e.journey.replace('_', "-"), domain),
    );
    h("Feedback-ID", &format!("{}:candor", e.journey));
    h("MIME-Version", "1.0");
    h(
        "Content-Type",
        &format!("multipart/alternative; boundary=\"{boundary}\""),
    );
    m.push_str("\r\n");
    for (ct, part) in [("text/plain", &text), ("text/html", &html)] {
        m.push_str(&format!(
            "--{boundary}\r\nContent-Type: {ct}; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        ));
        m.push_str(&base64_lines(part.as_bytes()));
    }
    m.push_str(&format!("--{boundary}--\r\n"));
    m.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        assert_eq!(address_of("Shop <shop@example.org>"), "shop@example.org");
        assert_eq!(domain_of("Shop <shop@example.org>"), "example.org");
        assert!(valid_address("a.b+c@example.org"));
        for bad in [
            "a@b",
            "a b@example.org",
            "a@example.org\r\nBcc: x@y.z",
            "@x.org",
            "<a@x.org>",
        ] {
            assert!(!valid_address(bad), "{bad}");
        }
    }

    #[test]
    fn every_built_in_template_renders_with_and_without_data() {
        let t = Templates::load(None).expect("built-ins compile");
        let full = EmailContext {
            name: Some("Ada <script>".into()),
            items: vec![Product {
                id: "p1".into(),
                name: "Mug".into(),
                price: Some("9.50".into()),
            }],
            recommendations: vec![Recommended {
                item: "p2".into(),
                name: "Plate".into(),
                reason: "because you bought Mug".into(),
            }],
            shop_url: "https://shop.example.org".into(),
        };
        for (name, ..) in BUILT_IN {
            let r = t.render(name, &full).expect("renders");
            assert!(!r.subject.is_empty() && !r.subject.contains('\n'));
            assert!(!r.html.contains("<script>"), "{name}: HTML is escaped");
            t.render(name, &EmailContext::default())
                .expect("renders empty");
        }
    }

    #[test]
    fn non_ascii_subjects_are_encoded_words() {
        assert_eq!(header_text("Hello"), "Hello");
        assert!(header_text("Grüße").starts_with("=?utf-8?b?"));
        assert_eq!(header_text("a\r\nBcc: x"), "aBcc: x");
    }
}
